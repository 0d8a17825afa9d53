"""What other tools wrote, in the viewer: overlay planes, GSPS annotations and SR regions drawn
on the images they reference, SR/PR objects listed in the browser, and the SR panel."""

from __future__ import annotations

from pathlib import Path

import pydicom
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor

from desktop_app.dicom.gsps import PresentationState
from desktop_app.dicom.srcontent import SrDocument
from desktop_app.exports.study_export import ExportRequest, export_study
from desktop_app.qt.dicom_graphics import OVERLAY_COLOR
from tests.helpers.exports import NODULE_BOX, chest_study
from tests.helpers.presentation import mr_image, tid1500_sr, write_study
from tests.qt.conftest import open_and_wait


def _ready(qtbot, window) -> None:
    """Wait until the SR/PR objects are read and the shown slice's overlays are in."""
    controller = window.presentation
    qtbot.waitUntil(
        lambda: len(controller.documents) == len(window.browser.objects), timeout=20_000
    )
    qtbot.waitUntil(lambda: controller._bitmap_key == controller._current, timeout=10_000)


def _pixel(window, x: float, y: float) -> QColor:
    """The colour on screen at image pixel (x, y) (its centre)."""
    canvas = window.canvas
    p = canvas.image_to_widget(QPointF(x + 0.5, y + 0.5))
    return canvas.grab().toImage().pixelColor(round(p.x()), round(p.y()))


def test_objects_are_listed_and_their_graphics_drawn(qtbot, make_window, tmp_path: Path) -> None:
    paths = write_study(tmp_path / "study")
    window = make_window()
    open_and_wait(qtbot, window, [paths["image"].parent])
    labels = sorted(e.kind + ": " + e.description for e in window.browser.objects.values())
    assert labels == ["PR: Measurements", "SR: CAD report"]
    assert len(window.browser.entries) == 1  # the image series; SR and PR are not stacks
    _ready(qtbot, window)
    scene = window.presentation.layer.scene
    assert len(scene.bitmaps) == 1  # the overlay plane
    kinds = sorted(v.graphic.kind for v in scene.vectors)
    assert kinds == ["CIRCLE", "ELLIPSE", "POLYLINE", "POLYLINE"]  # 3 GSPS + the SR region
    assert [v.label for v in scene.vectors if v.label] == ["Nodule"]
    assert [t.text.text for t in scene.texts] == ["12 mm"]
    # the overlay's cross is drawn in its colour, and hidden by the toggle (Shift+O)
    assert _pixel(window, 20, 32).getRgb()[:3] == OVERLAY_COLOR
    window.acts["toggle_dicom_graphics"].setChecked(False)
    assert not window.presentation.layer.drawn()
    assert _pixel(window, 20, 32).getRgb()[:3] != OVERLAY_COLOR
    window.acts["toggle_dicom_graphics"].setChecked(True)
    window.acts["hide_overlays"].setChecked(True)  # "raw image" hides them too
    assert not window.presentation.layer.drawn()


def test_choosing_the_sr_opens_the_panel(qtbot, make_window, tmp_path: Path) -> None:
    paths = write_study(tmp_path / "study")
    window = make_window()
    open_and_wait(qtbot, window, [paths["image"].parent])
    _ready(qtbot, window)
    assert not window.sr_dock.isVisible()
    key = next(k for k, e in window.browser.objects.items() if e.kind == "SR")
    item = window.browser._items[key]
    window.browser.itemClicked.emit(item, 0)
    assert window.sr_dock.isVisible()
    rows = window.sr_panel.rows()
    pairs = {(name, value) for _, name, value in rows}
    assert ("Finding", "Nodule") in pairs
    assert ("Area", "42.5 mm2") in pairs
    assert ("Tracking Identifier", "lesion 1") in pairs
    assert rows[0][1] == "Imaging Measurement Report"
    assert window.sr_panel.title.text() == "SR: Imaging Measurement Report"
    # the presentation state shows its layer and annotations
    key = next(k for k, e in window.browser.objects.items() if e.kind == "PR")
    window.browser.objectActivated.emit(key)
    assert isinstance(window.sr_panel.document, PresentationState)
    names = [name for _, name, _ in window.sr_panel.rows()]
    assert "Layer LAYER1" in names and "Circle" in names and "Text" in names


