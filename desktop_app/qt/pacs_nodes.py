"""NodeEditor: add or edit a PACS node (and our own AE title and C-MOVE port)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop_app.infra.errors import ConfigError
from desktop_app.pacs.nodes import LocalAE, PacsNode
from desktop_app.qt.theme import POSITIVE


class NodeEditor(QDialog):
    """Add or edit a node; our own AE title and C-MOVE port are edited here too."""

    def __init__(
        self, node: PacsNode | None, local: LocalAE, existing: set[str], parent: QWidget | None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("pacsNodeEditor")
        self.setWindowTitle("Edit PACS node" if node else "Add PACS node")
        self._original = node.name if node else None
        self._existing = existing
        self.result_node: PacsNode | None = None
        self.result_local: LocalAE | None = None
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.name = QLineEdit(node.name if node else "", self)
        self.name.setObjectName("nodeName")
        self.name.setPlaceholderText("e.g. main-pacs")
        self.aet = QLineEdit(node.ae_title if node else "", self)
        self.aet.setObjectName("nodeAet")
        self.aet.setPlaceholderText("the PACS's AE title, e.g. ORTHANC")
        self.aet.setMaxLength(16)
        self.host = QLineEdit(node.host if node else "", self)
        self.host.setObjectName("nodeHost")
        self.host.setPlaceholderText("host name or IP address")
        self.port = QSpinBox(self)
        self.port.setObjectName("nodePort")
        self.port.setRange(1, 65535)
        self.port.setValue(node.port if node else 104)
        self.method = QComboBox(self)
        self.method.setObjectName("nodeMethod")
        self.method.addItem("C-GET (same association)", "get")
        self.method.addItem("C-MOVE (the PACS connects back to us)", "move")
        self.method.setCurrentIndex(1 if node is not None and node.retrieve == "move" else 0)
        self.our_aet = QLineEdit(local.ae_title, self)
        self.our_aet.setObjectName("localAet")
        self.our_aet.setMaxLength(16)
        self.our_port = QSpinBox(self)
        self.our_port.setObjectName("localPort")
        self.our_port.setRange(1, 65535)
        self.our_port.setValue(local.port)
        self.our_port.setToolTip("Where our Storage SCP listens during a C-MOVE")
        self._bind = local.bind_address
        form.addRow("Name", self.name)
        form.addRow("AE title", self.aet)
        form.addRow("Host", self.host)
        form.addRow("Port", self.port)
        form.addRow("Retrieve with", self.method)
        form.addRow("Our AE title", self.our_aet)
        form.addRow("Our C-MOVE port", self.our_port)
        self.error = QLabel("", self)
        self.error.setObjectName("nodeError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {POSITIVE};")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.resize(460, 0)

    def accept(self) -> None:
        """Validate with the core's rules; a bad value keeps the editor open with one line."""
        try:
            node = PacsNode(
                self.name.text(),
                self.aet.text(),
                self.host.text(),
                self.port.value(),
                self.method.currentData(),
            )
            local = LocalAE(self.our_aet.text(), self.our_port.value(), self._bind)
        except ConfigError as err:
            self.error.setText(f"✖ {err.one_line()}")
            return
        if node.name != self._original and node.name in self._existing:
            self.error.setText(f"✖ a node named {node.name!r} exists already")
            return
        self.result_node, self.result_local = node, local
        super().accept()
