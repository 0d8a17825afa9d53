"""Viewport layouts and comparison: 1×1 / 1×2 / 2×2, a series dragged from the browser into a
viewport, the active viewport, scroll / zoom-pan / W/L sync, compare with prior, AI flicker."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from desktop_app.dicom.voi import Window
from desktop_app.qt.study_browser import STACK_MIME
from desktop_app.studies.compare import StackGeometry, follow, summarize
from tests.helpers.priors import write_prior_pair
from tests.qt.conftest import open_and_wait

CURRENT_DATE, PRIOR_DATE = "20220309", "20210131"


def keys_by_date(window) -> dict[str, str]:
    """The CT stacks of patient 7 by study date (the other patient's 2020 study left out)."""
    summaries = summarize(window.studies.index, window.studies.assemblies)
    current = next(s for s in summaries.values() if s.study_date == CURRENT_DATE)
    return {s.study_date: s.key for s in summaries.values() if s.patient == current.patient}


@pytest.fixture
def pair_window(qtbot, make_window, tmp_path: Path):
    """A window with the current and prior studies (and another patient's) open, the current
    study's series in viewport 0."""
    write_prior_pair(tmp_path / "studies")
    window = make_window()
    open_and_wait(qtbot, window, [tmp_path / "studies"])
    keys = keys_by_date(window)
    with qtbot.waitSignal(window.studies.seriesShown, timeout=20_000):
        window.studies.show_stack(keys[CURRENT_DATE])
    qtbot.waitUntil(lambda: window.viewer.frame is not None, timeout=20_000)
    return window, keys


def wait_shown(qtbot, viewer) -> None:
    """Until the viewer's shown slice (not an earlier one) is on its canvas."""
    qtbot.waitUntil(lambda: viewer.frame is not None, timeout=20_000)
    qtbot.waitUntil(lambda: viewer._frame_index == viewer.index, timeout=20_000)


def z_of(viewer) -> float:
    position = viewer.context.stack.slices[viewer.index].position
    return float(position[2])


def test_layouts_show_one_two_and_four_viewports(qtbot, make_window) -> None:
    window = make_window()
    grid = window.viewports
    assert [f.isVisible() for f in grid.frames] == [True]
    window.acts["layout_1x2"].trigger()
    assert [f.isVisible() for f in grid.frames] == [True, True]
    assert window.viewer is grid.viewers[0]
    window.acts["layout_2x2"].trigger()
    assert [f.isVisible() for f in grid.frames] == [True] * 4
    assert grid.frames[3].geometry().top() > grid.frames[0].geometry().bottom()
    window.acts["layout_1x1"].trigger()
    assert [f.isVisible() for f in grid.frames] == [True, False, False, False]
    assert window.acts["layout_1x1"].isChecked()
    assert grid.viewers[1].canvas._placeholder.startswith("Drag a series here")


def test_clicking_a_viewport_makes_it_active_and_view_actions_follow(qtbot, pair_window) -> None:
    window, keys = pair_window
    window.acts["sync_zoom"].setChecked(False)
    window.layouts.set_layout("1x2")
    window.layouts.show_in(1, keys[PRIOR_DATE])
    second = window.viewports.viewers[1]
    wait_shown(qtbot, second)
    qtbot.mouseClick(second.canvas, Qt.MouseButton.LeftButton)
    assert window.viewports.active_index == 1
    assert window.viewports.frames[1].property("active")
    zoom0, zoom1 = window.canvas.zoom, second.canvas.zoom
    window.acts["zoom_in"].trigger()
    assert second.canvas.zoom == pytest.approx(zoom1 * 1.25)
    assert window.canvas.zoom == zoom0
    qtbot.mouseClick(window.canvas, Qt.MouseButton.LeftButton)
    assert window.viewports.active_index == 0


def test_a_series_dragged_from_the_browser_shows_in_the_viewport(qtbot, pair_window) -> None:
    window, keys = pair_window
    window.layouts.set_layout("1x2")
    browser = window.browser
    item = browser._items[keys[PRIOR_DATE]]
    data = browser.mimeData([item])
    assert bytes(data.data(STACK_MIME).data()).decode() == keys[PRIOR_DATE]
    frame = window.viewports.frames[1]
    pos = QPointF(frame.width() / 2, frame.height() / 2)
    enter = QDragEnterEvent(
        pos.toPoint(), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    QApplication.sendEvent(frame, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        pos, Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    QApplication.sendEvent(frame, drop)
    second = window.viewports.viewers[1]
    wait_shown(qtbot, second)
    assert second.context.key == keys[PRIOR_DATE]
    assert window.viewer.context.key == keys[CURRENT_DATE]  # the first viewport keeps its own
    files = QMimeData()
    files.setText("not a series")
    other = QDragEnterEvent(
        QPoint(5, 5), Qt.DropAction.CopyAction, files, Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    QApplication.sendEvent(frame, other)
    assert not other.isAccepted()


def test_browser_click_shows_the_series_in_the_active_viewport(qtbot, pair_window) -> None:
    window, keys = pair_window
    window.layouts.set_layout("1x2")
    window.viewports.activate(1)
    window.browser.stackActivated.emit(keys[PRIOR_DATE])
    second = window.viewports.viewers[1]
    wait_shown(qtbot, second)
    assert second.context.key == keys[PRIOR_DATE]
    assert window.viewer.context.key == keys[CURRENT_DATE]
    window.viewports.activate(0)
    with qtbot.waitSignal(window.studies.seriesShown, timeout=20_000):
        window.browser.stackActivated.emit(keys[PRIOR_DATE])
    assert window.viewer.context.key == keys[PRIOR_DATE]


def test_compare_with_prior_opens_the_prior_beside_at_the_same_position(qtbot, pair_window) -> None:
    window, keys = pair_window
    window.viewer.set_index(3)
    with qtbot.waitSignal(window.layouts.priorShown, timeout=20_000) as shown:
        window.acts["compare_prior"].trigger()
    assert shown.args == [1, keys[PRIOR_DATE]]
    assert window.viewports.layout_name == "1x2" and window.acts["layout_1x2"].isChecked()
    second = window.viewports.viewers[1]
    wait_shown(qtbot, second)
    assert abs(z_of(second) - z_of(window.viewer)) <= 2.5
    assert "Prior 2021-01-31" in window.statusBar().currentMessage()
    assert any(line.startswith("2021-01-31") for line in second.canvas.corner_text("tl"))
    assert second.canvas.orientation_letters() == window.canvas.orientation_letters()


def test_the_oldest_study_has_no_prior(qtbot, pair_window) -> None:
    window, keys = pair_window
    with qtbot.waitSignal(window.studies.seriesShown, timeout=20_000):
        window.studies.show_stack(keys[PRIOR_DATE])
    window.acts["compare_prior"].trigger()
    assert window.viewports.layout_name == "1x1"
    assert "No earlier study of this patient" in window.statusBar().currentMessage()


def test_scroll_sync_by_mm_and_the_offset_kept_when_turned_back_on(qtbot, pair_window) -> None:
    window, _keys = pair_window
    window.acts["compare_prior"].trigger()
    first, second = window.viewports.viewers[:2]
    wait_shown(qtbot, second)
    a, b = StackGeometry.of(first.context.stack), StackGeometry.of(second.context.stack)
    for index in (0, 5, 9, 15):
        first.set_index(index)
        assert second.index == follow(a, index, b)
        assert abs(z_of(second) - z_of(first)) <= 2.5
    second.step(1)  # the prior leads too
    assert abs(z_of(second) - z_of(first)) <= 2.5
    window.acts["sync_scroll"].setChecked(False)
    first.set_index(4)
    before = second.index
    first.set_index(8)
    assert second.index == before
    second.set_index(0)  # aligned by hand...
    window.acts["sync_scroll"].setChecked(True)  # ...and kept
    offset = z_of(second) - z_of(first)
    first.set_index(first.index + 4)  # 10 mm toward the feet: the prior follows 10 mm
    assert abs(z_of(second) - z_of(first) - offset) <= 2.5
    assert second.index == 2


def test_window_level_sync_between_the_same_modality(qtbot, pair_window) -> None:
    window, _keys = pair_window
    window.acts["compare_prior"].trigger()
    first, second = window.viewports.viewers[:2]
    wait_shown(qtbot, second)
    assert second.window_level == first.window_level  # the new series took the others' W/L
    lung = Window(-600, 1500)
    first.set_window(lung)
    assert second.window_level == lung
    window.acts["sync_wl"].setChecked(False)
    first.set_window(Window(40, 400))
    assert second.window_level == lung


def test_zoom_and_pan_sync_in_mm(qtbot, pair_window) -> None:
    window, _keys = pair_window
    window.acts["compare_prior"].trigger()
    first, second = window.viewports.viewers[:2]
    wait_shown(qtbot, second)
    window.viewports.activate(0)
    first.canvas.zoom_by(2.0)
    first.canvas.center_on(20.0, 30.0)
    assert second.canvas.zoom == pytest.approx(first.canvas.zoom)  # the same pixel spacing
    assert (second.canvas.center.x(), second.canvas.center.y()) == pytest.approx((20.0, 30.0))
    window.acts["sync_zoom"].setChecked(False)
    first.canvas.zoom_by(2.0)
    assert second.canvas.zoom == pytest.approx(first.canvas.zoom / 2)


def test_ai_flicker_hides_overlays_in_every_viewport_while_held(qtbot, pair_window) -> None:
    window, keys = pair_window
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.acts["run_inference"].trigger()
    window.layouts.set_layout("1x2")
    window.layouts.show_in(1, keys[CURRENT_DATE])  # the same series: its findings drawn too
    first, second = window.viewports.viewers[:2]
    key_slice = len(first.context.stack) // 2
    first.set_index(key_slice)
    wait_shown(qtbot, second)
    qtbot.waitUntil(
        lambda: bool(second.canvas.shapes()) and second.index == key_slice, timeout=20_000
    )
    assert second.canvas.has_overlay()
    assert second.canvas.corner_text("tr")[0] == "AI overlay — research use only"
    second.canvas.setFocus()
    qtbot.keyPress(second.canvas, Qt.Key.Key_V)
    assert window.layouts.flicker_held
    assert all(v.canvas.layer_visibility()["all_hidden"] for v in (first, second))
    qtbot.keyPress(second.canvas, Qt.Key.Key_V, delay=-1)  # no change while it repeats
    qtbot.keyRelease(second.canvas, Qt.Key.Key_V)
    assert not any(v.canvas.layer_visibility()["all_hidden"] for v in (first, second))
    window.acts["hide_overlays"].setChecked(True)  # the Raw toggle reaches every viewport
    assert second.canvas.layer_visibility()["all_hidden"]


def test_closing_a_study_empties_the_viewport_that_showed_it(qtbot, pair_window) -> None:
    window, _keys = pair_window
    window.acts["compare_prior"].trigger()
    second = window.viewports.viewers[1]
    wait_shown(qtbot, second)
    prior_uid = window.browser.entries[second.context.key].study_uid
    window.studies.close_study(prior_uid)
    qtbot.waitUntil(lambda: second.context is None, timeout=20_000)
    assert second.canvas.corner_text("tl") == []
    assert window.viewer.context is not None
