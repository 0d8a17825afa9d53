"""ExportDialog: File ▸ Export… — formats, de-identification, a PACS destination and the folder
(default: the data folder's ``exports/``); the choices are remembered in the settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.infra import userdirs
from desktop_app.infra.errors import RadAssistError

# What each of the exports package's formats (study_export.FORMATS) is called here.
FORMAT_LABELS: dict[str, str] = {
    "sr": "DICOM SR (TID 1500: findings, verdicts, measurements)",
    "sc": "Secondary capture images (key images, overlay burned in)",
    "pdf": "PDF report",
    "json": "JSON (findings and verdicts)",
}
DATE_MODES: tuple[tuple[str, str], ...] = (
    ("shift", "Dates shifted (per patient)"),
    ("remove", "Dates removed"),
    ("keep", "Dates kept"),
)
NO_NODE = ""
EXPORTS_FOLDER = "exports"
SENDABLE = ("sr", "sc")  # the DICOM objects a PACS can store


def default_export_dir() -> Path:
    """``<data folder>/exports``: where exports go unless the reader picks a folder."""
    return userdirs.data_dir(create=False) / EXPORTS_FOLDER


@dataclass
class ExportChoice:
    """What the reader chose. ``node``: a configured PACS node's name to C-STORE the DICOM
    objects to ("" for none); ``open_folder``: show the folder in the file manager afterwards;
    ``add_to_browser``: open the exported folder here (its SR and images join the browser)."""

    out_dir: Path = field(default_factory=default_export_dir)
    formats: tuple[str, ...] = ("sr", "sc", "pdf", "json")
    deidentify: bool = False
    dates: str = "shift"
    node: str = NO_NODE
    open_folder: bool = True
    add_to_browser: bool = True


def configured_nodes() -> list[str]:
    """The names of the PACS nodes in the data folder's configuration ([] if none or it
    can't be read: the dialog then offers no destination)."""
    try:
        from desktop_app.pacs.nodes import NodeConfig

        return sorted(NodeConfig.load().nodes)
    except (RadAssistError, OSError):
        return []


def _flag(settings: QSettings, key: str, default: bool) -> bool:
    value = settings.value(key, default)
    return value if isinstance(value, bool) else str(value).lower() in ("true", "1")


def load_choice(settings: QSettings) -> ExportChoice:
    """The last export's choices (the folder and formats as the reader left them)."""
    from desktop_app.exports.study_export import FORMATS

    choice = ExportChoice()
    raw = settings.value("export/formats", list(FORMATS))
    names = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, (list, tuple)) else []
    choice.formats = tuple(f for f in FORMATS if f in names) or FORMATS
    choice.deidentify = _flag(settings, "export/deidentify", False)
    dates = str(settings.value("export/dates", "shift"))
    choice.dates = dates if dates in dict(DATE_MODES) else "shift"
    choice.node = str(settings.value("export/node", NO_NODE) or NO_NODE)
    folder = str(settings.value("export/folder", "") or "")
    if folder:
        choice.out_dir = Path(folder)
    choice.open_folder = _flag(settings, "export/open_folder", True)
    choice.add_to_browser = _flag(settings, "export/add_to_browser", True)
    return choice


def save_choice(settings: QSettings, choice: ExportChoice) -> None:
    settings.setValue("export/formats", list(choice.formats))
    settings.setValue("export/deidentify", choice.deidentify)
    settings.setValue("export/dates", choice.dates)
    settings.setValue("export/node", choice.node)
    # the default folder is not pinned: it follows RADASSIST_DATA_DIR
    folder = "" if choice.out_dir == default_export_dir() else str(choice.out_dir)
    settings.setValue("export/folder", folder)
    settings.setValue("export/open_folder", choice.open_folder)
    settings.setValue("export/add_to_browser", choice.add_to_browser)


