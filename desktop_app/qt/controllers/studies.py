"""StudyController: opening files and folders (indexed in a worker, added to what is open),
closing a study, recent files, and showing a series — the first image while the index still
runs, then the chosen series with its review."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QDockWidget, QFileDialog, QListWidget, QMenu, QWidget

from desktop_app.dicom.display import render
from desktop_app.dicom.limits import interactive_limits
from desktop_app.infra.errors import RadAssistError, describe
from desktop_app.qt.app_settings import AppSettings
from desktop_app.qt.controllers.feedback import Feedback
from desktop_app.qt.controllers.overlays import OverlayController
from desktop_app.qt.controllers.review import ReviewController
from desktop_app.qt.controllers.shown import Shown
from desktop_app.qt.controllers.view import ViewController
from desktop_app.qt.findings_panel import FindingsPanelWidget
from desktop_app.qt.inference import InferenceController
from desktop_app.qt.plaintext import shown
from desktop_app.qt.study_browser import StackEntry, StudyBrowserWidget
from desktop_app.qt.viewer import SeriesContext, ViewerWidget
from desktop_app.qt.workers import StreamingWorkFunction, TaskChannel
from desktop_app.studies.index import (
    InstanceInfo,
    PatientNode,
    SeriesNode,
    StudyIndex,
    StudyNode,
    index_paths,
)
from desktop_app.studies.indexcache import default_index_cache
from desktop_app.studies.series import SeriesAssembly, assemble
from desktop_app.studies.volume import SeriesVolume, instance_frame

KEEP_VOLUMES = 3  # decoded series kept in memory for quick switching back

IndexResult = tuple[StudyIndex, dict[str, SeriesAssembly]]


def index_job(paths: list[Path]) -> StreamingWorkFunction:
    """The worker's job for ``paths``: index the headers, emit the first readable image as
    soon as it is found, and order each series' slices (positions, spacing checks)."""

    def work(
        progress: Callable[[int, int], None],
        stop: threading.Event,
        emit: Callable[[object], None],
    ) -> IndexResult:
        previewed = False

        def on_instance(inst: InstanceInfo) -> None:
            nonlocal previewed
            if previewed or not inst.has_pixels:
                return
            try:
                image = render(instance_frame(inst))
            except RadAssistError:
                return  # try the next one; the index reports this file
            previewed = True
            emit(image)

        index = index_paths(
            paths,
            progress=progress,
            stop=stop,
            on_instance=on_instance,
            cache=default_index_cache(),  # a reopened folder's headers are not read again
        )
        # ordering slices is work too: not on the GUI thread
        assemblies = {s.series_instance_uid: assemble(s) for _, _, s in index.iter_series()}
        return index, assemblies

    return work


