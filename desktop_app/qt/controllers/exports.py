"""ExportController: File ▸ Export… (the export dialog's formats, de-identification and PACS
destination; the study's SR, captures, PDF and JSON written and sent in workers) and
File ▸ Query/Retrieve (PACS)…, whose retrieved studies open in the window."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from PySide6.QtCore import QObject, QSettings, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QDialog, QWidget

from desktop_app.infra.errors import RadAssistError
from desktop_app.qt.controllers.feedback import Feedback
from desktop_app.qt.controllers.review import ReviewController
from desktop_app.qt.controllers.runs import RunController
from desktop_app.qt.controllers.shown import Shown
from desktop_app.qt.controllers.studies import StudyController
from desktop_app.qt.export_dialog import (
    ExportChoice,
    ExportDialog,
    configured_nodes,
    load_choice,
    save_choice,
)
from desktop_app.qt.workers import TaskChannel, WorkFunction
from desktop_app.review.state import ReviewState

if TYPE_CHECKING:  # the exports and PACS stacks load on first use, not at start-up
    from desktop_app.exports import ExportRequest, ExportResult
    from desktop_app.privacy.deid import DateMode
    from desktop_app.qt.pacs_dialog import PacsDialog


def export_job(request: ExportRequest, model_path: str | None) -> WorkFunction:
    """The worker's job: attach the model card (when the model file is the reviewed one) and
    write the study's exports."""

    def work(progress: Callable[[int, int], None], stop: threading.Event) -> object:
        from desktop_app.exports import export_study
        from desktop_app.model.catalog import load_catalog
        from desktop_app.model.modeldata import read_manifest
        from desktop_app.model.paths import default_model_path

        review = request.review
        sha = review.model.sha256 if review is not None and review.model is not None else ""
        try:
            if model_path:
                request.model_manifest = read_manifest(model_path)
            else:  # the model chosen for the series: the catalog's file with the review's hash
                entry = load_catalog().by_sha(sha)
                path = entry.path if entry is not None else default_model_path()
                request.model_manifest = read_manifest(path)
        except RadAssistError:
            request.model_manifest = None
        manifest = request.model_manifest
        if sha and manifest is not None and manifest.tensor_sha256 != sha:
            request.model_manifest = None  # not the reviewed model: its card is not attached
        return export_study(request, progress, stop)

    return work


def send_job(node_name: str, files: list[Path]) -> WorkFunction:
    """The worker's job: C-STORE the exported DICOM objects to a configured node."""

    def work(progress: Callable[[int, int], None], stop: threading.Event) -> object:
        from desktop_app.pacs.dimse import PacsClient
        from desktop_app.pacs.nodes import NodeConfig

        config = NodeConfig.load()
        return PacsClient(config.get(node_name), config.local).send(
            files, progress=progress, stop=stop
        )

    return work


