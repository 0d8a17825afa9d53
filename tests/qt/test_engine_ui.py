"""The GUI on the real inference engine (inference.engine) with a small random-init model file."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from desktop_app.review.runner import EngineRunner
from tests.qt.conftest import ROOT, SAMPLE_CT, open_and_wait

pytestmark = pytest.mark.slow  # the first engine import (torch, MONAI, ONNX Runtime) takes seconds


def test_real_engine_through_the_worker(qtbot, make_window, qsettings, tiny_model: Path) -> None:
    qsettings.setValue("inference/model_path", str(tiny_model))
    qsettings.setValue("inference/device", "auto")
    window = make_window(real_engine=True)
    open_and_wait(qtbot, window, [SAMPLE_CT])
    progress: list[tuple[int, int]] = []
    window.inference.progressed.connect(lambda d, t: progress.append((d, t)))
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=120_000):
        window.runs.run_inference()
    assert threading.get_ident() not in window.inference.work_threads
    assert progress[-1] == (41, 41)  # 40 slices + Grad-CAM
    assert set(window.findings.cards) == {
        f"{window.shown.key}:{label}" for label in ("nodule", "effusion", "cardiomegaly")
    }
    assert window.feedback.device_badge.text() == "CPU"
    assert window.findings.model_label.text().startswith("Model: tiny-test ")
    state = window.review.current_state()
    assert state is not None and state.model is not None and len(state.model.sha256) == 64
    # every label has a heatmap (the GUI asks for all), so any finding can be shown
    assert set(window.overlays.rgba) == {f.finding_id for f in state.findings}
    window.review.select_finding(state.findings[0].finding_id)
    assert window.canvas.has_overlay()
    window.acts["model_info"].trigger()
    from desktop_app.qt.dialogs import ModelInfoDialog

    (dialog,) = window.findChildren(ModelInfoDialog)
    assert "tiny-test" in dialog.browser.toPlainText()
    dialog.close()


class _StopAfterFirstBatch:
    """EngineRunner whose run sets the stop flag at the first progress report: the engine
    must stop before the next batch."""

    def __init__(self, inner: EngineRunner) -> None:
        self.inner = inner
        self.reports: list[tuple[int, int]] = []

    def load(self):
        return self.inner.load()

    def run(self, stack, volume, key, progress, stop, force=False):
        def report(done: int, total: int) -> None:
            self.reports.append((done, total))
            progress(done, total)
            if done > 0:
                stop.set()

        return self.inner.run(stack, volume, key, report, stop)


def test_real_engine_cancel_stops_within_a_batch(qtbot, make_window, tiny_model: Path) -> None:
    runner = _StopAfterFirstBatch(EngineRunner(str(tiny_model), "cpu"))
    window = make_window(runner=lambda m, d: runner)
    open_and_wait(qtbot, window, [SAMPLE_CT])
    with qtbot.waitSignal(window.runs.inferenceCancelled, timeout=120_000):
        window.runs.run_inference()
    assert runner.reports == [(0, 41), (8, 41)]  # one batch of 8, then stopped
    assert window.review.current_state() is None


def test_tampered_model_is_refused_in_one_line(
    qtbot, make_window, qsettings, tiny_model, tmp_path
) -> None:
    bad = tmp_path / "tampered.safetensors"
    data = bytearray(tiny_model.read_bytes())
    data[-100] ^= 0xFF
    bad.write_bytes(bytes(data))
    qsettings.setValue("inference/model_path", str(bad))
    window = make_window(real_engine=True)
    open_and_wait(qtbot, window, [SAMPLE_CT])
    with qtbot.waitSignal(window.runs.inferenceFailed, timeout=120_000) as failed:
        window.runs.run_inference()
    message = failed.args[0]
    assert message.startswith(f"{bad}: ") and "tensor" in message and "\n" not in message
    assert window.statusBar().currentMessage() == f"✖ {message}"


def test_screenshot_command_with_inference(tmp_path: Path, tiny_model: Path) -> None:
    out = tmp_path / "shot.png"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "QT_QPA_PLATFORM": "offscreen",
        "RADASSIST_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "desktop_app", str(SAMPLE_CT), "--model", str(tiny_model),
         "--screenshot", str(out), "--run-inference", "--size", "1280x800"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"screenshot written: {out}"
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1280, 800)
    assert not list(tmp_path.glob(".config/RadAssist*"))  # the user's settings were not touched
    # nor the reviews and audit trail of the data folder RADASSIST_DATA_DIR names
    assert not list((tmp_path / "data").glob("reviews/*.json"))
    assert not (tmp_path / "data" / "audit.jsonl").exists()


def test_warm_up_failure_is_shown_not_fatal(qtbot, make_window, qsettings, tmp_path) -> None:
    missing = tmp_path / "nope.safetensors"
    qsettings.setValue("inference/model_path", str(missing))
    window = make_window(real_engine=True, warm_up_ms=0)
    with qtbot.waitSignal(window.inference.warmUpFailed, timeout=120_000) as failed:
        pass
    assert failed.args[0].startswith(str(missing))
    assert window.findings.message.text() == f"Model not available: {failed.args[0]}"
    open_and_wait(qtbot, window, [SAMPLE_CT])  # the viewer works without a model