def _merged_lists(old: object, new: object, skip: str) -> dict[str, Any]:
    """A node's list fields other than ``skip`` (its children), the new items appended: keeps
    what other parts of the app add to the nodes (e.g. a study's documents) when merging."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(old):  # type: ignore[arg-type]
        mine, theirs = getattr(old, f.name), getattr(new, f.name, None)
        if f.name != skip and isinstance(mine, list) and isinstance(theirs, list):
            out[f.name] = mine + [x for x in theirs if x not in mine]
    return out


def _merge_series(old: SeriesNode, new: SeriesNode) -> SeriesNode | None:
    """The series with ``new``'s instances added (by SOP Instance UID), or None if it has none
    that ``old`` lacks."""
    have = {i.sop_instance_uid for i in old.instances}
    added = [i for i in new.instances if i.sop_instance_uid not in have]
    if not added:
        return None
    return dataclasses.replace(old, instances=old.instances + added)


def merge_index(old: StudyIndex | None, new: StudyIndex) -> tuple[StudyIndex, set[str]]:
    """What is open plus what was just opened: patients by key, studies and series by UID,
    instances by SOP Instance UID (reopening a folder adds nothing). Returns the merged index
    (``old`` is not changed) and the UIDs of series that gained instances and must be
    assembled again."""
    if old is None:
        return new, set()
    changed: set[str] = set()
    patients = list(old.patients)
    for new_patient in new.patients:
        at = next((i for i, p in enumerate(patients) if p.key == new_patient.key), None)
        if at is None:
            patients.append(new_patient)
            continue
        patient = patients[at]
        studies = list(patient.studies)
        for new_study in new_patient.studies:
            s_at = next(
                (i for i, s in enumerate(studies)
                 if s.study_instance_uid == new_study.study_instance_uid),
                None,
            )  # fmt: skip
            if s_at is None:
                studies.append(new_study)
                continue
            study = studies[s_at]
            series = list(study.series)
            for new_series in new_study.series:
                found = study.find_series(new_series.series_instance_uid)
                if found is None:
                    series.append(new_series)
                    continue
                grown = _merge_series(found, new_series)
                if grown is not None:
                    series[series.index(found)] = grown
                    changed.add(grown.series_instance_uid)
            studies[s_at] = dataclasses.replace(
                study, series=series, **_merged_lists(study, new_study, "series")
            )
        patients[at] = dataclasses.replace(
            patient, studies=studies, **_merged_lists(patient, new_patient, "studies")
        )
    merged = dataclasses.replace(
        old,
        patients=patients,
        problems=old.problems + [p for p in new.problems if p not in old.problems],
        skipped_non_dicom=old.skipped_non_dicom + new.skipped_non_dicom,
        dicomdirs=old.dicomdirs + new.dicomdirs,
        files_seen=old.files_seen + new.files_seen,
    )
    return merged, changed


def without_study(index: StudyIndex, study_uid: str) -> StudyIndex:
    """``index`` without the study ``study_uid`` (and without a patient left with none)."""
    patients: list[PatientNode] = []
    for patient in index.patients:
        studies: list[StudyNode] = [s for s in patient.studies if s.study_instance_uid != study_uid]
        if studies:
            patients.append(dataclasses.replace(patient, studies=studies))
    return dataclasses.replace(index, patients=patients)


def index_summary(index: StudyIndex, n_series: int) -> str:
    """The status line after opening: series found, files not read, non-DICOM skipped."""
    summary = f"{n_series} series"
    if index.problems:
        summary += f", {len(index.problems)} file(s) not read (see “Files not read”)"
    if index.skipped_non_dicom:
        summary += f", {index.skipped_non_dicom} non-DICOM file(s) skipped"
    return summary


class StudyController(QObject):
    """Owns the study index, the decoded volumes of recently shown series, and which series is
    shown (``shown``); fills the browser and the "Files not read" list."""

    indexReady = Signal(object)  # StudyIndex, after the browser is filled
    previewShown = Signal()  # the first image found, on screen while the index still runs
    seriesShown = Signal(str)  # stack key, once its first image is on screen

    def __init__(
        self,
        host: QWidget,
        shown: Shown,
        prefs: AppSettings,
        browser: StudyBrowserWidget,
        viewer: ViewerWidget,
        problems: QListWidget,
        problems_dock: QDockWidget,
        panel: FindingsPanelWidget,
        view: ViewController,
        overlays: OverlayController,
        review: ReviewController,
        inference: InferenceController,
        feedback: Feedback,
    ) -> None:
        super().__init__(host)
        self.host = host
        self.shown = shown
        self.prefs = prefs
        self.browser = browser
        self.viewer = viewer
        self.canvas = viewer.canvas
        self.problems = problems
        self.problems_dock = problems_dock
        self.panel = panel
        self.view = view
        self.overlays = overlays
        self.review = review
        self.inference = inference
        self.feedback = feedback
        self.index: StudyIndex | None = None  # everything open, merged
        self.assemblies: dict[str, SeriesAssembly] = {}
        self.entries: list[StackEntry] = []
        self.pending: list[Path] = []  # being indexed; a newer open indexes them with its own
        self.pending_show = False  # show what they hold (else only list it)
        self.volumes: OrderedDict[str, SeriesVolume] = OrderedDict()  # recently shown last
        self.recent_menu: QMenu | None = None

        self.index_channel = TaskChannel("index", self)
        self.index_channel.progressed.connect(feedback.set_progress)
        self.index_channel.partial.connect(self._on_index_preview)
        self.index_channel.finished.connect(self._on_index_ready)
        self.index_channel.failed.connect(feedback.show_error)
        self.index_channel.cancelled.connect(lambda: feedback.end("Opening cancelled"))
        self.index_channel.failed.connect(self._forget_pending)
        self.index_channel.cancelled.connect(self._forget_pending)
        browser.stackActivated.connect(self.show_stack)
        viewer.loadProgress.connect(self._on_series_load_progress)

    # ------------------------------------------------------------------ opening
    def open_file_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self.host, "Open DICOM files", self.last_dir())
        if files:
            self.open_paths([Path(f) for f in files])

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self.host, "Open a folder or DICOMDIR folder", self.last_dir()
        )
        if folder:
            self.open_paths([Path(folder)])

    def last_dir(self) -> str:
        recent = self.prefs.recent_paths()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def open_paths(self, paths: list[Path], show: bool = True) -> None:
        """Index paths in a worker and add what they hold to the browser (what is open stays);
        the first series opened shows when done (with ``show`` False, or when nothing is shown,
        only listed; a failed quiet open says nothing). A path joins Recent only once it gave
        images. Opening again while an open still runs indexes both (the newer supersedes)."""
        for p in paths:
            if not p.exists():
                self.feedback.show_error(f"{p}: no such file or folder")
        paths = [p for p in paths if p.exists()]
        if not paths:
            return
        self.pending_show = (self.pending_show and bool(self.pending)) or show
        self.pending = [*self.pending, *(p for p in paths if p not in self.pending)]
        self.feedback.begin("Reading headers…")
        self.index_channel.submit_streaming(index_job(list(self.pending)))

    def _forget_pending(self, *_args: object) -> None:
        self.pending = []

    def _on_index_preview(self, image: object) -> None:
        """The first image read, shown while the index is still running."""
        if self.viewer.frame is None:
            self.canvas.set_image(image)  # type: ignore[arg-type]  # index_job emits an array
            self.canvas.set_corner_text("tl", ["Reading headers…", "first image found"])
            self.previewShown.emit()

    def _on_index_ready(self, result: IndexResult) -> None:
        index, assemblies = result
        opened, self.pending = self.pending, []
        # series, not stacks: a folder of documents (an exported SR) opens without images
        n_new = index.series_count
        if not n_new and not self.pending_show:
            return
        self.problems.clear()
        for problem in index.problems:
            self.problems.addItem(shown(problem.one_line(), 1000))
        self.problems_dock.setVisible(bool(index.problems))
        if not n_new:
            # A failed open changes nothing that is open, and is not remembered.
            self.feedback.end(index_summary(index, 0))
            reason = index.problems[0].one_line() if index.problems else None
            names = ", ".join(str(p) for p in opened)
            self.feedback.show_error(reason or f"{names}: no DICOM images found")
            if not self.entries:
                self.viewer.set_series(None)
                self.panel.set_state(None, None)
                self.panel.set_message("", "info")
                self.canvas.set_placeholder("No images found in what was opened")
            return
        for p in opened:
            self.prefs.remember_recent(str(p.resolve()))
        self.fill_recent_menu()
        self.panel.flush_note()
        merged, changed = merge_index(self.index, index)
        self.assemblies = {**self.assemblies, **assemblies}
        for _, _, series in merged.iter_series():
            if series.series_instance_uid in changed:  # rare: one series from two opens
                self.assemblies[series.series_instance_uid] = assemble(series)
        first_new = next(
            (f"{uid}#1" for _, _, s in index.iter_series()
             if (uid := s.series_instance_uid) in assemblies and assemblies[uid].stacks),
            None,
        )  # fmt: skip
        for uid in changed:  # their stacks changed: decode them afresh
            for key in [k for k in self.volumes if k.startswith(f"{uid}#")]:
                del self.volumes[key]
        self._fill_browser(merged)
        self.feedback.end(index_summary(index, sum(len(a.stacks) for a in assemblies.values())))
        self.indexReady.emit(merged)
        if first_new is None and self.shown.entry is None and self.entries:
            first_new = self.entries[0].key  # documents only: show what is open
        if first_new is not None and (self.pending_show or self.shown.entry is None):
            self.shown.clear()  # the same series reopened is shown afresh
            self.show_stack(first_new)

    def _fill_browser(self, index: StudyIndex) -> None:
        """The browser shows ``index`` (all that is open); the shown series stays selected."""
        self.index = index
        self.entries = self.browser.populate(index, self.assemblies)
        if self.shown.key is not None:
            self.browser.select(self.shown.key)

    # ------------------------------------------------------------------ closing
    def close_study(self, study_uid: str | None = None) -> None:
        """File ▸ Close study: the shown study (or ``study_uid``) leaves the browser, its
        decoded series are freed; the next study open is shown, else the empty viewer."""
        uid = study_uid or self.shown.study_uid
        if self.index is None or uid is None:
            self.feedback.message("No study to close")
            return
        self.panel.flush_note()
        if uid == self.shown.study_uid and self.inference.running:
            self.inference.cancel()  # its outcome would have no series to go to
        keys = [e.key for e in self.entries if e.study_uid == uid]
        for key in keys:
            self.volumes.pop(key, None)
            self.assemblies.pop(key.rsplit("#", 1)[0], None)
        closing_shown = self.shown.study_uid == uid
        if closing_shown:
            self.shown.clear()
        self._fill_browser(without_study(self.index, uid))
        left = len({e.study_uid for e in self.entries})
        self.feedback.message(f"Study closed · {left} open", 8000)
        if not closing_shown:
            return
        if self.entries:
            self.show_stack(self.entries[0].key)
            return
        self.viewer.set_series(None)
        self.panel.set_state(None, None)
        self.panel.set_message("", "info")
        self.canvas.set_placeholder("Open a study: File ▸ Open, or drop files here")
        self.view.update_corners()
        self.view.refresh_tags()
        self.review.selected = None
        self.review.redraw()

    # ------------------------------------------------------------------ recent files
    def add_recent_menu(self, parent: QMenu) -> None:
        self.recent_menu = parent.addMenu("Open &Recent")
        self.fill_recent_menu()

    def fill_recent_menu(self) -> None:
        menu = self.recent_menu
        if menu is None:
            return
        menu.clear()
        recent = self.prefs.recent_paths()
        for path in recent:
            act = menu.addAction(path)
            act.triggered.connect(lambda _c=False, p=path: self.open_paths([Path(p)]))
        menu.setEnabled(bool(recent))

    # ------------------------------------------------------------------ showing a series
    def _volume(self, entry: StackEntry) -> SeriesVolume:
        """The entry's volume: kept from before, else made (the oldest beyond KEEP_VOLUMES is
        dropped, as decoded series cost their voxel bytes)."""
        volume = self.volumes.get(entry.key)
        if volume is None:
            # Every slice's parsed header stays cached (a few kB each), so scrolling back over
            # slices the engine or the viewer has seen never parses files again.
            volume = SeriesVolume(
                entry.stack,
                header_cache=min(len(entry.stack), 2048),
                limits=interactive_limits(int(self.prefs.get("reading/max_object_mib"))),
            )
            self.volumes[entry.key] = volume
            while len(self.volumes) > KEEP_VOLUMES:
                self.volumes.popitem(last=False)
        self.volumes.move_to_end(entry.key)
        return volume

    def show_stack(self, key: str) -> None:
        entry = self.browser.entries.get(key)
        if entry is None or (key == self.shown.key and self.viewer.context is not None):
            return
        try:
            volume = self._volume(entry)
        except Exception as err:
            self.feedback.show_error(describe(err))
            return
        self.panel.flush_note()
        self.shown.entry, self.shown.volume = entry, volume
        self.review.selected = None
        self.browser.select(key)
        self.viewer.set_series(
            SeriesContext(entry.stack, volume, entry.modality, entry.description, key)
        )
        self.view.refresh_presets()
        for warning in entry.stack.warnings:
            self.feedback.message(f"⚠ {warning}", 8000)
        state = self.review.review_for(entry.study_uid)
        if state is not None and state.resolve_slices(key, entry.stack.index_of):
            self.review.save(state)  # saved in an older stack order: now by image
        self.panel.set_state(state, key)
        if (
            state is not None
            and state.for_series(key)
            and not self.overlays.has_heatmaps(state, key)
        ):
            self.panel.set_message(
                "Review restored. Heatmaps are not kept between sessions: run the model again "
                "to see them (your verdicts stay).",
                "info",
            )
        else:
            self.panel.set_message("", "info")
        self.view.update_corners()
        self.review.redraw()
        self.view.refresh_tags()
        self.seriesShown.emit(key)

    def _on_series_load_progress(self, done: int, total: int) -> None:
        if self.inference.running:
            return  # the inference progress owns the bar
        progress = self.feedback.progress
        if done >= total:
            progress.hide()
            return
        progress.show()
        progress.setFormat("Loading %v/%m")
        progress.setRange(0, total)
        progress.setValue(done)
