"""ViewController: mouse tools, window/level presets, cine speed, the corner text and
orientation letters, smooth magnification, the reading direction, the tags dock."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QDockWidget, QMenu, QPushButton, QSpinBox, QWidget

from desktop_app.dicom.orientation import image_axes_letters
from desktop_app.dicom.voi import Window, presets_for_modality
from desktop_app.qt.app_settings import AppSettings
from desktop_app.qt.canvas import ImageCanvas
from desktop_app.qt.tag_viewer import TagViewerWidget
from desktop_app.qt.viewer import ViewerWidget

VIEW_TOGGLES = {  # View menu toggles and the settings they keep
    "smooth_zoom": "view/smooth",
    "hide_identifiers": "view/hide_identifiers",
    "axial_feet_first": "view/axial_feet_first",
}

TOOL_ACTIONS = {
    ImageCanvas.TOOL_PAN: "tool_pan",
    ImageCanvas.TOOL_RULER: "tool_ruler",
    ImageCanvas.TOOL_EDIT: "tool_edit",
}


class ViewController(QObject):
    """How the shown image is looked at; owns the toolbar's preset list and cine speed box.

    ``acts`` is the window's action table, filled once the actions are built (before any
    handler here can run).
    """

    def __init__(
        self,
        host: QWidget,
        viewer: ViewerWidget,
        prefs: AppSettings,
        acts: Mapping[str, QAction],
        edit_button: QPushButton,
        findings_dock: QDockWidget,
        tags_dock: QDockWidget,
        tags: TagViewerWidget,
    ) -> None:
        super().__init__(host)
        self.host = host
        self.viewer = viewer
        self.canvas = viewer.canvas
        self.prefs = prefs
        self.acts = acts
        self.edit_button = edit_button
        self.findings_dock = findings_dock
        self.tags_dock = tags_dock
        self.tags = tags
        # what the AI overlay's corner says of the shown run ("" when it is trustworthy)
        self.overlay_warning = ""
        # Whether the shown series has a model's lesions (the lesion controller's, set by the
        # window): the corner's research-use notice then shows as for the findings' shapes.
        self.model_masks: Callable[[], bool] = lambda: False
        self.hide_identifiers = False
        self._preset_actions: list[QAction] = []

        self.preset_combo = QComboBox(host)
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.setToolTip("Window/level preset (1–5 on CT; Ctrl+R: file / auto)")
        self.preset_combo.setMinimumWidth(118)
        self.preset_combo.activated.connect(self._on_preset_chosen)
        self.fps_spin = QSpinBox(host)
        self.fps_spin.setObjectName("fpsSpin")
        self.fps_spin.setRange(1, 60)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setValue(int(prefs.get("cine/fps")))
        self.fps_spin.setToolTip("Cine speed ([ and ])")
        self.fps_spin.valueChanged.connect(self._on_fps_changed)
        viewer.set_cine_fps(self.fps_spin.value())

        viewer.sliceChanged.connect(self._on_slice_changed)
        viewer.frameShown.connect(lambda _i: self.update_corners())  # its header's labels
        viewer.windowChanged.connect(lambda _w: self.update_corners())
        viewer.cineChanged.connect(self._on_cine_changed)
        self.canvas.viewChanged.connect(self.update_corners)
        # A tab behind Findings stays isVisible() (Qt 6): only this signal says whether its
        # tab is the one on top, so scrolling behind it costs no header rows (~8 ms a step).
        self.tags_seen = False
        tags_dock.visibilityChanged.connect(self._on_tags_visibility)

    # ------------------------------------------------------------------ tools
    def set_tool(self, tool: str) -> None:
        self.canvas.tool = tool
        self.acts[TOOL_ACTIONS[tool]].setChecked(True)
        self.edit_button.setChecked(tool == ImageCanvas.TOOL_EDIT)
        self.canvas.update()

    def toggle_edit_tool(self) -> None:
        editing = self.canvas.tool == ImageCanvas.TOOL_EDIT
        self.set_tool(ImageCanvas.TOOL_PAN if editing else ImageCanvas.TOOL_EDIT)

    def reset_view(self) -> None:
        self.canvas.reset_view()
        self.acts["invert"].setChecked(False)
        self.viewer.reset_window()

    # ------------------------------------------------------------------ display settings
    def apply_settings(self) -> None:
        """The View menu's toggles from the settings (once the actions exist)."""
        for act_id, key in VIEW_TOGGLES.items():
            self.acts[act_id].setChecked(bool(self.prefs.get(key)))
        self.set_smooth(bool(self.prefs.get("view/smooth")))
        self.set_feet_first(bool(self.prefs.get("view/axial_feet_first")))
        self.set_hide_identifiers(bool(self.prefs.get("view/hide_identifiers")))

    def set_smooth(self, smooth: bool) -> None:
        """Bilinear magnification, or nearest neighbour to see the true pixels."""
        self.prefs.set("view/smooth", bool(smooth))
        self.canvas.set_smooth(smooth)
        self.update_corners()

    def set_hide_identifiers(self, hide: bool) -> None:
        """Leave patient name, ID, birth date and accession off the image (screenshots)."""
        self.prefs.set("view/hide_identifiers", bool(hide))
        self.hide_identifiers = bool(hide)
        self.update_corners()

    def set_feet_first(self, feet_first: bool) -> None:
        """Navigate axial stacks from the feet (Home = the lowest slice)."""
        self.prefs.set("view/axial_feet_first", bool(feet_first))
        self.viewer.set_feet_first(feet_first)

    def slice_name(self, index: int) -> str:
        """How the shown stack names slice ``index`` ("Im 17"), for the findings panel."""
        ctx = self.viewer.context
        if ctx is None or not 0 <= index < len(ctx.stack):
            return f"#{index + 1}"
        return ctx.stack.short_label(index)

    # ------------------------------------------------------------------ cine
    def step_fps(self, delta: int) -> None:
        self.fps_spin.setValue(self.fps_spin.value() + delta)

    def _on_fps_changed(self, fps: int) -> None:
        self.viewer.set_cine_fps(fps)
        self.prefs.set("cine/fps", fps)

    def _on_cine_changed(self, playing: bool) -> None:
        act = self.acts["cine_play"]
        act.blockSignals(True)
        act.setChecked(playing)
        act.blockSignals(False)
        act.setIconText("❚❚ Pause" if playing else "▶ Cine")

    # ------------------------------------------------------------------ window/level
    def _presets(self) -> dict[str, Window]:
        context = self.viewer.context
        return presets_for_modality(context.modality if context else "")

    def fill_window_menu(self, menu: QMenu) -> None:
        """Window/Level ▸ file/auto and the shown modality's presets (rebuilt as it opens)."""
        menu.clear()
        menu.addAction(self.acts["wl_reset"])
        presets = self._presets()
        if presets:
            menu.addSeparator()
        for i, (name, window) in enumerate(presets.items(), start=1):
            act = QAction(f"{name.capitalize()}  ({window.center:g} / {window.width:g})", menu)
            act.setShortcut(QKeySequence(str(i)))
            act.triggered.connect(lambda _c=False, w=window: self.viewer.set_window(w))
            menu.addAction(act)

    def refresh_presets(self) -> None:
        """The toolbar's preset list and the 1–5 keys follow the shown modality."""
        presets = self._presets()
        self.preset_combo.blockSignals(True)
        self.preset_combo.clear()
        self.preset_combo.addItem("W/L: file / auto", None)
        for i, (name, window) in enumerate(presets.items(), start=1):
            self.preset_combo.addItem(f"{i}  {name.capitalize()}", window)
        self.preset_combo.blockSignals(False)
        for act in self._preset_actions:
            self.host.removeAction(act)
        self._preset_actions = []
        for i, window in enumerate(presets.values(), start=1):
            act = QAction(self.host)
            act.setShortcut(QKeySequence(str(i)))
            act.triggered.connect(lambda _c=False, w=window: self.viewer.set_window(w))
            self.host.addAction(act)
            self._preset_actions.append(act)

    def _on_preset_chosen(self, index: int) -> None:
        self.viewer.set_window(self.preset_combo.itemData(index))

    # ------------------------------------------------------------------ corners and tags
    def _on_slice_changed(self, _index: int) -> None:
        # overlays follow when the slice's pixels arrive (frameShown), not before
        self.update_corners()
        self.refresh_tags()

    def toggle_tags(self) -> None:
        if self.tags_dock.isVisible() and not self.tags_dock.visibleRegion().isEmpty():
            self.findings_dock.raise_()
        else:
            self.tags_dock.show()
            self.tags_dock.raise_()
        self.refresh_tags()

    def _on_tags_visibility(self, visible: bool) -> None:
        self.tags_seen = visible
        self.refresh_tags()

    def refresh_tags(self) -> None:
        if not self.tags_seen:
            return
        ctx = self.viewer.context
        self.tags.show_slice(ctx.volume if ctx else None, self.viewer.index)

    def update_corners(self) -> None:
        """The shown viewer's corner text and orientation letters, with the AI overlay's
        warning (the run's) under its notice."""
        self.corners_for(self.viewer, self.overlay_warning)

    def corners_for(self, viewer: ViewerWidget, overlay_warning: str = "") -> None:
        """Patient and study top left, series and the AI notice top right, slice and W/L
        bottom left, spacing and zoom bottom right; orientation letters on the edges. The
        same for every viewport, identifiers hidden in all of them with Hide identifiers."""
        ctx = viewer.context
        canvas = viewer.canvas
        if ctx is None:
            for corner in ("tl", "tr", "bl", "br"):
                canvas.set_corner_text(corner, [])
            canvas.set_orientation_letters({})
            return
        stack, labels = ctx.stack, viewer.labels
        index = min(viewer.index, len(stack) - 1)
        patient = labels.patient_lines(hide_identifiers=self.hide_identifiers) if labels else []
        canvas.set_corner_text("tl", patient)
        series = labels.series_line(ctx.description) if labels else ctx.description
        masks = viewer is self.viewer and self.model_masks()
        ai = ["AI overlay — research use only"] if canvas.shapes() or masks else []
        if ai and overlay_warning:  # two short lines: the corner is ~30 characters at 1280 px
            head, _, why = overlay_warning.partition(": ")
            ai.extend([f"⚠ {head}", why] if why else [f"⚠ {head}"])
        canvas.set_corner_text("tr", [*ai, series, f"{ctx.modality}  {stack.size_text}"])
        w = viewer.window_level
        wl = f"W {w.width:.0f}  L {w.center:.0f}" if w is not None else ""
        canvas.set_corner_text("bl", [stack.slice_label(index), wl])
        spacing = stack.pixel_spacing
        pixels = "" if canvas.smooth else " · nearest"
        canvas.set_corner_text(
            "br",
            [
                f"{spacing[0]:.3g} × {spacing[1]:.3g} mm" if spacing else "no pixel spacing",
                f"zoom {canvas.zoom:.2f}{pixels}",
            ],
        )
        canvas.set_orientation_letters(edge_letters(viewer))


def edge_letters(viewer: ViewerWidget) -> dict[str, str]:
    """From the stack's Image Orientation (Patient), else the shown image's Patient
    Orientation (projection radiographs), through the view's rotation and flips."""
    ctx = viewer.context
    axes: tuple[str, str] | None = None
    if ctx is not None and ctx.stack.orientation is not None:
        axes = image_axes_letters(ctx.stack.orientation)
    elif viewer.labels is not None:
        axes = viewer.labels.patient_orientation
    if axes is None:
        return {}
    return viewer.canvas.view.edge_letters(*axes)
