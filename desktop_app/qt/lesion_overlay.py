"""Lesion masks on the canvas: a segmentation's lesions (ids in a label volume) drawn as the SEG
masks are (``dicom_graphics.MaskItem``: translucent fill and pixel outline), one stable colour
per lesion with its "L1" label, the selected lesion thicker and rejected ones dashed and dim;
and where each lesion lies in the stack (its slices, its largest slice) for the marker strip
and next/previous lesion.

The fill follows the heatmap layer (H: a segmentation's mask is its per-pixel output), the
outline the outline layer (O), the "L1" labels the label-text layer (T); X and the held V hide
them with the rest of the AI overlays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen, QTransform

from desktop_app.dicom.segread import mask_edges
from desktop_app.inference.overlays import LESION_COLOURS
from desktop_app.qt.dicom_graphics import DicomGraphicsLayer, MaskItem, bitmap
from desktop_app.qt.plaintext import shown

#: One colour per lesion id, repeating after ten (``inference.overlays.LESION_COLOURS``, which
#: ``predict``'s overlay PNG uses too): distinct on a grey CT, apart from the findings' red and
#: green.
PALETTE = tuple("#{:02x}{:02x}{:02x}".format(*rgb) for rgb in LESION_COLOURS)
LESION_ALPHA = (
    90  # the SEG masks' fill (controllers.presentation.MASK_ALPHA): the image reads under it
)
REJECTED_ALPHA = 120  # a rejected lesion's dashed outline
OUTLINE_PX = 1.5
SELECTED_PX = 3.0
PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"


def lesion_color(lesion_id: int) -> str:
    """The colour of lesion ``lesion_id`` (1-based) everywhere: overlay, strip and row."""
    return PALETTE[(max(int(lesion_id), 1) - 1) % len(PALETTE)]


def lesion_name(lesion_id: int) -> str:
    return f"L{lesion_id}"


@dataclass(frozen=True)
class LesionView:
    """One lesion as the viewer shows it, from the review (``LesionReview``) or, before one
    exists, the engine's ``Lesion``. Slices are 0-based stack indices."""

    lesion_id: int
    label: str
    first_slice: int
    last_slice: int
    largest_slice: int
    volume_mm3: float | None = None
    longest_diameter_mm: float | None = None
    mean_value: float | None = None
    max_value: float | None = None
    confidence: float | None = None
    verdict: str = PENDING
    source: str = "model"
    reason: str | None = None

    @property
    def name(self) -> str:
        return lesion_name(self.lesion_id)

    @property
    def color(self) -> str:
        return lesion_color(self.lesion_id)


def views_from_table(table: Any, label: str) -> list[LesionView]:
    """The engine's lesion table (``inference.lesions.LesionTable``) as views, id order."""
    out = []
    for lesion in getattr(table, "lesions", ()):
        confidence = lesion.mean_probability
        if confidence is None:
            confidence = lesion.max_probability
        out.append(
            LesionView(
                lesion_id=int(lesion.id),
                label=label,
                first_slice=int(lesion.first_slice),
                last_slice=int(lesion.last_slice),
                largest_slice=int(lesion.diameter_slice),
                volume_mm3=lesion.volume_mm3,
                longest_diameter_mm=lesion.longest_diameter_mm,
                mean_value=lesion.mean_value,
                max_value=lesion.max_value,
                confidence=confidence,
            )
        )
    return sorted(out, key=lambda v: v.lesion_id)


def views_from_reviews(reviews: Iterable[Any], where: LesionSlices | None) -> list[LesionView]:
    """The review's lesions (``review.lesionreview.LesionReview``) as views, id order; the
    largest slice comes from the label volume (``where``), else the middle of its span."""
    out = []
    for r in reviews:
        first, last = (int(s) for s in r.slices)
        largest = getattr(r, "diameter_slice", None)  # where its area is largest
        if largest is None and where is not None:
            largest = where.largest(r.lesion_id)
        out.append(
            LesionView(
                lesion_id=int(r.lesion_id),
                label=str(r.label),
                first_slice=first,
                last_slice=last,
                largest_slice=largest if largest is not None else (first + last) // 2,
                volume_mm3=r.volume_mm3,
                longest_diameter_mm=r.longest_diameter_mm,
                mean_value=r.mean_value,
                max_value=r.max_value,
                confidence=r.confidence,
                verdict=str(r.verdict),
                source=str(r.source),
                reason=r.reason,
            )
        )
    return sorted(out, key=lambda v: v.lesion_id)


