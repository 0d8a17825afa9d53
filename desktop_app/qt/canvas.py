"""ImageCanvas: the image view — zoom, pan, fit, rotate, flip, window/level drag, overlays, ruler.

The canvas only draws what it is given (a uint8 image, an RGBA heatmap, vector shapes in image
coordinates) and reports what the user does through signals. Window/level arithmetic, distances
and finding geometry come from the core.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPolygonF,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from desktop_app.dicom.orientation import EDGES, ViewTransform
from desktop_app.qt.images import array_to_qimage
from desktop_app.qt.plaintext import shown

HANDLE_PX = 7.0


@dataclass
class CanvasShape:
    """A vector overlay in image pixel coordinates (x right, y down)."""

    key: str
    color: str
    box: tuple[float, float, float, float] | None = None  # x, y, width, height
    contours: list[np.ndarray] = field(default_factory=list)  # each (N, 2) as (x, y)
    text: str = ""
    selected: bool = False
    dashed: bool = False


@dataclass
class Ruler:
    start: tuple[float, float]
    end: tuple[float, float]
    text: str = ""


class ImageCanvas(QWidget):
    """Paints one image with overlays; all geometry is in image pixel coordinates."""

    sliceStepRequested = Signal(int)  # +1 / -1 per wheel notch (PageUp/Down are the window's)
    windowDragged = Signal(float, float)  # right-drag delta in screen pixels (dx, dy)
    cursorMoved = Signal(object)  # (x, y) in image pixels, or None when off the image
    rulerFinished = Signal(object)  # Ruler, text empty: the window fills in mm
    boxEdited = Signal(str, object)  # shape key, (x, y, w, h) after a move or resize
    boxDrawn = Signal(object)  # (x, y, w, h) drawn with the draw tool, clipped to the image
    shapeClicked = Signal(str)
    pointClicked = Signal(float, float)  # a Pan-tool click on no shape: (x, y) in image pixels
    viewChanged = Signal()

    TOOL_PAN = "pan"
    TOOL_RULER = "ruler"
    TOOL_EDIT = "edit"
    TOOL_DRAW = "draw"  # drag a new box (a finding the model missed)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imageCanvas")
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 200)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._image: QImage | None = None
        self._overlay: QImage | None = None
        self._overlay_visible = True
        self._overlay_opacity = 0.45
        self._shapes: list[CanvasShape] = []
        self._outlines_visible = True
        self._boxes_visible = True
        self._text_visible = True
        self._all_hidden = False
        self._rulers: list[Ruler] = []
        self._corners: dict[str, list[str]] = {}
        self._placeholder = ""
        self.zoom = 1.0
        self.center = QPointF(0, 0)
        # rotate and flip act on the screen (dicom.orientation.ViewTransform)
        self.view = ViewTransform()
        self.smooth = True  # bilinear magnification; False: nearest neighbour (true pixels)
        self._edge_letters: dict[str, str] = {}
        self._fit_mode = True
        self.tool = self.TOOL_PAN
        self._drag_button: Qt.MouseButton | None = None
        self._drag_last = QPointF()
        self._ruler_draft: Ruler | None = None
        self._edit: tuple[str, str, tuple[float, float, float, float], QPointF] | None = None
        self._draw_start: QPointF | None = None
        self._draw_end: QPointF | None = None
        # painted over the shapes and rulers, in widget coordinates (the reader's annotations)
        self.paint_hooks: list[Callable[[QPainter], None]] = []

    # ----------------------------------------------------------------- content
    def set_image(self, arr: np.ndarray | None) -> None:
        """Show a uint8 image; keeps zoom and pan when the size is unchanged (slice scrolling)."""
        if arr is None:
            self._image = None
            self.update()
            return
        new = array_to_qimage(arr)
        size_changed = self._image is None or self._image.size() != new.size()
        self._image = new
        if size_changed:
            self._fit_mode = True
            self._apply_fit()
            self.viewChanged.emit()
        self.update()

    def image_size(self) -> tuple[int, int] | None:
        if self._image is None:
            return None
        return self._image.width(), self._image.height()

    def set_overlay(self, rgba: np.ndarray | QImage | None) -> None:
        """The heatmap layer: an RGBA array or QImage covering the image (any size; scaled)."""
        if rgba is None or isinstance(rgba, QImage):
            self._overlay = rgba
        else:
            self._overlay = array_to_qimage(rgba)
        self.update()

    def set_overlay_opacity(self, opacity: float) -> None:
        self._overlay_opacity = float(min(max(opacity, 0.0), 1.0))
        self.update()

    @property
    def overlay_opacity(self) -> float:
        return self._overlay_opacity

    def has_overlay(self) -> bool:
        return self._overlay is not None

    def shapes(self) -> list[CanvasShape]:
        return list(self._shapes)

    def set_shapes(self, shapes: list[CanvasShape]) -> None:
        self._shapes = list(shapes)
        self.update()

    def set_rulers(self, rulers: list[Ruler]) -> None:
        self._rulers = list(rulers)
        self.update()

    def rulers(self) -> list[Ruler]:
        return list(self._rulers)

    def set_corner_text(self, corner: str, lines: list[str]) -> None:
        """corner: 'tl', 'tr', 'bl' or 'br'."""
        # Tag values: one line each, escaped (a bidi override would reverse the rest).
        self._corners[corner] = [shown(line) for line in lines if line]
        self.update()

    def corner_text(self, corner: str) -> list[str]:
        """The lines shown in ``corner`` ("tl", "tr", "bl", "br")."""
        return list(self._corners.get(corner, []))

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def set_layer_visibility(
        self,
        *,
        heatmap: bool | None = None,
        outline: bool | None = None,
        box: bool | None = None,
        text: bool | None = None,
        all_hidden: bool | None = None,
    ) -> None:
        """Which overlay layers are drawn; ``all_hidden`` shows the raw image whatever the rest."""
        if heatmap is not None:
            self._overlay_visible = heatmap
        if outline is not None:
            self._outlines_visible = outline
        if box is not None:
            self._boxes_visible = box
        if text is not None:
            self._text_visible = text
        if all_hidden is not None:
            self._all_hidden = all_hidden
        self.update()

    def layer_visibility(self) -> dict[str, bool]:
        return {
            "heatmap": self._overlay_visible,
            "outline": self._outlines_visible,
            "box": self._boxes_visible,
            "text": self._text_visible,
            "all_hidden": self._all_hidden,
        }

    # ------------------------------------------------------------------- view
    def fit(self) -> None:
        self._fit_mode = True
        self._apply_fit()
        self.update()
        self.viewChanged.emit()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        if self._image is None:
            return
        anchor = anchor or QPointF(self.width() / 2, self.height() / 2)
        before = self.widget_to_image(anchor)
        self.zoom = float(min(max(self.zoom * factor, 0.02), 64.0))
        after = self.widget_to_image(anchor)
        self.center += before - after
        self._fit_mode = False
        self.update()
        self.viewChanged.emit()

    @property
    def rotation(self) -> int:
        """Degrees clockwise of the view's rotation (after any left-right mirror)."""
        return self.view.rotation

    def rotate_by(self, degrees: int) -> None:
        """Turn what is on screen clockwise (negative: counter-clockwise)."""
        self.view = self.view.rotated(degrees)
        if self._fit_mode:
            self._apply_fit()
        self.update()
        self.viewChanged.emit()

    def toggle_flip(self, horizontal: bool) -> None:
        """Mirror left-right (``horizontal``) or up-down on screen, whatever the rotation."""
        self.view = self.view.flipped_h() if horizontal else self.view.flipped_v()
        self.update()
        self.viewChanged.emit()

    def set_smooth(self, smooth: bool) -> None:
        self.smooth = bool(smooth)
        self.update()

    def set_orientation_letters(self, letters: dict[str, str]) -> None:
        """Letters at the middle of each edge ("top", "right", "bottom", "left")."""
        self._edge_letters = {e: letters.get(e, "") for e in EDGES if letters.get(e)}
        self.update()

    def orientation_letters(self) -> dict[str, str]:
        return dict(self._edge_letters)

    def reset_view(self) -> None:
        self.view = ViewTransform()
        self.fit()

    def box_in_view(self, box: tuple[float, float, float, float], margin: float = 0.0) -> bool:
        """Whether an image-space box lies inside the widget, ``margin`` (a fraction of the
        widget's size) away from every edge."""
        if self._image is None:
            return False
        x, y, w, h = box
        mx, my = self.width() * margin, self.height() * margin
        for px, py in ((x, y), (x + w, y), (x, y + h), (x + w, y + h)):
            p = self.image_to_widget(QPointF(px, py))
            if not (mx <= p.x() <= self.width() - mx and my <= p.y() <= self.height() - my):
                return False
        return True

    def center_on(self, x: float, y: float) -> None:
        self.center = QPointF(x, y)
        self._fit_mode = False
        self.update()
        self.viewChanged.emit()

    def transform(self) -> QTransform:
        """Image pixel → widget pixel. Qt composes left to right: A * B applies A first."""
        t = QTransform.fromTranslate(-self.center.x(), -self.center.y())
        v = self.view  # screen = M @ image; QTransform(m11, m12, m21, m22) maps x*m11 + y*m21
        t = t * QTransform(v.a, v.c, v.b, v.d, 0, 0) * QTransform.fromScale(self.zoom, self.zoom)
        return t * QTransform.fromTranslate(self.width() / 2, self.height() / 2)

    def widget_to_image(self, p: QPointF) -> QPointF:
        inverse, ok = self.transform().inverted()
        return inverse.map(p) if ok else QPointF()

    def image_to_widget(self, p: QPointF) -> QPointF:
        return self.transform().map(p)

    def _apply_fit(self) -> None:
        if self._image is None:
            return
        w, h = self._image.width(), self._image.height()
        if self.view.swaps_axes:
            w, h = h, w
        margin = 0.98
        self.zoom = max(min(self.width() / w, self.height() / h) * margin, 1e-3)
        self.center = QPointF(self._image.width() / 2, self._image.height() / 2)

    def resizeEvent(self, event: QResizeEvent) -> None:
        if self._fit_mode:
            self._apply_fit()
            self.viewChanged.emit()
        super().resizeEvent(event)

    # ---------------------------------------------------------------- painting
    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#000000"))
        if self._image is None:
            painter.setPen(QColor("#6b7078"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._placeholder)
            painter.end()
            return
        t = self.transform()
        painter.save()
        painter.setTransform(t)
        # bilinear unless the reader asked for true pixels; minified always smooth (no aliasing)
        smooth = self.smooth or self.zoom < 1.0
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        painter.drawImage(QPointF(0, 0), self._image)
        overlays = not self._all_hidden
        if overlays and self._overlay is not None and self._overlay_visible:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.setOpacity(self._overlay_opacity)
            target = QRectF(0, 0, self._image.width(), self._image.height())
            painter.drawImage(target, self._overlay)
            painter.setOpacity(1.0)
        painter.restore()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if overlays:
            for shape in self._shapes:
                self._paint_shape(painter, t, shape)
        for ruler in self._rulers + ([self._ruler_draft] if self._ruler_draft else []):
            self._paint_ruler(painter, t, ruler)
        draft = self._draft_box()
        if draft is not None:
            pen = QPen(QColor("#ffd166"), 2, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPolygon(t.map(QPolygonF(QRectF(*draft))))
        for hook in self.paint_hooks:
            hook(painter)
        self._paint_corners(painter)
        painter.end()

    def _paint_shape(self, painter: QPainter, t: QTransform, shape: CanvasShape) -> None:
        color = QColor(shape.color)
        pen = QPen(color, 2.5 if shape.selected else 1.6)
        if shape.dashed:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for contour in shape.contours if self._outlines_visible else []:
            if len(contour) < 2:
                continue
            poly = QPolygonF([t.map(QPointF(float(x), float(y))) for x, y in contour])
            path = QPainterPath()
            path.addPolygon(poly)
            path.closeSubpath()
            painter.drawPath(path)
        anchor: QPointF | None = None
        editing = shape.selected and self.tool == self.TOOL_EDIT
        if shape.box is not None and (self._boxes_visible or editing):
            x, y, w, h = shape.box
            corners = [QPointF(x, y), QPointF(x + w, y), QPointF(x + w, y + h), QPointF(x, y + h)]
            poly = QPolygonF([t.map(c) for c in corners])
            box_pen = QPen(pen)
            box_pen.setStyle(Qt.PenStyle.DashLine if not shape.selected else Qt.PenStyle.SolidLine)
            painter.setPen(box_pen)
            painter.drawPolygon(poly)
            anchor = min((poly.at(i) for i in range(4)), key=lambda p: (p.y(), p.x()))
            if editing:
                painter.setBrush(color)
                for i in range(4):
                    p = poly.at(i)
                    painter.drawRect(QRectF(p.x() - 3.5, p.y() - 3.5, 7, 7))
                painter.setBrush(Qt.BrushStyle.NoBrush)
        elif shape.box is not None:
            x, y, w, h = shape.box
            corners = [QPointF(x, y), QPointF(x + w, y), QPointF(x + w, y + h), QPointF(x, y + h)]
            anchor = min((t.map(c) for c in corners), key=lambda p: (p.y(), p.x()))
        elif shape.contours:
            pts = np.concatenate(shape.contours)
            top = pts[np.argmin(pts[:, 1])]
            anchor = t.map(QPointF(float(top[0]), float(top[1])))
        if shape.text and self._text_visible and anchor is not None:
            self._paint_label(painter, anchor, shape.text, color)

    def _paint_label(self, painter: QPainter, anchor: QPointF, text: str, color: QColor) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF(), 9.0))
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        rect = QRectF(metrics.boundingRect(text)).adjusted(-4, -2, 4, 2)
        rect.moveBottomLeft(QPointF(anchor.x(), anchor.y() - 3))
        if rect.top() < 0:
            rect.moveTop(anchor.y() + 3)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 170))
        painter.drawRoundedRect(rect, 3, 3)
        painter.setPen(color)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.setBrush(Qt.BrushStyle.NoBrush)

    def _paint_ruler(self, painter: QPainter, t: QTransform, ruler: Ruler) -> None:
        a = t.map(QPointF(*ruler.start))
        b = t.map(QPointF(*ruler.end))
        painter.setPen(QPen(QColor("#ffd84d"), 1.5))
        painter.drawLine(a, b)
        for p in (a, b):
            painter.drawEllipse(p, 3, 3)
        if ruler.text:
            mid = (a + b) / 2
            self._paint_label(painter, mid, ruler.text, QColor("#ffd84d"))

    def _paint_corners(self, painter: QPainter) -> None:
        """Corner text, each line elided to half the width less the top and bottom edge
        letters' room (so the corners never meet), then the orientation letters."""
        self._paint_edge_letters(painter)
        if not self._corners:
            return
        font = QFont(self.font())
        painter.setFont(font)
        metrics = painter.fontMetrics()
        line_h = metrics.height()
        pad = 8
        room = max(60, self.width() // 2 - pad - 2 * line_h)
        for corner, lines in self._corners.items():
            for i, full in enumerate(lines):
                line = metrics.elidedText(full, Qt.TextElideMode.ElideRight, room)
                width = metrics.horizontalAdvance(line)
                x = pad if corner in ("tl", "bl") else self.width() - pad - width
                if corner in ("tl", "tr"):
                    y = pad + (i + 1) * line_h - metrics.descent()
                else:
                    y = self.height() - pad - (len(lines) - 1 - i) * line_h - metrics.descent()
                painter.setPen(QColor(0, 0, 0, 200))
                painter.drawText(QPointF(x + 1, y + 1), line)
                painter.setPen(QColor("#e6e8eb"))
                painter.drawText(QPointF(x, y), line)

    def _paint_edge_letters(self, painter: QPainter) -> None:
        if not self._edge_letters or self._image is None:
            return
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        pad, w, h = 8, self.width(), self.height()
        for edge, text in self._edge_letters.items():
            tw = metrics.horizontalAdvance(text)
            x: float
            y: float
            if edge in ("top", "bottom"):
                x = (w - tw) / 2
                y = pad + metrics.ascent() if edge == "top" else h - pad - metrics.descent()
            else:
                x = pad if edge == "left" else w - pad - tw
                y = (h + metrics.ascent() - metrics.descent()) / 2
            # a dark backdrop: the letters stay readable over a bright film
            back = QRectF(x - 3, y - metrics.ascent() - 1, tw + 6, metrics.height() + 2)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(0, 0, 0, 150))
            painter.drawRoundedRect(back, 3, 3)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QColor("#ffd166"))
            painter.drawText(QPointF(x, y), text)

    # ------------------------------------------------------------ interaction
    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y()
        if delta == 0:
            return
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.15 if delta > 0 else 1 / 1.15, event.position())
        else:
            self.sliceStepRequested.emit(-1 if delta > 0 else 1)
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.setFocus()
        pos = event.position()
        self._drag_button = event.button()
        self._drag_last = pos
        if event.button() == Qt.MouseButton.LeftButton and self._image is not None:
            p = self.widget_to_image(pos)
            if self.tool == self.TOOL_RULER:
                self._ruler_draft = Ruler((p.x(), p.y()), (p.x(), p.y()))
            elif self.tool == self.TOOL_DRAW:
                self._draw_start = self._draw_end = p
            elif self.tool == self.TOOL_EDIT:
                self._edit = self._hit_test_edit(pos)
                if self._edit is None:
                    hit = self._shape_at(pos)
                    if hit is not None:
                        self.shapeClicked.emit(hit)
            else:
                hit = self._shape_at(pos)
                if hit is not None:
                    self.shapeClicked.emit(hit)
                elif self.tool == self.TOOL_PAN:
                    self.pointClicked.emit(p.x(), p.y())
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        delta = pos - self._drag_last
        self._drag_last = pos
        if self._image is not None:
            p = self.widget_to_image(pos)
            inside = 0 <= p.x() < self._image.width() and 0 <= p.y() < self._image.height()
            self.cursorMoved.emit((p.x(), p.y()) if inside else None)
        buttons = event.buttons()
        if buttons & Qt.MouseButton.RightButton:
            self.windowDragged.emit(delta.x(), delta.y())
        elif buttons & Qt.MouseButton.MiddleButton or (
            buttons & Qt.MouseButton.LeftButton and self.tool == self.TOOL_PAN
        ):
            self._pan(delta)
        elif buttons & Qt.MouseButton.LeftButton and self._ruler_draft is not None:
            p = self.widget_to_image(pos)
            self._ruler_draft.end = (p.x(), p.y())
            self.update()
        elif buttons & Qt.MouseButton.LeftButton and self._edit is not None:
            self._drag_edit(pos)
        elif buttons & Qt.MouseButton.LeftButton and self._draw_start is not None:
            self._draw_end = self.widget_to_image(pos)
            self.update()
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            if self._ruler_draft is not None:
                ruler, self._ruler_draft = self._ruler_draft, None
                if math.dist(ruler.start, ruler.end) > 0.5:
                    self.rulerFinished.emit(ruler)
                self.update()
            if self._edit is not None:
                key = self._edit[0]
                self._edit = None
                shape = next((s for s in self._shapes if s.key == key), None)
                if shape is not None and shape.box is not None:
                    self.boxEdited.emit(key, shape.box)
            if self._draw_start is not None:
                self._draw_end = self.widget_to_image(event.position())
                box = self._draft_box()
                self._draw_start = self._draw_end = None
                self.update()
                if box is not None and box[2] >= 2 and box[3] >= 2:
                    self.boxDrawn.emit(box)
        self._drag_button = None
        event.accept()

    def leaveEvent(self, event: object) -> None:
        self.cursorMoved.emit(None)

    def _draft_box(self) -> tuple[float, float, float, float] | None:
        """The box being drawn, clipped to the image (None when there is none)."""
        if self._draw_start is None or self._draw_end is None or self._image is None:
            return None
        w, h = self._image.width(), self._image.height()
        xs = sorted(min(max(v, 0.0), w) for v in (self._draw_start.x(), self._draw_end.x()))
        ys = sorted(min(max(v, 0.0), h) for v in (self._draw_start.y(), self._draw_end.y()))
        return (xs[0], ys[0], xs[1] - xs[0], ys[1] - ys[0])

    def _pan(self, delta: QPointF) -> None:
        inverse, ok = self.transform().inverted()
        if not ok:
            return
        origin = inverse.map(QPointF(0, 0))
        moved = inverse.map(delta)
        self.center -= moved - origin
        self._fit_mode = False
        self.update()
        self.viewChanged.emit()

    def _shape_at(self, pos: QPointF) -> str | None:
        p = self.widget_to_image(pos)
        for shape in reversed(self._shapes):
            if shape.box is None:
                continue
            x, y, w, h = shape.box
            if x <= p.x() <= x + w and y <= p.y() <= y + h:
                return shape.key
        return None

    def _hit_test_edit(
        self, pos: QPointF
    ) -> tuple[str, str, tuple[float, float, float, float], QPointF] | None:
        """Which selected box (and which corner, or 'move') is under the cursor."""
        t = self.transform()
        for shape in self._shapes:
            if not shape.selected or shape.box is None:
                continue
            x, y, w, h = shape.box
            corners = {"tl": (x, y), "tr": (x + w, y), "br": (x + w, y + h), "bl": (x, y + h)}
            for name, (cx, cy) in corners.items():
                wp = t.map(QPointF(cx, cy))
                if abs(wp.x() - pos.x()) <= HANDLE_PX and abs(wp.y() - pos.y()) <= HANDLE_PX:
                    return shape.key, name, shape.box, self.widget_to_image(pos)
            p = self.widget_to_image(pos)
            if x <= p.x() <= x + w and y <= p.y() <= y + h:
                return shape.key, "move", shape.box, p
        return None

    def _drag_edit(self, pos: QPointF) -> None:
        assert self._edit is not None
        key, handle, (x, y, w, h), start = self._edit
        p = self.widget_to_image(pos)
        dx, dy = p.x() - start.x(), p.y() - start.y()
        x0, y0, x1, y1 = x, y, x + w, y + h
        if handle == "move":
            x0, x1, y0, y1 = x0 + dx, x1 + dx, y0 + dy, y1 + dy
        else:
            if "l" in handle:
                x0 += dx
            if "r" in handle:
                x1 += dx
            if "t" in handle:
                y0 += dy
            if "b" in handle:
                y1 += dy
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        for shape in self._shapes:
            if shape.key == key:
                shape.box = (x0, y0, max(x1 - x0, 1.0), max(y1 - y0, 1.0))
        self.update()
