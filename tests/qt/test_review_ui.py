"""Reviewing findings: accept / reject with a reason / note / box edit, keyboard-driven,
saved on every change and restored on reopen — also after the app is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from PySide6.QtCore import QPointF, Qt

from desktop_app.privacy.audit import AuditLog, verify
from desktop_app.review.state import ABSENT, ACCEPTED, PENDING, PRESENT, REJECTED, UNCERTAIN
from desktop_app.review.store import ReviewStore
from tests.qt.conftest import ROOT, SAMPLE_CT, open_and_wait


def reviewed_window(qtbot, make_window, **kw):
    window = make_window(**kw)
    open_and_wait(qtbot, window, [SAMPLE_CT])
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.runs.run_inference()
    return window


def test_keyboard_review_persists_across_a_restart(qtbot, make_window, qsettings, data_dir) -> None:
    qsettings.setValue("review/reviewer", "Dr Test")
    window = reviewed_window(qtbot, make_window)
    key = window.shown.key
    nodule, effusion = f"{key}:nodule", f"{key}:effusion"
    canvas = window.canvas
    canvas.setFocus()
    assert window.review.selected == nodule
    qtbot.keyClick(canvas, Qt.Key.Key_A)  # accept
    state = window.review.current_state()
    assert state.find(nodule).verdict == ACCEPTED and state.find(nodule).reviewer == "Dr Test"
    qtbot.keyClick(canvas, Qt.Key.Key_J)  # next finding
    assert window.review.selected == effusion
    qtbot.keyClick(canvas, Qt.Key.Key_D)  # disagree: a menu of the reasons that fit pops up
    menu = window.review.reason_menu
    assert [a.text() for a in menu.actions()][:2] == [  # effusion is negative: missed reasons
        "&1  Missed – subtle finding",
        "&2  Missed – small finding",
    ]
    menu.actions()[3].trigger()  # "&4  Missed – image quality"
    menu.close()
    assert state.find(effusion).verdict == REJECTED
    assert (state.find(effusion).truth, state.find(effusion).reason) == (
        PRESENT,
        "fn_image_quality",
    )
    qtbot.keyClick(canvas, Qt.Key.Key_K)  # back to the nodule
    qtbot.keyClick(canvas, Qt.Key.Key_C)  # note
    assert window.findings.note.hasFocus()
    qtbot.keyClicks(window.findings.note, "compare with prior")
    qtbot.waitUntil(lambda: state.find(nodule).note == "compare with prior", timeout=20_000)
    card = window.findings.cards[nodule]
    assert card.verdict.text() == "Reader: ✓ Present · agrees (TP)"
    assert window.findings.cards[effusion].verdict.text() == (
        "Reader: ✓ Present — Missed – image quality · model false negative (FN)"
    )
    window.close()  # flushes

    saved = ReviewStore(data_dir / "reviews").load(state.study_uid)
    assert saved is not None and saved.find(nodule).note == "compare with prior"

    again = make_window()
    open_and_wait(qtbot, again, [SAMPLE_CT])
    restored = again.review.current_state()
    assert restored is not None
    assert restored.find(nodule).verdict == ACCEPTED
    assert (restored.find(effusion).verdict, restored.find(effusion).reason) == (
        REJECTED,
        "fn_image_quality",
    )
    assert list(again.findings.cards) == [nodule, effusion]
    assert again.findings.cards[nodule].verdict.text() == "Reader: ✓ Present · agrees (TP)"
    again.review.select_finding(nodule)
    assert again.findings.note.toPlainText() == "compare with prior"
    assert "Heatmaps are not kept" in again.findings.message.text()
    # re-running the same model keeps every verdict
    with qtbot.waitSignal(again.runs.inferenceDone, timeout=20_000):
        again.runs.run_inference()
    assert again.review.current_state().find(nodule).verdict == ACCEPTED
    again.close()
    records = list(AuditLog(data_dir / "audit.jsonl").records())
    assert [(r["kind"], r.get("action")) for r in records] == [
        ("inference", None),
        ("review", "accept"),
        ("review", "reject"),
        ("review", "note"),
        ("inference", None),
    ]
    assert records[2]["reason"] == "fn_image_quality" and "compare" not in json.dumps(records)
    assert (records[1]["reviewer"], records[1]["truth"], records[1]["agreement"]) == (
        "Dr Test",
        "present",
        "TP",
    )
    assert verify(data_dir / "audit.jsonl").ok


def test_clear_verdict_and_buttons(qtbot, make_window) -> None:
    window = reviewed_window(qtbot, make_window)
    fid = window.review.selected
    panel = window.findings
    qtbot.mouseClick(panel.present_button, Qt.MouseButton.LeftButton)  # the nodule: positive
    assert window.review.current_state().find(fid).verdict == ACCEPTED
    assert panel.present_button.text() == "✓ Present  (A)"
    panel.reason.setCurrentIndex(panel.reason.findData("wrong_location"))
    qtbot.mouseClick(panel.absent_button, Qt.MouseButton.LeftButton)
    assert window.review.current_state().find(fid).reason == "wrong_location"
    assert window.review.current_state().find(fid).truth == ABSENT
    qtbot.mouseClick(panel.uncertain_button, Qt.MouseButton.LeftButton)
    assert window.review.current_state().find(fid).truth == UNCERTAIN
    qtbot.keyClick(window.canvas, Qt.Key.Key_U)
    assert window.review.current_state().find(fid).verdict == PENDING


def test_edit_box_by_dragging_a_corner(qtbot, make_window, data_dir) -> None:
    window = reviewed_window(qtbot, make_window)
    fid = window.review.selected
    canvas = window.canvas
    qtbot.keyClick(canvas, Qt.Key.Key_E)  # edit tool: the selected box gets handles
    assert canvas.tool == canvas.TOOL_EDIT
    x, y, w, h = window.review.current_state().find(fid).box
    corner = canvas.image_to_widget(QPointF(x + w, y + h)).toPoint()
    target = canvas.image_to_widget(QPointF(x + w + 10, y + h + 6)).toPoint()
    with qtbot.waitSignal(canvas.boxEdited):
        qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=corner)
        qtbot.mouseMove(canvas, target)
        qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=target)
    edited = window.review.current_state().find(fid).edited_box
    assert edited is not None
    assert edited[:2] == pytest.approx((x, y), abs=0.01)
    assert edited[2] == pytest.approx(w + 10, abs=1.0) and edited[3] == pytest.approx(
        h + 6, abs=1.0
    )
    assert window.findings.reset_box_button.isEnabled()
    window.review.writer.flush()
    saved = ReviewStore(data_dir / "reviews").load(window.review.current_state().study_uid)
    assert saved.find(fid).edited_box == pytest.approx(edited)
    qtbot.mouseClick(window.findings.reset_box_button, Qt.MouseButton.LeftButton)
    assert window.review.current_state().find(fid).edited_box is None


def test_configurable_shortcut_and_cheat_sheet(qtbot, make_window, qsettings) -> None:
    qsettings.setValue("shortcuts/accept", "Y")
    window = reviewed_window(qtbot, make_window)
    fid = window.review.selected
    qtbot.keyClick(window.canvas, Qt.Key.Key_A)  # no longer bound
    assert window.review.current_state().find(fid).verdict == PENDING
    qtbot.keyClick(window.canvas, Qt.Key.Key_Y)
    assert window.review.current_state().find(fid).verdict == ACCEPTED
    window.acts["shortcuts"].trigger()
    sheet = window.preferences.shortcut_dialog
    assert sheet is not None and sheet.isVisible()
    assert sheet.windowTitle() == "Keyboard shortcuts"
    lines = [line.strip() for line in sheet.browser.toPlainText().splitlines()]
    at = lines.index("Y")
    assert lines[at + 1] == "Agree with the model's call"


def test_corrupt_review_file_is_kept_aside_and_reported(qtbot, make_window, data_dir) -> None:
    window = reviewed_window(qtbot, make_window)
    study = window.review.current_state().study_uid
    window.close()
    store = ReviewStore(data_dir / "reviews")
    store.path_for(study).write_text("{ truncated")
    again = make_window()
    open_and_wait(qtbot, again, [SAMPLE_CT])
    assert (
        "is not readable JSON" in again.feedback.last_error
        and "kept as" in again.feedback.last_error
    )
    assert list((data_dir / "reviews").glob("*.corrupt-*"))
    assert again.review.current_state() is None
    with qtbot.waitSignal(again.runs.inferenceDone, timeout=20_000):
        again.runs.run_inference()  # a fresh review starts; the old file stays aside


def test_nothing_is_lost_when_the_app_is_killed(qtbot, make_window, tmp_path, data_dir) -> None:
    settings_file = tmp_path / "child.ini"
    env = dict(os.environ, RADASSIST_DATA_DIR=str(data_dir), QT_QPA_PLATFORM="offscreen")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    log_path = tmp_path / "child.log"
    with (
        open(log_path, "w") as log,
        subprocess.Popen(
            [sys.executable, "-m", "tests.qt.review_child", str(settings_file)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        ) as child,
    ):
        try:
            line = child.stdout.readline().strip()  # type: ignore[union-attr]
        finally:
            child.send_signal(signal.SIGKILL)  # no clean shutdown: whatever is on disk stays
            child.wait(30)
    assert line == "READY", log_path.read_text()[-2000:]
    assert child.returncode == -signal.SIGKILL

    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    state = window.review.current_state()
    assert state is not None
    key = window.shown.key
    assert state.find(f"{key}:nodule").verdict == ACCEPTED
    assert state.find(f"{key}:nodule").note == "round, 22 mm; compare with prior"
    effusion = state.find(f"{key}:effusion")
    assert (effusion.verdict, effusion.truth, effusion.reason) == (REJECTED, PRESENT, "fn_subtle")
    assert state.threshold("effusion") == 0.2
    assert window.findings.cards[f"{key}:effusion"].result.text() == "POSITIVE"
    assert verify(data_dir / "audit.jsonl").ok
    path = ReviewStore(data_dir / "reviews").path_for(state.study_uid)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
