"""Inference in the GUI: the worker, progress, cancel, supersede, failures, overlays, the live
threshold slider. The model is the FakeRunner behind the controller's SeriesRunner seam (fast
and controllable); test_engine_ui.py runs the real engine."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QPoint, Qt

from desktop_app.infra.errors import InferenceError, ModelFileError
from desktop_app.privacy.audit import AuditLog
from tests.qt.conftest import SAMPLE_CT, FakeRunner, open_and_wait


def run_and_wait(qtbot, window, timeout: int = 20_000) -> None:
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=timeout):
        window.acts["run_inference"].trigger()


def test_inference_runs_in_the_worker_and_shows_findings(qtbot, make_window, data_dir) -> None:
    runners: list[FakeRunner] = []

    def factory(model, device):
        runners.append(FakeRunner(model, device))
        return runners[-1]

    window = make_window(runner=factory)
    open_and_wait(qtbot, window, [SAMPLE_CT])
    main = threading.get_ident()
    with qtbot.waitSignal(window.inference.started, timeout=5_000):
        run_and_wait(qtbot, window)
    # the work ran off the GUI thread
    assert runners[0].threads and main not in runners[0].threads
    assert window.inference.work_threads and main not in window.inference.work_threads
    panel = window.findings
    assert list(panel.cards) == [f"{window.shown.key}:nodule", f"{window.shown.key}:effusion"]
    nodule = panel.cards[f"{window.shown.key}:nodule"]
    assert (nodule.prob.text(), nodule.result.text()) == ("87.0 %", "POSITIVE")
    assert panel.summary.text().startswith("1 positive of 2")
    # the strongest positive finding is selected: its slice is shown with outline and heatmap
    assert window.review.selected == f"{window.shown.key}:nodule"
    assert window.viewer.index == 20
    qtbot.waitUntil(lambda: window.canvas.has_overlay(), timeout=20_000)
    assert [s.key for s in window.canvas.shapes()] == [f"{window.shown.key}:nodule"]
    assert window.feedback.device_badge.text() == "CPU"
    assert window.feedback.progress.isHidden() and window.feedback.cancel_button.isHidden()
    window.review.writer.flush()
    kinds = [r["kind"] for r in AuditLog(data_dir / "audit.jsonl").records()]
    assert kinds == ["inference"]


def test_progress_and_cancel(qtbot, make_window) -> None:
    gate = threading.Event()
    runner = FakeRunner(gate=gate)
    window = make_window(runner=lambda m, d: runner)
    open_and_wait(qtbot, window, [SAMPLE_CT])
    window.acts["run_inference"].trigger()
    assert window.inference.running
    assert window.feedback.cancel_button.isVisible() and window.acts["cancel_inference"].isEnabled()
    with qtbot.waitSignal(window.runs.inferenceCancelled, timeout=10_000):
        qtbot.mouseClick(window.feedback.cancel_button, Qt.MouseButton.LeftButton)
    assert runner.batches_run == 0
    assert not window.inference.running and window.feedback.cancel_button.isHidden()
    assert window.findings.message.text() == "Inference cancelled"
    assert window.review.current_state() is None  # nothing half-done was kept


def test_cancel_stops_between_batches(qtbot, make_window) -> None:
    runner = FakeRunner(batch=4, hold_after=1)  # one batch, then it waits (a slow model)
    window = make_window(runner=lambda m, d: runner)
    open_and_wait(qtbot, window, [SAMPLE_CT])
    progress: list[tuple[int, int]] = []
    window.inference.progressed.connect(lambda d, t: progress.append((d, t)))
    window.acts["run_inference"].trigger()
    qtbot.waitUntil(lambda: bool(progress), timeout=10_000)
    with qtbot.waitSignal(window.runs.inferenceCancelled, timeout=10_000):
        window.acts["cancel_inference"].trigger()
    assert runner.batches_run == 1  # stopped before the second batch of 4
    assert progress == [(4, 40)]


def test_newer_request_supersedes_the_older(qtbot, make_window) -> None:
    gate = threading.Event()
    runner = FakeRunner(gate=gate)
    window = make_window(runner=lambda m, d: runner)
    open_and_wait(qtbot, window, [SAMPLE_CT])
    done: list[str] = []
    cancelled: list[bool] = []
    window.runs.inferenceDone.connect(done.append)
    window.runs.inferenceCancelled.connect(lambda: cancelled.append(True))
    first = window.inference.channel.generation
    window.acts["run_inference"].trigger()
    window.acts["run_inference"].trigger()
    assert window.inference.channel.generation == first + 2
    gate.set()
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    window.inference.channel.wait_idle()
    qtbot.wait(50)
    assert done == [window.shown.key] and cancelled == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            InferenceError("the network failed on CPU", hint="check the model file"),
            "the network failed on CPU (check the model file)",
        ),
        (RuntimeError("boom"), "unexpected error: RuntimeError: boom"),
    ],
)
def test_inference_failure_is_one_line(qtbot, make_window, error, expected) -> None:
    window = make_window(runner=lambda m, d: FakeRunner(fail=error))
    open_and_wait(qtbot, window, [SAMPLE_CT])
    with qtbot.waitSignal(window.runs.inferenceFailed, timeout=10_000) as failed:
        window.acts["run_inference"].trigger()
    assert failed.args == [expected]
    assert window.statusBar().currentMessage() == f"✖ {expected}"
    assert window.findings.message.text() == f"✖ {expected}"
    assert window.findings.run_button.isEnabled()


def test_refused_model_is_reported_and_the_viewer_keeps_working(
    qtbot, make_window, tmp_path
) -> None:
    bad = tmp_path / "model.safetensors"
    err = ModelFileError("tensor data do not match the manifest's tensor_sha256", bad)
    window = make_window(runner=lambda m, d: FakeRunner(load_error=err))
    open_and_wait(qtbot, window, [SAMPLE_CT])
    with qtbot.waitSignal(window.runs.inferenceFailed, timeout=10_000) as failed:
        window.runs.run_inference()
    assert failed.args[0] == f"{bad}: tensor data do not match the manifest's tensor_sha256"
    window.viewer.step(1)
    assert window.viewer.index == 21


def test_threshold_slider_redecides_without_rerunning(qtbot, make_window) -> None:
    runner = FakeRunner()
    window = make_window(runner=lambda m, d: runner)
    open_and_wait(qtbot, window, [SAMPLE_CT])
    run_and_wait(qtbot, window)
    batches = runner.batches_run
    fid = f"{window.shown.key}:effusion"
    card = window.findings.cards[fid]
    assert card.result.text() == "negative" and card.threshold.text() == "0.40"
    card.slider.setValue(250)  # 0.25 < 0.31: now positive
    assert card.result.text() == "POSITIVE"
    assert card.threshold.text() == "0.25"
    assert card.where.text() == "model 0.40 · Im 21"
    assert window.findings.summary.text().startswith("2 positive of 2")
    card.slider.setValue(400)
    assert card.result.text() == "negative"
    assert runner.batches_run == batches  # the model was not run again
    # the nodule's slider raises its threshold past 0.87: its outline leaves the canvas
    nodule = window.findings.cards[f"{window.shown.key}:nodule"]
    # select another finding so the nodule isn't kept by selection
    window.review.select_finding(fid)
    nodule.slider.setValue(900)
    assert f"{window.shown.key}:nodule" not in [s.key for s in window.canvas.shapes()]


def test_clicking_a_finding_jumps_to_its_slice_and_centres_it(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    run_and_wait(qtbot, window)
    window.viewer.set_index(3)
    window.canvas.center_on(-2000, -2000)  # the finding is far off screen
    card = window.findings.cards[f"{window.shown.key}:nodule"]
    qtbot.mouseClick(card, Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
    assert window.viewer.index == 20
    x, y, w, h = window.review.current_state().find(card.finding_id).box  # type: ignore[union-attr]
    assert (window.canvas.center.x(), window.canvas.center.y()) == pytest.approx(
        (x + w / 2, y + h / 2)
    )


def test_overlay_keys_toggle_layers(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    run_and_wait(qtbot, window)
    canvas = window.canvas
    assert canvas.layer_visibility() == {
        "heatmap": True, "outline": True, "box": True, "text": True, "all_hidden": False,
    }  # fmt: skip
    for key, layer in ((Qt.Key.Key_H, "heatmap"), (Qt.Key.Key_O, "outline"), (Qt.Key.Key_B, "box"),
                       (Qt.Key.Key_T, "text")):  # fmt: skip
        qtbot.keyClick(canvas, key)
        assert canvas.layer_visibility()[layer] is False
        qtbot.keyClick(canvas, key)
        assert canvas.layer_visibility()[layer] is True
    with_overlay = canvas.grab().toImage()
    qtbot.keyClick(canvas, Qt.Key.Key_X)  # everything off: the raw image
    assert canvas.layer_visibility()["all_hidden"] is True
    raw = canvas.grab().toImage()
    assert raw != with_overlay
    window.overlays.opacity_slider.setValue(80)
    assert canvas.overlay_opacity == pytest.approx(0.8)


def test_auto_run_setting(qtbot, make_window, qsettings) -> None:
    qsettings.setValue("inference/auto_run", True)
    window = make_window()
    with qtbot.waitSignal(window.runs.inferenceDone, timeout=20_000):
        window.studies.open_paths([SAMPLE_CT])
    assert window.findings.cards


def test_colormap_change_recolours_in_the_worker(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    run_and_wait(qtbot, window)
    fid = f"{window.shown.key}:nodule"
    before = window.overlays.rgba[fid].copy()
    with qtbot.waitSignal(window.inference.overlaysReady, timeout=10_000):
        window.preferences.apply_settings({"overlay/colormap": "viridis"})
    assert (window.overlays.rgba[fid][..., 1] != before[..., 1]).any()


def test_stepping_between_findings_in_view_keeps_the_image_still(qtbot, make_window) -> None:
    window = make_window()
    open_and_wait(qtbot, window, [SAMPLE_CT])
    run_and_wait(qtbot, window)
    window.acts["fit"].trigger()
    centre = (window.canvas.center.x(), window.canvas.center.y())
    qtbot.keyClick(window.canvas, Qt.Key.Key_J)
    qtbot.keyClick(window.canvas, Qt.Key.Key_J)
    assert window.review.selected == f"{window.shown.key}:nodule"
    assert (window.canvas.center.x(), window.canvas.center.y()) == centre


def test_device_fallback_is_shown(qtbot, make_window, qsettings) -> None:
    qsettings.setValue("inference/device", "cuda")
    warning = "cuda:0 failed at start (CUDA out of memory); running on the CPU instead"
    window = make_window(runner=lambda m, d: FakeRunner(m, "cpu", warning=warning))
    assert window.feedback.device_badge.text() == "Device: cuda"
    open_and_wait(qtbot, window, [SAMPLE_CT])
    run_and_wait(qtbot, window)
    assert window.feedback.device_badge.text() == "CPU"
    assert window.feedback.device_badge.toolTip() == warning
    assert window.feedback.device_badge.property("warning") is True
    assert window.findings.message.text().endswith(f"⚠ {warning}")
