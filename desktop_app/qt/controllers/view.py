"""ViewController: mouse tools, window/level presets, cine speed, the corner text, the tags dock."""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QDockWidget, QMenu, QPushButton, QSpinBox, QWidget

from desktop_app.dicom.voi import Window, presets_for_modality
from desktop_app.qt.app_settings import AppSettings
from desktop_app.qt.canvas import ImageCanvas
from desktop_app.qt.tag_viewer import TagViewerWidget
from desktop_app.qt.viewer import ViewerWidget

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
        viewer.windowChanged.connect(lambda _w: self.update_corners())
        viewer.cineChanged.connect(self._on_cine_changed)
        self.canvas.viewChanged.connect(self.update_corners)
        tags_dock.visibilityChanged.connect(lambda _v: self.refresh_tags())

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

    def refresh_tags(self) -> None:
        if self.tags_dock.visibleRegion().isEmpty() and not self.tags_dock.isVisible():
            return
        ctx = self.viewer.context
        self.tags.show_slice(ctx.volume if ctx else None, self.viewer.index)

    def update_corners(self) -> None:
        ctx = self.viewer.context
        canvas = self.canvas
        if ctx is None:
            for corner in ("tl", "tr", "bl", "br"):
                canvas.set_corner_text(corner, [])
            return
        stack = ctx.stack
        canvas.set_corner_text("tl", [ctx.description, f"{ctx.modality}  {stack.size_text}"])
        w = self.viewer.window_level
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
        ai = ["AI overlay — research use only"]
        if self.overlay_warning:
            ai.append(f"⚠ {self.overlay_warning}")
        canvas.set_corner_text("tr", ai if canvas.shapes() else [])
