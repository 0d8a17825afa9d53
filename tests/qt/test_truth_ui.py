"""The reader's truth in the GUI: a missed finding drawn on the image, a normal study in one
key, quiet negatives (heatmap only on request), the reader's name asked once, and the site's
numbers on each card."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt

from desktop_app.privacy.audit import AuditLog
from desktop_app.qt.findings_panel import FindingsPanelWidget
from desktop_app.review.sitecal import site_calibration_text
from desktop_app.review.state import ABSENT, PENDING, PRESENT
from tests.qt.test_review_ui import reviewed_window

SITE = {
    "source_sha256": "f" * 64,
    "date": "2025-01-01",
    "rule": "youden",
    "n_cases": 143,
    "labels": {
        "nodule": {
            "n": 143,
            "positives": 40,
            "sensitivity": {"value": 0.82, "ci95": [0.70, 0.90]},
            "specificity": {"value": 0.91, "ci95": [0.86, 0.95]},
        }
    },
}


def test_add_a_missed_finding_by_drawing_its_box(qtbot, make_window, data_dir) -> None:
    window = reviewed_window(qtbot, make_window)
    key, canvas = window.shown.key, window.canvas
    effusion = f"{key}:effusion"  # the model calls it negative (0.31 < 0.40)
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_N)  # Add finding: pick the label
    menu = window.review.label_menu
    assert [a.text() for a in menu.actions()] == ["Nodule", "Effusion"]
    menu.actions()[1].trigger()
    menu.close()
    assert canvas.tool == canvas.TOOL_DRAW and "Effusion" in window.findings.message.text()
    start = canvas.image_to_widget(QPointF(40, 50)).toPoint()
    end = canvas.image_to_widget(QPointF(90, 110)).toPoint()
    with qtbot.waitSignal(canvas.boxDrawn):
        qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=start)
        qtbot.mouseMove(canvas, end)
        qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=end)
    state = window.review.current_state()
    f = state.find(effusion)
    assert (f.truth, f.added, f.reviewer) == (PRESENT, True, "Dr Test")
    assert f.edited_box is not None and abs(f.edited_box[2] - 50) < 2
    assert state.agreement(f) == "FN" and canvas.tool == canvas.TOOL_PAN
    assert effusion in [s.key for s in canvas.shapes()]  # a missed finding is drawn
    assert "missed by the model" in window.findings.cards[effusion].verdict.text()
    assert "1 missed by the model" in window.findings.summary.text()
    window.close()
    records = list(AuditLog(data_dir / "audit.jsonl").records())
    assert (records[-1]["action"], records[-1]["agreement"]) == ("add_finding", "FN")


def test_normal_study_in_one_key_and_negatives_are_quiet(qtbot, make_window) -> None:
    window = reviewed_window(qtbot, make_window)
    key, canvas = window.shown.key, window.canvas
    effusion = f"{key}:effusion"
    window.review.select_finding(effusion)  # a negative: nothing on the image
    assert [s.key for s in canvas.shapes()] == [f"{key}:nodule"]
    window.acts["negative_heatmap"].setChecked(True)  # the reader asks for its heatmap
    assert [s.key for s in canvas.shapes()] == [f"{key}:nodule"]
    window.acts["negative_heatmap"].setChecked(False)
    window.review.accept_finding(f"{key}:nodule")
    qtbot.keyClick(canvas, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    state = window.review.current_state()
    assert [f.truth for f in state.for_series(key)] == [PRESENT, ABSENT]
    assert state.find(effusion).reviewer == "Dr Test"
    window.review.set_threshold("effusion", 0.0)  # the call moves; the verdict does not
    assert state.find(effusion).truth == ABSENT and state.agreement(state.find(effusion)) == "FP"


def test_reader_name_is_asked_once_before_the_first_verdict(qtbot, make_window, qsettings) -> None:
    qsettings.remove("review/reviewer")
    window = reviewed_window(qtbot, make_window)
    fid = window.review.selected
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)
    dialog = window.review.reader_dialog
    assert dialog is not None and dialog.isVisible()
    assert window.review.current_state().find(fid).truth == PENDING  # waits for the name
    ok = dialog.buttons.buttons()[0]
    assert not ok.isEnabled()
    qtbot.keyClicks(dialog.name_edit, "  Dr   Ada Reader ")
    with qtbot.waitSignal(dialog.finished):
        dialog.accept()
    f = window.review.current_state().find(fid)
    assert (f.truth, f.reviewer) == (PRESENT, "Dr Ada Reader")
    assert window.prefs.get("review/reviewer") == "Dr Ada Reader"
    qtbot.keyClick(window.canvas, Qt.Key.Key_U)
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)
    assert window.review.reader_dialog is None  # asked once


def test_site_calibration_line() -> None:
    assert site_calibration_text(SITE, "nodule") == (
        "at this site: sensitivity 0.82 (0.70–0.90), specificity 0.91 (0.86–0.95) "
        "on 143 reviewed cases"
    )
    assert site_calibration_text(SITE, "effusion") is None
    assert site_calibration_text(None, "nodule") is None
    assert site_calibration_text({"labels": {"nodule": {"sensitivity": "x"}}}, "nodule") is None


def test_cards_show_the_site_numbers(qtbot, make_window) -> None:
    window = reviewed_window(qtbot, make_window)
    panel: FindingsPanelWidget = window.findings
    key = window.shown.key
    panel.set_site_calibration(SITE)
    card = panel.cards[f"{key}:nodule"]
    assert not card.site.isHidden() and "sensitivity 0.82" in card.site.text()
    assert panel.cards[f"{key}:effusion"].site.isHidden()
