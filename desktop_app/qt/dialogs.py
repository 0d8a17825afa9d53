"""Dialogs: settings (with shortcut rebinding and the models list), the shortcut cheat-sheet,
the model card."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QKeySequenceEdit,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop_app.model.catalog import ModelCatalog, load_catalog
from desktop_app.settings import schema, shortcuts
from desktop_app.settings.schema import COLORMAPS, DEVICES


class SettingsDialog(QDialog):
    """Edits a copy of the settings; ``values()`` and ``shortcut_table()`` after accept. The
    Models tab lists ``catalog`` (default: the bundled and installed models, read now)."""

    def __init__(
        self,
        values: dict[str, Any],
        shortcut_table: dict[str, str],
        parent: QWidget | None = None,
        *,
        catalog: ModelCatalog | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("RadAssist settings")
        self.resize(640, 560)
        tabs = QTabWidget(self)
        tabs.addTab(self._build_general_tab(values), "General")
        tabs.addTab(self._build_keys_tab(shortcut_table), "Keyboard shortcuts")
        tabs.addTab(self._build_models_tab(catalog or load_catalog()), "Models")
        self.tabs = tabs

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs, 1)
        layout.addWidget(self.buttons)
        self._check_conflicts()

    def _build_general_tab(self, values: dict[str, Any]) -> QWidget:
        general = QWidget(self)
        form = QFormLayout(general)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.reviewer = QLineEdit(str(values.get("review/reviewer", "")), general)
        self.reviewer.setObjectName("reviewerEdit")
        self.reviewer.setPlaceholderText("Shown on every verdict and in the audit trail")
        form.addRow("Reviewer name", self.reviewer)
        self.device = QComboBox(general)
        self.device.setObjectName("deviceCombo")
        for d in DEVICES:
            self.device.addItem(
                {"auto": "Automatic (CUDA, then MPS, then CPU)"}.get(d, d.upper()), d
            )
        self.device.setCurrentIndex(max(0, self.device.findData(values.get("inference/device"))))
        form.addRow("Device", self.device)
        self.auto_run = QCheckBox("Run the model when a series opens", general)
        self.auto_run.setObjectName("autoRunCheck")
        self.auto_run.setChecked(bool(values.get("inference/auto_run")))
        form.addRow("", self.auto_run)
        model_row = QHBoxLayout()
        self.model_path = QLineEdit(str(values.get("inference/model_path", "")), general)
        self.model_path.setPlaceholderText("Chosen per series (see the Models tab)")
        browse = QPushButton("Browse…", general)
        browse.clicked.connect(self._browse_model)
        model_row.addWidget(self.model_path, 1)
        model_row.addWidget(browse)
        form.addRow("Model file", model_row)
        self.colormap = QComboBox(general)
        self.colormap.setObjectName("colormapCombo")
        self.colormap.addItems(list(COLORMAPS))
        self.colormap.setCurrentText(str(values.get("overlay/colormap", COLORMAPS[0])))
        form.addRow("Heatmap colormap", self.colormap)
        self.opacity = QDoubleSpinBox(general)
        self.opacity.setRange(0.0, 1.0)
        self.opacity.setSingleStep(0.05)
        self.opacity.setValue(float(values.get("overlay/opacity", 0.45)))
        form.addRow("Heatmap opacity", self.opacity)
        self.layer_checks: dict[str, QCheckBox] = {}
        for key, text in (
            ("overlay/heatmap", "Heatmap"),
            ("overlay/outline", "Outlines"),
            ("overlay/box", "Boxes"),
            ("overlay/labels", "Label text"),
        ):
            check = QCheckBox(text, general)
            check.setChecked(bool(values.get(key, True)))
            self.layer_checks[key] = check
            form.addRow("Show by default" if key == "overlay/heatmap" else "", check)
        budget = schema.spec("reading/max_object_mib")
        self.max_object = QSpinBox(general)
        self.max_object.setObjectName("maxObjectSpin")
        self.max_object.setRange(int(budget.minimum or 1), int(budget.maximum or budget.default))
        self.max_object.setSingleStep(64)
        self.max_object.setSuffix(" MiB")
        self.max_object.setValue(int(values.get(budget.key, budget.default)))
        self.max_object.setToolTip(
            "Decoded pixels of one image or multi-frame object; larger files are refused "
            "before they are read. Raise only for files you trust."
        )
        form.addRow("Largest image to open", self.max_object)
        return general

    def _build_keys_tab(self, shortcut_table: dict[str, str]) -> QWidget:
        keys = QWidget(self)
        keys_layout = QVBoxLayout(keys)
        self.table = QTableWidget(0, 3, keys)
        self.table.setObjectName("shortcutTable")
        self.table.setHorizontalHeaderLabels(["Group", "Action", "Shortcut"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.editors: dict[str, QKeySequenceEdit] = {}
        for spec in shortcuts.DEFAULT_SHORTCUTS:
            if not spec.configurable:
                continue
            row = self.table.rowCount()
            self.table.insertRow(row)
            self.table.setItem(row, 0, QTableWidgetItem(spec.group))
            self.table.setItem(row, 1, QTableWidgetItem(spec.label))
            edit = QKeySequenceEdit(QKeySequence(shortcut_table.get(spec.id, spec.default)), keys)
            edit.setClearButtonEnabled(True)
            edit.keySequenceChanged.connect(lambda _s: self._check_conflicts())
            self.table.setCellWidget(row, 2, edit)
            self.editors[spec.id] = edit
        self.table.resizeColumnToContents(0)
        self.table.setColumnWidth(2, 170)
        self.conflict_label = QLabel("", keys)
        self.conflict_label.setObjectName("conflictLabel")
        self.conflict_label.setWordWrap(True)
        restore = QPushButton("Restore defaults", keys)
        restore.clicked.connect(self._restore_defaults)
        keys_layout.addWidget(self.table, 1)
        keys_layout.addWidget(self.conflict_label)
        keys_layout.addWidget(restore, 0, Qt.AlignmentFlag.AlignLeft)
        return keys

    MODEL_COLUMNS = ("Model", "Task", "Intended input", "Where", "File", "Status")

    def _build_models_tab(self, catalog: ModelCatalog) -> QWidget:
        """The catalog, read-only: one row per model file (unusable ones with their reason),
        the installed-models folder and a button to open it."""
        page = QWidget(self)
        layout = QVBoxLayout(page)
        intro = QLabel(
            "With no model file chosen on the General tab, each series runs the first model "
            "below whose intended input fits it. Install a model by copying its .safetensors "
            "file into the installed-models folder.",
            page,
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.models_table = QTableWidget(0, len(self.MODEL_COLUMNS), page)
        self.models_table.setObjectName("modelsTable")
        self.models_table.setHorizontalHeaderLabels(list(self.MODEL_COLUMNS))
        self.models_table.verticalHeader().setVisible(False)
        self.models_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.models_table.setWordWrap(True)  # an unusable file's reason wraps in Status
        for entry in catalog.entries:
            row = self.models_table.rowCount()
            self.models_table.insertRow(row)
            name = f"{entry.name} {entry.version}" if entry.usable else "—"
            status = "usable" if entry.usable else f"unusable: {entry.problem}"
            cells = (name, entry.task, entry.input_text, entry.origin, entry.file_name, status)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(entry.path) if col == 4 else text)
                self.models_table.setItem(row, col, item)
        header = self.models_table.horizontalHeader()
        for col in range(len(self.MODEL_COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(self.MODEL_COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        rows = self.models_table.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # follows the wrap
        layout.addWidget(self.models_table, 1)
        if not catalog.entries:
            layout.addWidget(QLabel("No model files found in either folder.", page))
        folder_row = QHBoxLayout()
        self.models_folder = QLabel(f"Installed models: {catalog.installed_dir}", page)
        self.models_folder.setObjectName("modelsFolderLabel")
        self.models_folder.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.models_folder.setToolTip(f"Bundled models: {catalog.bundled_dir}")
        open_folder = QPushButton("Open folder", page)
        open_folder.setObjectName("openModelsFolder")
        open_folder.clicked.connect(lambda: self._open_models_folder(catalog.installed_dir))
        folder_row.addWidget(self.models_folder, 1)
        folder_row.addWidget(open_folder)
        layout.addLayout(folder_row)
        return page

    def _open_models_folder(self, folder: Path) -> bool:
        """Create the installed-models folder if needed and show it in the file manager."""
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            self.models_folder.setText(f"Can't create {folder}: {err.strerror or err}")
            return False
        return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))))

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a model file", "", "RadAssist model (*.safetensors)"
        )
        if path:
            self.model_path.setText(path)

    def _restore_defaults(self) -> None:
        for action_id, edit in self.editors.items():
            edit.setKeySequence(QKeySequence(shortcuts.BY_ID[action_id].default))

    def shortcut_table(self) -> dict[str, str]:
        table = shortcuts.effective()
        for action_id, edit in self.editors.items():
            table[action_id] = edit.keySequence().toString(QKeySequence.SequenceFormat.PortableText)
        return table

    def _check_conflicts(self) -> None:
        found = shortcuts.conflicts(self.shortcut_table())
        ok = (
            self.buttons.button(QDialogButtonBox.StandardButton.Ok)
            if hasattr(self, "buttons")
            else None
        )
        if found:
            lines = [
                f"{key}: " + ", ".join(shortcuts.BY_ID[a].label for a in ids)
                for key, ids in found.items()
            ]
            self.conflict_label.setText("⚠ Used twice — " + "; ".join(lines))
        else:
            self.conflict_label.setText("")
        if ok is not None:
            ok.setEnabled(not found)

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "review/reviewer": self.reviewer.text().strip(),
            "inference/device": self.device.currentData(),
            "inference/auto_run": self.auto_run.isChecked(),
            "inference/model_path": self.model_path.text().strip(),
            "overlay/colormap": self.colormap.currentText(),
            "overlay/opacity": float(self.opacity.value()),
            "reading/max_object_mib": int(self.max_object.value()),
        }
        out.update({key: check.isChecked() for key, check in self.layer_checks.items()})
        return out


def cheat_sheet_html(table: dict[str, str]) -> str:
    """The shortcut table as HTML, two groups side by side per row."""
    groups = shortcuts.cheat_sheet(table)
    cells = []
    for group, rows in groups:
        body = "".join(
            f"<tr><td class='k'>{html.escape(key)}</td><td>{html.escape(label)}</td></tr>"
            for key, label in rows
        )
        cells.append(f"<h3>{html.escape(group)}</h3><table cellspacing='0'>{body}</table>")
    pairs = [cells[i : i + 2] for i in range(0, len(cells), 2)]
    grid = "".join(
        "<tr>" + "".join(f"<td valign='top' width='50%'>{c}</td>" for c in pair) + "</tr>"
        for pair in pairs
    )
    style = (
        "<style>h3{color:#7fb2e5;margin:8px 0 4px 0;} td{padding:2px 10px 2px 0;}"
        " td.k{color:#f0c060;font-family:monospace;font-weight:bold;white-space:nowrap;}</style>"
    )
    return f"{style}<table width='100%'>{grid}</table>"


class ShortcutsDialog(QDialog):
    """Help ▸ Keyboard shortcuts (also '?'): every action and its key, by group."""

    def __init__(self, table: dict[str, str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(760, 640)
        self.browser = QTextBrowser(self)
        self.browser.setObjectName("shortcutSheet")
        self.set_table(table)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser, 1)
        layout.addWidget(close)

    def set_table(self, table: dict[str, str]) -> None:
        self.browser.setHtml(cheat_sheet_html(table))


class ModelInfoDialog(QDialog):
    """The model card (markdown) of the loaded model."""

    def __init__(self, markdown: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelInfoDialog")
        self.setWindowTitle("Model information")
        self.resize(720, 680)
        self.browser = QTextBrowser(self)
        self.browser.setObjectName("modelCard")
        self.browser.setOpenExternalLinks(False)
        self.browser.setMarkdown(markdown)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser, 1)
        layout.addWidget(close)
