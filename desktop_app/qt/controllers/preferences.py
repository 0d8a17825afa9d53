"""PreferencesController: the settings dialog and applying what it returns, the keyboard
shortcuts (rebinding and the cheat-sheet), and Help ▸ About."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMessageBox, QWidget

from desktop_app import RESEARCH_USE_NOTICE, __version__
from desktop_app.dicom.limits import ReadLimits, interactive_limits
from desktop_app.qt.app_settings import AppSettings
from desktop_app.qt.controllers.overlays import OverlayController
from desktop_app.qt.controllers.review import ReviewController
from desktop_app.qt.controllers.runs import RunController
from desktop_app.qt.dialogs import SettingsDialog, ShortcutsDialog
from desktop_app.settings import shortcuts

DIALOG_KEYS = (
    "review/reviewer", "inference/device", "inference/auto_run", "inference/model_path",
    "overlay/colormap", "overlay/opacity", "overlay/heatmap", "overlay/outline",
    "overlay/box", "overlay/labels", "reading/max_object_mib",
)  # fmt: skip


class PreferencesController(QObject):
    """Stores and applies settings; binds the actions' keys from the shortcut table."""

    def __init__(
        self,
        host: QWidget,
        prefs: AppSettings,
        acts: Mapping[str, QAction],
        overlays: OverlayController,
        review: ReviewController,
        runs: RunController,
    ) -> None:
        super().__init__(host)
        self.host = host
        self.prefs = prefs
        self.acts = acts
        self.overlays = overlays
        self.review = review
        self.runs = runs
        self.shortcut_table: dict[str, str] = {}
        self.shortcut_dialog: ShortcutsDialog | None = None
        self.settings_dialog: SettingsDialog | None = None

    def apply_shortcuts(self, table: dict[str, str]) -> None:
        """Bind each action to its key from ``table`` (action id -> key sequence text)."""
        for action_id, act in self.acts.items():
            spec = shortcuts.BY_ID.get(action_id)
            if spec is None:
                continue  # no configurable key (Help ▸ About)
            seq = table.get(action_id, "")
            act.setShortcut(QKeySequence(seq) if seq else QKeySequence())
            act.setToolTip(f"{spec.label}  ({seq})" if seq else spec.label)
        self.shortcut_table = dict(table)
        if self.shortcut_dialog is not None:
            self.shortcut_dialog.set_table(self.shortcut_table)

    def open_settings(self) -> None:
        values = {k: self.prefs.get(k) for k in DIALOG_KEYS}
        dialog = SettingsDialog(values, self.shortcut_table, self.host)
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
        self.overlays.apply_settings()
        inference = self.runs.inference
        inference.configure(
            self.prefs.get("inference/model_path") or None, self.prefs.get("inference/device")
        )
        self.runs.show_model_text()
        self.runs.show_device(inference.device_label(), "")
        state = self.review.current_state()
        if state is not None:
            state.reviewer = self.review.reviewer()
        colormap = self.prefs.get("overlay/colormap")
        if colormap != old_colormap:
            self.runs.recolor(str(colormap))

    def read_limits(self) -> ReadLimits:
        """The decode budget the GUI opens files with: the setting "Largest image to open"
        (``reading/max_object_mib``, 512 MiB unless raised) as ReadLimits."""
        return interactive_limits(int(self.prefs.get("reading/max_object_mib")))

    def show_shortcuts(self) -> None:
        if self.shortcut_dialog is None:
            self.shortcut_dialog = ShortcutsDialog(self.shortcut_table, self.host)
        self.shortcut_dialog.show()
        self.shortcut_dialog.raise_()

    def show_about(self) -> None:
        QMessageBox.about(
            self.host,
            "About RadAssist",
            f"<b>RadAssist {__version__}</b><br>Open-source medical imaging assistant.<br><br>"
            f"<b>{RESEARCH_USE_NOTICE}.</b> Not a certified medical device.",
        )

    def close_dialogs(self) -> None:
        if self.shortcut_dialog is not None:
            self.shortcut_dialog.close()
