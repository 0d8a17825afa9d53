"""MaskToolController: the reader's brush and eraser on a segmentation's lesion masks, and
"Add lesion" (the brush with no lesion selected draws a new one), each stroke one undoable step.

The edits are the core's (``ReviewState.paint_lesion``: the label volume on the image grid,
the touched lesions measured again); this controller turns a mouse drag on the shown slice into
one region of image pixels (``lesionreview.brush_region``) and applies it on release. Like the
annotation tools it leaves the canvas as it is: mouse events reach it through an event filter
and it paints the live stroke and the brush outline through the canvas's ``paint_hooks``.

Mouse and keys: with the Brush (W) or the Eraser (Shift+W), left-drag paints on the shown slice;
Ctrl+wheel or Alt+] / Alt+[ change the brush's diameter (pixels; shown in mm where the image
has a pixel spacing); right-click or Esc drops a stroke in progress. The brush paints into the
selected lesion (click its row), or with none selected ("Add lesion", Shift+L) draws a new
reader lesion, selected once drawn. The eraser clears any lesion under it. Ctrl+Z / Ctrl+Shift+Z
undo and redo strokes while a mask tool is in hand (else the annotations' undo).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from desktop_app.infra.errors import RadAssistError
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.qt.canvas import ImageCanvas
from desktop_app.qt.controllers.feedback import Feedback
from desktop_app.qt.controllers.review import ReviewController
from desktop_app.qt.controllers.shown import Shown
from desktop_app.qt.lesion_overlay import lesion_color
from desktop_app.qt.viewer import ViewerWidget
from desktop_app.review.lesionreview import LesionSnapshot, brush_region
from desktop_app.review.state import ReviewState

log = logging.getLogger(__name__)

BRUSH, ERASER = "brush", "eraser"
MASK_TOOLS = (BRUSH, ERASER)
DEFAULT_DIAMETER = 7
MIN_DIAMETER, MAX_DIAMETER = 1, 99
ERASER_COLOR = QColor("#ff5c5c")
MAX_UNDO = 50  # strokes kept per study


@dataclass
class _Stroke:
    """A drag in progress on one slice: the pixels covered so far and how it draws."""

    series_key: str
    slice_index: int
    erase: bool
    lesion_id: int | None
    last: tuple[float, float]
    region: np.ndarray
    color: QColor
    rgba: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0, 4), np.uint8))


@dataclass
class _History:
    undo: list[LesionSnapshot] = field(default_factory=list)
    redo: list[LesionSnapshot] = field(default_factory=list)


class MaskToolController(QObject):
    """Brush, eraser and "Add lesion" on the shown series' lesion masks."""

    edited = Signal(str, int)  # series key, lesion id painted (0: erased from every lesion)

    def __init__(
        self,
        host: QWidget,
        shown: Shown,
        viewer: ViewerWidget,
        review: ReviewController,
        lesions: object,
        feedback: Feedback,
        fallback_undo: Callable[[], None] | None = None,
        fallback_redo: Callable[[], None] | None = None,
        acts: Mapping[str, QAction] | None = None,
    ) -> None:
        super().__init__(host)
        self.shown = shown
        self.viewer = viewer
        self.canvas: ImageCanvas = viewer.canvas
        self.review = review
        self.lesions = lesions  # qt.controllers.lesions.LesionController: selection, redraw
        self.feedback = feedback
        self.fallback_undo = fallback_undo
        self.fallback_redo = fallback_redo
        self.acts = acts if acts is not None else {}  # the window fills its dict later
        self.diameter = DEFAULT_DIAMETER
        self._stroke: _Stroke | None = None
        self._cursor: QPointF | None = None  # image point under the mouse
        self._histories: dict[str, _History] = {}
        self.canvas.installEventFilter(self)
        self.canvas.paint_hooks.append(self.paint)
        viewer.sliceChanged.connect(lambda _i: self.cancel_stroke())

    # ------------------------------------------------------------------ tools (actions)
    @property
    def active(self) -> bool:
        return self.canvas.tool in MASK_TOOLS

    def set_tool(self, kind: str) -> None:
        """Make the brush or the eraser the left button's tool."""
        if kind not in MASK_TOOLS:
            raise ValueError(f"`kind` {kind!r} should be one of: {', '.join(MASK_TOOLS)}")
        self.cancel_stroke()
        self.canvas.tool = kind
        action = self.acts.get(f"tool_{kind}")
        if action is not None:  # checked as if its key was pressed (e.g. after "Add lesion")
            action.setChecked(True)
        self.canvas.setCursor(Qt.CursorShape.BlankCursor)
        self.canvas.update()
        self.feedback.message(self._how(kind), 8000)

    def start_add_lesion(self) -> None:
        """The brush with no lesion selected: the next stroke draws a new reader lesion."""
        select = getattr(self.lesions, "select_lesion", None)
        if callable(select):
            select(None)
        self.set_tool(BRUSH)
        self.feedback.message(
            f"Add lesion: paint the missed lesion on this slice ({self._size_text()}); "
            "scroll and paint on to extend it",
            8000,
        )

    def set_diameter(self, diameter: int) -> None:
        self.diameter = int(min(max(diameter, MIN_DIAMETER), MAX_DIAMETER))
        self.canvas.update()
        self.feedback.message(f"Brush {self._size_text()}", 3000)

    def grow(self, delta: int) -> None:
        """Alt+] / Alt+[: a bigger or smaller brush (steps grow with the size)."""
        step = max(1, self.diameter // 5)
        self.set_diameter(self.diameter + (step if delta > 0 else -step))

    def _size_text(self) -> str:
        frame = self.viewer.frame
        spacing = frame.pixel_spacing if frame is not None else None
        if spacing:
            return f"{self.diameter} px ≈ {self.diameter * float(spacing[1]):.1f} mm"
        return f"{self.diameter} px"

    def _how(self, kind: str) -> str:
        if kind == ERASER:
            return f"Eraser ({self._size_text()}): drag to erase any lesion on this slice"
        target = self._selected()
        into = f"into lesion L{target}" if target else "a new lesion (none selected)"
        return f"Brush ({self._size_text()}): drag to paint {into}; Ctrl+wheel sizes it"

    def _selected(self) -> int | None:
        selected = getattr(self.lesions, "selected", None)
        return int(selected) if selected else None

    # ------------------------------------------------------------------ the review
    def _state(self) -> ReviewState | None:
        return self.review.current_state()

    def _editable_key(self) -> str | None:
        """The shown series' key when its lesions are in the review and its pixels are on
        the canvas with the label volume's size; else None (with a message)."""
        state, key = self._state(), self.shown.key
        labels = state.lesion_labels(key) if state is not None and key is not None else None
        if key is None or labels is None:
            self.feedback.show_error(
                "no lesions to edit on this series: run the segmentation model first (Ctrl+Enter)"
            )
            return None
        size = self.canvas.image_size()
        index = self.viewer.index
        if size is None or (labels.shape[2], labels.shape[1]) != tuple(size):
            return None
        if not 0 <= index < labels.shape[0]:
            return None
        return key

    def _attach_values(self, state: ReviewState, key: str) -> None:
        """HU for the lesions' means after an edit: from the shown series' decoded volume."""
        volume = self.shown.volume
        if volume is None:
            return

        def values(index: int) -> np.ndarray | None:
            try:
                frame = volume.frame(index)
            except RadAssistError:
                return None
            return None if frame.is_color else frame.values

        state.attach_lesion_values(key, values)

    # ------------------------------------------------------------------ strokes
    def _begin(self, p: tuple[float, float]) -> bool:
        key = self._editable_key()
        state = self._state()
        if key is None or state is None:
            return False
        labels = state.lesion_labels(key)
        assert labels is not None
        erase = self.canvas.tool == ERASER
        target = None if erase else self._selected()
        if target is not None and target not in {x.lesion_id for x in state.lesions_for(key)}:
            target = None
        shown_id = target if target is not None else state.lesion_set(key).next_id
        color = ERASER_COLOR if erase else QColor(lesion_color(shown_id))
        shape = (int(labels.shape[1]), int(labels.shape[2]))
        self._stroke = _Stroke(
            key,
            self.viewer.index,
            erase,
            target,
            p,
            np.zeros(shape, dtype=bool),
            color,
            np.zeros((*shape, 4), dtype=np.uint8),
        )
        self._extend(p)
        return True

    def _extend(self, p: tuple[float, float]) -> None:
        stroke = self._stroke
        if stroke is None:
            return
        added = brush_region(stroke.region.shape, [stroke.last, p], self.diameter)  # type: ignore[arg-type]
        stroke.region |= added
        stroke.last = p
        c = stroke.color
        stroke.rgba[added] = (c.red(), c.green(), c.blue(), 150)
        self.canvas.update()

    def cancel_stroke(self) -> None:
        if self._stroke is not None:
            self._stroke = None
            self.canvas.update()

    def _finish(self) -> None:
        stroke, state = self._stroke, self._state()
        self._stroke = None
        self.canvas.update()
        if stroke is None or state is None or not stroke.region.any():
            return
        if self.shown.key != stroke.series_key:
            return
        self.apply_stroke(stroke.slice_index, stroke.region, stroke.lesion_id, stroke.erase)

    def apply_stroke(
        self, slice_index: int, region: np.ndarray, lesion_id: int | None, erase: bool
    ) -> int | None:
        """Paint (or erase) ``region`` on ``slice_index`` of the shown series as one undoable
        step, save and redraw; returns the lesion painted (None when refused)."""
        state, key = self._state(), self.shown.key
        if state is None or key is None or state.lesion_labels(key) is None:
            self.feedback.show_error("no lesions to edit on this series: run the model first")
            return None
        self._attach_values(state, key)
        before = state.lesion_snapshot(key, slice_index)
        try:
            painted = state.paint_lesion(
                key, slice_index, region, lesion_id, erase=erase, reviewer=self.review.reviewer()
            )
        except (RadAssistError, KeyError, ValueError, IndexError) as err:
            self.feedback.show_error(f"the stroke was not applied: {err}")
            return None
        history = self._histories.setdefault(state.study_uid, _History())
        history.undo = [*history.undo, before][-MAX_UNDO:]
        history.redo = []
        self._saved(state, key, "erase" if erase else "brush", painted)
        if not erase and lesion_id is None and painted:
            self._select(painted)
            self.feedback.message(f"New lesion L{painted} drawn (it is selected: paint on)", 6000)
        return painted

    def _select(self, lesion_id: int | None) -> None:
        refresh = getattr(self.lesions, "refresh", None)
        if callable(refresh):
            refresh(masks_changed=True)
        select = getattr(self.lesions, "select_lesion", None)
        if callable(select) and lesion_id is not None:
            select(lesion_id)

    def _saved(self, state: ReviewState, key: str, action: str, lesion_id: int) -> None:
        self.review.save(state)
        entry = self.shown.entry
        self.review.writer.audit(
            "lesion_edit",
            study_hash=uid_hash(state.study_uid),
            series_hash=uid_hash(entry.stack.series_instance_uid) if entry is not None else "",
            action=action,
            lesion_id=lesion_id,
            lesions=len(state.lesions_for(key)),
            reviewer=self.review.reviewer(),
        )
        self._select(None)
        self.edited.emit(key, lesion_id)

    # ------------------------------------------------------------------ undo / redo
    def undo(self) -> None:
        self._step(undo=True)

    def redo(self) -> None:
        self._step(undo=False)

    def _step(self, undo: bool) -> None:
        state = self._state()
        history = self._histories.get(state.study_uid) if state is not None else None
        stack = None if history is None else (history.undo if undo else history.redo)
        if state is None or history is None or not stack or not self.active:
            fallback = self.fallback_undo if undo else self.fallback_redo
            if fallback is not None:
                fallback()
            elif state is not None:
                self.feedback.message(f"nothing to {'undo' if undo else 'redo'}", 3000)
            return
        self.cancel_stroke()
        snap = stack.pop()
        try:
            other = state.restore_lesions(snap)
        except (KeyError, IndexError) as err:
            self.feedback.show_error(f"that stroke can't be undone any more: {err}")
            return
        (history.redo if undo else history.undo).append(other)
        self._saved(state, snap.series_key, "undo" if undo else "redo", 0)

    # ------------------------------------------------------------------ mouse and keys
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is not self.canvas:
            return False
        if not self.active:
            if self._stroke is not None or self._cursor is not None:
                self._stroke, self._cursor = None, None
                self.canvas.unsetCursor()
                self.canvas.update()
            return False
        kind = event.type()
        if kind == QEvent.Type.MouseButtonPress and isinstance(event, QMouseEvent):
            return self._press(event)
        if kind == QEvent.Type.MouseMove and isinstance(event, QMouseEvent):
            if self.canvas.cursor().shape() != Qt.CursorShape.BlankCursor:
                self.canvas.setCursor(Qt.CursorShape.BlankCursor)  # the brush outline is drawn
            return self._move(event)
        if kind == QEvent.Type.MouseButtonRelease and isinstance(event, QMouseEvent):
            if event.button() == Qt.MouseButton.LeftButton and self._stroke is not None:
                self._finish()
                return True
            return False
        if kind == QEvent.Type.Wheel and isinstance(event, QWheelEvent):
            if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
                delta = event.angleDelta().y()
                if delta:
                    self.grow(1 if delta > 0 else -1)
                return True
            return False
        if kind == QEvent.Type.Leave:
            self._cursor = None
            self.canvas.update()
        escape = isinstance(event, QKeyEvent) and event.key() == Qt.Key.Key_Escape
        if kind == QEvent.Type.KeyPress and escape and self._stroke is not None:
            self.cancel_stroke()
            return True
        return False

    def _image_point(self, pos: QPointF) -> tuple[float, float]:
        p = self.canvas.widget_to_image(pos)
        return (p.x(), p.y())

    def _press(self, event: QMouseEvent) -> bool:
        if event.button() == Qt.MouseButton.RightButton and self._stroke is not None:
            self.cancel_stroke()
            return True
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        self.canvas.setFocus()
        self._begin(self._image_point(event.position()))
        return True

    def _move(self, event: QMouseEvent) -> bool:
        p = self._image_point(event.position())
        self._cursor = QPointF(*p)
        if self._stroke is not None and event.buttons() & Qt.MouseButton.LeftButton:
            self._extend(p)
            return True
        self.canvas.update()
        return False  # the readout still follows the cursor

    # ------------------------------------------------------------------ drawing
    def paint(self, painter: QPainter) -> None:
        if not self.active:
            return
        t = self.canvas.transform()
        stroke = self._stroke
        if stroke is not None and self.viewer.index == stroke.slice_index:
            rows, cols = stroke.region.shape
            image = QImage(stroke.rgba.data, cols, rows, cols * 4, QImage.Format.Format_RGBA8888)
            painter.save()
            painter.setTransform(t)
            painter.drawImage(QPointF(0, 0), image)
            painter.restore()
        if self._cursor is not None:
            centre = t.map(self._cursor)
            radius = self.diameter / 2.0 * self.canvas.zoom
            color = ERASER_COLOR if self.canvas.tool == ERASER else QColor("#ffffff")
            painter.save()
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(QColor(0, 0, 0, 160), 3))
            painter.drawEllipse(centre, radius, radius)
            painter.setPen(QPen(color, 1.5))
            painter.drawEllipse(centre, radius, radius)
            painter.restore()


__all__ = ["BRUSH", "ERASER", "MASK_TOOLS", "MaskToolController"]
