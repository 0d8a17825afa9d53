"""MainWindow: menus, the study browser, the viewer, the problems list and the status bar."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QWidget,
)

from desktop_app import RESEARCH_USE_NOTICE, __version__
from desktop_app.core.display import presets_for_modality
from desktop_app.core.errors import describe
from desktop_app.core.index import StudyIndex, index_paths
from desktop_app.core.volume import SeriesVolume
from desktop_app.qt import errors as qt_errors
from desktop_app.qt.study_browser import StackEntry, StudyBrowserWidget
from desktop_app.qt.viewer import SeriesContext, ViewerWidget
from desktop_app.qt.workers import TaskChannel

log = logging.getLogger(__name__)

MAX_RECENT = 10


class MainWindow(QMainWindow):
    """The RadAssist window. All computation is in the core; this wires widgets to it."""

    indexReady = Signal(object)  # StudyIndex, after the browser is filled
    seriesShown = Signal(str)  # stack key, once its first image is on screen

    def __init__(
        self,
        model_path: str | None = None,
        device: str | None = None,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle(f"RadAssist {__version__} — {RESEARCH_USE_NOTICE}")
        self.setAcceptDrops(True)
        self.resize(1500, 950)
        self.settings = settings or QSettings()
        self.model_path = model_path
        self.device_choice = device
        self.index: StudyIndex | None = None
        self.entries: list[StackEntry] = []
        self.current_key: str | None = None
        self._volumes: dict[str, SeriesVolume] = {}

        self.viewer = ViewerWidget(self)
        self.setCentralWidget(self.viewer)
        self.browser = StudyBrowserWidget(self)
        self.problems = QListWidget(self)
        self.problems.setObjectName("problemList")
        self._add_dock("Studies", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea, "studiesDock")
        self.problems_dock = self._add_dock(
            "Files not read", self.problems, Qt.DockWidgetArea.LeftDockWidgetArea, "problemsDock"
        )
        self.problems_dock.hide()
        studies_dock = self.findChild(QDockWidget, "studiesDock")
        self.resizeDocks([studies_dock], [340], Qt.Orientation.Horizontal)  # type: ignore[list-item]

        self._build_status_bar()
        self._build_menus()

        self.index_channel = TaskChannel("index", self)
        self.index_channel.progressed.connect(self._on_index_progress)
        self.index_channel.finished.connect(self._on_index_ready)
        self.index_channel.failed.connect(self.show_error)
        self.index_channel.cancelled.connect(lambda: self._end_progress("Opening cancelled"))

        self.browser.stackActivated.connect(self.show_stack)
        self.viewer.sliceChanged.connect(lambda _i: self._update_corners())
        self.viewer.windowChanged.connect(lambda _w: self._update_corners())
        self.viewer.canvas.viewChanged.connect(self._update_corners)
        self.viewer.readoutChanged.connect(self.readout.setText)
        self.viewer.loadProgress.connect(self._on_series_load_progress)
        self.viewer.errorOccurred.connect(self.show_error)
        qt_errors.relay.error.connect(self.show_error)

    # ------------------------------------------------------------------ layout
    def _add_dock(
        self, title: str, widget: QWidget, area: Qt.DockWidgetArea, name: str
    ) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.readout = QLabel("", self)
        self.readout.setObjectName("readout")
        self.readout.setMinimumWidth(260)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.notice = QLabel(f"⚠ {RESEARCH_USE_NOTICE}", self)
        self.notice.setObjectName("researchNotice")
        self.notice.setToolTip(
            "RadAssist is research software. It is not a certified medical device; "
            "its output must not be used to make or support a diagnosis."
        )
        bar.addWidget(self.readout)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.notice)

    def _build_menus(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        self.act_open_file = self._action(
            "Open &File…", self.open_file_dialog, QKeySequence.StandardKey.Open
        )
        self.act_open_folder = self._action(
            "Open F&older or DICOMDIR…", self.open_folder_dialog, "Ctrl+Shift+O"
        )
        file_menu.addAction(self.act_open_file)
        file_menu.addAction(self.act_open_folder)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self._rebuild_recent_menu()
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", self.close, QKeySequence.StandardKey.Quit))

        view = menu.addMenu("&View")
        view.addAction(self._action("&Fit to Window", self.viewer.canvas.fit, "F"))
        view.addAction(self._action("Zoom &In", lambda: self.viewer.canvas.zoom_by(1.25), "+"))
        view.addAction(self._action("Zoom &Out", lambda: self.viewer.canvas.zoom_by(0.8), "-"))
        view.addSeparator()
        view.addAction(self._action("Rotate &Right", lambda: self.viewer.canvas.rotate_by(90), "R"))
        view.addAction(
            self._action("Rotate &Left", lambda: self.viewer.canvas.rotate_by(-90), "Shift+R")
        )
        view.addAction(
            self._action(
                "Flip &Horizontal", lambda: self.viewer.canvas.toggle_flip(True), "Shift+H"
            )
        )
        view.addAction(
            self._action("Flip &Vertical", lambda: self.viewer.canvas.toggle_flip(False), "Shift+V")
        )
        self.act_invert = self._action("&Invert", None, "I", checkable=True)
        self.act_invert.toggled.connect(self.viewer.set_invert)
        view.addAction(self.act_invert)
        view.addAction(self._action("Reset &View", self._reset_view, "Ctrl+0"))
        view.addSeparator()
        view.addAction(self.findChild(QDockWidget, "studiesDock").toggleViewAction())  # type: ignore[union-attr]
        view.addAction(self.problems_dock.toggleViewAction())

        self.window_menu = menu.addMenu("&Window/Level")
        self.window_menu.aboutToShow.connect(self._rebuild_window_menu)

        tools = menu.addMenu("&Tools")
        group = QActionGroup(self)
        self.act_tool_pan = self._action(
            "&Pan (left drag)", lambda: self._set_tool("pan"), "P", checkable=True
        )
        self.act_tool_ruler = self._action(
            "&Ruler (mm)", lambda: self._set_tool("ruler"), "M", checkable=True
        )
        for act in (self.act_tool_pan, self.act_tool_ruler):
            group.addAction(act)
            tools.addAction(act)
        self.act_tool_pan.setChecked(True)
        tools.addAction(self._action("&Clear Rulers on Slice", self.viewer.clear_rulers, "Shift+M"))

        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self._action("&About RadAssist", self.show_about))

    def _action(
        self,
        text: str,
        slot: Callable[[], object] | None,
        shortcut: object = None,
        checkable: bool = False,
    ) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))  # type: ignore[arg-type]
        act.setCheckable(checkable)
        if slot is not None:
            act.triggered.connect(lambda _checked=False: slot())
        self.addAction(act)  # shortcuts work even when the menu bar is hidden
        return act

    def _set_tool(self, tool: str) -> None:
        self.viewer.canvas.tool = tool

    def _reset_view(self) -> None:
        self.viewer.canvas.reset_view()
        self.act_invert.setChecked(False)
        self.viewer.reset_window()

    def _rebuild_window_menu(self) -> None:
        self.window_menu.clear()
        self.window_menu.addAction(
            self._action("&Reset (file / auto)", self.viewer.reset_window, "Ctrl+R")
        )
        modality = self.viewer.context.modality if self.viewer.context else ""
        presets = presets_for_modality(modality)
        if presets:
            self.window_menu.addSeparator()
        for i, (name, window) in enumerate(presets.items(), start=1):
            act = QAction(f"{name} ({window.center:g} / {window.width:g})", self.window_menu)
            if i <= 9:
                act.setShortcut(QKeySequence(str(i)))
            act.triggered.connect(lambda _c=False, w=window: self.viewer.set_window(w))
            self.window_menu.addAction(act)

    # ------------------------------------------------------------------ opening
    def open_file_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open DICOM files", self._last_dir())
        if files:
            self.open_paths([Path(f) for f in files])

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Open a folder or DICOMDIR folder", self._last_dir()
        )
        if folder:
            self.open_paths([Path(folder)])

    def _last_dir(self) -> str:
        recent = self.recent_paths()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    def open_paths(self, paths: list[Path]) -> None:
        """Index paths in a worker; the browser fills in and the first series shows when done."""
        missing = [p for p in paths if not p.exists()]
        for p in missing:
            self.show_error(f"{p}: no such file or folder")
        paths = [p for p in paths if p.exists()]
        if not paths:
            return
        for p in paths:
            self._remember_recent(p)
        self._begin_progress("Reading headers…")

        def work(progress: Callable[[int, int], None], stop: threading.Event) -> StudyIndex:
            return index_paths(paths, progress=progress, stop=stop)

        self.index_channel.submit(work)

    def _on_index_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_index_ready(self, index: StudyIndex) -> None:
        self.index = index
        for volume in self._volumes.values():
            del volume
        self._volumes.clear()
        self.entries = self.browser.populate(index)
        self.problems.clear()
        for problem in index.problems:
            self.problems.addItem(problem.one_line())
        self.problems_dock.setVisible(bool(index.problems))
        n_series = len(self.entries)
        summary = f"{n_series} series"
        if index.problems:
            summary += f", {len(index.problems)} file(s) not read (see “Files not read”)"
        if index.skipped_non_dicom:
            summary += f", {index.skipped_non_dicom} non-DICOM file(s) skipped"
        self._end_progress(summary)
        self.indexReady.emit(index)
        if self.entries:
            self.show_stack(self.entries[0].key)
        elif index.problems:
            self.show_error(index.problems[0].one_line())
        else:
            self.viewer.set_series(None)
            self.viewer.canvas.set_placeholder("No images found in what was opened")

    def show_stack(self, key: str) -> None:
        entry = self.browser.entries.get(key)
        if entry is None:
            return
        stack = entry.assembly.stacks[entry.part]
        volume = self._volumes.get(key)
        if volume is None:
            try:
                volume = SeriesVolume(stack)
            except Exception as err:
                self.show_error(describe(err))
                return
            self._volumes[key] = volume
        self.current_key = key
        self.browser.select(key)
        context = SeriesContext(stack, volume, entry.modality, entry.description, key)
        self.viewer.set_series(context)
        for warning in stack.warnings:
            self.statusBar().showMessage(f"⚠ {warning}", 8000)
        self._update_corners()
        self.seriesShown.emit(key)

    def _on_series_load_progress(self, done: int, total: int) -> None:
        if done >= total:
            self.progress.hide()
            return
        self.progress.show()
        self.progress.setFormat("Loading %v/%m")
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _update_corners(self) -> None:
        ctx = self.viewer.context
        canvas = self.viewer.canvas
        if ctx is None:
            for corner in ("tl", "tr", "bl", "br"):
                canvas.set_corner_text(corner, [])
            return
        stack = ctx.stack
        canvas.set_corner_text("tl", [ctx.description, f"{ctx.modality}  {stack.size_text}"])
        w = self.viewer.window
        wl = f"W {w.width:.0f}  L {w.center:.0f}" if w is not None else ""
        canvas.set_corner_text("bl", [f"Im {self.viewer.index + 1}/{self.viewer.slice_count}", wl])
        spacing = stack.pixel_spacing
        canvas.set_corner_text(
            "br",
            [
                f"{spacing[0]:.3g} × {spacing[1]:.3g} mm" if spacing else "no pixel spacing",
                f"zoom {canvas.zoom:.2f}",
            ],
        )

    # ------------------------------------------------------------------ recent files
    def recent_paths(self) -> list[str]:
        value = self.settings.value("recent/paths", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember_recent(self, path: Path) -> None:
        text = str(path.resolve())
        recent = [p for p in self.recent_paths() if p != text]
        recent.insert(0, text)
        self.settings.setValue("recent/paths", recent[:MAX_RECENT])
        self._rebuild_recent_menu()

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_paths()
        for path in recent:
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _c=False, p=path: self.open_paths([Path(p)]))
        self.recent_menu.setEnabled(bool(recent))

    # ------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_paths(paths)
            event.acceptProposedAction()

    # ------------------------------------------------------------------ feedback
    def _begin_progress(self, message: str) -> None:
        self.statusBar().showMessage(message)
        self.progress.setFormat("%v/%m")
        self.progress.setRange(0, 0)
        self.progress.show()

    def _end_progress(self, message: str) -> None:
        self.progress.hide()
        self.statusBar().showMessage(message, 10000)

    def show_error(self, message: str) -> None:
        """Errors go to the status bar (and the log); nothing modal blocks the reading."""
        log.warning("%s", message)
        self.statusBar().showMessage(f"✖ {message}", 15000)

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About RadAssist",
            f"<b>RadAssist {__version__}</b><br>Open-source medical imaging assistant.<br><br>"
            f"<b>{RESEARCH_USE_NOTICE}.</b> Not a certified medical device.",
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        self.viewer.shutdown()
        self.index_channel.cancel()
        super().closeEvent(event)
