"""SEG and RTSTRUCT from other tools, in the viewer: listed as their own rows, their masks
(filled, outlined) and contours drawn on the slices they reference, hidden by Shift+O."""

from __future__ import annotations

from pathlib import Path

import pydicom
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor

from desktop_app.dicom.rtstruct import StructureSet
from desktop_app.dicom.segread import SegmentationObject
from tests.helpers.segobjects import NODULE_SLICES, copy_ct, ct_slices, write_rtstruct, write_seg
from tests.qt.conftest import open_and_wait


def _study(folder: Path) -> Path:
    slices = ct_slices(copy_ct(folder / "study"))
    write_seg(folder / "study", slices)
    write_rtstruct(folder / "study", slices)
    return folder / "study"


def _ready(qtbot, window) -> None:
    controller = window.presentation
    qtbot.waitUntil(
        lambda: len(controller.documents) == len(window.browser.objects), timeout=10_000
    )


def _pixel(window, x: float, y: float) -> QColor:
    canvas = window.canvas
    p = canvas.image_to_widget(QPointF(x + 0.5, y + 0.5))
    return canvas.grab().toImage().pixelColor(round(p.x()), round(p.y()))


def _slice_of(window, sop: str) -> int:
    stack = next(iter(window.browser.entries.values())).stack
    return next(i for i, r in enumerate(stack.slices) if r.instance.sop_instance_uid == sop)


def _go(qtbot, window, index: int) -> None:
    """Show slice ``index`` and wait until it is on screen (slices decode in a worker)."""
    stack = next(iter(window.browser.entries.values())).stack
    sop = stack.slices[index].instance.sop_instance_uid
    window.viewer.set_index(index)
    plane = lambda: window.presentation._plane  # noqa: E731
    qtbot.waitUntil(lambda: plane() is not None and plane().sop_instance_uid == sop, timeout=20_000)


def test_seg_and_rtstruct_rows_and_drawing(qtbot, make_window, tmp_path: Path) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [_study(tmp_path)])
    labels = sorted(e.kind + ": " + e.description for e in window.browser.objects.values())
    assert labels == ["RTSTRUCT: Other tool RTSTRUCT", "SEG: Other tool SEG"]
    assert len(window.browser.entries) == 1  # the CT; the SEG's frames are not a stack
    _ready(qtbot, window)
    kinds = {type(d) for d in window.presentation.documents.values()}
    assert kinds == {SegmentationObject, StructureSet}
    # choosing the SEG shows the first slice it is drawn on
    seg_key = next(k for k, e in window.browser.objects.items() if e.kind == "SEG")
    window.browser.itemClicked.emit(window.browser._items[seg_key], 0)
    seg = window.presentation.documents[seg_key]
    assert isinstance(seg, SegmentationObject)
    shown = window.viewer.index
    sop = window.browser.entries[next(iter(window.browser.entries))].stack.slices[shown]
    assert any(f.source_sop_instance_uid == sop.instance.sop_instance_uid for f in seg.frames)
    assert not window.sr_dock.isVisible()
    # on a nodule slice: the SEG's mask (fill + outline + label) and the RT contours
    nodule = next(f for f in seg.frames if f.segment_number == 1)
    _go(qtbot, window, _slice_of(window, nodule.source_sop_instance_uid))
    scene = window.presentation.layer.scene
    assert [m.label for m in scene.masks] == ["Nodule A"]
    assert len(scene.masks[0].edges) > 4
    assert sorted(v.label for v in scene.vectors) == ["Lesion"]
    assert all(v.graphic.filled and v.graphic.closed for v in scene.vectors)
    # segment B's fill (no contour there) is in its colour (40, 200, 255) over the grey CT
    square = next(f for f in seg.frames if f.segment_number == 2)
    _go(qtbot, window, _slice_of(window, square.source_sop_instance_uid))
    assert [m.label for m in window.presentation.layer.scene.masks] == ["Nodule B"]
    inside = _pixel(window, 180, 70)
    assert inside.blue() > inside.red() + 30
    window.acts["toggle_dicom_graphics"].setChecked(False)
    assert not window.presentation.layer.drawn()
    hidden = _pixel(window, 180, 70)
    assert abs(hidden.blue() - hidden.red()) < 10  # the grey CT again
    window.acts["toggle_dicom_graphics"].setChecked(True)


def test_contour_without_image_reference_is_matched_by_plane(
    qtbot, make_window, tmp_path: Path
) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [_study(tmp_path)])
    _ready(qtbot, window)
    rt_key = next(k for k, e in window.browser.objects.items() if e.kind == "RTSTRUCT")
    rt = window.presentation.documents[rt_key]
    assert isinstance(rt, StructureSet)
    ring = next(c for c in rt.contours if not c.images)
    stack = next(iter(window.browser.entries.values())).stack
    z = float(ring.points[0, 2])
    index = next(i for i, r in enumerate(stack.slices) if abs(r.position[2] - z) < 0.01)
    _go(qtbot, window, index)
    names = sorted(v.label for v in window.presentation.layer.scene.vectors)
    assert "Body ring" in names
    other = (index + 5) % len(stack)
    _go(qtbot, window, other)
    assert "Body ring" not in [v.label for v in window.presentation.layer.scene.vectors]
    assert NODULE_SLICES.start > 0


def test_unreadable_seg_says_why(qtbot, make_window, tmp_path: Path) -> None:
    folder = _study(tmp_path)
    seg_path = folder / "seg.dcm"
    ds = pydicom.dcmread(seg_path)
    ds.SegmentationType = "BOGUS"
    ds.save_as(seg_path)
    window = make_window()
    open_and_wait(qtbot, window, [folder])
    qtbot.waitUntil(
        lambda: (
            any(e.kind == "SEG" for e in window.browser.objects.values())
            and (
                len(window.presentation.documents) + len(window.presentation.errors)
                >= len(window.browser.objects)
            )
        ),
        timeout=10_000,
    )
    seg_key = next(k for k, e in window.browser.objects.items() if e.kind == "SEG")
    assert seg_key in window.presentation.errors
    assert "unknown Segmentation Type" in window.presentation.errors[seg_key]
    window.browser.objectActivated.emit(seg_key)
    assert "Can't show this object" in window.statusBar().currentMessage()
