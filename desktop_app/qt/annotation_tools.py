"""AnnotationController: the reader's mouse tools (ellipse and rectangle ROI, angle, arrow with
text), the key-image flag, editing (select, move, resize, delete, text, undo/redo) and the
drawing of saved annotations with their labels on the canvas.

The measurements are the core's (``desktop_app.review.annotations``); the annotations live in
the study's review (saved atomically and audited by the review controller's writer). The canvas
is left as it is: mouse and key events reach this controller through an event filter, and it
paints through the canvas's ``paint_hooks``.

Mouse: with an annotation tool, drag an ellipse or a rectangle; drag an arrow from its tip to
its tail (then type its text); drag an angle's first arm, then click its third point. With any
of these tools or pan/edit, drag a handle (the small squares of the selected annotation) to
reshape it, or its outline (inside, once selected) to move it; a click on one selects it; a
double-click edits its text. Delete removes the selected one, Esc stops a drawing.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QMouseEvent, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QInputDialog, QWidget

from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.qt.canvas import ImageCanvas
from desktop_app.qt.controllers.feedback import Feedback
from desktop_app.qt.controllers.review import ReviewController
from desktop_app.qt.controllers.shown import Shown
from desktop_app.qt.plaintext import shown as safe_text
from desktop_app.qt.viewer import ViewerWidget
from desktop_app.review.annotations import (
    ANGLE,
    ARROW,
    ELLIPSE,
    KEY_IMAGE,
    RECTANGLE,
    ROI_KINDS,
    Annotation,
    History,
    measured,
    moved,
    new_id,
    with_point,
)
from desktop_app.review.state import ReviewState

log = logging.getLogger(__name__)

TOOLS = (ELLIPSE, RECTANGLE, ANGLE, ARROW)
TOOL_NAMES = {ELLIPSE: "Ellipse ROI", RECTANGLE: "Rectangle ROI", ANGLE: "Angle", ARROW: "Arrow"}
COLOR = QColor("#5ce1e6")  # the reader's own marks: not a model label's colour
SELECTED_COLOR = QColor("#ffffff")
HANDLE_PX = 7.0
NEAR_PX = 6.0
MIN_DRAG_PX = 3.0


@dataclass
class _Draft:
    """An annotation being drawn: ``points`` in image pixels; an angle waits for its third
    point once its first arm is drawn (``awaiting``)."""

    kind: str
    points: list[tuple[float, float]]
    awaiting: bool = False


@dataclass
class _Drag:
    """An annotation being moved (``handle`` -1) or reshaped (the handle's index)."""

    original: Annotation
    handle: int
    start: tuple[float, float]
    live: Annotation
    moved: bool = False


def handles(a: Annotation) -> list[tuple[float, float]]:
    """The points a reader can drag: an ROI's four box corners (top-left, top-right,
    bottom-right, bottom-left), else the annotation's own points."""
    if a.kind in ROI_KINDS:
        x0, y0, x1, y1 = a.bounds()
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return list(a.points)


def drag_handle(a: Annotation, index: int, p: tuple[float, float]) -> Annotation:
    """``a`` with handle ``index`` dragged to ``p`` (an ROI's opposite corner stays put)."""
    if a.kind not in ROI_KINDS:
        return with_point(a, index, p)
    corners = handles(a)
    opposite = corners[(index + 2) % 4]
    return replace(a, points=(opposite, (float(p[0]), float(p[1]))))


def _segment_distance(p: QPointF, a: QPointF, b: QPointF) -> float:
    dx, dy = b.x() - a.x(), b.y() - a.y()
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else ((p.x() - a.x()) * dx + (p.y() - a.y()) * dy) / length2
    t = min(max(t, 0.0), 1.0)
    return math.hypot(p.x() - (a.x() + t * dx), p.y() - (a.y() + t * dy))


class AnnotationController(QObject):
    """The reader's annotations on the shown image: tools, editing, undo, drawing."""

    changed = Signal()  # the shown study's annotations changed (saved already)

    def __init__(
        self,
        host: QWidget,
        shown: Shown,
        viewer: ViewerWidget,
        review: ReviewController,
        feedback: Feedback,
    ) -> None:
        super().__init__(host)
        self.host = host
        self.shown = shown
        self.viewer = viewer
        self.canvas: ImageCanvas = viewer.canvas
        self.review = review
        self.feedback = feedback
        self.selected: str | None = None
        self.text_dialog: QInputDialog | None = None
        self._draft: _Draft | None = None
        self._drag: _Drag | None = None
        self._histories: dict[str, History] = {}
        self._labels: list[tuple[str, QRectF]] = []  # painted label boxes, for clicks
        self._shown_index = -1
        self._cursor_set = False
        self.canvas.installEventFilter(self)
        self.canvas.paint_hooks.append(self.paint)
        viewer.frameShown.connect(self._on_frame_shown)
        viewer.sliceChanged.connect(lambda _i: self._cancel_draft())

    # ------------------------------------------------------------------ where we are
    def _on_frame_shown(self, index: int) -> None:
        self._shown_index = index
        self.canvas.update()

    def _image_ref(self) -> tuple[str, str, str, int, int] | None:
        """(series key, series UID, SOP Instance UID, frame, slice index) of the image on the
        canvas, once its pixels are there."""
        entry = self.shown.entry
        index = self.viewer.index
        if entry is None or self.viewer.frame is None or self._shown_index != index:
            return None
        slices = entry.stack.slices
        if not 0 <= index < len(slices):
            return None
        ref = slices[index]
        return (
            entry.key,
            entry.stack.series_instance_uid,
            ref.instance.sop_instance_uid,
            int(ref.frame),
            index,
        )

    def state(self, create: bool = False) -> ReviewState | None:
        uid = self.shown.study_uid
        return self.review.review_for(uid, create=create) if uid else None

    def here(self) -> list[Annotation]:
        """The annotations of the image on the canvas (drawn in this order)."""
        ref, state = self._image_ref(), self.state()
        if ref is None or state is None:
            return []
        key, _uid, sop, frame, index = ref
        return state.annotations_on(key, sop, frame, index)

    def history(self) -> History | None:
        uid = self.shown.study_uid
        return self._histories.setdefault(uid, History()) if uid else None

    # ------------------------------------------------------------------ tools (actions)
    def set_tool(self, kind: str) -> None:
        """Make ``kind`` (ellipse, rectangle, angle, arrow) the left button's tool."""
        if kind not in TOOLS:
            raise ValueError(f"`kind` {kind!r} should be one of: {', '.join(TOOLS)}")
        self._cancel_draft()
        self.canvas.tool = kind
        self.canvas.setCursor(Qt.CursorShape.CrossCursor)
        self._cursor_set = True
        self.feedback.message(f"{TOOL_NAMES[kind]}: {_HOW[kind]}", 6000)

    def _tool_active(self) -> bool:
        return self.canvas.tool in TOOLS

    def delete_selected(self) -> None:
        state = self.state()
        if state is None or self.selected is None:
            self.feedback.message("select an annotation first (click its outline)", 4000)
            return
        try:
            gone = state.annotation(self.selected)
        except KeyError:
            self.selected = None
            return
        self._apply(state, "annotation_delete", gone, lambda: state.remove_annotation(gone.id))
        self.selected = None

    def toggle_key_image(self) -> None:
        """Flag the image on the canvas as a key image, or take the flag off."""
        ref = self._image_ref()
        if ref is None:
            return
        flag = next((a for a in self.here() if a.kind == KEY_IMAGE), None)
        state = self.state(create=True)
        if state is None:
            return
        if flag is not None:
            self._apply(state, "key_image_off", flag, lambda: state.remove_annotation(flag.id))
            self.feedback.message("key-image flag removed", 3000)
            return
        key, uid, sop, frame, index = ref
        new = Annotation(new_id(), KEY_IMAGE, key, uid, sop, frame, index)
        self._put(new, "key_image_on")
        self.feedback.message("flagged as a key image (exported in the SR and the PDF)", 4000)

    def edit_text(self, annotation_id: str | None = None) -> None:
        """Ask for the text of an annotation (the selected one by default)."""
        state = self.state()
        target = annotation_id or self.selected
        if state is None or target is None:
            self.feedback.message("select an annotation first (click its outline)", 4000)
            return
        try:
            current = state.annotation(target)
        except KeyError:
            return
        if self.text_dialog is not None:
            self.text_dialog.close()
        dialog = QInputDialog(self.host)
        dialog.setObjectName("annotationTextDialog")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.setWindowTitle("Annotation text")
        dialog.setLabelText(f"Text of this {current.kind.replace('_', ' ')}:")
        dialog.setTextValue(current.text)
        dialog.textValueSelected.connect(lambda text, aid=target: self.set_text(aid, text))
        dialog.finished.connect(lambda _r: setattr(self, "text_dialog", None))
        self.text_dialog = dialog
        dialog.open()

    def set_text(self, annotation_id: str, text: str) -> None:
        state = self.state()
        if state is None:
            return
        try:
            current = state.annotation(annotation_id)
        except KeyError:
            return
        if text.strip() != current.text:
            self._put(replace(current, text=text), "annotation_text")

    def undo(self) -> None:
        self._step(undo=True)

    def redo(self) -> None:
        self._step(undo=False)

    def _step(self, undo: bool) -> None:
        state, history = self.state(), self.history()
        if state is None or history is None:
            return
        before = history.undo(state.annotations) if undo else history.redo(state.annotations)
        if before is None:
            self.feedback.message(f"nothing to {'undo' if undo else 'redo'}", 3000)
            return
        self._cancel_draft()
        state.set_annotations(before)
        if self.selected is not None and all(a.id != self.selected for a in before):
            self.selected = None
        self._saved(state, "annotation_undo" if undo else "annotation_redo", None)

    # ------------------------------------------------------------------ changes
    def _put(self, annotation: Annotation, action: str) -> None:
        """Add or replace ``annotation`` in the shown study's review (recorded for undo)."""
        state = self.state(create=True)
        if state is None:
            return
        reviewer = self.review.reviewer()
        self._apply(state, action, annotation, lambda: state.put_annotation(annotation, reviewer))

    def _apply(
        self, state: ReviewState, action: str, annotation: Annotation, change: Callable[[], object]
    ) -> None:
        history = self.history()
        if history is not None:
            history.record(state.annotations)
        change()
        self._saved(state, action, annotation)

    def _saved(self, state: ReviewState, action: str, annotation: Annotation | None) -> None:
        self.review.save(state)
        fields: dict[str, object] = {
            "study_hash": uid_hash(state.study_uid),
            "action": action,
            "reviewer": self.review.reviewer(),
            "annotations": len(state.annotations),
        }
        if annotation is not None:
            fields["series_hash"] = uid_hash(annotation.series_uid)
            fields["annotation_kind"] = annotation.kind
        self.review.writer.audit("annotation", **fields)
        self.canvas.update()
        self.changed.emit()

    def _measure(self, annotation: Annotation) -> Annotation:
        frame, context = self.viewer.frame, self.viewer.context
        if frame is None:
            return annotation
        modality = context.modality if context is not None else ""
        return measured(annotation, frame.values, frame.pixel_spacing, modality)

    # ------------------------------------------------------------------ mouse and keys
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is not self.canvas:
            return False
        if self._cursor_set and self.canvas.tool not in TOOLS:  # another tool took over
            self._cursor_set = False
            self._cancel_draft()
            self.canvas.unsetCursor()
        kind = event.type()
        if kind == QEvent.Type.MouseButtonPress and isinstance(event, QMouseEvent):
            return self._press(event)
        if kind == QEvent.Type.MouseMove and isinstance(event, QMouseEvent):
            return self._move(event)
        if kind == QEvent.Type.MouseButtonRelease and isinstance(event, QMouseEvent):
            return self._release(event)
        if kind == QEvent.Type.MouseButtonDblClick and isinstance(event, QMouseEvent):
            return self._double_click(event)
        if kind == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            return self._key(event)
        return False

    def _image_point(self, pos: QPointF) -> tuple[float, float]:
        p = self.canvas.widget_to_image(pos)
        return (p.x(), p.y())

    def _editable(self) -> bool:
        """Whether a press may grab an annotation (not while the ruler or a finding's box
        tool has the button)."""
        return self.canvas.tool in (*TOOLS, ImageCanvas.TOOL_PAN, ImageCanvas.TOOL_EDIT)

    def _press(self, event: QMouseEvent) -> bool:
        if event.button() != Qt.MouseButton.LeftButton or self._image_ref() is None:
            if event.button() == Qt.MouseButton.RightButton and self._draft is not None:
                self._cancel_draft()
                return True
            return False
        pos = event.position()
        p = self._image_point(pos)
        draft = self._draft
        if draft is not None and draft.awaiting:
            draft.points[2] = p
            self._finish_draft()
            return True
        hit = self._hit(pos) if self._editable() else None
        if hit is not None:
            annotation, handle = hit
            self.canvas.setFocus()
            self.selected = annotation.id
            self._drag = _Drag(annotation, handle, p, annotation)
            self.canvas.update()
            return True
        if self.selected is not None:
            self.selected = None
            self.canvas.update()
        if self._tool_active():
            self.canvas.setFocus()
            n = 3 if self.canvas.tool == ANGLE else 2
            self._draft = _Draft(self.canvas.tool, [p] * n)
            return True
        return False

    def _move(self, event: QMouseEvent) -> bool:
        p = self._image_point(event.position())
        left = bool(event.buttons() & Qt.MouseButton.LeftButton)
        drag, draft = self._drag, self._draft
        if drag is not None and left:
            if drag.handle < 0:
                drag.live = moved(drag.original, p[0] - drag.start[0], p[1] - drag.start[1])
            else:
                drag.live = drag_handle(drag.original, drag.handle, p)
            drag.moved = True
            self.canvas.update()
            return True
        if draft is not None:
            if draft.awaiting:
                draft.points[2] = p
                self.canvas.update()
                return False  # the readout still follows the cursor
            if left:
                draft.points[1] = p
                if draft.kind == ANGLE:
                    draft.points[2] = p
                self.canvas.update()
                return True
        return False

    def _release(self, event: QMouseEvent) -> bool:
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        drag, draft = self._drag, self._draft
        if drag is not None:
            self._drag = None
            if drag.moved and drag.live.points != drag.original.points:
                try:
                    live = self._measure(drag.live)
                except ValueError:  # squeezed flat: keep the annotation as it was
                    self.canvas.update()
                    return True
                self._put(live, "annotation_move" if drag.handle < 0 else "annotation_resize")
            self.canvas.update()
            return True
        if draft is not None and not draft.awaiting:
            draft.points[1] = self._image_point(event.position())
            if self._screen_length(draft.points[0], draft.points[1]) < MIN_DRAG_PX:
                self._cancel_draft()
                return True
            if draft.kind == ANGLE:
                draft.points[2] = draft.points[1]
                draft.awaiting = True
                self.canvas.update()
                return True
            self._finish_draft()
            return True
        return False

    def _double_click(self, event: QMouseEvent) -> bool:
        if event.button() != Qt.MouseButton.LeftButton or not self._editable():
            return False
        hit = self._hit(event.position())
        if hit is None:
            return False
        self._drag = None
        self.selected = hit[0].id
        self.edit_text(hit[0].id)
        return True

    def _key(self, event: QKeyEvent) -> bool:
        if event.key() == Qt.Key.Key_Escape and (self._draft is not None or self.selected):
            self._cancel_draft()
            self.selected = None
            self.canvas.update()
            return True
        return False

    def _screen_length(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        pa = self.canvas.image_to_widget(QPointF(*a))
        pb = self.canvas.image_to_widget(QPointF(*b))
        return math.hypot(pa.x() - pb.x(), pa.y() - pb.y())

    def _cancel_draft(self) -> None:
        if self._draft is not None:
            self._draft = None
            self.canvas.update()

    def _finish_draft(self) -> None:
        draft, ref = self._draft, self._image_ref()
        self._draft = None
        if draft is None or ref is None:
            return
        key, uid, sop, frame, index = ref
        annotation = Annotation(
            new_id(), draft.kind, key, uid, sop, frame, index, tuple(draft.points)
        )
        try:
            annotation = self._measure(annotation)
        except ValueError as err:  # a flat ROI: nothing to measure
            self.feedback.message(str(err), 4000)
            self.canvas.update()
            return
        self.selected = annotation.id
        self._put(annotation, "annotation_add")
        if draft.kind == ARROW:
            self.edit_text(annotation.id)

    # ------------------------------------------------------------------ hit testing
    def _hit(self, pos: QPointF) -> tuple[Annotation, int] | None:
        """The annotation under ``pos`` (widget pixels) and the handle grabbed (-1: the
        whole annotation): handles of the selected one first, then outlines and labels."""
        shown = [a for a in self.here() if a.kind != KEY_IMAGE]
        ordered = sorted(shown, key=lambda a: a.id != self.selected)
        for a in ordered:
            if a.id != self.selected:
                continue
            for i, (x, y) in enumerate(handles(a)):
                h = self.canvas.image_to_widget(QPointF(x, y))
                if abs(h.x() - pos.x()) <= HANDLE_PX and abs(h.y() - pos.y()) <= HANDLE_PX:
                    return a, i
        for a in reversed(ordered):
            if self._near(a, pos):
                return a, -1
        for aid, rect in self._labels:
            if rect.contains(pos):
                found = next((a for a in shown if a.id == aid), None)
                if found is not None:
                    return found, -1
        return None

    def _near(self, a: Annotation, pos: QPointF) -> bool:
        t = self.canvas.transform()
        if a.kind in ROI_KINDS:
            x0, y0, x1, y1 = a.bounds()
            p = self.canvas.widget_to_image(pos)
            if a.id == self.selected and x0 <= p.x() <= x1 and y0 <= p.y() <= y1:
                return True
            if a.kind == RECTANGLE:
                corners = [t.map(QPointF(x, y)) for x, y in handles(a)]
                return any(
                    _segment_distance(pos, corners[i], corners[(i + 1) % 4]) <= NEAR_PX
                    for i in range(4)
                )
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
            angle = math.atan2((p.y() - cy) / ry, (p.x() - cx) / rx)
            rim = t.map(QPointF(cx + rx * math.cos(angle), cy + ry * math.sin(angle)))
            return math.hypot(rim.x() - pos.x(), rim.y() - pos.y()) <= NEAR_PX
        pts = [t.map(QPointF(x, y)) for x, y in a.points]
        return any(
            _segment_distance(pos, pts[i], pts[i + 1]) <= NEAR_PX for i in range(len(pts) - 1)
        )

    # ------------------------------------------------------------------ painting
    def paint(self, painter: QPainter) -> None:
        """Draw the image's annotations (a dragged one where it is being dragged), the one
        being drawn, and the key-image badge."""
        self._labels = []
        if self._image_ref() is None:
            return
        drag = self._drag
        items = [
            drag.live if drag is not None and a.id == drag.original.id else a for a in self.here()
        ]
        painter.save()
        for a in items:
            if a.kind == KEY_IMAGE:
                self._paint_key_badge(painter)
            else:
                self._paint_annotation(painter, a, a.id == self.selected)
        draft = self._draft
        if draft is not None:
            preview = Annotation("", draft.kind, "", "", "", 0, 0, tuple(draft.points))
            if draft.kind in ROI_KINDS or draft.kind == ANGLE:
                with contextlib.suppress(ValueError):  # flat so far: no statistics yet
                    preview = self._measure(preview)
            self._paint_annotation(painter, preview, True, draft=True)
        painter.restore()

    def _pen(self, selected: bool, draft: bool = False) -> QPen:
        pen = QPen(SELECTED_COLOR if selected and not draft else COLOR, 2.2 if selected else 1.6)
        pen.setCosmetic(True)
        if draft:
            pen.setStyle(Qt.PenStyle.DashLine)
        return pen

    def _paint_annotation(
        self, painter: QPainter, a: Annotation, selected: bool, draft: bool = False
    ) -> None:
        t = self.canvas.transform()
        pen = self._pen(selected, draft)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        anchor: QPointF
        below: QPointF | None = None  # where the label goes when it doesn't fit on the right
        if a.kind in ROI_KINDS:
            x0, y0, x1, y1 = a.bounds()
            painter.save()
            painter.setTransform(t)
            painter.setPen(pen)
            rect = QRectF(x0, y0, x1 - x0, y1 - y0)
            if a.kind == ELLIPSE:
                painter.drawEllipse(rect)
            else:
                painter.drawRect(rect)
            painter.restore()
            corners = [t.map(QPointF(x, y)) for x, y in handles(a)]
            anchor = QPointF(max(c.x() for c in corners) + 6, min(c.y() for c in corners))
            below = QPointF(min(c.x() for c in corners), max(c.y() for c in corners) + 6)
        else:
            pts = [t.map(QPointF(x, y)) for x, y in a.points]
            painter.setPen(pen)
            painter.drawPolyline(QPolygonF(pts))
            if a.kind == ARROW:
                self._paint_arrowhead(painter, pts[1], pts[0], pen)
                anchor = pts[1] + QPointF(6, 0)
            else:
                anchor = pts[1] + QPointF(8, -8)
        if selected and not draft:
            painter.setPen(QPen(SELECTED_COLOR, 1))
            painter.setBrush(COLOR)
            for x, y in handles(a):
                h = t.map(QPointF(x, y))
                painter.drawRect(QRectF(h.x() - 3.5, h.y() - 3.5, 7, 7))
            painter.setBrush(Qt.BrushStyle.NoBrush)
        lines = a.label_lines()
        if lines:
            rect = self._paint_label(painter, anchor, lines, below)
            if a.id:
                self._labels.append((a.id, rect))

    def _paint_arrowhead(self, painter: QPainter, tail: QPointF, tip: QPointF, pen: QPen) -> None:
        angle = math.atan2(tip.y() - tail.y(), tip.x() - tail.x())
        size = 11.0
        wings = [
            QPointF(tip.x() - size * math.cos(angle - s), tip.y() - size * math.sin(angle - s))
            for s in (0.45, -0.45)
        ]
        painter.setBrush(pen.color())
        painter.drawPolygon(QPolygonF([tip, wings[0], wings[1]]))
        painter.setBrush(Qt.BrushStyle.NoBrush)

    def _paint_label(
        self, painter: QPainter, anchor: QPointF, lines: list[str], below: QPointF | None = None
    ) -> QRectF:
        """A multi-line label on a dark box at ``anchor`` (its top-left), kept on the canvas;
        at ``below`` instead (under the shape) when it would run off the right edge."""
        font = QFont(self.canvas.font())
        font.setPointSizeF(max(font.pointSizeF(), 9.0))
        painter.setFont(font)
        metrics = painter.fontMetrics()
        texts = [safe_text(line) for line in lines]
        width = max(metrics.horizontalAdvance(line) for line in texts) + 10
        height = metrics.height() * len(texts) + 6
        if below is not None and anchor.x() + width > self.canvas.width() - 2:
            anchor = below
        x = min(max(anchor.x(), 2.0), self.canvas.width() - width - 2)
        y = min(max(anchor.y(), 2.0), self.canvas.height() - height - 2)
        rect = QRectF(x, y, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 175))
        painter.drawRoundedRect(rect, 3, 3)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(COLOR)
        for i, line in enumerate(texts):
            baseline = y + 3 + metrics.ascent() + i * metrics.height()
            painter.drawText(QPointF(x + 5, baseline), line)
        return rect

    def _paint_key_badge(self, painter: QPainter) -> None:
        font = QFont(self.canvas.font())
        font.setBold(True)
        painter.setFont(font)
        text = "★ Key image"
        metrics = painter.fontMetrics()
        width = metrics.horizontalAdvance(text) + 14
        top = 8 + metrics.height()  # below the top edge's orientation letter
        rect = QRectF((self.canvas.width() - width) / 2, top, width, metrics.height() + 6)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 175))
        painter.drawRoundedRect(rect, 4, 4)
        painter.setPen(QColor("#ffd166"))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.setBrush(Qt.BrushStyle.NoBrush)


_HOW = {
    ELLIPSE: "drag across the region (Delete removes the selected one, Ctrl+Z undoes)",
    RECTANGLE: "drag across the region (Delete removes the selected one, Ctrl+Z undoes)",
    ANGLE: "drag the first arm from its end to the vertex, then click the second arm's end",
    ARROW: "drag from the point shown to where the text goes, then type the text",
}
