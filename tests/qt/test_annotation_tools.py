"""The reader's annotation tools on the canvas: ellipse/rectangle ROI with HU statistics, angle,
arrow with text, key-image flag; moving, reshaping, deleting, undo/redo; saved with the review
and restored on reopen."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication

from desktop_app.privacy.audit import AuditLog
from desktop_app.qt.annotation_tools import COLOR
from desktop_app.review.annotations import (
    ANGLE,
    ARROW,
    ELLIPSE,
    KEY_IMAGE,
    RECTANGLE,
    roi_stats,
)
from desktop_app.review.store import ReviewStore
from tests.qt.conftest import SAMPLE_CT, open_and_wait

SHIFT = Qt.KeyboardModifier.ShiftModifier
CTRL = Qt.KeyboardModifier.ControlModifier


def at(window, x: float, y: float) -> QPoint:
    return window.canvas.image_to_widget(QPointF(x, y)).toPoint()


def drag(qtbot, window, a: tuple[float, float], b: tuple[float, float]) -> None:
    canvas = window.canvas
    start, end = at(window, *a), at(window, *b)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
    mid = QPoint((start.x() + end.x()) // 2, (start.y() + end.y()) // 2)
    qtbot.mouseMove(canvas, mid)
    qtbot.mouseMove(canvas, end)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end)


@pytest.fixture
def ct_window(qtbot, make_window):
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    qtbot.waitUntil(lambda: window.annotations._image_ref() is not None, timeout=10_000)
    window.canvas.setFocus()
    return window


def test_ellipse_roi_measures_hu_on_the_slice_and_survives_a_restart(
    qtbot, ct_window, make_window, data_dir
) -> None:
    window = ct_window
    canvas = window.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_E, SHIFT)
    assert canvas.tool == ELLIPSE and window.acts["tool_ellipse"].isChecked()
    drag(qtbot, window, (60, 70), (140, 120))
    (roi,) = window.annotations.here()
    assert roi.kind == ELLIPSE and roi.reviewer == "Dr Test"
    frame = window.viewer.frame
    expected = roi_stats(ELLIPSE, roi.points, frame.values, frame.pixel_spacing, "CT")
    assert roi.stats == expected
    assert roi.stats.value_unit == "HU" and roi.stats.area_unit == "mm2"
    (sx, sy) = frame.pixel_spacing
    w, h = abs(roi.points[1][0] - roi.points[0][0]), abs(roi.points[1][1] - roi.points[0][1])
    assert roi.stats.area == pytest.approx(math.pi * w * sy * h * sx / 4)
    assert -1100 < roi.stats.minimum <= roi.stats.mean <= roi.stats.maximum < 3000
    # drawn: the label box and the outline's colour are on the canvas
    image = canvas.grab().toImage()
    rim = at(window, 100, 70)
    near = [
        image.pixelColor(rim.x() + dx, rim.y() + dy) for dx in range(-2, 3) for dy in range(-2, 3)
    ]
    assert any(abs(c.green() - COLOR.green()) < 40 and c.blue() > 180 for c in near)
    assert window.annotations._labels and window.annotations._labels[0][0] == roi.id
    study = window.shown.study_uid
    index = window.viewer.index
    window.close()

    saved = ReviewStore(data_dir / "reviews").load(study)
    assert saved is not None and saved.annotations[0].stats == expected
    records = list(AuditLog(data_dir / "audit.jsonl").records())
    assert records[-1]["kind"] == "annotation"
    assert (records[-1]["action"], records[-1]["annotation_kind"]) == ("annotation_add", ELLIPSE)

    again = make_window()
    open_and_wait(qtbot, again, [SAMPLE_CT])
    again.viewer.set_index(index)
    qtbot.waitUntil(lambda: len(again.annotations.here()) == 1, timeout=10_000)
    assert again.annotations.here()[0].stats == expected


def test_annotations_stay_on_their_image(qtbot, ct_window) -> None:
    window = ct_window
    qtbot.keyClick(window.canvas, Qt.Key.Key_B, SHIFT)  # rectangle
    drag(qtbot, window, (40, 40), (90, 80))
    assert len(window.annotations.here()) == 1
    index = window.viewer.index
    window.viewer.set_index(index + 3)
    qtbot.waitUntil(lambda: window.annotations._shown_index == index + 3, timeout=10_000)
    assert window.annotations.here() == []
    window.viewer.set_index(index)
    qtbot.waitUntil(lambda: len(window.annotations.here()) == 1, timeout=10_000)


def test_move_resize_delete_undo_redo(qtbot, ct_window) -> None:
    window = ct_window
    canvas = window.canvas
    ctl = window.annotations
    qtbot.keyClick(canvas, Qt.Key.Key_B, SHIFT)
    drag(qtbot, window, (40, 40), (100, 90))
    (rect,) = ctl.here()
    assert rect.kind == RECTANGLE and ctl.selected == rect.id
    # move: drag the (selected) rectangle from inside
    x0, y0, x1, _ = rect.bounds()
    drag(qtbot, window, (70, 65), (90, 85))
    (moved_rect,) = ctl.here()
    mx0, my0, mx1, my1 = moved_rect.bounds()
    assert mx0 - x0 == pytest.approx(20, abs=1.5) and my0 - y0 == pytest.approx(20, abs=1.5)
    assert mx1 - mx0 == pytest.approx(x1 - x0)
    frame = window.viewer.frame
    assert moved_rect.stats == roi_stats(
        RECTANGLE, moved_rect.points, frame.values, frame.pixel_spacing, "CT"
    )
    # resize: drag the bottom-right handle
    drag(qtbot, window, (mx1, my1), (mx1 + 30, my1 + 10))
    (resized,) = ctl.here()
    rx0, ry0, rx1, ry1 = resized.bounds()
    assert (rx0, ry0) == pytest.approx((mx0, my0))
    assert rx1 - mx1 == pytest.approx(30, abs=1.5) and ry1 - my1 == pytest.approx(10, abs=1.5)
    assert resized.stats.area > moved_rect.stats.area
    # delete, then undo and redo
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert ctl.here() == []
    qtbot.keyClick(canvas, Qt.Key.Key_Z, CTRL)
    assert ctl.here() == [resized]
    qtbot.keyClick(canvas, Qt.Key.Key_Z, CTRL)  # undo the resize
    assert ctl.here()[0].bounds() == pytest.approx(moved_rect.bounds())
    qtbot.keyClick(canvas, Qt.Key.Key_Z, CTRL | SHIFT)  # redo it
    assert ctl.here()[0].bounds() == pytest.approx(resized.bounds())
    for _ in range(3):
        qtbot.keyClick(canvas, Qt.Key.Key_Z, CTRL)
    assert ctl.here() == []  # back to before the rectangle was drawn


def test_a_click_on_empty_image_deselects_and_pan_still_pans(qtbot, ct_window) -> None:
    window = ct_window
    canvas = window.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_E, SHIFT)
    drag(qtbot, window, (60, 60), (120, 100))
    assert window.annotations.selected is not None
    qtbot.keyClick(canvas, Qt.Key.Key_P)  # pan tool
    assert canvas.tool == canvas.TOOL_PAN
    centre = QPointF(canvas.center)  # a copy: panning changes it in place
    drag(qtbot, window, (200, 200), (220, 200))  # far from the ellipse: pans
    assert window.annotations.selected is None
    assert canvas.center != centre
    assert len(window.annotations.here()) == 1


def test_angle_by_drag_then_click(qtbot, ct_window) -> None:
    window = ct_window
    canvas = window.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_A, SHIFT)
    assert canvas.tool == ANGLE
    drag(qtbot, window, (150, 60), (80, 60))  # first arm: its end, then the vertex
    assert window.annotations.here() == []  # waits for the third point
    third = at(window, 80, 130)
    qtbot.mouseMove(canvas, third)
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=third)
    (angle,) = window.annotations.here()
    assert angle.kind == ANGLE
    assert angle.angle == pytest.approx(90.0, abs=2.0)
    assert angle.label_lines()[-1].endswith("°")


def test_escape_stops_an_angle(qtbot, ct_window) -> None:
    window = ct_window
    qtbot.keyClick(window.canvas, Qt.Key.Key_A, SHIFT)
    drag(qtbot, window, (150, 60), (80, 60))
    qtbot.keyClick(window.canvas, Qt.Key.Key_Escape)
    assert window.annotations._draft is None and window.annotations.here() == []


def test_arrow_asks_for_its_text_and_double_click_edits_it(qtbot, ct_window) -> None:
    window = ct_window
    canvas = window.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_T, SHIFT)
    drag(qtbot, window, (100, 100), (160, 60))
    (arrow,) = window.annotations.here()
    assert arrow.kind == ARROW and arrow.points[0] == pytest.approx((100, 100), abs=1.0)
    dialog = window.annotations.text_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.setTextValue("hyperdense focus")
    dialog.accept()
    assert window.annotations.here()[0].text == "hyperdense focus"
    assert window.annotations.here()[0].label_lines() == ["hyperdense focus"]
    qtbot.keyClick(canvas, Qt.Key.Key_P)
    mid = at(window, 130, 80)
    qtbot.mouseDClick(canvas, Qt.MouseButton.LeftButton, pos=mid)
    dialog = window.annotations.text_dialog
    assert dialog is not None and dialog.textValue() == "hyperdense focus"
    dialog.setTextValue("calcification")
    dialog.accept()
    assert window.annotations.here()[0].text == "calcification"
    qtbot.keyClick(canvas, Qt.Key.Key_Z, CTRL)
    assert window.annotations.here()[0].text == "hyperdense focus"


def test_key_image_flag_toggles(qtbot, ct_window) -> None:
    window = ct_window
    qtbot.keyClick(window.canvas, Qt.Key.Key_K, SHIFT)
    (flag,) = window.annotations.here()
    assert flag.kind == KEY_IMAGE
    state = window.review.current_state()
    assert state is not None and state.annotations == [flag]
    qtbot.keyClick(window.canvas, Qt.Key.Key_K, SHIFT)
    assert window.annotations.here() == []


def test_the_ruler_tool_does_not_grab_annotations(qtbot, ct_window) -> None:
    window = ct_window
    canvas = window.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_B, SHIFT)
    drag(qtbot, window, (40, 40), (100, 90))
    before = window.annotations.here()
    qtbot.keyClick(canvas, Qt.Key.Key_M)  # ruler
    drag(qtbot, window, (40, 60), (140, 60))  # starts on the rectangle's left edge
    assert window.annotations.here() == before
    assert len(canvas.rulers()) == 1


def test_the_tools_are_in_the_tools_menu_and_the_toolbar(ct_window) -> None:
    window = ct_window
    tools = [a.objectName() for a in window.menus["Tools"].actions()]
    for name in ("tool_ellipse", "tool_rectangle", "tool_angle", "tool_arrow", "key_image",
                 "delete_annotation", "undo_annotation"):  # fmt: skip
        assert f"act_{name}" in tools
    assert window.acts["tool_ellipse"] in window.toolbar.actions()
    window.acts["tool_rectangle"].trigger()
    assert window.canvas.tool == RECTANGLE and not window.acts["tool_pan"].isChecked()
    QApplication.processEvents()
    assert np.isfinite(window.canvas.zoom)
