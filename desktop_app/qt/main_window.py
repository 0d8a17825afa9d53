"""MainWindow: the study browser, the viewer, the findings panel, the tag viewer, the toolbar,
the menus and the status bar — wired to the core. No computation lives here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEventLoop, QObject, QPoint, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QImage,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QListWidget,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QSlider,
    QSpinBox,
    QToolBar,
    QToolButton,
    QWidget,
)

from desktop_app import RESEARCH_USE_NOTICE, __version__
from desktop_app.dicom.display import presets_for_modality, render
from desktop_app.inference.firststart import badge_tooltip
from desktop_app.infra.errors import RadAssistError, describe
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.privacy.audit import AuditLog
from desktop_app.qt import errors as qt_errors
from desktop_app.qt.app_settings import AppSettings
from desktop_app.qt.canvas import CanvasShape, ImageCanvas
from desktop_app.qt.dialogs import ModelInfoDialog, SettingsDialog, ShortcutsDialog
from desktop_app.qt.findings_panel import (
    REJECTED_COLOR,
    FindingsPanelWidget,
    label_color,
    label_text,
)
from desktop_app.qt.images import array_to_qimage
from desktop_app.qt.inference import (
    Colorizer,
    InferenceController,
    InferenceOutcome,
    RunnerFactory,
)
from desktop_app.qt.study_browser import StackEntry, StudyBrowserWidget
from desktop_app.qt.tag_viewer import TagViewerWidget
from desktop_app.qt.viewer import SeriesContext, ViewerWidget
from desktop_app.qt.workers import TaskChannel
from desktop_app.review.state import (
    REJECT_REASONS,
    FindingReview,
    ReviewState,
    ReviewStore,
    ReviewWriter,
)
from desktop_app.settings import shortcuts
from desktop_app.studies.index import InstanceInfo, StudyIndex, index_paths
from desktop_app.studies.series import SeriesAssembly, assemble
from desktop_app.studies.volume import SeriesVolume, instance_frame

log = logging.getLogger(__name__)

KEEP_VOLUMES = 3  # decoded series kept in memory for quick switching back


class _WriterRelay(QObject):
    """Carries the review writer's error lines (from its thread) to the GUI thread."""

    error = Signal(str)


