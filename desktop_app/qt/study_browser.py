"""StudyBrowserWidget: the patient → study → series tree, with the files that could not be read."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from desktop_app.core.index import StudyIndex
from desktop_app.core.series import SeriesAssembly, assemble

ROLE_KEY = Qt.ItemDataRole.UserRole + 1


def format_dicom_date(value: str) -> str:
    """YYYYMMDD (PS3.5 6.2 DA) → YYYY-MM-DD; anything else is shown as stored."""
    value = (value or "").strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


@dataclass
class StackEntry:
    """One scrollable stack in the tree (a series, or one part of a split series)."""

    key: str
    assembly: SeriesAssembly
    part: int
    modality: str
    description: str


class StudyBrowserWidget(QTreeWidget):
    """Lists what an index found; activating a series row asks the window to show it."""

    stackActivated = Signal(str)  # StackEntry.key

    COLUMNS = ("Patient / study / series", "Mod.", "Images", "Date")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("studyBrowser")
        self.setHeaderLabels(list(self.COLUMNS))
        self.setAlternatingRowColors(True)
        self.setUniformRowHeights(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setIconSize(QSize(40, 40))
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.entries: dict[str, StackEntry] = {}
        self._items: dict[str, QTreeWidgetItem] = {}
        self.itemActivated.connect(self._on_activated)
        self.itemClicked.connect(self._on_activated)

    def populate(self, index: StudyIndex) -> list[StackEntry]:
        """Fill the tree from an index; returns the stacks in display order."""
        self.clear()
        self.entries.clear()
        self._items.clear()
        order: list[StackEntry] = []
        for patient in index.patients:
            p_item = QTreeWidgetItem([patient.name or "(no name)", "", "", ""])
            p_item.setToolTip(0, f"Patient ID: {patient.patient_id or '—'}")
            self.addTopLevelItem(p_item)
            for study in patient.studies:
                s_text = study.description or "(study)"
                s_item = QTreeWidgetItem([s_text, "", "", format_dicom_date(study.date)])
                p_item.addChild(s_item)
                for series in study.series:
                    assembly = assemble(series)
                    if not assembly.stacks:
                        continue
                    for part, stack in enumerate(assembly.stacks):
                        key = f"{series.series_instance_uid}#{part}"
                        desc = series.description or f"Series {series.series_number or ''}".strip()
                        if len(assembly.stacks) > 1:
                            desc = f"{desc} (part {part + 1}/{len(assembly.stacks)})"
                        item = QTreeWidgetItem(
                            [
                                desc,
                                series.modality,
                                str(len(stack)),
                                format_dicom_date(series.date or study.date),
                            ]
                        )
                        item.setData(0, ROLE_KEY, key)
                        tips = [f"{stack.size_text} · {stack.plane or 'unknown plane'}"]
                        if stack.pixel_spacing:
                            tips.append("spacing {:.3g} × {:.3g} mm".format(*stack.pixel_spacing))
                        tips += [f"⚠ {w}" for w in stack.warnings]
                        item.setToolTip(0, "\n".join(tips))
                        if stack.warnings:
                            item.setText(0, f"⚠ {desc}")
                        s_item.addChild(item)
                        entry = StackEntry(key, assembly, part, series.modality, desc)
                        self.entries[key] = entry
                        self._items[key] = item
                        order.append(entry)
        self.expandAll()
        return order

    def set_thumbnail(self, key: str, icon: QIcon) -> None:
        item = self._items.get(key)
        if item is not None:
            item.setIcon(0, icon)

    def select(self, key: str) -> None:
        item = self._items.get(key)
        if item is not None:
            self.setCurrentItem(item)

    def _on_activated(self, item: QTreeWidgetItem, column: int) -> None:
        key = item.data(0, ROLE_KEY)
        if key:
            self.stackActivated.emit(str(key))
