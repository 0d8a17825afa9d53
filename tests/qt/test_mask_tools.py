"""The lesion brush, eraser and "Add lesion" on the canvas: strokes land on the image grid in the
review's label volume, measurements follow, each stroke undoes, and the edits are saved."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication

from desktop_app.inference.lesions import MaskGeometry, find_lesions
from desktop_app.phantoms.studies import write_ct_series
from desktop_app.qt.mask_tools import BRUSH, ERASER
from desktop_app.review.lesionreview import SeriesLesions, brush_region
from desktop_app.review.runner import RunOutput
from desktop_app.review.store import ReviewStore
from desktop_app.studies.series import SliceStack
from desktop_app.studies.volume import SeriesVolume
from tests.qt.conftest import FakeRunner, open_and_wait

SLICES, ROWS = 8, 64
SHIFT = Qt.KeyboardModifier.ShiftModifier
CTRL = Qt.KeyboardModifier.ControlModifier


class SegRunner(FakeRunner):
    """The fake model as a segmentation model: one lesion (L1) on slices 2-4."""

    def run(
        self,
        stack: SliceStack,
        volume: SeriesVolume,
        series_key: str,
        progress: Callable[[int, int], None],
        stop: threading.Event,
        force: bool = False,
    ) -> RunOutput:
        out = super().run(stack, volume, series_key, progress, stop, force)
        mask = np.zeros((SLICES, ROWS, ROWS), dtype=bool)
        mask[2:5, 10:20, 10:20] = True
        geometry = MaskGeometry.from_stack(stack)
        table = find_lesions(mask, geometry, with_labels=True)
        assert table.labels is not None
        lesions = SeriesLesions.from_table(
            series_key,
            stack.series_instance_uid,
            "nodule",
            table,
            table.labels,
            geometry,
            model_sha256=self.sha,
        )
        return dataclasses.replace(out, lesions=lesions)


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(folder, 5, slices=SLICES, rows=ROWS)
    return folder


@pytest.fixture
def window(qtbot, make_window, ct_folder):
    window = make_window(runner=lambda m, d: SegRunner(m, d))
    open_and_wait(qtbot, window, [ct_folder])
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.runs.run_inference()
    show_slice(qtbot, window, 3)
    window.canvas.setFocus()
    return window


def show_slice(qtbot, window, index: int) -> None:
    if window.viewer.index == index and window.viewer.frame is not None:
        return
    with qtbot.waitSignal(window.viewer.frameShown, timeout=10_000):
        window.viewer.set_index(index)


def at(window, x: float, y: float) -> QPoint:
    return window.canvas.image_to_widget(QPointF(x, y)).toPoint()


def stroke(qtbot, window, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Drag through ``points`` (image coordinates); returns the image points the canvas saw."""
    canvas = window.canvas
    widget = [at(window, *p) for p in points]
    seen = [window.canvas.widget_to_image(QPointF(w)) for w in widget]
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=widget[0])
    for w in widget[1:]:
        qtbot.mouseMove(canvas, w)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=widget[-1])
    return [(p.x(), p.y()) for p in seen]


def labels(window) -> np.ndarray:
    state = window.review.current_state()
    return state.lesion_labels(window.shown.key)


def test_brush_paints_the_selected_lesion_on_the_image_grid(qtbot, window, data_dir) -> None:
    key = window.shown.key
    state = window.review.current_state()
    before = state.lesion(key, 1)
    window.lesions.select_lesion(1)
    qtbot.keyClick(window.canvas, Qt.Key.Key_W)
    assert window.canvas.tool == BRUSH and window.acts["tool_brush"].isChecked()
    seen = stroke(qtbot, window, [(22.0, 14.0), (30.0, 14.0)])
    expected = brush_region((ROWS, ROWS), seen, window.masks.diameter)
    volume = labels(window)
    assert (volume[3][expected] == 1).all()
    assert (
        volume[2] == (np.pad(np.ones((10, 10)), ((10, 44), (10, 44))) == 1)
    ).all()  # other slices untouched
    after = state.lesion(key, 1)
    added = int((expected & (volume[3] != 0)).sum()) - int(expected[10:20, 10:20].sum())
    assert after.voxels == before.voxels + added and after.edited
    assert after.volume_mm3 > before.volume_mm3
    window.review.writer.flush()
    saved = ReviewStore(data_dir / "reviews").load(state.study_uid)
    np.testing.assert_array_equal(saved.lesion_labels(key), volume)


