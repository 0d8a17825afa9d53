"""Opening studies and viewing them: browser, thumbnails, scrolling, window/level, cine, tags."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from desktop_app.dicom.voi import PRESETS
from tests.qt.conftest import SAMPLE_CT, SAMPLE_XR, open_and_wait


def test_open_folder_fills_browser_and_shows_middle_slice(qtbot, make_window) -> None:
    window = make_window()
    with qtbot.waitSignal(window.studies.indexReady, timeout=20_000) as ready:
        window.studies.open_paths([SAMPLE_CT])
    index = ready.args[0]
    assert index.series_count == 1
    qtbot.waitUntil(lambda: window.viewer.frame is not None, timeout=20_000)
    assert window.viewer.slice_count == 40
    assert window.viewer.index == 20  # the middle slice first
    entry = window.shown.entry
    assert entry is not None and entry.modality == "CT"
    item = window.browser._items[entry.key]
    assert (item.text(1), item.text(2)) == ("CT", "40")
    # patient and study rows span the whole width, so the first column is readable
    patient = window.browser.topLevelItem(0)
    assert patient.isFirstColumnSpanned() and patient.child(0).isFirstColumnSpanned()
    assert patient.child(0).text(0).startswith("2024-11-28  —  ")  # the study row: date first
    assert window.browser.columnWidth(0) > 150
    qtbot.waitUntil(lambda: window.browser.has_thumbnail(entry.key), timeout=20_000)


def test_open_two_studies_and_switch(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT, SAMPLE_XR])
    assert len(window.studies.entries) == 2
    xr = next(e for e in window.studies.entries if e.modality == "DX")
    with qtbot.waitSignal(window.studies.seriesShown, timeout=20_000):
        window.browser.stackActivated.emit(xr.key)
    qtbot.waitUntil(
        lambda: window.viewer.frame is not None and window.viewer.slice_count == 1,
        timeout=20_000,
    )
    assert window.view.preset_combo.count() == 1  # DX: file / auto only
    assert window.prefs.recent_paths()[:2] == [str(SAMPLE_XR.resolve()), str(SAMPLE_CT.resolve())]


def test_scrolling_by_wheel_keys_and_slider(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    viewer = window.viewer
    canvas = window.canvas
    pos = QPointF(canvas.width() / 2, canvas.height() / 2)
    wheel = QWheelEvent(
        pos, canvas.mapToGlobal(pos), QPoint(0, 0), QPoint(0, -120),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    canvas.wheelEvent(wheel)
    assert viewer.index == 21
    qtbot.keyClick(canvas, Qt.Key.Key_Up)
    qtbot.keyClick(canvas, Qt.Key.Key_Up)
    assert viewer.index == 19
    qtbot.keyClick(canvas, Qt.Key.Key_PageDown)
    assert viewer.index == 23
    qtbot.keyClick(canvas, Qt.Key.Key_End)
    assert viewer.index == 39 and viewer.slider.value() == 39
    viewer.slider.setValue(5)
    assert viewer.index == 5
    qtbot.waitUntil(
        lambda: viewer.frame is not None and viewer.frame.index == 0 and viewer._frame_index == 5,
        timeout=20_000,
    )
    assert canvas._corners["bl"][0] == "Im 6 (of 40) · +72.5 mm"  # Instance Number 6


def test_window_level_drag_presets_and_reset(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    viewer = window.viewer
    start = viewer.window_level
    assert start is not None
    before = viewer.displayed_image()
    canvas = window.canvas
    centre = QPoint(canvas.width() // 2, canvas.height() // 2)
    qtbot.mousePress(canvas, Qt.MouseButton.RightButton, pos=centre)
    qtbot.mouseMove(canvas, centre + QPoint(60, 0))
    qtbot.mouseMove(canvas, centre + QPoint(60, 30))
    qtbot.mouseRelease(canvas, Qt.MouseButton.RightButton, pos=centre + QPoint(60, 30))
    dragged = viewer.window_level
    assert dragged.width > start.width and dragged.center > start.center
    assert (viewer.displayed_image() != before).any()
    # presets: the combo lists the five CT presets and applies one
    names = [window.view.preset_combo.itemText(i) for i in range(window.view.preset_combo.count())]
    assert names == [
        "W/L: file / auto",
        "1  Lung",
        "2  Mediastinum",
        "3  Bone",
        "4  Brain",
        "5  Abdomen",
    ]
    window.view.preset_combo.activated.emit(1)
    assert viewer.window_level == PRESETS["lung"]
    qtbot.keyClick(canvas, Qt.Key.Key_3)  # the number keys pick presets too
    assert viewer.window_level == PRESETS["bone"]
    window.acts["wl_reset"].trigger()
    assert viewer.window_level == start


def test_zoom_invert_rotate_and_fit(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    canvas = window.canvas
    fitted = canvas.zoom
    window.acts["zoom_in"].trigger()
    assert canvas.zoom == pytest.approx(fitted * 1.25)
    window.acts["fit"].trigger()
    assert canvas.zoom == pytest.approx(fitted)
    plain = window.viewer.displayed_image()
    window.acts["invert"].trigger()
    assert (window.viewer.displayed_image() == 255 - plain).all()
    window.acts["rotate_right"].trigger()
    assert canvas.rotation == 90
    window.acts["reset_view"].trigger()
    assert (canvas.rotation, window.viewer.invert) == (0, False)


def test_cursor_readout_in_hu(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    canvas = window.canvas
    centre = canvas.image_to_widget(QPointF(128.5, 128.5)).toPoint()
    qtbot.mouseMove(canvas, centre)
    qtbot.waitUntil(
        lambda: window.feedback.readout.text().startswith("x 128  y 128"), timeout=20_000
    )
    assert window.feedback.readout.text().endswith(" HU")


def test_cine_plays_and_stops(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    viewer = window.viewer
    window.view.fps_spin.setValue(60)
    start = viewer.index
    window.acts["cine_play"].trigger()
    assert viewer.cine_playing and window.acts["cine_play"].isChecked()
    qtbot.waitUntil(lambda: viewer.index >= start + 3, timeout=10_000)
    window.acts["cine_play"].trigger()
    assert not viewer.cine_playing
    stopped_at = viewer.index
    qtbot.wait(100)
    assert viewer.index == stopped_at


def test_tag_viewer_shows_header_and_filters(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    window.acts["toggle_tags"].trigger()
    tags = window.tags
    qtbot.waitUntil(lambda: len(tags.rows) > 20, timeout=10_000)
    keywords = {r.keyword for r in tags.rows}
    assert {"SOPInstanceUID", "RescaleIntercept", "PixelData"} <= keywords
    sop = next(r.value for r in tags.rows if r.keyword == "SOPInstanceUID")
    with qtbot.waitSignal(tags.rowsShown):
        tags.search.setText("0028,1052")
    assert [r.keyword for r in tags.shown_rows()] == ["RescaleIntercept"]
    tags.search.setText("")
    window.viewer.set_index(0)  # another slice: another header
    qtbot.waitUntil(
        lambda: any(r.keyword == "SOPInstanceUID" and r.value != sop for r in tags.rows),
        timeout=10_000,
    )


def test_bad_files_are_listed_and_the_rest_opens(qtbot, make_window, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for src in sorted(SAMPLE_CT.glob("CT000*.dcm")):
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "broken.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 40)
    (folder / "notes.txt").write_text("not an image")
    window = make_window()
    open_and_wait(qtbot, window, [folder])
    assert window.viewer.slice_count == 9
    assert window.problems.count() == 1
    line = window.problems.item(0).text()
    assert line.startswith(str(folder / "broken.dcm") + ": ") and "\n" not in line
    assert window.problems_dock.isVisible()
    assert "1 file(s) not read" in window.statusBar().currentMessage()


def test_missing_path_is_reported(qtbot, make_window, tmp_path: Path) -> None:
    window = make_window()
    window.studies.open_paths([tmp_path / "nope"])
    assert window.statusBar().currentMessage() == f"✖ {tmp_path / 'nope'}: no such file or folder"


def test_drop_opens(qtbot, make_window) -> None:
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QDropEvent

    window = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(SAMPLE_XR))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)  # fmt: skip
    with qtbot.waitSignal(window.studies.seriesShown, timeout=20_000):
        window.dropEvent(event)
    assert window.shown.entry.modality == "DX"  # type: ignore[union-attr]


def _pydicom_file(*parts: str) -> Path:
    import pydicom

    path = Path(pydicom.__file__).parent.joinpath("data", "test_files", *parts)
    if not path.exists():
        pytest.skip(f"pydicom test file {path.name} is not bundled")
    return path


def test_open_a_dicomdir(qtbot, make_window) -> None:
    window = make_window()
    with qtbot.waitSignal(window.studies.indexReady, timeout=20_000) as ready:
        window.studies.open_paths([_pydicom_file("dicomdirtests", "DICOMDIR")])
    index = ready.args[0]
    assert index.series_count >= 10
    assert len(window.studies.entries) >= 10
    modalities = {e.modality for e in window.studies.entries}
    assert {"CR", "CT", "MR"} <= modalities
    qtbot.waitUntil(lambda: window.viewer.frame is not None, timeout=20_000)


def test_multiframe_colour_cine(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [_pydicom_file("examples_ybr_color.dcm")])
    viewer = window.viewer
    assert viewer.slice_count == 30 and viewer.frame.is_color  # type: ignore[union-attr]
    window.view.fps_spin.setValue(60)
    start = viewer.index
    viewer.play_cine()
    qtbot.waitUntil(
        lambda: viewer.index != start and viewer._frame_index == viewer.index, timeout=10_000
    )
    viewer.stop_cine()
    canvas = window.canvas
    qtbot.mouseMove(canvas, canvas.image_to_widget(QPointF(10.5, 10.5)).toPoint())
    qtbot.waitUntil(lambda: "RGB" in window.feedback.readout.text(), timeout=20_000)


def test_first_image_shows_while_the_index_runs(qtbot, make_window) -> None:
    window = make_window()
    events: list[str] = []
    window.studies.previewShown.connect(lambda: events.append("preview"))
    window.studies.indexReady.connect(lambda _i: events.append("index"))
    with qtbot.waitSignal(window.studies.seriesShown, timeout=20_000):
        window.studies.open_paths([SAMPLE_CT])
    assert events == ["preview", "index"]


def test_reopening_the_same_study_shows_it_again(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    window.viewer.set_index(3)
    with qtbot.waitSignal(window.studies.seriesShown, timeout=20_000):
        window.studies.open_paths([SAMPLE_CT])
    assert window.viewer.index == 20 and window.viewer.context is not None


def test_ruler_measures_in_mm(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    qtbot.keyClick(window.canvas, Qt.Key.Key_M)  # ruler tool
    canvas = window.canvas
    a = canvas.image_to_widget(QPointF(50, 100)).toPoint()
    b = canvas.image_to_widget(QPointF(150, 100)).toPoint()
    with qtbot.waitSignal(canvas.rulerFinished):
        qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=a)
        qtbot.mouseMove(canvas, b)
        qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=b)
    (ruler,) = canvas.rulers()
    spacing = window.viewer.frame.pixel_spacing[1]  # type: ignore[union-attr]
    length = abs(ruler.end[0] - ruler.start[0]) * spacing
    assert ruler.text == (f"{length / 10:.1f} cm" if length >= 100 else f"{length:.1f} mm")
    assert 130 < length < 170  # about 100 pixels of 1.484 mm
