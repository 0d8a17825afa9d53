"""Unhandled exceptions are caught, logged and shown; settings persist; dialogs work."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QKeySequence

from desktop_app.qt import errors as qt_errors
from desktop_app.qt.app_settings import AppSettings
from desktop_app.qt.dialogs import ModelInfoDialog, SettingsDialog, cheat_sheet_html
from tests.qt.conftest import SAMPLE_CT, open_and_wait


@pytest.fixture
def hooks():
    saved = (sys.excepthook, threading.excepthook)
    qt_errors.install_exception_hook()
    yield
    sys.excepthook, threading.excepthook = saved


def test_unhandled_exception_is_logged_and_shown(qtbot, make_window, hooks, caplog) -> None:
    window = make_window()
    with caplog.at_level(logging.ERROR, logger="desktop_app.qt.errors"):
        try:
            raise ValueError("bad  value\nsecond line")
        except ValueError:
            sys.excepthook(*sys.exc_info())  # what Python calls for an uncaught exception
    assert (
        window.statusBar().currentMessage()
        == "✖ unexpected error: ValueError: bad value second line"
    )
    assert "Traceback" in caplog.text or caplog.records[0].exc_info is not None


def test_exception_in_another_thread_is_shown(qtbot, make_window, hooks) -> None:
    window = make_window()

    def boom() -> None:
        raise RuntimeError("worker died")

    with qtbot.waitSignal(qt_errors.relay.error, timeout=5_000):
        t = threading.Thread(target=boom)
        t.start()
        t.join()
    qtbot.waitUntil(lambda: "worker died" in window.statusBar().currentMessage())
    assert window.statusBar().currentMessage() == "✖ unexpected error: RuntimeError: worker died"


def test_settings_persist_across_windows(qtbot, make_window, qsettings, settings_path) -> None:
    window = make_window()
    window.preferences.apply_settings(
        {
            "review/reviewer": "Dr Persist",
            "inference/device": "cpu",
            "inference/auto_run": True,
            "overlay/opacity": 0.7,
            "overlay/box": False,
            "overlay/colormap": "inferno",
        },
        {**window.preferences.shortcut_table, "accept": "Ctrl+Y"},
    )
    window.close()
    fresh = QSettings(str(settings_path), QSettings.Format.IniFormat)
    prefs = AppSettings(fresh)
    assert prefs.get("review/reviewer") == "Dr Persist"
    assert prefs.get("inference/auto_run") is True
    assert prefs.get("overlay/opacity") == pytest.approx(0.7)
    again = make_window(settings=fresh)
    assert again.acts["accept"].shortcut() == QKeySequence("Ctrl+Y")
    assert again.acts["toggle_box"].isChecked() is False
    assert again.canvas.overlay_opacity == pytest.approx(0.7)
    assert again.inference.device == "cpu"
    assert again.feedback.device_badge.text() == "Device: cpu"


def test_settings_dialog_round_trip_and_conflicts(qtbot) -> None:
    from desktop_app.settings import shortcuts

    values = {"review/reviewer": "A", "inference/device": "mps", "overlay/opacity": 0.3,
              "overlay/colormap": "hot", "overlay/heatmap": False}  # fmt: skip
    dialog = SettingsDialog(values, shortcuts.effective(), None)
    qtbot.addWidget(dialog)
    out = dialog.values()
    assert (out["review/reviewer"], out["inference/device"], out["overlay/colormap"]) == (
        "A",
        "mps",
        "hot",
    )
    assert out["overlay/heatmap"] is False and out["overlay/opacity"] == pytest.approx(0.3)
    ok = dialog.buttons.buttons()[0]
    assert ok.isEnabled()
    dialog.editors["accept"].setKeySequence(QKeySequence("R"))  # R already rotates
    assert "Used twice" in dialog.conflict_label.text()
    assert not ok.isEnabled()
    dialog.editors["accept"].setKeySequence(QKeySequence("Ctrl+Shift+A"))
    assert dialog.shortcut_table()["accept"] == "Ctrl+Shift+A" and ok.isEnabled()


def test_cheat_sheet_lists_every_group() -> None:
    from desktop_app.settings import shortcuts

    text = cheat_sheet_html(shortcuts.effective())
    for group in ("File", "Navigation", "Overlays", "Review", "Help"):
        assert f"<h3>{group}</h3>" in text
    assert "Disagree with the model" in text and "(with a reason)" in text
    assert "Normal: all remaining labels absent" in text


def test_model_info_dialog_renders_markdown(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    window.runs.show_model_info()  # not loaded yet: a one-line hint, no dialog
    assert "no model is loaded yet" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.runs.run_inference()
    window.acts["model_info"].trigger()
    dialogs = window.findChildren(ModelInfoDialog)
    assert len(dialogs) == 1
    assert dialogs[0].browser.toPlainText().startswith("Fake model")
    dialogs[0].close()


def test_research_notice_is_everywhere(qtbot, make_window) -> None:
    window = make_window()
    notice = "Research use only — not for diagnosis"
    assert notice in window.windowTitle()
    assert notice in window.feedback.notice.text()
    assert notice in window.findings.notice.text()


def test_unusable_data_folder_is_reported_not_fatal(
    qtbot, make_window, tmp_path, monkeypatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("RADASSIST_DATA_DIR", str(blocker))
    window = make_window()
    assert "reviews can't be kept in the data folder" in window.feedback.last_error or (
        "no audit trail this session" in window.feedback.last_error
    )
    assert window.findings.message.text().startswith("⚠ ")
    open_and_wait(qtbot, window, [SAMPLE_CT])  # the viewer still works
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.runs.run_inference()
    window.review.accept_finding(window.review.selected)
    assert window.review.writer.flush()
    assert list(window.review.store.root.glob("*.json"))  # saved where the message said
    window.close()
    import shutil

    shutil.rmtree(window.review.store.root)


def test_error_relay_lets_go_of_a_destroyed_window(qtbot, qsettings, hooks, monkeypatch) -> None:
    """The relay is global: once a window is destroyed (even without closeEvent) an error must
    not reach its deleted status bar, nor loop through the exception hook."""
    from desktop_app.qt.main_window import MainWindow
    from tests.qt.conftest import FakeRunner, flush_deletes

    window = MainWindow(settings=qsettings, runner_factory=lambda m, d: FakeRunner(m, d))
    window.deleteLater()
    flush_deletes()
    calls: list[object] = []
    monkeypatch.setattr(sys, "excepthook", lambda *args: calls.append(args))
    qt_errors.relay.error.emit("after the window is gone")
    assert calls == []