class ExportController(QObject):
    """Exports the shown study with its review; keeps one PACS dialog per window."""

    sendDone = Signal(str)  # one line: what the PACS took

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
        self.channel.finished.connect(self._on_exported)
        self.channel.failed.connect(self._on_failed)
        self.channel.cancelled.connect(lambda: feedback.end("Export cancelled"))
        self.send_channel = TaskChannel("pacs-send", self)
        self.send_channel.progressed.connect(feedback.set_progress)
        self.send_channel.finished.connect(self._on_sent)
        self.send_channel.failed.connect(self._on_failed)
        self.send_channel.cancelled.connect(lambda: feedback.end("Sending cancelled"))
        self.choice: ExportChoice | None = None  # of the export running now
        self.pacs_dialog: PacsDialog | None = None

    def export_current_study(
        self, out_dir: str | None = None, choice: ExportChoice | None = None
    ) -> bool:
        """File ▸ Export…: the export dialog, then the current study's exports (the chosen
        formats, de-identified or not) by ``exports.export_study`` in a worker, sent to the
        chosen PACS node after. ``out_dir`` (scripts): all formats there, no dialog;
        ``choice``: these choices, no dialog. Returns whether it started; the outcome arrives
        on ``channel`` (finished: ExportResult, or failed)."""
        entry = self.shown.entry
        state = self.review.reviews.get(entry.study_uid) if entry is not None else None
        if entry is None or state is None or not state.findings:
            self.feedback.show_error(
                "Nothing to export: open a study and run the model on it first"
            )
            return False
        if choice is None and out_dir is not None:
            choice = ExportChoice(Path(out_dir), open_folder=False, add_to_browser=False)
        if choice is None:
            choice = self.ask_choice(entry.description, state)
            if choice is None:
                return False
        self.review.panel.flush_note()
        from desktop_app.exports import ExportRequest
        from desktop_app.privacy.deid import DeidOptions

        entries = self.studies.browser.entries.values()
        stacks = [e.stack for e in entries if e.study_uid == entry.study_uid]
        outcome = self.runs.last_outcome
        request = ExportRequest(
            study_paths=sorted({str(s.instance.path) for stack in stacks for s in stack.slices}),
            out_dir=choice.out_dir,
            formats=choice.formats,
            deidentify=choice.deidentify,
            deid_options=DeidOptions(dates=cast("DateMode", choice.dates))
            if choice.deidentify
            else None,
            review=ReviewState.from_dict(state.to_dict()),  # the worker's own copy
            heatmaps=dict(outcome.heatmaps) if outcome is not None else None,
            device=outcome.device if outcome is not None else "",
            study_uid=entry.study_uid,
            audit=self.review.audit,
        )
        self.choice = choice
        self.feedback.begin("", "Export %v/%m")
        self.channel.submit(export_job(request, self.runs.inference.model_path))
        return True

    def ask_choice(
        self, study_text: str = "", state: ReviewState | None = None
    ) -> ExportChoice | None:
        """The export dialog on the last export's choices (with a line on the reviewed lesions
        of ``state`` that go out as a SEG + SR); None when cancelled."""
        from desktop_app.exports.lesion_sr import lesions_line, review_lesions

        lesions_text = "" if state is None else lesions_line(review_lesions(state))
        dialog = ExportDialog(
            load_choice(self.settings),
            configured_nodes(),
            f"Export “{study_text}”",
            self.host,
            lesions_text=lesions_text,
        )
        try:
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return None
            choice = dialog.choice()
        finally:
            dialog.deleteLater()
        save_choice(self.settings, choice)
        return choice

    def _on_exported(self, result: ExportResult) -> None:
        """Written: say where; then send, show the folder, list it, as chosen."""
        self.feedback.end(f"Exported {len(result.files)} files to {result.folder}")
        choice, self.choice = self.choice, None
        if choice is None:
            return
        dicom = list(result.dicom)  # the SR, the lesions' SEG + SR, the captures
        if choice.node and dicom:
            self.feedback.begin(f"Sending to {choice.node}…", "Send %v/%m")
            self.send_channel.submit(send_job(choice.node, dicom))
        if choice.add_to_browser:
            # the normal open path: the SR and captures join the browser, the view stays
            self.studies.open_paths([result.folder], show=False)
        if choice.open_folder and QGuiApplication.platformName() != "offscreen":
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(result.folder)))

    def _on_sent(self, result: object) -> None:
        sent = len(getattr(result, "sent", ()))
        failed = getattr(result, "failed", ())
        text = f"Sent {sent} of {sent + len(failed)} DICOM objects to the PACS"
        if failed:
            path, reason = failed[0]
            text += f" · ✖ {Path(path).name}: {reason}"
        self.feedback.end(text)
        self.sendDone.emit(text)

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
        self.send_channel.shutdown()
        if self.pacs_dialog is not None:
            self.pacs_dialog.shutdown()
            self.pacs_dialog.close()
