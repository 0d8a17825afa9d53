"""LesionStripWidget: a thin bar along the slice slider with a tick, in the lesion's colour, at
every slice a lesion crosses; a click on a tick goes to that slice.

The ticks sit where the slider's handle stands for that slice (the style's groove and handle
geometry, inverted with the slider when an axial stack is read feet first), so a tick and the
handle line up at any width.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QSlider, QStyle, QStyleOptionSlider, QWidget

STRIP_PX = 9
TICK_PX = 3
HIT_PX = 8  # a click this near a tick goes to its slice
CURRENT_COLOR = "#f2f3f5"
BAR_COLOR = "#2a2c30"


class LesionStripWidget(QWidget):
    """Marks (slice, colour) along ``slider``; emits :attr:`sliceClicked` with the slice."""

    sliceClicked = Signal(int)

    def __init__(self, slider: QSlider, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lesionStrip")
        self.slider = slider
        self.ticks: list[tuple[int, str]] = []  # (slice index, colour)
        self.selected_slices: frozenset[int] = frozenset()
        self.setFixedHeight(STRIP_PX)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Lesions by slice: click a mark to go to that slice (Alt+↓ / Alt+↑)")
        slider.rangeChanged.connect(lambda *_: self.update())
        slider.valueChanged.connect(lambda *_: self.update())
        self.hide()

    def set_ticks(self, ticks: Sequence[tuple[int, str]], selected: Sequence[int] = ()) -> None:
        """The marks to show (slice index, colour); ``selected``: the selected lesion's slices
        (drawn taller). No marks hides the strip."""
        self.ticks = sorted(set(ticks))
        self.selected_slices = frozenset(selected)
        self.setVisible(bool(self.ticks))
        self.update()

    def tick_slices(self) -> list[int]:
        return sorted({s for s, _ in self.ticks})

    def sizeHint(self) -> QSize:
        return QSize(200, STRIP_PX)

    # ------------------------------------------------------------------ geometry
    def x_of(self, index: int) -> int:
        """The strip's x for slice ``index``: under the slider handle's centre."""
        return self._mapper()(index)

    def _mapper(self) -> Callable[[int], int]:
        """Slice index -> strip x, with the slider's style geometry looked up once (a paint
        places every tick: looking it up per tick cost ~1 ms per scroll step)."""
        slider = self.slider
        opt = QStyleOptionSlider()
        slider.initStyleOption(opt)
        style = slider.style()
        groove = style.subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderGroove, slider
        )
        handle = style.subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, slider
        )
        span = max(groove.width() - handle.width(), 1)
        low, high, inverted = slider.minimum(), slider.maximum(), slider.invertedAppearance()
        left = groove.x() + handle.width() // 2
        shift = self.mapFromGlobal(slider.mapToGlobal(QPoint(0, 0))).x()

        def x_of(index: int) -> int:
            return left + QStyle.sliderPositionFromValue(low, high, index, span, inverted) + shift

        return x_of

    def slice_at(self, x: int) -> int | None:
        """The marked slice nearest ``x`` (within HIT_PX), or None."""
        best: tuple[int, int] | None = None
        x_of = self._mapper()
        for index in self.tick_slices():
            d = abs(x_of(index) - x)
            if d <= HIT_PX and (best is None or d < best[0]):
                best = (d, index)
        return None if best is None else best[1]

    # ------------------------------------------------------------------ events
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        h = self.height()
        x_of = self._mapper()
        left, right = x_of(self.slider.minimum()), x_of(self.slider.maximum())
        p.fillRect(QRect(min(left, right), h // 2 - 1, abs(right - left) + 1, 2), QColor(BAR_COLOR))
        for index, color in self.ticks:
            x = x_of(index)
            tall = index in self.selected_slices
            top = 0 if tall else 2
            p.fillRect(QRect(x - TICK_PX // 2, top, TICK_PX, h - 2 * top), QColor(color))
        x = x_of(self.slider.value())
        p.fillRect(QRect(x, 0, 1, h), QColor(CURRENT_COLOR))
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            index = self.slice_at(round(event.position().x()))
            if index is not None:
                self.sliceClicked.emit(index)
                event.accept()
                return
        super().mousePressEvent(event)


__all__ = ["LesionStripWidget"]