Extent = tuple[int, int, int, int, int, int]  # (z0, z1, r0, r1, c0, c1), ends exclusive


def lesion_extents(lesions: Iterable[Any], shape: tuple[int, ...]) -> dict[int, Extent]:
    """Where each lesion's voxels are, from its measurements (a review's ``LesionReview``:
    ``slices`` and ``box``; an engine ``Lesion``: ``first_slice``, ``last_slice``, ``box``),
    as ``SeriesLesions`` crops its volume for saving; the whole volume when its box is
    unknown."""
    n, rows, cols = (int(v) for v in shape[-3:]) if len(shape) >= 3 else (1, *shape[-2:])
    out: dict[int, Extent] = {}
    for lesion in lesions:
        lesion_id = int(getattr(lesion, "lesion_id", getattr(lesion, "id", 0)))
        box = getattr(lesion, "box", None)
        span = getattr(lesion, "slices", None)
        if span is None and hasattr(lesion, "first_slice"):
            span = (lesion.first_slice, lesion.last_slice)
        if box is None or span is None:
            out[lesion_id] = (0, n, 0, rows, 0, cols)
            continue
        x, y, w, h = (int(v) for v in box)
        first, last = (int(v) for v in span)
        out[lesion_id] = (max(first, 0), last + 1, max(y, 0), y + h, max(x, 0), x + w)
    return out


@dataclass
class LesionSlices:
    """Where each lesion of a label volume (slices, rows, cols) lies: voxels per slice."""

    slices: int
    counts: dict[int, np.ndarray] = field(default_factory=dict)  # id -> voxels per slice

    @classmethod
    def of(cls, labels: np.ndarray, extents: Mapping[int, Extent] | None = None) -> LesionSlices:
        """Counted slice by slice. With ``extents`` (each lesion's box, :func:`lesion_extents`)
        only inside each box: microseconds, where a pass over 300 x 512 x 512 takes ~25 ms of
        the GUI thread at the end of every run and after every brush stroke. Without (or when
        a lesion's box is unknown), only on slices with a lesion (a per-slice maximum finds
        them)."""
        arr = np.asarray(labels)
        if arr.ndim == 2:
            arr = arr[None]
        n_slices = arr.shape[0]
        where = cls(n_slices)
        if not arr.size:
            return where
        whole = (0, n_slices, 0, arr.shape[1], 0, arr.shape[2])
        if extents is not None and whole not in extents.values():  # else one pass serves all
            for boxed, (z0, z1, r0, r1, c0, c1) in sorted(extents.items()):
                counts = np.zeros(n_slices, dtype=np.int64)
                crop = arr[z0:z1, r0:r1, c0:c1]
                counts[z0 : z0 + len(crop)] = (crop == boxed).sum(axis=(1, 2))
                if counts.any():
                    where.counts[int(boxed)] = counts
            return where
        tops = arr.reshape(n_slices, -1).max(axis=1)
        top = int(tops.max())
        if top <= 0:
            return where
        table = np.zeros((top + 1, n_slices), dtype=np.int64)
        for s in np.flatnonzero(tops).tolist():
            table[:, s] = np.bincount(arr[s].ravel(), minlength=top + 1)[: top + 1]
        for lesion_id in np.flatnonzero(table[1:].sum(axis=1)) + 1:
            where.counts[int(lesion_id)] = table[lesion_id]
        return where

    def slices_of(self, lesion_id: int) -> list[int]:
        counts = self.counts.get(lesion_id)
        return [] if counts is None else np.flatnonzero(counts).tolist()

    def largest(self, lesion_id: int) -> int | None:
        counts = self.counts.get(lesion_id)
        return None if counts is None or not counts.any() else int(np.argmax(counts))

    def on_slice(self, index: int) -> list[int]:
        """The lesions with voxels on slice ``index``, id order."""
        return [i for i, c in sorted(self.counts.items()) if 0 <= index < len(c) and c[index]]

    def ticks(self) -> list[tuple[int, int]]:
        """(slice, lesion id) for every slice a lesion crosses, in slice then id order."""
        return sorted((s, i) for i in self.counts for s in self.slices_of(i))


