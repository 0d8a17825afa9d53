"""ExportController: File ▸ Export… (the study's SR, captures, PDF and JSON, in a worker) and
File ▸ Query/Retrieve (PACS)…, whose retrieved studies open in the window."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QFileDialog, QWidget

from desktop_app.infra.errors import RadAssistError
from desktop_app.qt.controllers.feedback import Feedback
from desktop_app.qt.controllers.review import ReviewController
from desktop_app.qt.controllers.runs import RunController
from desktop_app.qt.controllers.shown import Shown
from desktop_app.qt.controllers.studies import StudyController
from desktop_app.qt.workers import TaskChannel, WorkFunction
from desktop_app.review.state import ReviewState

if TYPE_CHECKING:  # the exports and PACS stacks load on first use, not at start-up
    from desktop_app.exports import ExportRequest
    from desktop_app.qt.pacs_dialog import PacsDialog


def export_job(request: ExportRequest, model_path: str | None) -> WorkFunction:
    """The worker's job: attach the model card (when the model file is the reviewed one) and
    write the study's exports."""

    def work(progress: Callable[[int, int], None], stop: threading.Event) -> object:
        from desktop_app.exports import export_study
        from desktop_app.model.modeldata import read_manifest
        from desktop_app.model.paths import default_model_path

        try:
            request.model_manifest = read_manifest(model_path or default_model_path())
        except RadAssistError:
            request.model_manifest = None
        return export_study(request, progress, stop)

    return work


class ExportController(QObject):
    """Exports the shown study with its review; keeps one PACS dialog per window."""

    def __init__(
        self,
        host: QWidget,
        shown: Shown,
        settings: QSettings,
        studies: StudyController,
        review: ReviewController,
        runs: RunController,
        feedback: Feedback,
    ) -> None:
        super().__init__(host)
        self.host = host
        self.shown = shown
        self.settings = settings
        self.studies = studies
        self.review = review
        self.runs = runs
        self.feedback = feedback
        self.channel = TaskChannel("export", self)
        self.channel.progressed.connect(feedback.set_progress)
        self.channel.finished.connect(
            lambda r: feedback.end(f"Exported {len(r.files)} files to {r.folder}")
        )
        self.channel.failed.connect(self._on_failed)
        self.channel.cancelled.connect(lambda: feedback.end("Export cancelled"))
        self.pacs_dialog: PacsDialog | None = None

    def export_current_study(self, out_dir: str | None = None) -> bool:
        """File ▸ Export…: the current study's DICOM SR, secondary captures, PDF and JSON into a
        folder, by ``exports.export_study`` in a worker. Returns whether it started; the
        outcome arrives on ``channel`` (finished: ExportResult, or failed)."""
        entry = self.shown.entry
        state = self.review.reviews.get(entry.study_uid) if entry is not None else None
        if entry is None or state is None or not state.findings:
            self.feedback.show_error(
                "Nothing to export: open a study and run the model on it first"
            )
            return False
        if out_dir is None:
            out_dir = QFileDialog.getExistingDirectory(
                self.host, "Export to folder", self.studies.last_dir()
            )
            if not out_dir:
                return False
        self.review.panel.flush_note()
        from desktop_app.exports import ExportRequest

        entries = self.studies.browser.entries.values()
        stacks = [e.stack for e in entries if e.study_uid == entry.study_uid]
        outcome = self.runs.last_outcome
        request = ExportRequest(
            study_paths=sorted({str(s.instance.path) for stack in stacks for s in stack.slices}),
            out_dir=out_dir,
            review=ReviewState.from_dict(state.to_dict()),  # the worker's own copy
            heatmaps=dict(outcome.heatmaps) if outcome is not None else None,
            device=outcome.device if outcome is not None else "",
            study_uid=entry.study_uid,
            audit=self.review.audit,
        )
        self.feedback.begin("", "Export %v/%m")
        self.channel.submit(export_job(request, self.runs.inference.model_path))
        return True

    def _on_failed(self, message: str) -> None:
        self.feedback.progress.hide()
        self.feedback.show_error(message)

    # ------------------------------------------------------------------ PACS
    def open_pacs_dialog(self) -> PacsDialog:
        """File ▸ Query/Retrieve (PACS)…: one dialog per window, kept (with its results) when
        closed; a retrieved study opens here from the local store."""
        from desktop_app.qt.pacs_dialog import PacsDialog

        if self.pacs_dialog is None:
            self.pacs_dialog = PacsDialog(self.host, settings=self.settings)
            self.pacs_dialog.studiesRetrieved.connect(self._open_retrieved)
        else:
            self.pacs_dialog.reload_nodes()  # the CLI may have changed the nodes
        self.pacs_dialog.show()
        self.pacs_dialog.raise_()
        self.pacs_dialog.activateWindow()
        return self.pacs_dialog

    def _open_retrieved(self, folders: Sequence[Path]) -> None:
        self.studies.open_paths([Path(f) for f in folders])
        self.host.raise_()
        self.host.activateWindow()

    def shutdown(self) -> None:
        self.channel.shutdown()
        if self.pacs_dialog is not None:
            self.pacs_dialog.shutdown()
            self.pacs_dialog.close()
