"""TagViewerWidget: the DICOM header of the shown image as a tree, with a search box.

The rows come from ``dicom.tags.flatten`` run in a worker (reading a header is file I/O); the
search box filters them with ``dicom.tags.filter_rows`` (matches keep their sequence path).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QSize, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_app.dicom.tags import TagRow, as_text, filter_rows, flatten
from desktop_app.qt.plaintext import plain_label, shown, tooltip
from desktop_app.qt.workers import TaskChannel
from desktop_app.studies.volume import SeriesVolume


class TagViewerWidget(QWidget):
    """Tag, keyword, VR and value of every element of the current image's header."""

    rowsShown = Signal(int)  # how many rows are visible after a load or a search

    COLUMNS = ("Tag", "Keyword", "VR", "Value")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tagViewer")
        self.search = QLineEdit(self)
        self.search.setObjectName("tagSearch")
        self.search.setPlaceholderText("Search tag, keyword or value…")
        self.search.setClearButtonEnabled(True)
        self.copy_button = QPushButton("Copy", self)
        self.copy_button.setToolTip("Copy the shown rows as text")
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("tagTree")
        self.tree.setHeaderLabels(list(self.COLUMNS))
        self.tree.setUniformRowHeights(True)
        self.tree.setIndentation(12)
        self.tree.setAlternatingRowColors(True)
        header = self.tree.header()
        header.setStretchLastSection(True)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.resizeSection(1, 145)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.status = QLabel("", self)
        self.status.setObjectName("tagStatus")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.search, 1)
        top.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.status)

        self.rows: list[TagRow] = []
        self._items: list[QTreeWidgetItem] = []
        self._source: tuple[int, int] | None = None  # (id(volume), slice) shown
        self._channel = TaskChannel("tags", self)
        self._channel.finished.connect(self._on_rows)
        self._channel.failed.connect(self._on_failed)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(120)
        self._search_timer.timeout.connect(self.apply_filter)
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        self.copy_button.clicked.connect(self.copy_shown)

    def show_slice(self, volume: SeriesVolume | None, index: int) -> None:
        """Read slice ``index``'s header in a worker and show it (no-op if already shown)."""
        if volume is None:
            self._source = None
            self._set_rows([])
            self.status.setText("No image")
            return
        source = (id(volume), index)
        if source == self._source:
            return
        self._source = source
        self.status.setText("Reading header…")

        def work(progress: Callable[[int, int], None], stop: threading.Event) -> list[TagRow]:
            return flatten(volume.header(index))

        self._channel.submit(work)

    def _on_rows(self, rows: object) -> None:
        self._set_rows(list(rows))  # type: ignore[call-overload]

    def _on_failed(self, message: str) -> None:
        self._set_rows([])
        plain_label(self.status).setText(f"✖ {shown(message, None)}")

    def _set_rows(self, rows: list[TagRow]) -> None:
        self.tree.setUpdatesEnabled(False)
        try:
            self.tree.clear()
            self.rows = rows
            self._items = []
            for row in rows:
                item = QTreeWidgetItem(
                    [row.tag, shown(row.keyword or row.name), shown(row.vr), shown(row.value)]
                )
                item.setToolTip(1, tooltip(row.name))
                item.setToolTip(3, tooltip(row.value))
                if row.parent < 0:
                    self.tree.addTopLevelItem(item)
                else:
                    self._items[row.parent].addChild(item)
                self._items.append(item)
            self.tree.expandAll()
        finally:
            self.tree.setUpdatesEnabled(True)
        self.apply_filter()

    def apply_filter(self) -> None:
        query = self.search.text()
        keep = set(filter_rows(self.rows, query))
        for i, item in enumerate(self._items):
            item.setHidden(i not in keep)
        shown = len(keep)
        total = len(self.rows)
        if total:
            self.status.setText(
                f"{shown} of {total} elements" if query.strip() else f"{total} elements"
            )
        self.rowsShown.emit(shown)

    def shown_rows(self) -> list[TagRow]:
        return [row for row, item in zip(self.rows, self._items) if not item.isHidden()]

    def copy_shown(self) -> None:
        QGuiApplication.clipboard().setText(as_text(self.shown_rows()))

    def shutdown(self) -> None:
        self._channel.shutdown()

    def sizeHint(self) -> QSize:
        size = super().sizeHint()
        size.setWidth(max(size.width(), 420))
        return size
