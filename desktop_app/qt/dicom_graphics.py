"""DicomGraphicsLayer: paints what other tools wrote over the image — overlay-plane bitmaps,
presentation-state graphics and text, SR regions, segmentation masks (filled, with their pixel
outline) and structure-set contours — through the canvas's paint hook.

The layer only draws what it is given (bitmaps and :class:`~desktop_app.dicom.graphics.Graphic`
objects in image pixel coordinates); which objects apply to the shown image is the
controller's business. Lines are cosmetic (the same width at any zoom) and follow the canvas's
zoom, pan, rotation and flips.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
    QTransform,
)

from desktop_app.dicom.graphics import Graphic
from desktop_app.dicom.gsps import PlacedText
from desktop_app.qt.canvas import ImageCanvas
from desktop_app.qt.images import array_to_qimage
from desktop_app.qt.plaintext import shown

OVERLAY_COLOR = (255, 196, 64)  # overlay planes: amber, apart from the findings' colours
GSPS_COLOR = "#8cf08c"  # a presentation state's layer without a recommended colour
SR_COLOR = "#5cd6ff"  # SR regions
MARKER_PX = 5.0


@dataclass
class VectorItem:
    graphic: Graphic
    color: str
    label: str = ""


@dataclass
class TextItem:
    text: PlacedText
    color: str


@dataclass
class MaskItem:
    """A segment's mask on the shown image: its fill (RGBA, drawn at 0, 0) and its outline
    as pixel-edge segments (N, 4: x0, y0, x1, y1), in the segment's colour, with its label."""

    fill: QImage
    edges: np.ndarray
    color: str
    label: str = ""


@dataclass
class GraphicsScene:
    """What is drawn on the shown image: bitmaps (each with its top-left (x, y) in image
    pixels), vector graphics, text boxes and segmentation masks."""

    bitmaps: list[tuple[QImage, int, int]] = field(default_factory=list)
    vectors: list[VectorItem] = field(default_factory=list)
    texts: list[TextItem] = field(default_factory=list)
    masks: list[MaskItem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.bitmaps) + len(self.vectors) + len(self.texts) + len(self.masks)


def bitmap(rgba: np.ndarray) -> QImage:
    return array_to_qimage(rgba)


class DicomGraphicsLayer:
    """Attached to a canvas's ``paint_hooks``; ``visible`` is the reader's toggle, and the
    canvas's "hide all overlays" (raw image) hides this layer too."""

    def __init__(self, canvas: ImageCanvas) -> None:
        self.canvas = canvas
        self.visible = True
        self.scene = GraphicsScene()
        canvas.paint_hooks.append(self.paint)

    def set_scene(self, scene: GraphicsScene) -> None:
        self.scene = scene
        self.canvas.update()

    def set_visible(self, on: bool) -> None:
        self.visible = bool(on)
        self.canvas.update()

    def drawn(self) -> bool:
        """Whether anything of this layer is on screen now."""
        hidden = self.canvas.layer_visibility().get("all_hidden", False)
        return (
            self.visible
            and not hidden
            and self.canvas.image_size() is not None
            and len(self.scene) > 0
        )

    def paint(self, painter: QPainter) -> None:
        if not self.drawn():
            return
        t = self.canvas.transform()
        painter.save()
        if self.scene.bitmaps:
            painter.save()
            painter.setTransform(t)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            for image, x, y in self.scene.bitmaps:
                painter.drawImage(QPointF(x, y), image)
            painter.restore()
        for mask in self.scene.masks:
            self._paint_mask(painter, t, mask)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for item in self.scene.vectors:
            self._paint_vector(painter, t, item)
        for text in self.scene.texts:
            self._paint_text(painter, t, text)
        painter.restore()

    def _paint_mask(self, painter: QPainter, t: QTransform, item: MaskItem) -> None:
        painter.save()
        painter.setTransform(t)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        painter.drawImage(QPointF(0, 0), item.fill)
        color = QColor(item.color)
        if len(item.edges):
            path = QPainterPath()
            for x0, y0, x1, y1 in item.edges.tolist():
                path.moveTo(x0, y0)
                path.lineTo(x1, y1)
            pen = QPen(color, 1.5)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
        painter.restore()
        if item.label and len(item.edges):
            top = int(np.argmin(item.edges[:, 1] * 1e6 + item.edges[:, 0]))
            x0, y0 = float(item.edges[top, 0]), float(item.edges[top, 1])
            self._label(painter, t.map(QPointF(x0, y0)), shown(item.label, 80), color)

    def _paint_vector(self, painter: QPainter, t: QTransform, item: VectorItem) -> None:
        color = QColor(item.color)
        pen = QPen(color, 1.8)
        pen.setCosmetic(True)
        painter.setPen(pen)
        graphic = item.graphic
        if graphic.is_points:
            for x, y in graphic.points:
                p = t.map(QPointF(x, y))
                painter.drawLine(p - QPointF(MARKER_PX, 0), p + QPointF(MARKER_PX, 0))
                painter.drawLine(p - QPointF(0, MARKER_PX), p + QPointF(0, MARKER_PX))
            anchor = t.map(QPointF(*graphic.points[0]))
        else:
            poly = QPolygonF([t.map(QPointF(float(x), float(y))) for x, y in graphic.outline()])
            if graphic.filled:
                fill = QColor(color)
                fill.setAlpha(60)
                painter.setBrush(QBrush(fill))
            else:
                painter.setBrush(Qt.BrushStyle.NoBrush)
            if graphic.closed:
                painter.drawPolygon(poly)
            else:
                painter.drawPolyline(poly)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            anchor = min((poly.at(i) for i in range(poly.size())), key=lambda p: (p.y(), p.x()))
        if item.label:
            self._label(painter, anchor, shown(item.label, 80), color)

    def _label(self, painter: QPainter, anchor: QPointF, text: str, color: QColor) -> None:
        font = QFont(painter.font())
        font.setPointSizeF(max(font.pointSizeF(), 9.0))
        painter.setFont(font)
        rect = QRectF(painter.fontMetrics().boundingRect(text)).adjusted(-3, -1, 3, 1)
        rect.moveBottomLeft(QPointF(anchor.x(), anchor.y() - 3))
        if rect.top() < 0:
            rect.moveTop(anchor.y() + 3)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 160))
        painter.drawRect(rect)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(color)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_text(self, painter: QPainter, t: QTransform, item: TextItem) -> None:
        color = QColor(item.color)
        text = shown(item.text.text, 300)
        anchor = t.map(QPointF(*item.text.anchor)) if item.text.anchor else None
        if item.text.box is None:
            if anchor is not None:
                self._label(painter, anchor, text, color)
            return
        x0, y0, x1, y1 = item.text.box
        corners = [t.map(QPointF(x, y)) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
        rect = QPolygonF(corners).boundingRect()
        if anchor is not None and item.text.anchor_visible:
            pen = QPen(color, 1.2)
            pen.setCosmetic(True)
            painter.setPen(pen)
            edge = QPointF(
                min(max(anchor.x(), rect.left()), rect.right()),
                min(max(anchor.y(), rect.top()), rect.bottom()),
            )
            painter.drawLine(anchor, edge)
        painter.setPen(QColor(0, 0, 0, 220))
        flags = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap
        painter.drawText(rect.translated(1, 1), int(flags), text)
        painter.setPen(color)
        painter.drawText(rect, int(flags), text)


__all__ = [
    "GSPS_COLOR",
    "OVERLAY_COLOR",
    "SR_COLOR",
    "DicomGraphicsLayer",
    "GraphicsScene",
    "MaskItem",
    "TextItem",
    "VectorItem",
    "bitmap",
]
