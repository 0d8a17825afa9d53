"""The viewer reads like a radiology viewer: head-first CT named by Instance Number (and a
feet-first setting), orientation letters that follow screen-space rotate and flip, corner
text with a privacy toggle, and smooth or nearest-neighbour magnification."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QSettings, Qt

from desktop_app.dicom.cornertext import HIDDEN_NOTE
from desktop_app.qt.canvas import ImageCanvas
from tests.qt.conftest import SAMPLE_CT, SAMPLE_XR, open_and_wait
from tests.qt.test_inference_ui import run_and_wait

IDENTIFIERS = ("PHANTOM, 0007", "PH000007", "SYN87010188")  # the CT phantom's name, ID, accession


def wait_label(qtbot, window, text: str) -> None:
    qtbot.waitUntil(lambda: window.canvas.corner_text("bl")[:1] == [text], timeout=10_000)


def test_ct_is_head_first_and_slices_are_named_by_instance_number(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    viewer = window.viewer
    qtbot.keyClick(viewer, Qt.Key.Key_Home)
    assert viewer.index == 0
    assert viewer.slice_label.text() == "Im 1 (of 40) · +97.5 mm"  # the head end
    wait_label(qtbot, window, "Im 1 (of 40) · +97.5 mm")
    qtbot.keyClick(viewer, Qt.Key.Key_Down)  # one slice toward the feet
    assert viewer.slice_label.text() == "Im 2 (of 40) · +92.5 mm"
    qtbot.keyClick(viewer, Qt.Key.Key_End)
    assert viewer.slice_label.text() == "Im 40 (of 40) · -97.5 mm"
    viewer.set_index(16)  # the lesion's largest slice (resources/sample/README.md)
    wait_label(qtbot, window, "Im 17 (of 40) · +17.5 mm")


def test_feet_first_turns_navigation_not_the_stack(qtbot, make_window, qsettings) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    viewer = window.viewer
    window.acts["axial_feet_first"].trigger()
    assert window.acts["axial_feet_first"].isChecked()
    assert viewer.slider.invertedAppearance()
    qtbot.keyClick(viewer, Qt.Key.Key_Home)
    assert viewer.slice_label.text() == "Im 40 (of 40) · -97.5 mm"  # Home: the feet
    qtbot.keyClick(viewer, Qt.Key.Key_Down)
    assert viewer.slice_label.text() == "Im 39 (of 40) · -92.5 mm"  # toward the head
    assert viewer.context is not None and viewer.context.stack.short_label(0) == "Im 1"
    assert QSettings(qsettings.fileName(), QSettings.Format.IniFormat).value(
        "view/axial_feet_first"
    ) in (True, "true")
    window.acts["axial_feet_first"].trigger()
    qtbot.keyClick(viewer, Qt.Key.Key_Home)
    assert viewer.index == 0


def test_findings_name_slices_like_the_viewer(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    run_and_wait(qtbot, window)  # the fake model's maximum is on stack index 20
    card = window.findings.cards[f"{window.shown.key}:nodule"]
    assert card.where.text() == "Im 21"
    assert "maximum on Im 21" in card.toolTip()
    assert window.findings.review_title.text().endswith("· Im 21")
    qtbot.waitUntil(
        lambda: window.canvas.corner_text("bl")[:1] == ["Im 21 (of 40) · -2.5 mm"], timeout=20_000
    )


def test_ct_letters_follow_rotate_and_screen_space_flips(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    canvas = window.canvas
    assert canvas.orientation_letters() == {"top": "A", "right": "L", "bottom": "P", "left": "R"}
    window.acts["rotate_right"].trigger()
    assert canvas.orientation_letters() == {"top": "R", "right": "A", "bottom": "L", "left": "P"}
    left = canvas.widget_to_image(QPointF(canvas.width() * 0.25, canvas.height() / 2))
    qtbot.keyClick(canvas, Qt.Key.Key_H, Qt.KeyboardModifier.ShiftModifier)  # flip on screen
    assert canvas.orientation_letters() == {"top": "R", "right": "P", "bottom": "L", "left": "A"}
    moved = canvas.image_to_widget(left)  # what was on the left is now on the right
    assert moved.x() > canvas.width() / 2
    assert abs(moved.y() - canvas.height() / 2) < 1.0
    window.acts["flip_v"].trigger()
    assert canvas.orientation_letters() == {"top": "L", "right": "P", "bottom": "R", "left": "A"}
    window.acts["reset_view"].trigger()
    assert canvas.orientation_letters()["top"] == "A"


def test_radiograph_letters_from_patient_orientation(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_XR])  # PatientOrientation L\F
    canvas = window.canvas
    qtbot.waitUntil(lambda: bool(canvas.orientation_letters()), timeout=10_000)
    assert canvas.orientation_letters() == {"top": "H", "right": "L", "bottom": "F", "left": "R"}
    window.acts["rotate_left"].trigger()
    assert canvas.orientation_letters() == {"top": "L", "right": "F", "bottom": "R", "left": "H"}


def test_corner_text_and_hiding_identifiers(qtbot, make_window, qsettings) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    canvas = window.canvas
    qtbot.waitUntil(lambda: bool(canvas.corner_text("tl")), timeout=10_000)
    tl = canvas.corner_text("tl")
    assert tl[0] == "PHANTOM, 0007"
    assert tl[1] == "ID PH000007 · M"
    assert tl[2] == "2024-11-28 · SYNTHETIC PHANTOM - NOT A PATIENT"
    assert canvas.corner_text("tr")[:2] == ["Se 2 · CHEST CT PHANTOM (synthetic)", "CT  256x256"]
    assert canvas.corner_text("bl")[1].startswith("W ")
    assert canvas.corner_text("br")[1].startswith("zoom ")
    qtbot.keyClick(canvas, Qt.Key.Key_I, Qt.KeyboardModifier.ShiftModifier)
    assert window.acts["hide_identifiers"].isChecked()
    shown = [line for corner in ("tl", "tr", "bl", "br") for line in canvas.corner_text(corner)]
    assert canvas.corner_text("tl")[0] == f"{HIDDEN_NOTE} · M"
    assert not any(ident in line for line in shown for ident in IDENTIFIERS)
    # kept: a new window (a screenshot session) starts with them hidden
    again = make_window(settings=QSettings(qsettings.fileName(), QSettings.Format.IniFormat))
    assert again.acts["hide_identifiers"].isChecked()
    open_and_wait(qtbot, again, [SAMPLE_CT])
    qtbot.waitUntil(lambda: bool(again.canvas.corner_text("tl")), timeout=10_000)
    assert again.canvas.corner_text("tl")[0] == f"{HIDDEN_NOTE} · M"


def test_ai_notice_stays_in_the_corner(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    run_and_wait(qtbot, window)
    qtbot.waitUntil(lambda: bool(window.canvas.shapes()), timeout=20_000)
    window.view.update_corners()
    assert window.canvas.corner_text("tr")[0] == "AI overlay — research use only"


def _grab(canvas: ImageCanvas) -> np.ndarray:
    image = canvas.grab().toImage()
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    return data.reshape(height, image.bytesPerLine())[:, : width * 4].reshape(height, width, 4)


def test_smooth_magnification_and_nearest_toggle(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    assert window.canvas.smooth
    qtbot.keyClick(window.canvas, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)
    assert not window.canvas.smooth and not window.acts["smooth_zoom"].isChecked()
    assert window.canvas.corner_text("br")[1].endswith("· nearest")

    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(400, 400)
    canvas.set_image(np.kron(np.eye(2, dtype=np.uint8), np.ones((2, 2), np.uint8)) * 255)
    canvas.fit()  # 4 x 4 pixels shown ~100x: two grey levels unless interpolated

    def levels() -> int:
        middle = _grab(canvas)[150:250, 150:250, :3]
        return len(np.unique(middle.reshape(-1, 3), axis=0))

    canvas.set_smooth(False)
    assert levels() == 2
    canvas.set_smooth(True)
    assert levels() > 10
