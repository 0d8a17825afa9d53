"""StudyBrowserWidget: the patient → study → series tree with thumbnails.

Patient and study rows span the whole width so their text is never squeezed (the study row
carries the date and description); series rows show a thumbnail (made in a worker by
``studies.thumbnails``), the description, modality and image count. Activating a series asks the
window to show it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from desktop_app.dicom.gsps import is_presentation_state
from desktop_app.dicom.rtstruct import is_rt_structure_set
from desktop_app.dicom.segread import is_segmentation
from desktop_app.dicom.srcontent import is_structured_report
from desktop_app.infra.errors import RadAssistError
from desktop_app.qt.images import array_to_qimage
from desktop_app.qt.plaintext import shown, tooltip
from desktop_app.qt.workers import TaskChannel
from desktop_app.studies.index import InstanceInfo, SeriesNode, StudyIndex
from desktop_app.studies.series import SeriesAssembly, SliceStack, assemble
from desktop_app.studies.thumbnails import stack_thumbnail

ROLE_KEY = Qt.ItemDataRole.UserRole + 1
ROLE_OBJECT = Qt.ItemDataRole.UserRole + 2  # an SR, presentation state, SEG or RTSTRUCT row
THUMB_PX = 64  # readable at 1280×720 (44 px was ~36 px of image)
STACK_MIME = "application/x-radassist-stack"  # a series dragged to a viewport: its key


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
    study_uid: str = ""

    @property
    def stack(self) -> SliceStack:
        return self.assembly.stacks[self.part]


@dataclass
class ObjectEntry:
    """A non-image object in the tree: a structured report ("SR"), a presentation state
    ("PR"), a segmentation ("SEG") or an RT structure set ("RTSTRUCT"), listed as a series row
    of its own; activating it opens the SR panel (SR, PR) or the image it is drawn on."""

    key: str
    instance: InstanceInfo
    kind: str
    description: str
    study_uid: str = ""


OBJECT_WHAT = {
    "SR": "structured report",
    "PR": "presentation state",
    "SEG": "segmentation, drawn over the images it references",
    "RTSTRUCT": "RT structure set, drawn over the images it references",
}


def object_kind(inst: InstanceInfo) -> str | None:
    """The kind, "SR", "PR", "SEG" or "RTSTRUCT", of an instance of those SOP classes (a
    SEG's frames are masks, not images), else None."""
    if is_segmentation(inst.sop_class_uid):
        return "SEG"
    if inst.has_pixels:
        return None
    if is_rt_structure_set(inst.sop_class_uid):
        return "RTSTRUCT"
    if is_structured_report(inst.sop_class_uid):
        return "SR"
    return "PR" if is_presentation_state(inst.sop_class_uid) else None


class StudyBrowserWidget(QTreeWidget):
    """Lists what an index found; activating a series row asks the window to show it."""

    stackActivated = Signal(str)  # StackEntry.key
    objectActivated = Signal(str)  # ObjectEntry.key (an SR or presentation state)
    thumbnailsDone = Signal()

    COLUMNS = ("Series", "Mod", "Img")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("studyBrowser")
        self.setHeaderLabels(list(self.COLUMNS))
        self.setAlternatingRowColors(False)
        self.setUniformRowHeights(False)
        self.setRootIsDecorated(True)
        self.setIndentation(14)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragEnabled(True)  # a series row dragged onto a viewport shows it there
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setIconSize(QSize(THUMB_PX, THUMB_PX))
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setWordWrap(True)  # a long series name takes a second line beside its thumbnail
        header = self.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(36)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.entries: dict[str, StackEntry] = {}
        self.objects: dict[str, ObjectEntry] = {}
        self._items: dict[str, QTreeWidgetItem] = {}
        self.itemActivated.connect(self._on_activated)
        self.itemClicked.connect(self._on_activated)
        self._thumbs = TaskChannel("thumbnails", self)
        self._thumbs.partial.connect(self._on_thumbnail)
        self._thumbs.finished.connect(lambda _r: self.thumbnailsDone.emit())
        self._thumbs.cancelled.connect(self.thumbnailsDone.emit)
        self._thumbs.failed.connect(lambda _m: self.thumbnailsDone.emit())
        self._placeholder_icon = self._blank_icon()

    def mimeTypes(self) -> list[str]:
        return [STACK_MIME]

    def mimeData(self, items: Sequence[QTreeWidgetItem]) -> QMimeData:
        """A dragged series row carries its stack key (other rows carry nothing)."""
        data = QMimeData()
        keys = [str(key) for item in items if (key := item.data(0, ROLE_KEY))]
        if keys:
            data.setData(STACK_MIME, keys[0].encode("utf-8"))
        return data

    def sizeHint(self) -> QSize:
        return QSize(380, 400)

    def _blank_icon(self) -> QIcon:
        pix = QPixmap(THUMB_PX, THUMB_PX)
        pix.fill(QColor("#202226"))
        return QIcon(pix)

    def populate(
        self, index: StudyIndex, assemblies: dict[str, SeriesAssembly] | None = None
    ) -> list[StackEntry]:
        """Fill the tree from an index; returns the stacks in display order. ``assemblies``
        (by Series Instance UID) are the series already ordered in a worker; any missing one
        is assembled here. Thumbnails follow from a worker."""
        assemblies = assemblies or {}
        self._thumbs.cancel()
        self.clear()
        self.entries.clear()
        self.objects.clear()
        self._items.clear()
        order: list[StackEntry] = []
        for patient in index.patients:
            name = shown((patient.name or "(no name)").replace("^", " ").strip())
            pid = f"  ·  ID {shown(patient.patient_id)}" if patient.patient_id else ""
            p_item = QTreeWidgetItem([f"{name}{pid}"])
            p_item.setToolTip(0, tooltip(f"{name}{pid}"))
            font = p_item.font(0)
            font.setBold(True)
            p_item.setFont(0, font)
            self.addTopLevelItem(p_item)
            p_item.setFirstColumnSpanned(True)
            for study in patient.studies:
                date = format_dicom_date(study.date)
                s_text = "  —  ".join(shown(t) for t in (date, study.description or "(study)") if t)
                s_item = QTreeWidgetItem([s_text])
                s_item.setForeground(0, QColor("#b8bec6"))
                s_item.setToolTip(0, tooltip(s_text))
                p_item.addChild(s_item)
                s_item.setFirstColumnSpanned(True)
                for series in study.series:
                    if series.instances and all(object_kind(i) for i in series.instances):
                        self._add_objects(s_item, series, study.study_instance_uid)
                        continue  # only non-image objects (a SEG's frames are not images)
                    assembly = assemblies.get(series.series_instance_uid) or assemble(series)
                    for part, stack in enumerate(assembly.stacks):
                        # 1-based part, as SliceStack.part and SeriesResult.part (and exports)
                        key = f"{series.series_instance_uid}#{part + 1}"
                        desc = shown(
                            series.description or f"Series {series.series_number or ''}".strip()
                        )
                        if len(assembly.stacks) > 1:
                            desc = f"{desc} (part {part + 1}/{len(assembly.stacks)})"
                        label = f"⚠ {desc}" if stack.warnings else desc
                        item = QTreeWidgetItem([label, shown(series.modality), str(len(stack))])
                        item.setData(0, ROLE_KEY, key)
                        item.setIcon(0, self._placeholder_icon)
                        item.setTextAlignment(
                            2, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                        )
                        when = format_dicom_date(series.date or study.date)
                        number = f"#{series.series_number} · " if series.series_number else ""
                        tips = [
                            desc,
                            f"{number}{series.modality} · {len(stack)} image(s) · {when}",
                            f"{stack.size_text} · {stack.plane or 'unknown plane'}",
                        ]
                        if stack.pixel_spacing:
                            tips.append("spacing {:.3g} × {:.3g} mm".format(*stack.pixel_spacing))
                        if stack.slice_spacing:
                            tips.append(f"slice spacing {stack.slice_spacing:.3g} mm")
                        tips += [f"⚠ {w}" for w in stack.warnings]
                        item.setToolTip(0, tooltip(*tips))
                        s_item.addChild(item)
                        entry = StackEntry(
                            key, assembly, part, series.modality, desc, study.study_instance_uid
                        )
                        self.entries[key] = entry
                        self._items[key] = item
                        order.append(entry)
                    self._add_objects(s_item, series, study.study_instance_uid)
        self.expandAll()
        self._start_thumbnails(order)
        return order

    def _start_thumbnails(self, order: list[StackEntry]) -> None:
        if not order:
            return
        jobs = [(e.key, e.stack) for e in order]

        def work(
            progress: Callable[[int, int], None],
            stop: threading.Event,
            emit: Callable[[object], None],
        ) -> int:
            made = 0
            for i, (key, stack) in enumerate(jobs):
                if stop.is_set():
                    break
                try:
                    emit((key, stack_thumbnail(stack, THUMB_PX)))
                    made += 1
                except RadAssistError:
                    emit((key, None))  # the series' own error shows when it is opened
                progress(i + 1, len(jobs))
            return made

        self._thumbs.submit_streaming(work)

    def _on_thumbnail(self, item: tuple[str, np.ndarray | None]) -> None:
        key, array = item
        tree_item = self._items.get(key)
        if tree_item is None:
            return
        if array is None:
            tree_item.setIcon(0, QIcon())
            return
        self.set_thumbnail(key, QIcon(QPixmap.fromImage(array_to_qimage(np.asarray(array)))))

    def set_thumbnail(self, key: str, icon: QIcon) -> None:
        item = self._items.get(key)
        if item is not None:
            item.setIcon(0, icon)

    def has_thumbnail(self, key: str) -> bool:
        item = self._items.get(key)
        return item is not None and item.icon(0).cacheKey() != self._placeholder_icon.cacheKey()

    def select(self, key: str) -> None:
        item = self._items.get(key)
        if item is not None:
            self.setCurrentItem(item)

    def shutdown(self) -> None:
        self._thumbs.shutdown()

    def _add_objects(self, s_item: QTreeWidgetItem, series: SeriesNode, study_uid: str) -> None:
        """A row per SR or presentation state of ``series`` ("SR: <description>")."""
        for inst in series.instances:
            kind = object_kind(inst)
            if kind is None:
                continue
            key = f"object:{inst.sop_instance_uid}"
            desc = shown(series.description or f"Series {series.series_number or ''}".strip())
            label = f"{kind}: {desc}"
            item = QTreeWidgetItem([label, shown(series.modality), ""])
            item.setData(0, ROLE_OBJECT, key)
            what = OBJECT_WHAT[kind]
            action = "click to show it" if kind in ("SEG", "RTSTRUCT") else "click to show content"
            item.setToolTip(0, tooltip(label, what, action))
            s_item.addChild(item)
            self.objects[key] = ObjectEntry(key, inst, kind, desc, study_uid)
            self._items[key] = item

    def _on_activated(self, item: QTreeWidgetItem, column: int) -> None:
        obj = item.data(0, ROLE_OBJECT)
        if obj:
            self.objectActivated.emit(str(obj))
            return
        key = item.data(0, ROLE_KEY)
        if key:
            self.stackActivated.emit(str(key))