class ExportDialog(QDialog):
    """The export's choices; :meth:`choice` reads them (after ``exec()`` returned Accepted)."""

    def __init__(
        self,
        initial: ExportChoice,
        nodes: list[str],
        study_text: str = "",
        parent: QWidget | None = None,
        lesions_text: str = "",
    ) -> None:
        """``lesions_text``: the reviewed lesions the export writes with the SR (a SEG and an
        SR of their measurements; ``exports.lesion_sr.lesions_line``), "" for none."""
        super().__init__(parent)
        self.lesions_text = lesions_text
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export")
        layout = QVBoxLayout(self)
        if study_text:
            heading = QLabel(study_text, self)
            heading.setWordWrap(True)
            layout.addWidget(heading)
        layout.addWidget(self._formats_box(initial))
        layout.addWidget(self._privacy_box(initial))
        layout.addWidget(self._destination_box(initial, nodes))
        self.warning = QLabel("", self)
        self.warning.setObjectName("exportWarning")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #e0a030;")
        layout.addWidget(self.warning)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.export_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.export_button.setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._update()

    def _formats_box(self, initial: ExportChoice) -> QGroupBox:
        box = QGroupBox("Formats", self)
        col = QVBoxLayout(box)
        self.format_boxes: dict[str, QCheckBox] = {}
        for name, label in FORMAT_LABELS.items():
            check = QCheckBox(label, box)
            check.setObjectName(f"format_{name}")
            check.setChecked(name in initial.formats)
            check.toggled.connect(self._update)
            col.addWidget(check)
            self.format_boxes[name] = check
            if name == "sr":  # the lesions' SEG and SR go with the DICOM SR
                self.lesions_note = QLabel(self.lesions_text, box)
                self.lesions_note.setObjectName("exportLesions")
                self.lesions_note.setWordWrap(True)
                self.lesions_note.setContentsMargins(24, 0, 0, 4)
                self.lesions_note.setVisible(bool(self.lesions_text))
                col.addWidget(self.lesions_note)
        return box

    def _privacy_box(self, initial: ExportChoice) -> QGroupBox:
        box = QGroupBox("Patient identifiers", self)
        col = QVBoxLayout(box)
        self.keep_ids = QRadioButton("Keep them (for this site's own PACS or records)", box)
        self.deidentify = QRadioButton(
            "De-identify (DICOM PS3.15 Basic Profile; the same pseudonyms as "
            "`radassist deidentify`)",
            box,
        )
        self.deidentify.setObjectName("deidentify")
        (self.deidentify if initial.deidentify else self.keep_ids).setChecked(True)
        self.dates = QComboBox(box)
        self.dates.setObjectName("dates")
        for mode, label in DATE_MODES:
            self.dates.addItem(label, mode)
        self.dates.setCurrentIndex(max(0, [m for m, _ in DATE_MODES].index(initial.dates)))
        self.deidentify.toggled.connect(self._update)
        col.addWidget(self.keep_ids)
        col.addWidget(self.deidentify)
        row = QHBoxLayout()
        row.addSpacing(24)
        row.addWidget(self.dates)
        row.addStretch(1)
        col.addLayout(row)
        return box

    def _destination_box(self, initial: ExportChoice, nodes: list[str]) -> QGroupBox:
        box = QGroupBox("Destination", self)
        form = QFormLayout(box)
        self.folder = QLineEdit(str(initial.out_dir), box)
        self.folder.setObjectName("exportFolder")
        self.folder.textChanged.connect(self._update)
        browse = QPushButton("Browse…", box)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        self.node = QComboBox(box)
        self.node.setObjectName("pacsNode")
        self.node.addItem("Don't send", NO_NODE)
        for name in nodes:
            what = "SR, SEG and images" if self.lesions_text else "SR and images"
            self.node.addItem(f"Send {what} to {name}", name)
        if not nodes:
            self.node.setItemText(0, "No PACS nodes configured (File ▸ Query/Retrieve)")
            self.node.setEnabled(False)
        at = self.node.findData(initial.node)
        self.node.setCurrentIndex(max(at, 0))
        form.addRow("PACS", self.node)
        self.open_folder = QCheckBox("Show the folder when done", box)
        self.open_folder.setChecked(initial.open_folder)
        self.add_to_browser = QCheckBox("Add the exported SR and images to the study browser", box)
        self.add_to_browser.setChecked(initial.add_to_browser)
        form.addRow(self.open_folder)
        form.addRow(self.add_to_browser)
        return box

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _update(self) -> None:
        self.dates.setEnabled(self.deidentify.isChecked())
        chosen = [n for n, b in self.format_boxes.items() if b.isChecked()]
        self.lesions_note.setEnabled("sr" in chosen)
        if self.lesions_text:
            self.lesions_note.setText(
                self.lesions_text
                if "sr" in chosen
                else "Reviewed lesions: tick DICOM SR to write their DICOM SEG and SR."
            )
        sendable = any(n in SENDABLE for n in chosen)
        self.node.setEnabled(self.node.count() > 1 and sendable)
        if not sendable:
            self.node.setCurrentIndex(0)
        problem = self._folder_problem()
        self.warning.setText(problem)
        self.warning.setVisible(bool(problem))
        self.export_button.setEnabled(bool(chosen) and not problem)

    def _folder_problem(self) -> str:
        """Why the folder can't take this export ("" if it can): de-identified exports are
        for sharing, so never inside the data folder that holds the pseudonym secret."""
        text = self.folder.text().strip()
        if not text:
            return "Choose a folder to export to."
        if self.deidentify.isChecked():
            from desktop_app.privacy.deid import check_output_folder

            try:
                check_output_folder(Path(text).expanduser())
            except RadAssistError:
                return (
                    "De-identified exports are for sharing: they go outside RadAssist's data "
                    "folder, which holds the pseudonym secret. Choose another folder."
                )
        return ""

    def choice(self) -> ExportChoice:
        return ExportChoice(
            out_dir=Path(self.folder.text().strip()).expanduser(),
            formats=tuple(n for n, b in self.format_boxes.items() if b.isChecked()),
            deidentify=self.deidentify.isChecked(),
            dates=str(self.dates.currentData()),
            node=str(self.node.currentData() or NO_NODE),
            open_folder=self.open_folder.isChecked(),
            add_to_browser=self.add_to_browser.isChecked(),
        )
