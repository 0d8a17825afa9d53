"""StudyController: opening files and folders (indexed in a worker), recent files, and showing
a series — the first image while the index still runs, then the chosen series with its review."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

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
from desktop_app.studies.index import InstanceInfo, StudyIndex, index_paths
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
        self.index: StudyIndex | None = None
        self.entries: list[StackEntry] = []
        self.volumes: OrderedDict[str, SeriesVolume] = OrderedDict()  # recently shown last
        self.recent_menu: QMenu | None = None

        self.index_channel = TaskChannel("index", self)
        self.index_channel.progressed.connect(feedback.set_progress)
        self.index_channel.partial.connect(self._on_index_preview)
        self.index_channel.finished.connect(self._on_index_ready)
        self.index_channel.failed.connect(feedback.show_error)
        self.index_channel.cancelled.connect(lambda: feedback.end("Opening cancelled"))
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

    def open_paths(self, paths: list[Path]) -> None:
        """Index paths in a worker; the browser fills in and the first series shows when done."""
        for p in paths:
            if not p.exists():
                self.feedback.show_error(f"{p}: no such file or folder")
        paths = [p for p in paths if p.exists()]
        if not paths:
            return
        for p in paths:
            self.prefs.remember_recent(str(p.resolve()))
            self.fill_recent_menu()
        self.feedback.begin("Reading headers…")
        self.index_channel.submit_streaming(index_job(paths))

    def _on_index_preview(self, image: object) -> None:
        """The first image read, shown while the index is still running."""
        if self.viewer.frame is None:
            self.canvas.set_image(image)  # type: ignore[arg-type]  # index_job emits an array
            self.canvas.set_corner_text("tl", ["Reading headers…", "first image found"])
            self.previewShown.emit()

    def _on_index_ready(self, result: IndexResult) -> None:
        index, assemblies = result
        self.panel.flush_note()
        self.inference.cancel()  # a run on the study being replaced would only be dropped
        self.index = index
        self.volumes.clear()
        self.entries = self.browser.populate(index, assemblies)
        self.problems.clear()
        for problem in index.problems:
            self.problems.addItem(shown(problem.one_line(), 1000))
        self.problems_dock.setVisible(bool(index.problems))
        self.feedback.end(index_summary(index, len(self.entries)))
        self.shown.clear()  # the same series reopened is shown afresh
        self.indexReady.emit(index)
        if self.entries:
            self.show_stack(self.entries[0].key)
        else:
            self.viewer.set_series(None)
            self.panel.set_state(None, None)
            self.canvas.set_placeholder("No images found in what was opened")
            if index.problems:
                self.feedback.show_error(index.problems[0].one_line())

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