class MainWindow(QMainWindow):
    """The RadAssist window. All computation is in the core; this wires widgets to it.

    ``settings``: a QSettings of the caller's (tests pass a temporary INI file);
    ``review_store`` / ``audit``: where review state and the audit trail go (default: the
    user data folder, which ``RADASSIST_DATA_DIR`` overrides); ``runner_factory`` /
    ``colorizer``: the inference seam (default: the core engine and overlay renderer);
    ``warm_up_ms``: load the model in the background this long after start-up (default: 1500
    ms with the core engine, never with another runner; None or negative: never).
    """

    indexReady = Signal(object)  # StudyIndex, after the browser is filled
    previewShown = Signal()  # the first image found, on screen while the index still runs
    seriesShown = Signal(str)  # stack key, once its first image is on screen
    inferenceDone = Signal(str)  # stack key whose findings are now shown
    inferenceFailed = Signal(str)  # one-line reason
    inferenceCancelled = Signal()
    reviewChanged = Signal(str)  # finding id

    def __init__(
        self,
        model_path: str | None = None,
        device: str | None = None,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
        *,
        review_store: ReviewStore | None = None,
        audit: AuditLog | None = None,
        runner_factory: RunnerFactory | None = None,
        colorizer: Colorizer | None = None,
        warm_up_ms: int | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle(f"RadAssist {__version__} — {RESEARCH_USE_NOTICE}")
        self.setAcceptDrops(True)
        self.resize(1500, 950)
        self.prefs = AppSettings(settings)
        self.settings = self.prefs.q
        self.model_path = model_path or self.prefs.get("inference/model_path") or None
        self.device_choice = device or self.prefs.get("inference/device")
        self.index: StudyIndex | None = None
        self.entries: list[StackEntry] = []
        self.current_key: str | None = None
        self._volumes: OrderedDict[str, SeriesVolume] = OrderedDict()  # recently shown last
        self.reviews: dict[str, ReviewState] = {}  # study UID -> state
        self.selected_finding: str | None = None
        self._overlay_rgba: dict[str, np.ndarray] = {}  # finding id -> RGBA heatmap
        self._overlay_images: dict[str, QImage] = {}
        self._shortcut_dialog: ShortcutsDialog | None = None
        self._pacs_dialog: Any = None  # desktop_app.qt.pacs_dialog.PacsDialog, made on first use
        self._last_outcome: InferenceOutcome | None = None

        self._startup_problems: list[str] = []
        self.store = review_store or self._default_store()
        self.audit = audit if audit is not None else self._default_audit()
        self._writer_relay = _WriterRelay(self)
        self._writer_relay.error.connect(self.show_error)
        self.writer = ReviewWriter(self.store, self.audit, self._writer_relay.error.emit)

        self.viewer = ViewerWidget(self)
        self.setCentralWidget(self.viewer)
        self.canvas: ImageCanvas = self.viewer.canvas
        self.browser = StudyBrowserWidget(self)
        self.problems = QListWidget(self)
        self.problems.setObjectName("problemList")
        self.problems.setWordWrap(True)
        self.findings = FindingsPanelWidget(self)
        self.tags = TagViewerWidget(self)
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.studies_dock = self._add_dock("Studies", self.browser, left, "studiesDock")
        self.problems_dock = self._add_dock("Files not read", self.problems, left, "problemsDock")
        self.findings_dock = self._add_dock("Findings", self.findings, right, "findingsDock")
        self.tags_dock = self._add_dock("DICOM tags", self.tags, right, "tagsDock")
        self.tabifyDockWidget(self.findings_dock, self.tags_dock)
        self.findings_dock.raise_()
        self.problems_dock.hide()
        self.resizeDocks([self.studies_dock], [390], Qt.Orientation.Horizontal)
        self.resizeDocks([self.findings_dock], [430], Qt.Orientation.Horizontal)

        self.inference = InferenceController(
            self.model_path,
            self.device_choice,
            self,
            runner_factory=runner_factory,
            colorizer=colorizer,
        )
        self._build_status_bar()
        self.acts: dict[str, QAction] = {}
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self.apply_shortcuts(self.prefs.shortcut_table())
        self._apply_overlay_settings()

        self.index_channel = TaskChannel("index", self)
        self.index_channel.progressed.connect(self._on_index_progress)
        self.index_channel.partial.connect(self._on_index_preview)
        self.index_channel.finished.connect(self._on_index_ready)
        self.index_channel.failed.connect(self.show_error)
        self.index_channel.cancelled.connect(lambda: self._end_progress("Opening cancelled"))

        self.browser.stackActivated.connect(self.show_stack)
        self.viewer.sliceChanged.connect(self._on_slice_changed)
        self.viewer.frameShown.connect(lambda _i: self._update_overlays())
        self.viewer.windowChanged.connect(lambda _w: self._update_corners())
        self.viewer.cineChanged.connect(self._on_cine_changed)
        self.canvas.viewChanged.connect(self._update_corners)
        self.canvas.shapeClicked.connect(self.select_finding)
        self.canvas.boxEdited.connect(self._on_box_edited)
        self.viewer.readoutChanged.connect(self.readout.setText)
        self.viewer.loadProgress.connect(self._on_series_load_progress)
        self.viewer.errorOccurred.connect(self.show_error)
        self.tags_dock.visibilityChanged.connect(lambda _v: self._refresh_tags())

        self.findings.findingSelected.connect(self.select_finding)
        self.findings.thresholdChanged.connect(self.set_threshold)
        self.findings.acceptRequested.connect(self.accept_finding)
        self.findings.rejectRequested.connect(self._on_panel_reject)
        self.findings.clearRequested.connect(self.clear_finding)
        self.findings.noteEdited.connect(self.set_note)
        self.findings.editBoxRequested.connect(lambda _fid: self._toggle_edit_tool())
        self.findings.resetBoxRequested.connect(lambda fid: self.edit_box(fid, None))
        self.findings.runRequested.connect(self.run_inference)
        self.findings.modelInfoRequested.connect(self.show_model_info)

        self.inference.started.connect(self._on_inference_started)
        self.inference.progressed.connect(self._on_inference_progress)
        self.inference.finished.connect(self._on_inference_finished)
        self.inference.failed.connect(self._on_inference_failed)
        self.inference.cancelled.connect(self._on_inference_cancelled)
        self.inference.overlaysReady.connect(self._on_overlays_recolored)
        self.inference.modelLoaded.connect(self._on_model_loaded)
        self.inference.deviceChanged.connect(self._show_device)
        self.inference.warmUpFailed.connect(
            lambda msg: self.findings.set_message(f"Model not available: {msg}", "warning")
        )
        if warm_up_ms is None and runner_factory is None:
            warm_up_ms = 1500
        if warm_up_ms is not None and warm_up_ms >= 0:
            QTimer.singleShot(warm_up_ms, self, self._warm_up)
        qt_errors.relay.error.connect(self.show_error)
        self._show_device(self.inference.device_label(), "")
        self.findings.set_model_text(self.inference.model_text())
        for problem in self._startup_problems:
            self.show_error(problem)
            self.findings.set_message(f"⚠ {problem}", "error")

    # ------------------------------------------------------------------ set-up
    def _default_store(self) -> ReviewStore:
        try:
            return ReviewStore()
        except Exception as err:  # a broken data folder must not stop the viewer
            import tempfile

            folder = Path(tempfile.mkdtemp(prefix="radassist-reviews-"))
            self._startup_problems.append(
                f"reviews can't be kept in the data folder ({describe(err)}); this session's "
                f"reviews go to {folder} — copy them before you log out"
            )
            return ReviewStore(folder)

    def _default_audit(self) -> AuditLog | None:
        try:
            return AuditLog()
        except Exception as err:
            self._startup_problems.append(f"no audit trail this session: {describe(err)}")
            return None

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
        self.readout.setMinimumWidth(230)
        self.progress = QProgressBar(self)
        self.progress.setObjectName("taskProgress")
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.cancel_button = QToolButton(self)
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Cancel the running inference (Esc)")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_inference)
        self.device_badge = QLabel("", self)
        self.device_badge.setObjectName("deviceBadge")
        self.notice = QLabel(f"⚠ {RESEARCH_USE_NOTICE}", self)
        self.notice.setObjectName("researchNotice")
        self.notice.setToolTip(
            "RadAssist is research software. It is not a certified medical device; "
            "its output must not be used to make or support a diagnosis."
        )
        bar.addPermanentWidget(self.readout)  # permanent: messages never hide the readout
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        bar.addPermanentWidget(self.device_badge)
        bar.addPermanentWidget(self.notice)

    def _slots(self) -> dict[str, Callable[[], object]]:
        c = self.canvas
        return {
            "open_file": self.open_file_dialog,
            "open_folder": self.open_folder_dialog,
            "export": self.export_current_study,
            "pacs": self.open_pacs_dialog,
            "settings": self.open_settings,
            "quit": self.close,
            "cine_play": self.viewer.toggle_cine,
            "cine_faster": lambda: self.fps_spin.setValue(self.fps_spin.value() + 2),
            "cine_slower": lambda: self.fps_spin.setValue(self.fps_spin.value() - 2),
            "fit": c.fit,
            "zoom_in": lambda: c.zoom_by(1.25),
            "zoom_out": lambda: c.zoom_by(0.8),
            "rotate_right": lambda: c.rotate_by(90),
            "rotate_left": lambda: c.rotate_by(-90),
            "flip_h": lambda: c.toggle_flip(True),
            "flip_v": lambda: c.toggle_flip(False),
            "reset_view": self._reset_view,
            "toggle_tags": self._toggle_tags,
            "wl_reset": self.viewer.reset_window,
            "tool_pan": lambda: self._set_tool(ImageCanvas.TOOL_PAN),
            "tool_ruler": lambda: self._set_tool(ImageCanvas.TOOL_RULER),
            "tool_edit": lambda: self._set_tool(ImageCanvas.TOOL_EDIT),
            "clear_rulers": self.viewer.clear_rulers,
            "run_inference": self.run_inference,
            "cancel_inference": self.cancel_inference,
            "model_info": self.show_model_info,
            "next_finding": lambda: self.step_finding(1),
            "prev_finding": lambda: self.step_finding(-1),
            "accept": self.accept_selected,
            "reject": self.reject_selected,
            "clear_verdict": self.clear_selected,
            "note": self.findings.focus_note,
            "shortcuts": self.show_shortcuts,
        }

    def _build_actions(self) -> None:
        slots = self._slots()
        checkable = {
            "invert",
            "tool_pan",
            "tool_ruler",
            "tool_edit",
            "toggle_heatmap",
            "toggle_outline",
            "toggle_box",
            "toggle_labels",
            "hide_overlays",
            "cine_play",
        }
        for spec in shortcuts.DEFAULT_SHORTCUTS:
            if not spec.configurable:
                continue
            act = QAction(spec.label, self)
            act.setObjectName(f"act_{spec.id}")
            act.setCheckable(spec.id in checkable)
            slot = slots.get(spec.id)
            if slot is not None:
                if spec.id == "cine_play":
                    act.triggered.connect(lambda _c=False, s=slot: s())
                else:
                    act.triggered.connect(lambda _c=False, s=slot: s())
            self.addAction(act)  # shortcuts work even when the menu bar is hidden
            self.acts[spec.id] = act
        self.acts["invert"].toggled.connect(self.viewer.set_invert)
        tools = QActionGroup(self)
        for key in ("tool_pan", "tool_ruler", "tool_edit"):
            tools.addAction(self.acts[key])
        self.acts["tool_pan"].setChecked(True)
        for key, layer in (
            ("toggle_heatmap", "heatmap"),
            ("toggle_outline", "outline"),
            ("toggle_box", "box"),
            ("toggle_labels", "text"),
        ):
            self.acts[key].toggled.connect(lambda on, layer=layer: self._set_layer(layer, on))
        self.acts["hide_overlays"].toggled.connect(
            lambda on: self.canvas.set_layer_visibility(all_hidden=on)
        )
        self.acts["cancel_inference"].setEnabled(False)

    def apply_shortcuts(self, table: dict[str, str]) -> None:
        """Bind each action to its key from ``table`` (action id -> key sequence text)."""
        for action_id, act in self.acts.items():
            seq = table.get(action_id, "")
            act.setShortcut(QKeySequence(seq) if seq else QKeySequence())
            base = shortcuts.BY_ID[action_id].label
            act.setToolTip(f"{base}  ({seq})" if seq else base)
        self.shortcut_table = dict(table)
        if self._shortcut_dialog is not None:
            self._shortcut_dialog.set_table(self.shortcut_table)

    def _build_menus(self) -> None:
        a = self.acts
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(a["open_file"])
        file_menu.addAction(a["open_folder"])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self._rebuild_recent_menu()
        file_menu.addSeparator()
        a["export"].setText("&Export…")  # SR, secondary captures, PDF and JSON
        file_menu.addAction(a["export"])
        a["pacs"].setText("&Query/Retrieve (PACS)…")  # C-FIND, then C-GET/C-MOVE and open
        file_menu.addAction(a["pacs"])
        file_menu.addSeparator()
        file_menu.addAction(a["settings"])
        file_menu.addSeparator()
        file_menu.addAction(a["quit"])

        view = menu.addMenu("&View")
        for key in ("fit", "zoom_in", "zoom_out", None, "rotate_right", "rotate_left", "flip_h",
                    "flip_v", "invert", "reset_view", None, "cine_play", "cine_faster",
                    "cine_slower"):  # fmt: skip
            view.addSeparator() if key is None else view.addAction(a[key])
        view.addSeparator()
        for dock in (self.studies_dock, self.problems_dock, self.findings_dock):
            view.addAction(dock.toggleViewAction())
        view.addAction(a["toggle_tags"])

        self.window_menu = menu.addMenu("&Window/Level")
        self.window_menu.aboutToShow.connect(self._rebuild_window_menu)
        self._rebuild_window_menu()

        tools = menu.addMenu("&Tools")
        for key in ("tool_pan", "tool_ruler", "tool_edit", "clear_rulers"):
            tools.addAction(a[key])

        infer = menu.addMenu("&Inference")
        for key in ("run_inference", "cancel_inference", "model_info"):
            infer.addAction(a[key])

        overlays = menu.addMenu("&Overlays")
        for key in ("toggle_heatmap", "toggle_outline", "toggle_box", "toggle_labels", None,
                    "hide_overlays"):  # fmt: skip
            overlays.addSeparator() if key is None else overlays.addAction(a[key])

        review = menu.addMenu("&Review")
        for key in ("next_finding", "prev_finding", None, "accept", "reject", "clear_verdict",
                    "note", "tool_edit"):  # fmt: skip
            review.addSeparator() if key is None else review.addAction(a[key])

        help_menu = menu.addMenu("&Help")
        help_menu.addAction(a["shortcuts"])
        about = QAction("&About RadAssist", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def _build_toolbar(self) -> None:
        a = self.acts
        bar = QToolBar("Tools", self)
        bar.setObjectName("mainToolbar")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        self.toolbar = bar
        short = {
            "open_folder": "Open",
            "tool_pan": "Pan",
            "tool_ruler": "Ruler",
            "tool_edit": "Edit",
            "fit": "Fit",
            "zoom_in": "+",
            "zoom_out": "−",
            "rotate_left": "⟲",
            "rotate_right": "⟳",
            "flip_h": "Flip",
            "invert": "Invert",
            "reset_view": "Reset",
            "cine_play": "▶ Cine",
            "run_inference": "▶ Run model",
            "cancel_inference": "■ Cancel",
            "toggle_heatmap": "Heatmap",
            "toggle_outline": "Outline",
            "toggle_box": "Box",
            "toggle_labels": "Labels",
            "hide_overlays": "Raw",
        }
        for key, text in short.items():
            a[key].setIconText(text)

        def add(*keys: str) -> None:
            for k in keys:
                bar.addAction(a[k])

        add("open_folder")
        bar.addSeparator()
        add("tool_pan", "tool_ruler", "tool_edit")
        bar.addSeparator()
        add("fit", "zoom_in", "zoom_out", "rotate_left", "rotate_right", "flip_h", "invert",
            "reset_view")  # fmt: skip
        bar.addSeparator()
        self.preset_combo = QComboBox(self)
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.setToolTip("Window/level preset (1–5 on CT; Ctrl+R: file / auto)")
        self.preset_combo.setMinimumWidth(118)
        self.preset_combo.activated.connect(self._on_preset_chosen)
        bar.addWidget(self.preset_combo)
        bar.addSeparator()
        add("cine_play")
        self.fps_spin = QSpinBox(self)
        self.fps_spin.setObjectName("fpsSpin")
        self.fps_spin.setRange(1, 60)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setValue(int(self.prefs.get("cine/fps")))
        self.fps_spin.setToolTip("Cine speed ([ and ])")
        self.fps_spin.valueChanged.connect(self._on_fps_changed)
        self.viewer.set_cine_fps(self.fps_spin.value())
        bar.addWidget(self.fps_spin)
        bar.addSeparator()
        add("run_inference", "cancel_inference")
        bar.addSeparator()
        add("toggle_heatmap", "toggle_outline", "toggle_box", "toggle_labels")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity_slider.setObjectName("opacitySlider")
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setFixedWidth(90)
        self.opacity_slider.setToolTip("Heatmap opacity")
        self.opacity_slider.valueChanged.connect(self._on_opacity_changed)
        bar.addWidget(self.opacity_slider)
        add("hide_overlays")
        self._refresh_presets()

    # ------------------------------------------------------------------ view helpers
    def _set_tool(self, tool: str) -> None:
        self.canvas.tool = tool
        self.acts[{"pan": "tool_pan", "ruler": "tool_ruler", "edit": "tool_edit"}[tool]].setChecked(
            True
        )
        self.findings.edit_button.setChecked(tool == ImageCanvas.TOOL_EDIT)
        self.canvas.update()

    def _toggle_edit_tool(self) -> None:
        if self.canvas.tool == ImageCanvas.TOOL_EDIT:
            self._set_tool(ImageCanvas.TOOL_PAN)
        else:
            self._set_tool(ImageCanvas.TOOL_EDIT)

    def _reset_view(self) -> None:
        self.canvas.reset_view()
        self.acts["invert"].setChecked(False)
        self.viewer.reset_window()

    def _toggle_tags(self) -> None:
        if self.tags_dock.isVisible() and not self.tags_dock.visibleRegion().isEmpty():
            self.findings_dock.raise_()
        else:
            self.tags_dock.show()
            self.tags_dock.raise_()
        self._refresh_tags()

    def _set_layer(self, layer: str, on: bool) -> None:
        self.canvas.set_layer_visibility(**{layer: on})

    def _apply_overlay_settings(self) -> None:
        p = self.prefs
        for key, setting in (
            ("toggle_heatmap", "overlay/heatmap"),
            ("toggle_outline", "overlay/outline"),
            ("toggle_box", "overlay/box"),
            ("toggle_labels", "overlay/labels"),
        ):
            self.acts[key].setChecked(bool(p.get(setting)))
            self._set_layer(
                {"toggle_heatmap": "heatmap", "toggle_outline": "outline", "toggle_box": "box",
                 "toggle_labels": "text"}[key],
                bool(p.get(setting)),
            )  # fmt: skip
        self.opacity_slider.setValue(round(float(p.get("overlay/opacity")) * 100))
        self.canvas.set_overlay_opacity(float(p.get("overlay/opacity")))

    def _on_opacity_changed(self, value: int) -> None:
        self.canvas.set_overlay_opacity(value / 100)

    def _on_fps_changed(self, fps: int) -> None:
        self.viewer.set_cine_fps(fps)
        self.prefs.set("cine/fps", fps)

    def _on_cine_changed(self, playing: bool) -> None:
        act = self.acts["cine_play"]
        act.blockSignals(True)
        act.setChecked(playing)
        act.blockSignals(False)
        act.setIconText("❚❚ Pause" if playing else "▶ Cine")

    def _rebuild_window_menu(self) -> None:
        self.window_menu.clear()
        self.window_menu.addAction(self.acts["wl_reset"])
        modality = self.viewer.context.modality if self.viewer.context else ""
        presets = presets_for_modality(modality)
        if presets:
            self.window_menu.addSeparator()
        for i, (name, window) in enumerate(presets.items(), start=1):
            act = QAction(
                f"{name.capitalize()}  ({window.center:g} / {window.width:g})", self.window_menu
            )
            act.setShortcut(QKeySequence(str(i)))
            act.triggered.connect(lambda _c=False, w=window: self.viewer.set_window(w))
            self.window_menu.addAction(act)

    def _refresh_presets(self) -> None:
        """The toolbar's preset list and the 1–5 keys follow the shown modality."""
        modality = self.viewer.context.modality if self.viewer.context else ""
        presets = presets_for_modality(modality)
        self.preset_combo.blockSignals(True)
        self.preset_combo.clear()
        self.preset_combo.addItem("W/L: file / auto", None)
        for i, (name, window) in enumerate(presets.items(), start=1):
            self.preset_combo.addItem(f"{i}  {name.capitalize()}", window)
        self.preset_combo.blockSignals(False)
        self._preset_actions = getattr(self, "_preset_actions", [])
        for act in self._preset_actions:
            self.removeAction(act)
        self._preset_actions = []
        for i, window in enumerate(presets.values(), start=1):
            act = QAction(self)
            act.setShortcut(QKeySequence(str(i)))
            act.triggered.connect(lambda _c=False, w=window: self.viewer.set_window(w))
            self.addAction(act)
            self._preset_actions.append(act)

    def _on_preset_chosen(self, index: int) -> None:
        window = self.preset_combo.itemData(index)
        self.viewer.set_window(window)

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

        def work(
            progress: Callable[[int, int], None],
            stop: threading.Event,
            emit: Callable[[object], None],
        ) -> tuple[StudyIndex, dict[str, SeriesAssembly]]:
            previewed = [False]

            def on_instance(inst: InstanceInfo) -> None:
                # The first readable image goes on screen while the other headers are read.
                if previewed[0] or not inst.has_pixels:
                    return
                try:
                    image = render(instance_frame(inst))
                except RadAssistError:
                    return  # try the next one; the index reports this file
                previewed[0] = True
                emit(image)

            index = index_paths(paths, progress=progress, stop=stop, on_instance=on_instance)
            # ordering slices is work too (positions, spacing checks): not on the GUI thread
            assemblies = {s.series_instance_uid: assemble(s) for _, _, s in index.iter_series()}
            return index, assemblies

        self.index_channel.submit_streaming(work)

    def _on_index_preview(self, image: object) -> None:
        """The first image read, shown while the index is still running."""
        if self.viewer.frame is None:
            self.canvas.set_image(image)  # type: ignore[arg-type]
            self.canvas.set_corner_text("tl", ["Reading headers…", "first image found"])
            self.previewShown.emit()

    def _on_index_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_index_ready(self, result: tuple[StudyIndex, dict[str, SeriesAssembly]]) -> None:
        index, assemblies = result
        self.findings.flush_note()
        self.inference.cancel()  # a run on the study being replaced would only be dropped
        self.index = index
        self._volumes.clear()
        self.entries = self.browser.populate(index, assemblies)
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
        self.current_key = None  # the same series reopened is shown afresh
        self.indexReady.emit(index)
        if self.entries:
            self.show_stack(self.entries[0].key)
        else:
            self.viewer.set_series(None)
            self.findings.set_state(None, None)
            self.canvas.set_placeholder("No images found in what was opened")
            if index.problems:
                self.show_error(index.problems[0].one_line())

    def current_entry(self) -> StackEntry | None:
        return self.browser.entries.get(self.current_key or "")

    def show_stack(self, key: str) -> None:
        entry = self.browser.entries.get(key)
        if entry is None:
            return
        if key == self.current_key and self.viewer.context is not None:
            return
        volume = self._volumes.get(key)
        if volume is None:
            try:
                # Every slice's parsed header stays cached (a few kB each), so scrolling back
                # over slices the engine or the viewer has seen never parses files again.
                volume = SeriesVolume(entry.stack, header_cache=min(len(entry.stack), 2048))
            except Exception as err:
                self.show_error(describe(err))
                return
            self._volumes[key] = volume
            while len(self._volumes) > KEEP_VOLUMES:  # decoded series cost their voxel bytes
                self._volumes.popitem(last=False)
        self._volumes.move_to_end(key)
        self.findings.flush_note()
        self.current_key = key
        self.selected_finding = None
        self.browser.select(key)
        context = SeriesContext(entry.stack, volume, entry.modality, entry.description, key)
        self.viewer.set_series(context)
        self._refresh_presets()
        for warning in entry.stack.warnings:
            self.statusBar().showMessage(f"⚠ {warning}", 8000)
        state = self._review_for(entry.study_uid)
        self.findings.set_state(state, key)
        if state is not None and state.for_series(key) and not self._has_heatmaps(key):
            self.findings.set_message(
                "Review restored. Heatmaps are not kept between sessions: run the model again "
                "to see them (your verdicts stay).",
                "info",
            )
        else:
            self.findings.set_message("", "info")
        self._update_corners()
        self._update_overlays()
        self._refresh_tags()
        self.seriesShown.emit(key)
        if self.prefs.get("inference/auto_run") and not (state and state.for_series(key)):
            self.run_inference()

    def _on_series_load_progress(self, done: int, total: int) -> None:
        if self.inference.running:
            return  # the inference progress owns the bar
        if done >= total:
            self.progress.hide()
            return
        self.progress.show()
        self.progress.setFormat("Loading %v/%m")
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _on_slice_changed(self, _index: int) -> None:
        # overlays follow when the slice's pixels arrive (frameShown), not before
        self._update_corners()
        self._refresh_tags()

    def _refresh_tags(self) -> None:
        if self.tags_dock.visibleRegion().isEmpty() and not self.tags_dock.isVisible():
            return
        ctx = self.viewer.context
        self.tags.show_slice(ctx.volume if ctx else None, self.viewer.index)

    def _update_corners(self) -> None:
        ctx = self.viewer.context
        canvas = self.canvas
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
        canvas.set_corner_text("tr", ["AI overlay — research use only"] if canvas.shapes() else [])

    # ------------------------------------------------------------------ recent files
    def recent_paths(self) -> list[str]:
        return self.prefs.recent_paths()

    def _remember_recent(self, path: Path) -> None:
        self.prefs.remember_recent(str(path.resolve()))
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

    # ------------------------------------------------------------------ inference
    def run_inference(self) -> None:
        """Run the model over the shown series in a worker (a newer request supersedes)."""
        entry = self.current_entry()
        volume = self._volumes.get(self.current_key or "")
        if entry is None or volume is None:
            self.show_error("open a series first (File ▸ Open)")
            return
        self.inference.run(
            entry.key,
            entry.stack,
            volume,
            entry.study_uid,
            str(self.prefs.get("overlay/colormap")),
        )

    def _warm_up(self) -> None:
        if not self.inference.running and self.inference.info is None:
            self.inference.warm_up()

    def cancel_inference(self) -> None:
        if self.inference.running:
            self.inference.cancel()
            self.statusBar().showMessage("Cancelling…")

    def run_inference_and_wait(self, timeout_ms: int = 180_000) -> bool:
        """Run inference on the shown series and wait for its outcome (screenshots, scripts).
        True when findings are shown."""
        loop = QEventLoop()
        outcome = {"ok": False}

        def done(_key: str) -> None:
            outcome["ok"] = True
            loop.quit()

        self.inferenceDone.connect(done)
        self.inferenceFailed.connect(loop.quit)
        self.inferenceCancelled.connect(loop.quit)
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
        return outcome["ok"]

    def _on_inference_started(self, key: str) -> None:
        self.acts["cancel_inference"].setEnabled(True)
        self.cancel_button.show()
        self.progress.show()
        self.progress.setFormat("Model %v/%m")
        self.progress.setRange(0, 0)
        self.findings.run_button.setEnabled(False)
        self.findings.set_message("Running the model on this series…", "info")
        self.statusBar().showMessage("Running the model…")

    def _on_inference_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _inference_ended(self) -> None:
        self.acts["cancel_inference"].setEnabled(False)
        self.cancel_button.hide()
        self.progress.hide()
        self.findings.run_button.setEnabled(True)

    def _on_inference_finished(self, outcome: InferenceOutcome) -> None:
        self._inference_ended()
        self._last_outcome = outcome
        entry = self.browser.entries.get(outcome.series_key)
        if entry is None:
            return  # the study was closed meanwhile
        state = self._review_for(entry.study_uid, create=True)
        assert state is not None
        state.reviewer = str(self.prefs.get("review/reviewer"))
        state.merge_findings(outcome.findings, outcome.model)
        for fid, rgba in outcome.overlays.items():
            self._overlay_rgba[fid] = rgba
            self._overlay_images.pop(fid, None)
        self._save(state)
        self.writer.audit(
            "inference",
            study_hash=uid_hash(entry.study_uid),
            series_hash=uid_hash(entry.stack.series_instance_uid),
            model_sha256=outcome.model.sha256,
            device=outcome.device,
            timings_ms={k: round(float(v) * 1000.0, 3) for k, v in outcome.timings.items()},
            positives=[f.label for f in outcome.findings if state.positive(f)],
        )
        if outcome.series_key == self.current_key:
            self.findings.set_state(state, outcome.series_key)
            positives = [f for f in state.for_series(outcome.series_key) if state.positive(f)]
            seconds = float(outcome.timings.get("total", 0.0))
            warn = "; ".join(outcome.warnings)
            self.findings.set_message(
                f"Ran on {outcome.device.upper()} in {seconds:.2f} s"
                + (f" · ⚠ {warn}" if warn else ""),
                "warning" if warn else "info",
            )
            if positives:
                self.select_finding(max(positives, key=lambda f: f.probability).finding_id)
            self._update_overlays()
        total = sum(outcome.timings.values()) if outcome.timings else 0.0
        self.statusBar().showMessage(
            f"Model finished in {outcome.timings.get('total', total):.2f} s on {outcome.device.upper()}",
            10000,
        )
        self.inferenceDone.emit(outcome.series_key)

    def _on_inference_failed(self, message: str) -> None:
        self._inference_ended()
        self.findings.set_message(f"✖ {message}", "error")
        self.show_error(message)
        self.inferenceFailed.emit(message)

    def _on_inference_cancelled(self) -> None:
        self._inference_ended()
        self.findings.set_message("Inference cancelled", "warning")
        self.statusBar().showMessage("Inference cancelled", 8000)
        self.inferenceCancelled.emit()

    def _on_model_loaded(self, _info: object) -> None:
        self.findings.set_model_text(self.inference.model_text())

    def _show_device(self, text: str, warning: str) -> None:
        self.device_badge.setText(text)
        # after the first model load on this machine: "Inference runs on CPU · ~14 ms/image"
        self.device_badge.setToolTip(warning or badge_tooltip(text, self.inference.model_path))
        self.device_badge.setProperty("warning", bool(warning))
        self.device_badge.setStyleSheet("color: #101113; background: #e0a030;" if warning else "")

    def show_model_info(self) -> None:
        card = self.inference.model_card()
        if card is None:
            self.show_error("no model is loaded yet (run the model once, or check Settings)")
            return
        dialog = ModelInfoDialog(card, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    # ------------------------------------------------------------------ overlays
    def _has_heatmaps(self, key: str) -> bool:
        state = self.current_state()
        return bool(state) and any(
            f.finding_id in self._overlay_rgba
            for f in state.for_series(key)  # type: ignore[union-attr]
        )

    def _on_overlays_recolored(self, overlays: object) -> None:
        self._overlay_rgba.update(overlays)  # type: ignore[arg-type]
        self._overlay_images.clear()
        self._update_overlays()

    def _overlay_image(self, fid: str) -> QImage | None:
        image = self._overlay_images.get(fid)
        if image is None and fid in self._overlay_rgba:
            image = array_to_qimage(self._overlay_rgba[fid])
            self._overlay_images[fid] = image
        return image

    def _update_overlays(self) -> None:
        """Shapes and the heatmap of the findings on the shown slice."""
        state = self.current_state()
        key = self.current_key
        if state is None or key is None or self.viewer.frame is None:
            self.canvas.set_shapes([])
            self.canvas.set_overlay(None)
            self._update_corners()
            return
        index = self.viewer.index
        shapes: list[CanvasShape] = []
        here: list[FindingReview] = []
        for order, f in enumerate(state.for_series(key)):  # the model's label order
            if f.slice_index != index:
                continue
            positive = state.positive(f)
            selected = f.finding_id == self.selected_finding
            if not (positive or selected):
                continue
            here.append(f)
            mark = {"accepted": "✓ ", "rejected": "✗ "}.get(f.verdict, "")
            text = f"{mark}{label_text(f.label)} {f.probability * 100:.0f}%"
            contours = [np.asarray(poly, dtype=np.float64) for poly in f.outline]
            rejected = f.verdict == "rejected"
            shapes.append(
                CanvasShape(
                    key=f.finding_id,
                    color=REJECTED_COLOR if rejected else label_color(order),
                    box=f.shown_box,
                    contours=contours if f.edited_box is None else [],
                    text=text,
                    selected=selected,
                    dashed=f.verdict == "rejected",
                )
            )
        self.canvas.set_shapes(shapes)
        heat: str | None = None
        if self.selected_finding in {f.finding_id for f in here}:
            heat = self.selected_finding
        else:
            ranked = sorted(
                (f for f in here if f.finding_id in self._overlay_rgba and f.verdict != "rejected"),
                key=lambda f: -f.probability,
            )
            heat = ranked[0].finding_id if ranked else None
        self.canvas.set_overlay(self._overlay_image(heat) if heat else None)
        self._update_corners()

    # ------------------------------------------------------------------ review
    def current_state(self) -> ReviewState | None:
        entry = self.current_entry()
        return self.reviews.get(entry.study_uid) if entry is not None else None

    def _review_for(self, study_uid: str, create: bool = False) -> ReviewState | None:
        state = self.reviews.get(study_uid)
        if state is not None:
            return state
        try:
            state = self.store.load(study_uid)
        except Exception as err:
            moved = None
            with contextlib.suppress(OSError):
                moved = self.store.quarantine(study_uid)
            self.show_error(
                describe(err) + (f" — kept as {moved.name}" if moved is not None else "")
            )
            state = None
        if state is None and create:
            state = ReviewState(study_uid, reviewer=str(self.prefs.get("review/reviewer")))
        if state is not None:
            self.reviews[study_uid] = state
        return state

    def _save(self, state: ReviewState) -> None:
        self.writer.save(state)

    def _changed(self, finding: FindingReview, action: str, **extra: Any) -> None:
        state = self.current_state()
        if state is None:
            return
        self._save(state)
        model_sha = state.model.sha256 if state.model else ""
        self.writer.audit(
            "review",
            study_hash=uid_hash(state.study_uid),
            series_hash=uid_hash(finding.series_uid),
            label=finding.label,
            action=action,
            verdict=finding.verdict,
            reviewer=finding.reviewer or str(self.prefs.get("review/reviewer")),
            model_sha256=model_sha,
            **extra,
        )
        self.findings.refresh()
        self._update_overlays()
        self.reviewChanged.emit(finding.finding_id)

    def _reviewer(self) -> str:
        return str(self.prefs.get("review/reviewer"))

    def select_finding(self, finding_id: str) -> None:
        """Select a finding: jump to its slice and centre its box (unless the box is already
        well inside the view, so that stepping through findings doesn't jolt the image)."""
        state = self.current_state()
        if state is None:
            return
        try:
            f = state.find(finding_id)
        except KeyError:
            return
        self.selected_finding = finding_id
        self.findings.select(finding_id)
        if f.slice_index != self.viewer.index:
            self.viewer.set_index(f.slice_index)
        box = f.shown_box
        if box is not None:
            x, y, w, h = box
            centre = (x + w / 2, y + h / 2)
            if not self.canvas.box_in_view((*centre, 0.0, 0.0), margin=0.15):
                self.canvas.center_on(*centre)
        self._update_overlays()

    def step_finding(self, delta: int) -> None:
        ids = self.findings.finding_ids()
        if not ids:
            return
        if self.selected_finding in ids:
            i = (ids.index(self.selected_finding) + delta) % len(ids)
        else:
            i = 0 if delta > 0 else len(ids) - 1
        self.select_finding(ids[i])

    def accept_finding(self, finding_id: str) -> None:
        state = self.current_state()
        if state is None:
            return
        self._changed(state.accept(finding_id, self._reviewer()), "accept")

    def reject_finding(self, finding_id: str, reason: str) -> None:
        state = self.current_state()
        if state is None:
            return
        self.findings.reason.setCurrentIndex(max(0, self.findings.reason.findData(reason)))
        self._changed(state.reject(finding_id, reason, self._reviewer()), "reject", reason=reason)

    def _on_panel_reject(self, finding_id: str, reason: str) -> None:
        if reason:
            self.reject_finding(finding_id, reason)
        else:
            self.select_finding(finding_id)
            self.reject_selected()

    def clear_finding(self, finding_id: str) -> None:
        state = self.current_state()
        if state is None:
            return
        self._changed(state.clear_verdict(finding_id, self._reviewer()), "clear")

    def set_note(self, finding_id: str, text: str) -> None:
        state = self.current_state()
        if state is None:
            return
        try:
            f = state.set_note(finding_id, text, self._reviewer())
        except (KeyError, ValueError) as err:
            self.show_error(str(err))
            return
        self._changed(f, "note", note_chars=len(text))

    def edit_box(self, finding_id: str, box: tuple[float, float, float, float] | None) -> None:
        state = self.current_state()
        if state is None:
            return
        try:
            f = state.edit_box(finding_id, box, self._reviewer())
        except (KeyError, ValueError) as err:
            self.show_error(str(err))
            return
        self._changed(f, "edit_box", box=[round(v, 1) for v in box] if box is not None else None)

    def _on_box_edited(self, finding_id: str, box: object) -> None:
        self.edit_box(finding_id, tuple(box))  # type: ignore[arg-type]

    def set_threshold(self, label: str, value: float, final: bool = True) -> None:
        """The live slider: re-decide ``label`` at ``value`` at once; save when final."""
        state = self.current_state()
        if state is None:
            return
        state.set_threshold(label, value)
        self.findings.refresh()
        self._update_overlays()
        if final:
            self._save(state)
            self.writer.audit(
                "review",
                study_hash=uid_hash(state.study_uid),
                label=label,
                action="threshold",
                threshold=round(value, 4),
                reviewer=self._reviewer(),
                model_sha256=state.model.sha256 if state.model else "",
            )

    def accept_selected(self) -> None:
        if self.selected_finding is not None:
            self.accept_finding(self.selected_finding)

    def clear_selected(self) -> None:
        if self.selected_finding is not None:
            self.clear_finding(self.selected_finding)

    def reject_selected(self, reason: str | None = None) -> None:
        """Reject the selected finding; without a reason, a menu of the reason codes pops up
        at the finding (keys 1–5 pick one; Esc leaves the finding as it was)."""
        fid = self.selected_finding
        if fid is None:
            return
        if reason is not None:
            self.reject_finding(fid, reason)
            return
        menu = QMenu(self)
        menu.setObjectName("reasonMenu")
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        for i, (code, text) in enumerate(REJECT_REASONS.items(), start=1):
            act = menu.addAction(f"&{i}  {text}")
            act.triggered.connect(lambda _c=False, c=code, f=fid: self.reject_finding(f, c))
        card = self.findings.cards.get(fid)
        where = card.mapToGlobal(QPoint(20, card.height())) if card else self.cursor().pos()
        menu.popup(where)
        self.reason_menu = menu

    # ------------------------------------------------------------------ settings and help
    def open_settings(self) -> None:
        values = {k: self.prefs.get(k) for k in (
            "review/reviewer", "inference/device", "inference/auto_run", "inference/model_path",
            "overlay/colormap", "overlay/opacity", "overlay/heatmap", "overlay/outline",
            "overlay/box", "overlay/labels")}  # fmt: skip
        dialog = SettingsDialog(values, self.shortcut_table, self)
        self.settings_dialog = dialog
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(
            lambda: self.apply_settings(dialog.values(), dialog.shortcut_table())
        )
        dialog.open()

    def apply_settings(self, values: dict[str, Any], table: dict[str, str] | None = None) -> None:
        """Store and apply settings (from the dialog, or a test)."""
        old_colormap = self.prefs.get("overlay/colormap")
        for key, value in values.items():
            self.prefs.set(key, value)
        if table is not None:
            self.prefs.set_shortcuts(table)
            self.apply_shortcuts(self.prefs.shortcut_table())
        self.prefs.sync()
        self._apply_overlay_settings()
        model = self.prefs.get("inference/model_path") or None
        device = self.prefs.get("inference/device")
        self.inference.configure(model, device)
        self.findings.set_model_text(self.inference.model_text())
        self._show_device(self.inference.device_label(), "")
        state = self.current_state()
        if state is not None:
            state.reviewer = self._reviewer()
        colormap = self.prefs.get("overlay/colormap")
        if colormap != old_colormap and self._last_outcome is not None:
            self.inference.recolor(self._last_outcome.heatmaps, str(colormap))

    def show_shortcuts(self) -> None:
        if self._shortcut_dialog is None:
            self._shortcut_dialog = ShortcutsDialog(self.shortcut_table, self)
        self._shortcut_dialog.show()
        self._shortcut_dialog.raise_()

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About RadAssist",
            f"<b>RadAssist {__version__}</b><br>Open-source medical imaging assistant.<br><br>"
            f"<b>{RESEARCH_USE_NOTICE}.</b> Not a certified medical device.",
        )

    # ------------------------------------------------------------------ feedback
    def _begin_progress(self, message: str) -> None:
        self.statusBar().showMessage(message)
        self.progress.setFormat("%v/%m")
        self.progress.setRange(0, 0)
        self.progress.show()

    def _end_progress(self, message: str) -> None:
        self.progress.hide()
        self.statusBar().showMessage(message, 10000)

    # ------------------------------------------------------------------ export
    def export_current_study(self, out_dir: str | None = None) -> bool:
        """File ▸ Export…: the current study's DICOM SR, secondary captures, PDF and JSON into a
        folder, by the core's ``exports.export_study`` in a worker. Returns whether it started;
        the outcome arrives on ``export_channel`` (finished: ExportResult, or failed)."""
        entry = self.current_entry()
        state = self.reviews.get(entry.study_uid) if entry is not None else None
        if entry is None or state is None or not state.findings:
            self.show_error("Nothing to export: open a study and run the model on it first")
            return False
        if out_dir is None:
            out_dir = QFileDialog.getExistingDirectory(self, "Export to folder", self._last_dir())
            if not out_dir:
                return False
        self.findings.flush_note()
        from desktop_app.exports import ExportRequest, export_study

        stacks = [e.stack for e in self.browser.entries.values() if e.study_uid == entry.study_uid]
        paths = sorted({str(s.instance.path) for stack in stacks for s in stack.slices})
        outcome = self._last_outcome
        request = ExportRequest(
            study_paths=paths,
            out_dir=out_dir,
            review=ReviewState.from_dict(state.to_dict()),  # the worker's own copy
            heatmaps=dict(outcome.heatmaps) if outcome is not None else None,
            device=outcome.device if outcome is not None else "",
            study_uid=entry.study_uid,
            audit=self.audit,
        )
        model_path = self.model_path

        def work(progress: Callable[[int, int], None], stop: threading.Event) -> object:
            try:  # the model card, when the model file is the reviewed one
                from desktop_app.model.modelfile import read_manifest
                from desktop_app.model.paths import default_model_path

                request.model_manifest = read_manifest(model_path or default_model_path())
            except RadAssistError:
                request.model_manifest = None
            return export_study(request, progress, stop)

        if getattr(self, "export_channel", None) is None:
            self.export_channel = TaskChannel("export", self)
            self.export_channel.progressed.connect(self._on_inference_progress)
            self.export_channel.finished.connect(
                lambda r: self._end_progress(f"Exported {len(r.files)} files to {r.folder}")
            )
            self.export_channel.failed.connect(lambda m: (self.progress.hide(), self.show_error(m)))
            self.export_channel.cancelled.connect(lambda: self._end_progress("Export cancelled"))
        self.progress.setFormat("Export %v/%m")
        self.progress.setRange(0, 0)
        self.progress.show()
        self.export_channel.submit(work)
        return True

    # ------------------------------------------------------------------ PACS
    def open_pacs_dialog(self) -> Any:
        """File ▸ Query/Retrieve (PACS)…: one dialog per window, kept (with its results) when
        closed; a retrieved study opens here from the local store."""
        from desktop_app.qt.pacs_dialog import PacsDialog

        if self._pacs_dialog is None:
            self._pacs_dialog = PacsDialog(self, settings=self.settings)
            self._pacs_dialog.studiesRetrieved.connect(self._open_retrieved)
        else:
            self._pacs_dialog.reload_nodes()  # the CLI may have changed the nodes
        self._pacs_dialog.show()
        self._pacs_dialog.raise_()
        self._pacs_dialog.activateWindow()
        return self._pacs_dialog

    def _open_retrieved(self, folders: object) -> None:
        self.open_paths([Path(f) for f in folders])  # type: ignore[attr-defined]
        self.raise_()
        self.activateWindow()

    def show_error(self, message: str) -> None:
        """Errors go to the status bar (and the log); nothing modal blocks the reading."""
        log.warning("%s", message)
        self.statusBar().showMessage(f"✖ {message}", 15000)
        self.last_error = message

    def closeEvent(self, event: QCloseEvent) -> None:
        self.findings.flush_note()
        self.viewer.shutdown()
        self.browser.shutdown()
        self.tags.shutdown()
        self.index_channel.shutdown()
        if getattr(self, "export_channel", None) is not None:
            self.export_channel.shutdown()
        self.inference.shutdown()
        self.writer.close()
        if self._shortcut_dialog is not None:
            self._shortcut_dialog.close()
        if self._pacs_dialog is not None:
            self._pacs_dialog.shutdown()
            self._pacs_dialog.close()
        with contextlib.suppress(RuntimeError, TypeError):  # closed twice
            qt_errors.relay.error.disconnect(self.show_error)
        super().closeEvent(event)