@dataclass
class LesionMaskItem(MaskItem):
    """A lesion's mask on the shown slice (a SEG mask item that knows its lesion)."""

    lesion_id: int = 0
    selected: bool = False
    rejected: bool = False
    unreliable: bool = False


def lesion_mask_items(
    plane: np.ndarray,
    views: Mapping[int, LesionView],
    selected: int | None = None,
    unreliable: bool = False,
) -> list[LesionMaskItem]:
    """Each lesion's mask on one slice of the label volume (ids; 0 outside): its fill (none
    when rejected) and outline in its colour, labelled "L1" (with ✓ once accepted). In an
    ``unreliable`` run (outside the model's intended input, or unlike its training data) the
    model's lesions are dashed and marked "⚠", as its findings are; the reader's are not."""
    items = []
    present = np.unique(plane[plane > 0]) if plane.any() else np.zeros(0, np.int64)
    for lesion_id in present.tolist():
        view = views.get(int(lesion_id))
        mask = plane == lesion_id
        color = lesion_color(int(lesion_id))
        rejected = view is not None and view.verdict == REJECTED
        rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
        if not rejected:
            rgb = QColor(color)
            rgba[mask] = (rgb.red(), rgb.green(), rgb.blue(), LESION_ALPHA)
        text = lesion_name(int(lesion_id)) + (" ✓" if view and view.verdict == ACCEPTED else "")
        doubtful = unreliable and (view is None or view.source != "reader")
        if doubtful:
            text += " ⚠"
        if rejected:
            text += " ✗"
            dim = QColor(color)
            dim.setAlpha(REJECTED_ALPHA)
            color = dim.name(QColor.NameFormat.HexArgb)
        items.append(
            LesionMaskItem(
                bitmap(rgba),
                _edges(mask),
                color,
                text,
                lesion_id=int(lesion_id),
                selected=int(lesion_id) == selected,
                rejected=rejected,
                unreliable=doubtful,
            )
        )
    return items


def _edges(mask: np.ndarray) -> np.ndarray:
    """``segread.mask_edges`` of the mask's bounding box, moved back into place (a lesion is
    small beside its slice: the outline costs its box, not the whole image)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r0, c0 = int(rows[0]), int(cols[0])
    edges = mask_edges(mask[r0 : int(rows[-1]) + 1, c0 : int(cols[-1]) + 1])
    return edges + np.asarray([c0, r0, c0, r0], dtype=edges.dtype) if len(edges) else edges


class LesionLayer(DicomGraphicsLayer):
    """The lesion masks of the shown slice, drawn through the SEG mask painter's scene and
    label, with the selected lesion's outline thicker and rejected ones dashed."""

    def drawn(self) -> bool:
        layers = self.canvas.layer_visibility()
        return super().drawn() and (layers.get("heatmap", True) or layers.get("outline", True))

    def _paint_mask(self, painter: QPainter, t: QTransform, item: MaskItem) -> None:
        layers = self.canvas.layer_visibility()
        selected = isinstance(item, LesionMaskItem) and item.selected
        rejected = isinstance(item, LesionMaskItem) and (item.rejected or item.unreliable)
        color = QColor(item.color)
        painter.save()
        painter.setTransform(t)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        if layers.get("heatmap", True):
            painter.drawImage(QPointF(0, 0), item.fill)
        if layers.get("outline", True) and len(item.edges):
            path = QPainterPath()
            for x0, y0, x1, y1 in item.edges.tolist():
                path.moveTo(x0, y0)
                path.lineTo(x1, y1)
            pen = QPen(color, SELECTED_PX if selected else OUTLINE_PX)
            pen.setCosmetic(True)
            if rejected:
                pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
        painter.restore()
        if layers.get("text", True) and item.label and len(item.edges):
            top = int(np.argmin(item.edges[:, 1] * 1e6 + item.edges[:, 0]))
            x0, y0 = float(item.edges[top, 0]), float(item.edges[top, 1])
            self._label(painter, t.map(QPointF(x0, y0)), shown(item.label, 40), color)


__all__ = [
    "ACCEPTED",
    "PALETTE",
    "PENDING",
    "REJECTED",
    "LesionLayer",
    "LesionMaskItem",
    "LesionSlices",
    "LesionView",
    "lesion_color",
    "lesion_extents",
    "lesion_mask_items",
    "lesion_name",
    "views_from_reviews",
    "views_from_table",
]
