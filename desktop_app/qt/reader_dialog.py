"""ReaderNameDialog: asks once for the reader's name, which every verdict and audit record carries."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout, QWidget

MAX_NAME_CHARS = 120


class ReaderNameDialog(QDialog):
    """ "Who is reading?": the name goes into Settings (``review/reviewer``; editable later in
    Preferences) and onto each verdict, the audit trail and the exports. OK needs a name."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("readerNameDialog")
        self.setWindowTitle("Reader's name")
        text = QLabel(
            "Your name is recorded with each verdict, in the audit trail and in the exported "
            "reports (you can change it later in Settings).",
            self,
        )
        text.setWordWrap(True)
        self.name_edit = QLineEdit(self)
        self.name_edit.setObjectName("readerNameEdit")
        self.name_edit.setPlaceholderText("e.g. Dr A. Reader")
        self.name_edit.setMaxLength(MAX_NAME_CHARS)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.name_edit.textChanged.connect(self._update_ok)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.name_edit)
        layout.addWidget(self.buttons)
        self._update_ok()

    def name(self) -> str:
        return " ".join(self.name_edit.text().split())

    def _update_ok(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ok.setEnabled(bool(self.name()))
