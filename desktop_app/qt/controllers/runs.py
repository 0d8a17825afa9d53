"""RunController: runs the model on the shown series (Run, Cancel, warm-up, progress) and takes
its findings into the study's review, the findings panel and the overlays, without moving a
view the reader touched while it ran ("Go to finding" instead)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PySide6.QtCore import QEvent, QEventLoop, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QToolButton, QWidget

from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.qt.app_settings import AppSettings
from desktop_app.qt.controllers.feedback import Feedback
from desktop_app.qt.controllers.overlays import OverlayController
from desktop_app.qt.controllers.review import ReviewController
from desktop_app.qt.controllers.shown import Shown
from desktop_app.qt.controllers.studies import StudyController
from desktop_app.qt.dialogs import ModelInfoDialog
from desktop_app.qt.findings_panel import FindingsPanelWidget, label_text
from desktop_app.qt.inference import InferenceController, InferenceOutcome, RefusedRun
from desktop_app.review.state import ReviewState

# Actions that start or stop the run itself are not the reader touching the view.
NOT_TOUCHING = frozenset({"run_inference", "cancel_inference", "go_to_finding", "model_info"})
TOUCH_EVENTS = frozenset({QEvent.Type.MouseButtonPress, QEvent.Type.Wheel, QEvent.Type.KeyPress})


class InteractionWatch(QObject):
    """Whether the reader has touched the view since :meth:`reset` (the start of a run): a
    slice change, a click, wheel or key on the image, a series shown, a finding picked, or any
    window action (zoom, W/L, flip, overlays...). A run's findings move the view only when it
    is untouched: a reader who clicked Run and waits gets the finding at once; one who went on
    reading is never pulled away from the slice they are on."""

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.touched = False
        self._watched_actions: set[str] = set()

    def reset(self) -> None:
        self.touched = False

    def touch(self, *_args: object) -> None:
        self.touched = True

    def watch_actions(self, acts: Mapping[str, QAction]) -> None:
        """Every action but the run's own (``acts`` fills in after the controllers exist, and
        other actions may join later: each is connected once)."""
        for action_id, act in acts.items():
            if action_id not in NOT_TOUCHING and action_id not in self._watched_actions:
                act.triggered.connect(self.touch)
                self._watched_actions.add(action_id)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in TOUCH_EVENTS:
            self.touched = True
        return False


def outcome_message(outcome: InferenceOutcome) -> tuple[str, str]:
    """The findings panel's line after a run, and its kind ("info", or "warning")."""
    seconds = float(outcome.timings.get("total", 0.0))
    warn = "; ".join(outcome.warnings)
    text = f"Ran on {outcome.device.upper()} in {seconds:.2f} s" + (f" · ⚠ {warn}" if warn else "")
    return text, "warning" if warn else "info"


