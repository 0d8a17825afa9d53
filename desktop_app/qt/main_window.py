"""MainWindow: builds the docks, the status bar, the menus and the toolbar, and hands each
controller (``desktop_app.qt.controllers``) the widgets it drives. No logic lives here."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QPainter,
    QPalette,
    QPixmap,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QDockWidget,
    QListWidget,
    QMainWindow,
    QMenu,
    QToolBar,
    QToolButton,
    QWidget,
)

from desktop_app import RESEARCH_USE_NOTICE, __version__
from desktop_app.privacy.audit import AuditLog
from desktop_app.qt import errors as qt_errors
from desktop_app.qt.actions import build_actions, build_menus, build_toolbar
from desktop_app.qt.annotation_tools import AnnotationController
from desktop_app.qt.app_settings import AppSettings
from desktop_app.qt.canvas import ImageCanvas
from desktop_app.qt.controllers.exports import ExportController
from desktop_app.qt.controllers.feedback import Feedback
from desktop_app.qt.controllers.layout import LayoutController
from desktop_app.qt.controllers.lesions import LesionController
from desktop_app.qt.controllers.overlays import OverlayController
from desktop_app.qt.controllers.preferences import PreferencesController
from desktop_app.qt.controllers.presentation import PresentationController
from desktop_app.qt.controllers.review import ReviewController
from desktop_app.qt.controllers.runs import RunController
from desktop_app.qt.controllers.shown import Shown
from desktop_app.qt.controllers.studies import StudyController
from desktop_app.qt.controllers.view import ViewController
from desktop_app.qt.findings_panel import FindingsPanelWidget
from desktop_app.qt.inference import Colorizer, InferenceController
from desktop_app.qt.mask_tools import MaskToolController
from desktop_app.qt.sr_panel import SrPanelWidget
from desktop_app.qt.study_browser import StudyBrowserWidget
from desktop_app.qt.tag_viewer import TagViewerWidget
from desktop_app.qt.viewer import ViewerWidget
from desktop_app.qt.viewports import ViewportGrid
from desktop_app.review.runner import RunnerFactory
from desktop_app.review.store import ReviewStore

log = logging.getLogger(__name__)

WARM_UP_MS = 1500  # with the core engine: load the model this long after start-up


def text_icon(text: str, color: QColor, size: int = 20) -> QIcon:
    """An icon that is a glyph (the style's own overflow arrow is invisible on the dark theme)."""
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    font = painter.font()
    font.setPixelSize(size - 2)
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(color)
    painter.drawText(pix.rect(), Qt.AlignmentFlag.AlignCenter, text)
    painter.end()
    return QIcon(pix)


def side_panel_widths(window_width: int) -> tuple[int, int]:
    """The study browser's and the findings panel's widths for a window this wide: 390 and
    430 px from about 1720 px up; narrower on a smaller screen, so that at 1280 px the image
    keeps about half the width (the panels' own minimum widths permitting)."""
    return min(390, max(280, window_width * 23 // 100)), min(430, max(330, window_width // 4))


class MainWindow(QMainWindow):
    """The RadAssist window: widgets in docks, and the controllers that drive them.

    ``settings``: a QSettings of the caller's (tests pass a temporary INI file);
    ``review_store`` / ``audit``: where review state and the audit trail go (default: the
    user data folder, which ``RADASSIST_DATA_DIR`` overrides); ``runner_factory`` /
    ``colorizer``: the inference seam (default: the core engine and overlay renderer);
    ``warm_up_ms``: load the model in the background this long after start-up (default:
    WARM_UP_MS with the core engine, never with another runner; None or negative: never).

    The controllers: ``studies`` (opening, the shown series), ``view``, ``overlays``,
    ``review``, ``runs`` (the model), ``exports`` (and PACS), ``preferences``; ``feedback``
    is the status bar and ``shown`` the series on screen.
    """

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
        self.shown = Shown()
        self._panels_sized = False
        self._build_docks()
        self.feedback = Feedback(self.statusBar(), self)
        self.inference = InferenceController(
            model_path or self.prefs.get("inference/model_path") or None,
            device or self.prefs.get("inference/device"),
            self,
            runner_factory=runner_factory,
            colorizer=colorizer,
        )
        self.acts: dict[str, QAction] = {}  # filled below, once the handlers exist
        self._build_controllers(review_store, audit)
        self.acts.update(build_actions(self))
        self._build_menus_and_toolbar()
        self.preferences.apply_shortcuts(self.prefs.shortcut_table())
        self.overlays.apply_settings()
        self.layouts.apply_defaults()
        self.view.apply_settings()
        self.viewer.readoutChanged.connect(self.feedback.readout.setText)
        self.viewer.errorOccurred.connect(self.feedback.show_error)
        qt_errors.relay.error.connect(self.feedback.show_error)
        if warm_up_ms is None and runner_factory is None:
            warm_up_ms = WARM_UP_MS
        if warm_up_ms is not None and warm_up_ms >= 0:
            QTimer.singleShot(warm_up_ms, self, self.runs.warm_up)
        self.runs.show_device(self.inference.device_label(), "")
        self.runs.show_model_text()
        for problem in self.review.startup_problems:
            self.feedback.show_error(problem)
            self.findings.set_message(f"⚠ {problem}", "error")

    # ------------------------------------------------------------------ set-up
    def _build_docks(self) -> None:
        self.viewports = ViewportGrid(ViewerWidget(self), self)  # viewport 0 is ``viewer``
        self.viewer = self.viewports.viewers[0]
        self.setCentralWidget(self.viewports)
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
        self.sr_panel = SrPanelWidget(self)
        self.sr_dock = self._add_dock("Structured report", self.sr_panel, right, "srDock")
        self.tabifyDockWidget(self.findings_dock, self.sr_dock)
        self.sr_dock.hide()  # shown when an SR or presentation state is chosen
        self.findings_dock.raise_()
        self.problems_dock.hide()
        self.size_side_panels(self.width())

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

    def _build_controllers(self, store: ReviewStore | None, audit: AuditLog | None) -> None:
        """Each controller gets the widgets it drives and the controllers below it."""
        prefs, shown, feedback, panel = self.prefs, self.shown, self.feedback, self.findings
        self.view = ViewController(
            self, self.viewer, prefs, self.acts, panel.edit_button,
            self.findings_dock, self.tags_dock, self.tags,
        )  # fmt: skip
        panel.slice_namer = self.view.slice_name  # "Im 17", as the viewer names slices
        self.overlays = OverlayController(self, self.viewer, self.view, prefs, self.acts)
        self.review = ReviewController(
            self, shown, prefs, panel, self.viewer, self.view, self.overlays, feedback,
            store=store, audit=audit,
        )  # fmt: skip
        self.annotations = AnnotationController(self, shown, self.viewer, self.review, feedback)
        self.studies = StudyController(
            self, shown, prefs, self.browser, self.viewer, self.problems, self.problems_dock,
            panel, self.view, self.overlays, self.review, self.inference, feedback,
        )  # fmt: skip
        self.runs = RunController(
            self, shown, prefs, self.acts, panel, self.inference, self.studies, self.review,
            self.overlays, feedback,
        )  # fmt: skip
        self.lesions = LesionController(
            self, shown, self.viewer, self.review, self.inference, panel, feedback
        )  # after runs: a run's outcome reaches the review first
        self.view.model_masks = lambda: bool(self.lesions.views)
        self.lesions.lesionsShown.connect(self.view.update_corners)
        self.masks = MaskToolController(
            self, shown, self.viewer, self.review, self.lesions, feedback,
            self.annotations.undo, self.annotations.redo, self.acts,
        )  # fmt: skip
        self.layouts = LayoutController(
            self, self.viewports, self.studies, self.review, self.overlays, self.acts, feedback
        )
        self.presentation = PresentationController(
            self, shown, prefs, self.viewer, self.studies, self.sr_panel, self.sr_dock, feedback
        )
        self.exports = ExportController(
            self, shown, self.settings, self.studies, self.review, self.runs, feedback
        )
        self.preferences = PreferencesController(
            self, prefs, self.acts, self.overlays, self.review, self.runs
        )

    def _build_menus_and_toolbar(self) -> None:
        def docks(menu: QMenu) -> None:
            for dock in (self.studies_dock, self.problems_dock, self.findings_dock, self.sr_dock):
                menu.addAction(dock.toggleViewAction())

        self.menus = build_menus(
            self.menuBar(),
            self.acts,
            {"recent": self.studies.add_recent_menu, "docks": docks},
            root=self,
        )
        self.toolbar = QToolBar("Tools", self)
        self.toolbar.setObjectName("mainToolbar")
        self.toolbar.setMovable(False)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.toolbar)
        widgets: dict[str, QWidget] = {
            "presets": self.view.preset_combo,
            "fps": self.view.fps_spin,
            "opacity": self.overlays.opacity_slider,
            "layout": self.layouts.layout_button,
        }
        build_toolbar(self.toolbar, self.acts, widgets)
        self.view.refresh_presets()
        # Qt's overflow button: what does not fit drops into its pop-up, never clipped
        self.toolbar.setStyleSheet(
            "QToolButton#qt_toolbar_ext_button { background: #27507a; padding: 0px; }"
        )
        for button in self.toolbar.findChildren(QToolButton, "qt_toolbar_ext_button"):
            button.setToolTip("More tools: the ones that do not fit the window")
            button.setIcon(text_icon("»", self.palette().color(QPalette.ColorRole.ButtonText)))

    def size_side_panels(self, window_width: int) -> None:
        studies, findings = side_panel_widths(window_width)
        self.resizeDocks([self.studies_dock], [studies], Qt.Orientation.Horizontal)
        self.resizeDocks([self.findings_dock], [findings], Qt.Orientation.Horizontal)

    def showEvent(self, event: QShowEvent) -> None:
        if not self._panels_sized:  # the first show: sized for the screen it opens on
            self._panels_sized = True
            self.size_side_panels(self.width())
        super().showEvent(event)

    # ------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.studies.open_paths(paths)
            event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.findings.flush_note()
        self.viewer.shutdown()
        self.layouts.shutdown()
        self.browser.shutdown()
        self.tags.shutdown()
        self.studies.index_channel.shutdown()
        self.exports.shutdown()
        self.presentation.shutdown()
        self.inference.shutdown()
        self.review.writer.close()
        self.preferences.close_dialogs()
        with contextlib.suppress(RuntimeError, TypeError):  # closed twice
            qt_errors.relay.error.disconnect(self.feedback.show_error)
        super().closeEvent(event)
