"""No surprises: a finished run never moves a view the reader touched ("Go to finding" instead),
opening adds studies (File ▸ Close study removes one), a failed open changes nothing that is
open and is not remembered, and ``--screenshot`` writes nothing to the data folder."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from PySide6.QtCore import Qt

from tests.qt.conftest import ROOT, SAMPLE_CT, SAMPLE_XR, FakeRunner, open_and_wait


def _gated_window(make_window):  # type: ignore[no-untyped-def]
    gate = threading.Event()
    window = make_window(runner=lambda m, d: FakeRunner(m, d, gate=gate))
    return window, gate


def _broken_dicom(folder: Path) -> Path:
    """A file that claims to be DICOM (preamble and "DICM") and holds no readable dataset."""
    path = folder / "broken.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7fgarbage")
    return path


class TestRunsDoNotMoveATouchedView:
    def test_scrolling_during_the_run_keeps_the_slice_and_offers_go_to(
        self, qtbot, make_window
    ) -> None:
        window, gate = _gated_window(make_window)
        open_and_wait(qtbot, window, [SAMPLE_CT])
        window.acts["run_inference"].trigger()
        qtbot.waitUntil(lambda: window.inference.running, timeout=20_000)
        qtbot.keyClick(window.viewer, Qt.Key.Key_Home)  # the reader goes on reading
        assert window.viewer.index == 0
        with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
            gate.set()
        nodule = f"{window.shown.key}:nodule"
        assert window.viewer.index == 0  # not pulled to the finding's slice 20
        assert window.findings.selected == nodule  # selected in the panel all the same
        button = window.runs.go_button
        assert button.isVisible() and "Go to finding: Nodule 87 %" in button.text()
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        assert window.viewer.index == 20
        assert not button.isVisible()

    def test_the_go_to_finding_key_jumps_too(self, qtbot, make_window) -> None:
        window, gate = _gated_window(make_window)
        open_and_wait(qtbot, window, [SAMPLE_CT])
        window.acts["run_inference"].trigger()
        qtbot.waitUntil(lambda: window.inference.running, timeout=20_000)
        window.acts["zoom_in"].trigger()  # any view action counts as reading
        with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
            gate.set()
        window.viewer.set_index(2)
        assert window.acts["go_to_finding"].shortcut().toString() == "G"
        window.acts["go_to_finding"].trigger()
        assert window.viewer.index == 20

    def test_an_untouched_view_goes_to_the_finding(self, qtbot, make_window) -> None:
        window = make_window()
        open_and_wait(qtbot, window, [SAMPLE_CT])
        window.viewer.set_index(3)  # before the run: not "during"
        with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
            window.acts["run_inference"].trigger()
        assert window.viewer.index == 20
        assert not window.runs.go_button.isVisible()

    def test_showing_another_series_withdraws_the_offer(self, qtbot, make_window) -> None:
        window, gate = _gated_window(make_window)
        open_and_wait(qtbot, window, [SAMPLE_CT])
        window.acts["run_inference"].trigger()
        qtbot.waitUntil(lambda: window.inference.running, timeout=20_000)
        qtbot.keyClick(window.viewer, Qt.Key.Key_End)
        with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
            gate.set()
        assert window.runs.go_button.isVisible()
        with qtbot.waitSignal(window.studies.seriesShown, timeout=20_000):
            window.studies.open_paths([SAMPLE_XR])
        assert not window.runs.go_button.isVisible()


class TestOpeningAddsAndCloseStudy:
    def test_a_second_open_adds_its_study(self, qtbot, make_window, qsettings) -> None:
        window = make_window()
        open_and_wait(qtbot, window, [SAMPLE_CT])
        ct_key = window.shown.key
        with qtbot.waitSignal(window.studies.seriesShown, timeout=20_000):
            window.studies.open_paths([SAMPLE_XR])
        assert window.shown.entry.modality == "DX"  # type: ignore[union-attr]
        assert {e.modality for e in window.studies.entries} == {"CT", "DX"}
        assert ct_key in window.browser.entries
        assert window.browser.topLevelItemCount() == 2  # two phantom patients
        assert window.studies.index is not None and window.studies.index.series_count == 2

    def test_reopening_adds_nothing_twice(self, qtbot, make_window) -> None:
        window = make_window()
        open_and_wait(qtbot, window, [SAMPLE_CT])
        with qtbot.waitSignal(window.studies.seriesShown, timeout=20_000):
            window.studies.open_paths([SAMPLE_CT])
        assert len(window.studies.entries) == 1
        assert window.studies.index is not None and window.studies.index.instance_count == 40

    def test_close_study_shows_the_next_then_the_empty_viewer(self, qtbot, make_window) -> None:
        window = make_window()
        open_and_wait(qtbot, window, [SAMPLE_CT])
        with qtbot.waitSignal(window.studies.seriesShown, timeout=20_000):
            window.studies.open_paths([SAMPLE_XR])
        close = window.acts["close_study"]
        assert close.shortcut().toString() == "Ctrl+W"
        file_menu = window.menus["File"]
        assert close in file_menu.actions()
        with qtbot.waitSignal(window.studies.seriesShown, timeout=20_000):
            close.trigger()
        assert window.shown.entry.modality == "CT"  # type: ignore[union-attr]
        assert [e.modality for e in window.studies.entries] == ["CT"]
        assert len(window.studies.volumes) == 1
        close.trigger()
        assert window.studies.entries == [] and window.browser.topLevelItemCount() == 0
        assert window.shown.entry is None and window.viewer.context is None
        assert window.findings.message.isHidden()
        close.trigger()  # nothing left: says so, no error
        assert window.statusBar().currentMessage() == "No study to close"


class TestFailedOpen:
    def test_a_bad_file_keeps_the_open_study_and_is_not_recent(
        self, qtbot, make_window, tmp_path
    ) -> None:
        window = make_window()
        open_and_wait(qtbot, window, [SAMPLE_CT])
        with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
            window.acts["run_inference"].trigger()
        key, message = window.shown.key, window.findings.message.text()
        bad = _broken_dicom(tmp_path)
        with qtbot.waitSignal(window.studies.index_channel.finished, timeout=20_000):
            window.studies.open_paths([bad])
        assert window.shown.key == key and window.viewer.context is not None
        assert window.findings.cards and window.findings.message.text() == message
        assert [e.key for e in window.studies.entries] == [key]
        assert window.feedback.last_error is not None
        assert window.feedback.last_error.startswith(str(bad))
        assert window.problems.count() == 1
        recent = window.prefs.recent_paths()
        assert str(bad.resolve()) not in recent and str(SAMPLE_CT.resolve()) in recent
        assert str(bad.resolve()) not in [a.text() for a in window.studies.recent_menu.actions()]

    def test_a_bad_file_on_an_empty_window_leaves_no_stale_text(
        self, qtbot, make_window, tmp_path
    ) -> None:
        window = make_window()
        window.findings.set_message("Review restored. …", "info")  # whatever was there
        with qtbot.waitSignal(window.studies.index_channel.finished, timeout=20_000):
            window.studies.open_paths([_broken_dicom(tmp_path)])
        assert window.findings.message.isHidden()
        assert window.canvas._placeholder == "No images found in what was opened"
        assert window.prefs.recent_paths() == []

    def test_a_folder_without_dicom_is_an_error_not_a_close(
        self, qtbot, make_window, tmp_path
    ) -> None:
        window = make_window()
        open_and_wait(qtbot, window, [SAMPLE_XR])
        (tmp_path / "notes.txt").write_text("not an image", "utf-8")
        with qtbot.waitSignal(window.studies.index_channel.finished, timeout=20_000):
            window.studies.open_paths([tmp_path])
        assert window.shown.entry is not None and window.viewer.context is not None
        assert window.feedback.last_error == f"{tmp_path}: no DICOM images found"


def test_screenshot_writes_nothing_to_the_data_folder(tmp_path: Path) -> None:
    """The bundled model on the chest sample: reviews, audit, the first-start speed
    estimate, the header index cache and the log would all land in the data folder."""
    data = tmp_path / "data"
    out = tmp_path / "shot.png"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "QT_QPA_PLATFORM": "offscreen",
        "RADASSIST_DATA_DIR": str(data),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "desktop_app", str(SAMPLE_XR), "--screenshot", str(out),
         "--run-inference", "--size", "800x600"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    written = sorted(str(p.relative_to(data)) for p in data.rglob("*")) if data.exists() else []
    assert written == []
    assert not (tmp_path / ".local" / "share" / "RadAssist").exists()  # nor the default one