def test_an_sr_only_folder_opens_in_the_panel(qtbot, make_window, tmp_path: Path) -> None:
    paths = write_study(tmp_path / "study")
    only = tmp_path / "sr-only"
    only.mkdir()
    paths["sr"].rename(only / "sr.dcm")
    window = make_window()
    with qtbot.waitSignal(window.studies.indexReady, timeout=20_000):
        window.studies.open_paths([only])
    qtbot.waitUntil(lambda: isinstance(window.sr_panel.document, SrDocument), timeout=10_000)
    assert window.sr_dock.isVisible()
    # its image is not open: asking for it says so instead of failing
    window.sr_panel.imageRequested.emit("1.2.3.4", 0)
    assert "not among the open series" in window.statusBar().currentMessage()


def test_the_apps_own_exported_sr_is_listed_and_drawn(qtbot, make_window, tmp_path: Path) -> None:
    files, result, review = chest_study(tmp_path)
    out = export_study(
        ExportRequest(
            study_paths=files, out_dir=tmp_path / "out", formats=["sr"],
            results=[result], review=review,
        )
    )  # fmt: skip
    assert out.sr is not None
    folder = files[0].parent
    out.sr.rename(folder / "report.dcm")
    window = make_window()
    open_and_wait(qtbot, window, [folder])
    assert [e.kind for e in window.browser.objects.values()] == ["SR"]
    _ready(qtbot, window)
    regions = [v for v in window.presentation.layer.scene.vectors if v.label]
    assert sorted(v.label for v in regions)[:1] and regions  # the findings' regions
    x, y, w, h = NODULE_BOX
    nodule = [v for v in regions if v.graphic.bounds() == (x, y, x + w, y + h)]
    assert nodule, [v.graphic.bounds() for v in regions]
    window.browser.objectActivated.emit(next(iter(window.browser.objects)))
    values = {value for _, _, value in window.sr_panel.rows()}
    assert "93 %" in values or any(v.startswith("0.93") for v in values)


def test_double_clicking_an_image_reference_shows_that_image(
    qtbot, make_window, tmp_path: Path
) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    series = pydicom.uid.generate_uid()
    study = pydicom.uid.generate_uid()
    first, second = (mr_image(study, series, n, overlay=False) for n in (1, 2))
    for ds in (first, second):
        ds.save_as(folder / f"im{ds.InstanceNumber}.dcm", enforce_file_format=True)
    sr = tid1500_sr(second, [(4.0, 4.0), (20.0, 4.0), (20.0, 20.0)])
    sr.save_as(folder / "sr.dcm", enforce_file_format=True)
    window = make_window()
    open_and_wait(qtbot, window, [folder])
    _ready(qtbot, window)
    sop = str(second.SOPInstanceUID)
    slices = window.shown.entry.stack.slices
    other = next(i for i, ref in enumerate(slices) if ref.instance.sop_instance_uid != sop)
    window.viewer.set_index(other)
    qtbot.waitUntil(
        lambda: window.presentation._current == (str(first.SOPInstanceUID), 0), timeout=20_000
    )
    assert window.presentation.layer.scene.vectors == []  # the region is not on this image
    window.browser.objectActivated.emit(next(iter(window.browser.objects)))
    window.sr_panel.imageRequested.emit(sop, 0)
    qtbot.waitUntil(lambda: window.presentation._current == (sop, 0), timeout=20_000)
    assert slices[window.viewer.index].instance.sop_instance_uid == sop
    assert [v.label for v in window.presentation.layer.scene.vectors] == ["Nodule"]


def test_control_characters_in_sr_text_are_escaped(qtbot, make_window, tmp_path: Path) -> None:
    paths = write_study(tmp_path / "study")
    ds = pydicom.dcmread(paths["sr"])
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SeriesDescription = "CAD\x1b[31m report\u202e"
    ds.save_as(paths["sr"], enforce_file_format=True)
    window = make_window()
    open_and_wait(qtbot, window, [paths["image"].parent])
    labels = [window.browser._items[k].text(0) for k in window.browser.objects]
    assert "SR: CAD\\e[31m report\\u202e" in labels