class RunController(QObject):
    """Drives the InferenceController for the window: one run at a time, its progress in the
    status bar, and each outcome merged into the review (kept when the model is re-run)."""

    inferenceDone = Signal(str)  # stack key whose findings are now shown
    inferenceFailed = Signal(str)  # one-line reason
    inferenceCancelled = Signal()
    inferenceRefused = Signal(str)  # one-line reason the series is outside the intended input

    def __init__(
        self,
        host: QWidget,
        shown: Shown,
        prefs: AppSettings,
        acts: Mapping[str, QAction],
        panel: FindingsPanelWidget,
        inference: InferenceController,
        studies: StudyController,
        review: ReviewController,
        overlays: OverlayController,
        feedback: Feedback,
    ) -> None:
        super().__init__(host)
        self.host = host
        self.shown = shown
        self.prefs = prefs
        self.acts = acts
        self.panel = panel
        self.inference = inference
        self.studies = studies
        self.review = review
        self.overlays = overlays
        self.feedback = feedback
        self.last_outcome: InferenceOutcome | None = None
        self.watch = InteractionWatch(self)
        studies.viewer.sliceChanged.connect(self.watch.touch)
        studies.viewer.canvas.installEventFilter(self.watch)
        studies.viewer.slider.installEventFilter(self.watch)
        studies.seriesShown.connect(self.watch.touch)
        panel.findingSelected.connect(self.watch.touch)
        self.pending_finding: str | None = None  # offered by "Go to finding", not jumped to
        self.go_button = QToolButton(host)
        self.go_button.setObjectName("goToFinding")
        self.go_button.setToolTip(
            "The model finished while you were reading: go to its most probable finding (G)"
        )
        self.go_button.clicked.connect(self.go_to_finding)
        self.go_button.hide()
        feedback.bar.insertPermanentWidget(0, self.go_button)
        studies.seriesShown.connect(lambda _key: self._offer(None))
        panel.findingSelected.connect(lambda _fid: self._offer(None))

        feedback.cancel_button.clicked.connect(self.cancel_inference)
        panel.runRequested.connect(self.run_inference)
        panel.modelInfoRequested.connect(self.show_model_info)
        studies.seriesShown.connect(self._auto_run)
        inference.started.connect(self._on_started)
        inference.progressed.connect(feedback.set_progress)
        inference.finished.connect(self._on_finished)
        inference.failed.connect(self._on_failed)
        inference.cancelled.connect(self._on_cancelled)
        inference.refused.connect(self._on_refused)
        panel.runAnywayRequested.connect(lambda: self.run_inference(force=True))
        inference.overlaysReady.connect(self._on_recolored)
        inference.modelLoaded.connect(lambda _info: self.show_model_text())
        inference.modelLoaded.connect(
            lambda info: panel.set_site_calibration(info.site_calibration)
        )
        inference.deviceChanged.connect(self.show_device)
        inference.warmUpFailed.connect(
            lambda msg: panel.set_message(f"Model not available: {msg}", "warning")
        )

    # ------------------------------------------------------------------ running
    def run_inference(self, force: bool = False) -> None:
        """Run the model over the shown series in a worker (a newer request supersedes).
        ``force``: run a series outside the model's intended input ("Run anyway")."""
        entry, volume = self.shown.entry, self.shown.volume
        if entry is None or volume is None:
            self.feedback.show_error("open a series first (File ▸ Open)")
            return
        colormap = str(self.prefs.get("overlay/colormap"))
        self.inference.run(entry.key, entry.stack, volume, entry.study_uid, colormap, force)

    def _auto_run(self, key: str) -> None:
        """With "run when a series opens" on, a series without findings runs at once."""
        state = self.review.current_state()
        if self.prefs.get("inference/auto_run") and not (state and state.for_series(key)):
            self.run_inference()

    def warm_up(self) -> None:
        if not self.inference.running and self.inference.info is None:
            self.inference.warm_up()

    def cancel_inference(self) -> None:
        if self.inference.running:
            self.inference.cancel()
            self.feedback.message("Cancelling…")

    def run_inference_and_wait(self, timeout_ms: int = 180_000) -> bool:
        """Run inference on the shown series and wait for its outcome (screenshots, scripts).
        True when findings are shown, or why the series was not run (outside the model's
        intended input: the panel says so)."""
        loop = QEventLoop()
        shown = [False]

        def done(_key_or_reason: str) -> None:
            shown[0] = True
            loop.quit()

        self.inferenceDone.connect(done)
        self.inferenceFailed.connect(loop.quit)
        self.inferenceCancelled.connect(loop.quit)
        self.inferenceRefused.connect(done)
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.timeout.connect(loop.quit)
        try:
            self.run_inference()
            if not self.inference.running:
                return False
            timer.start(timeout_ms)
            loop.exec()
        finally:
            timer.stop()
            self.inferenceDone.disconnect(done)
            self.inferenceFailed.disconnect(loop.quit)
            self.inferenceCancelled.disconnect(loop.quit)
            self.inferenceRefused.disconnect(done)
        return shown[0]

    # ------------------------------------------------------------------ outcomes
    def _on_started(self, _key: str) -> None:
        self.watch.watch_actions(self.acts)
        self.watch.reset()
        self._offer(None)
        self.acts["cancel_inference"].setEnabled(True)
        self.feedback.cancel_button.show()
        self.feedback.begin("", "Model %v/%m")
        self.panel.run_button.setEnabled(False)
        self.panel.set_message("Running the model on this series…", "info")
        self.feedback.message("Running the model…")

    def _ended(self) -> None:
        self.acts["cancel_inference"].setEnabled(False)
        self.feedback.cancel_button.hide()
        self.feedback.progress.hide()
        self.panel.run_button.setEnabled(True)

    def _on_finished(self, outcome: InferenceOutcome) -> None:
        self._ended()
        self.last_outcome = outcome
        entry = self.studies.browser.entries.get(outcome.series_key)
        if entry is None:
            return  # the study was closed meanwhile
        state = self.review.review_for(entry.study_uid, create=True)
        assert state is not None
        state.reviewer = self.review.reviewer()
        check = outcome.input_check
        state.merge_findings(
            outcome.findings, outcome.model, check.to_json() if check is not None else None
        )
        state.merge_lesions(outcome.series_key, getattr(outcome, "lesions", None))
        self.overlays.add(outcome.overlays)
        self.review.save(state)
        self.review.writer.audit(
            "inference",
            study_hash=uid_hash(entry.study_uid),
            series_hash=uid_hash(entry.stack.series_instance_uid),
            model_sha256=outcome.model.sha256,
            device=outcome.device,
            timings_ms={k: round(float(v) * 1000.0, 3) for k, v in outcome.timings.items()},
            positives=[f.label for f in outcome.findings if state.positive(f)],
            forced=bool(check is not None and check.forced),
            in_distribution=check.in_distribution if check is not None else None,
        )
        if outcome.series_key == self.shown.key:
            self._show_findings(state, outcome)
        total = sum(outcome.timings.values()) if outcome.timings else 0.0
        seconds = outcome.timings.get("total", total)
        self.feedback.message(
            f"Model finished in {seconds:.2f} s on {outcome.device.upper()}", 10000
        )
        self.inferenceDone.emit(outcome.series_key)

    def _show_findings(self, state: ReviewState, outcome: InferenceOutcome) -> None:
        """The outcome is the shown series': its findings in the panel, the most probable
        positive one selected. The view goes to it only if the reader has not touched the
        view since the run started; otherwise "Go to finding" offers it."""
        self.panel.set_state(state, outcome.series_key)
        positives = [f for f in state.for_series(outcome.series_key) if state.positive(f)]
        self.panel.set_message(*outcome_message(outcome))
        if positives:
            best = max(positives, key=lambda f: f.probability).finding_id
            if self.watch.touched:
                self.review.selected = best  # selected in the panel; the view stays put
                self.panel.select(best)
                self._offer(best)
            else:
                self.review.select_finding(best)
        self.review.redraw()

    def _offer(self, finding_id: str | None) -> None:
        """Show (or, with None, hide) the status bar's "Go to finding" button."""
        self.pending_finding = finding_id
        state = self.review.current_state()
        if finding_id is None or state is None:
            self.go_button.hide()
            return
        f = state.find(finding_id)
        self.go_button.setText(
            f"➜ Go to finding: {label_text(f.label)} {f.probability * 100:.0f} %  (G)"
        )
        self.go_button.show()

    def go_to_finding(self) -> None:
        """Go to the finding a run offered, else to the selected one (slice and box)."""
        target = self.pending_finding or self.review.selected
        self._offer(None)
        if target is not None:
            self.review.select_finding(target)

    def _on_failed(self, message: str) -> None:
        self._ended()
        self.panel.set_message(f"✖ {message}", "error")
        self.feedback.show_error(message)
        self.inferenceFailed.emit(message)

    def _on_refused(self, refused: RefusedRun) -> None:
        """The series is outside the model's intended input: say why, offer "Run anyway"."""
        self._ended()
        self.panel.set_message("")
        if refused.series_key == self.shown.key:
            self.panel.show_refusal(refused.reason)
        self.feedback.message(f"Model not run: {refused.reason}", 10000)
        self.inferenceRefused.emit(refused.reason)

    def _on_cancelled(self) -> None:
        self._ended()
        self.panel.set_message("Inference cancelled", "warning")
        self.feedback.message("Inference cancelled", 8000)
        self.inferenceCancelled.emit()

    def _on_recolored(self, overlays: Mapping[str, np.ndarray]) -> None:
        self.overlays.add(overlays)
        self.review.redraw()

    def recolor(self, colormap: str) -> None:
        """The kept heatmaps in another colormap (after the settings changed it)."""
        if self.last_outcome is not None:
            self.inference.recolor(self.last_outcome.heatmaps, colormap)

    # ------------------------------------------------------------------ the model
    def show_model_text(self) -> None:
        self.panel.set_model_text(self.inference.model_text())

    def show_device(self, text: str, warning: str) -> None:
        self.feedback.show_device(text, warning, self.inference.model_path)

    def show_model_info(self) -> None:
        card = self.inference.model_card()
        if card is None:
            self.feedback.show_error(
                "no model is loaded yet (run the model once, or check Settings)"
            )
            return
        dialog = ModelInfoDialog(card, self.host)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
