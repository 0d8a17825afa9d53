"""SrPanelWidget: a structured report's content (or a presentation state's annotations) as a
readable tree — containers, text, codes, numbers with units, image references and regions.

It shows what ``desktop_app.dicom.srcontent`` / ``gsps`` read; every value is escaped
(``plaintext.shown``), never rich text. Double-clicking a row that references an image asks
the window to show that image (``imageRequested``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_app.dicom.gsps import ImageRef, PresentationState
from desktop_app.dicom.srcontent import ContentNode, SrDocument
from desktop_app.qt.plaintext import plain_label, shown, tooltip

ROLE_IMAGE = Qt.ItemDataRole.UserRole + 1
REF_COLOR = "#5cd6ff"
MUTED = "#9aa1aa"

Shown = SrDocument | PresentationState


class SrPanelWidget(QWidget):
    """The content of one SR or presentation state; empty until one is chosen."""

    imageRequested = Signal(str, int)  # SOP Instance UID, frame (1-based; 0: the first)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("srPanel")
        self.title = plain_label(QLabel("", self))
        self.title.setObjectName("srTitle")
        self.title.setWordWrap(True)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.info = plain_label(QLabel("", self))
        self.info.setWordWrap(True)
        self.info.setStyleSheet(f"color: {MUTED}")
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("srTree")
        self.tree.setHeaderLabels(["Item", "Value"])
        self.tree.setUniformRowHeights(True)
        self.tree.setIndentation(14)
        self.tree.setWordWrap(False)
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(0, 190)
        self.tree.itemDoubleClicked.connect(self._on_double_click)
        self.hint = plain_label(QLabel("Select an SR or presentation state in Studies.", self))
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet(f"color: {MUTED}")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(self.info)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.hint)
        self.document: Shown | None = None

    # ------------------------------------------------------------------ content
    def show_document(self, document: Shown | None, error: str = "") -> None:
        """Show ``document`` (None clears the panel; ``error`` says why it is empty)."""
        self.document = document
        self.tree.clear()
        if document is None:
            self.title.setText("")
            self.info.setText(shown(error, 300))
            self.hint.setText("Select an SR or presentation state in Studies.")
            return
        if isinstance(document, SrDocument):
            self._show_sr(document)
        else:
            self._show_presentation_state(document)
        self.tree.expandToDepth(3)
        # the item column as wide as its names, up to 60 % of the panel (values need room)
        wanted = self.tree.sizeHintForColumn(0) + 12
        self.tree.setColumnWidth(0, max(160, min(wanted, int(self.tree.viewport().width() * 0.6))))

    def _show_sr(self, doc: SrDocument) -> None:
        self.title.setText(shown(f"SR: {doc.title}"))
        facts = [doc.kind, doc.template, doc.completion, doc.verification, _date(doc.date)]
        facts += [doc.manufacturer, doc.series_description]
        self.info.setText(shown(" · ".join(f for f in facts if f), 400))
        parents: dict[str, QTreeWidgetItem] = {}
        for node in doc.nodes():
            item = self._node_item(node)
            parent = parents.get(node.position.rpartition(".")[0])
            if parent is None:
                self.tree.addTopLevelItem(item)
            else:
                parent.addChild(item)
            parents[node.position] = item
        if doc.truncated:
            self.tree.addTopLevelItem(QTreeWidgetItem([f"… cut at {doc.node_count} items", ""]))
        regions = len(doc.regions)
        self.hint.setText(
            f"{regions} region(s) drawn on the images they reference. "
            "Double-click an image reference to show it."
            if regions
            else "Double-click an image reference to show it."
        )

    def _node_item(self, node: ContentNode) -> QTreeWidgetItem:
        name = shown(node.name or node.value_type.title() or "(item)")
        item = QTreeWidgetItem([name, shown(node.value)])
        rel = node.relationship.lower()
        item.setToolTip(
            0, tooltip(f"{node.position} · {rel or 'root'} · {node.value_type}", node.name)
        )
        item.setToolTip(1, tooltip(node.value))
        if node.value_type == "CONTAINER":
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
        if node.relationship in ("HAS OBS CONTEXT", "HAS CONCEPT MOD", "HAS ACQ CONTEXT"):
            for col in (0, 1):
                item.setForeground(col, QColor(MUTED))
        if node.image is not None:
            item.setData(0, ROLE_IMAGE, _ref_data(node.image))
            item.setForeground(1, QColor(REF_COLOR))
        return item

    def _show_presentation_state(self, ps: PresentationState) -> None:
        self.title.setText(shown(f"PR: {ps.label or ps.description or 'presentation state'}"))
        facts = [ps.kind, ps.description, ps.creator, f"{len(ps.images)} image(s)"]
        self.info.setText(shown(" · ".join(f for f in facts if f), 400))
        images = QTreeWidgetItem(["Referenced images", str(len(ps.images))])
        self.tree.addTopLevelItem(images)
        for ref in ps.images[:500]:
            frames = f"frame {', '.join(map(str, ref.frames[:8]))}" if ref.frames else ""
            child = QTreeWidgetItem([f"…{shown(ref.sop_instance_uid[-16:])}", frames])
            child.setData(0, ROLE_IMAGE, _ref_data(ref))
            child.setForeground(0, QColor(REF_COLOR))
            images.addChild(child)
        for group in ps.groups:
            layer = QTreeWidgetItem([shown(f"Layer {group.layer}"), _applies(group.images)])
            font = layer.font(0)
            font.setBold(True)
            layer.setFont(0, font)
            self.tree.addTopLevelItem(layer)
            for graphic, units in group.graphics[:2000]:
                count = f"{len(graphic.points)} point(s), {units.lower()} units"
                layer.addChild(QTreeWidgetItem([graphic.kind.title(), count]))
            for text in group.texts[:2000]:
                layer.addChild(QTreeWidgetItem(["Text", shown(text.text)]))
        for problem in ps.problems:
            self.tree.addTopLevelItem(QTreeWidgetItem(["⚠", shown(problem)]))
        self.hint.setText("Drawn on the images it references. Double-click an image to show it.")

    # ------------------------------------------------------------------ for tests and the CLI
    def rows(self) -> list[tuple[int, str, str]]:
        """Every row as (depth, item, value), in tree order."""
        out: list[tuple[int, str, str]] = []
        stack = [(self.tree.topLevelItem(i), 0) for i in range(self.tree.topLevelItemCount())]
        stack.reverse()
        while stack:
            item, depth = stack.pop()
            if item is None:
                continue
            out.append((depth, item.text(0), item.text(1)))
            stack.extend((item.child(k), depth + 1) for k in reversed(range(item.childCount())))
        return out

    def _on_double_click(self, item: QTreeWidgetItem, _column: int) -> None:
        data = item.data(0, ROLE_IMAGE)
        if isinstance(data, list | tuple) and len(data) == 2:
            self.imageRequested.emit(str(data[0]), int(data[1]))


def _ref_data(ref: ImageRef) -> list[object]:
    return [ref.sop_instance_uid, ref.frames[0] if ref.frames else 0]


def _applies(images: tuple[ImageRef, ...]) -> str:
    return f"on {len(images)} image(s)" if images else "on all its images"


def _date(value: str) -> str:
    value = value.strip()
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if len(value) == 8 and value.isdigit() else value


__all__ = ["SrPanelWidget"]