def test_add_lesion_draws_a_new_reader_lesion_and_undo_takes_it_back(qtbot, window) -> None:
    key = window.shown.key
    state = window.review.current_state()
    qtbot.keyClick(window.canvas, Qt.Key.Key_L, SHIFT)
    assert window.canvas.tool == BRUSH and window.lesions.selected is None
    assert window.acts["tool_brush"].isChecked()
    stroke(qtbot, window, [(45.0, 45.0), (50.0, 48.0)])
    new = state.lesions_for(key)[-1]
    assert (new.lesion_id, new.source, new.verdict) == (2, "reader", "accepted")
    assert window.lesions.selected == 2  # selected: the next stroke extends it
    assert (labels(window)[3] == 2).sum() == new.voxels > 0
    stroke(qtbot, window, [(52.0, 48.0)])
    assert state.lesion(key, 2).voxels > new.voxels
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, CTRL)
    assert state.lesion(key, 2).voxels == new.voxels
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, CTRL)
    assert [x.lesion_id for x in state.lesions_for(key)] == [1]
    qtbot.keyClick(window.canvas, Qt.Key.Key_Z, CTRL | SHIFT)
    assert [x.lesion_id for x in state.lesions_for(key)] == [1, 2]


def test_eraser_clears_any_lesion_and_wholly_erased_is_gone(qtbot, window) -> None:
    key = window.shown.key
    state = window.review.current_state()
    qtbot.keyClick(window.canvas, Qt.Key.Key_W, SHIFT)
    assert window.canvas.tool == ERASER
    window.masks.set_diameter(30)
    for index in (2, 3, 4):
        show_slice(qtbot, window, index)
        stroke(qtbot, window, [(15.0, 15.0)])
        if index < 4:
            assert state.lesion(key, 1).slices[0] == index + 1
    assert not labels(window).any()
    assert state.lesions_for(key) == []


def test_ctrl_wheel_sizes_the_brush(qtbot, window) -> None:
    from PySide6.QtCore import QPoint as P
    from PySide6.QtGui import QWheelEvent

    qtbot.keyClick(window.canvas, Qt.Key.Key_W)
    start = window.masks.diameter
    centre = QPointF(window.canvas.width() / 2, window.canvas.height() / 2)
    event = QWheelEvent(
        centre, centre, P(0, 0), P(0, 120), Qt.MouseButton.NoButton, CTRL,
        Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    zoom = window.canvas.zoom
    QApplication.sendEvent(window.canvas, event)
    assert window.masks.diameter == start + 1 and window.canvas.zoom == zoom  # not a zoom
    window.acts["brush_smaller"].trigger()  # Alt+[
    assert window.masks.diameter == start


def test_without_lesions_the_brush_says_what_to_do(qtbot, make_window, ct_folder) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [ct_folder])
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_W)
    stroke(qtbot, window, [(20.0, 20.0)])
    assert "run the segmentation model first" in window.statusBar().currentMessage()


def test_a_damaged_saved_mask_is_one_line_and_the_rest_opens(
    qtbot, window, make_window, ct_folder, data_dir
) -> None:
    state = window.review.current_state()
    state.accept_lesion(window.shown.key, 1)
    window.review.save(state)
    window.review.writer.flush()
    (mask,) = (data_dir / "reviews").glob("*.labels.npz")
    mask.write_bytes(b"damaged")
    again = make_window(runner=lambda m, d: SegRunner(m, d))
    open_and_wait(qtbot, again, [ct_folder])
    bar = again.statusBar()
    qtbot.waitUntil(lambda: "lesion mask" in bar.currentMessage(), timeout=10_000)
    assert "\n" not in bar.currentMessage()
    reopened = again.review.current_state()
    assert reopened is not None and reopened.lesions_for(again.shown.key) == []
    assert reopened.unreadable_lesions  # kept: saved again as it was
