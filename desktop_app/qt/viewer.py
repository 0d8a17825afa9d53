"""ViewerWidget: one series in the canvas, with a slice slider, window/level and a readout.

The series' pixels come from a core :class:`~desktop_app.studies.volume.SeriesVolume`: the shown
slice is decoded first and the rest in the background, so the first image appears before the
series is read. A slice that isn't decoded yet is fetched in a worker, never on the GUI thread.

Slices are named by their Instance Number (``SliceStack.slice_label``). The stack's order is
head first for axial stacks (``studies.series``); ``feet_first`` turns only the navigation
around (Home, Up/Down, the wheel, the slider, cine), so stack indices stay what findings and
reviews store.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from desktop_app.dicom.cornertext import ImageLabels
from desktop_app.dicom.display import render
from desktop_app.dicom.pixels import Frame
from desktop_app.dicom.viewing import (
    ValueRange,
    distance_mm,
    drag_window,
    format_distance,
    pixel_readout,
)
from desktop_app.dicom.voi import Window, auto_window
from desktop_app.qt.canvas import ImageCanvas, Ruler
from desktop_app.qt.lesion_strip import LesionStripWidget
from desktop_app.qt.workers import TaskChannel
from desktop_app.studies.series import SliceStack
from desktop_app.studies.volume import BackgroundLoad, SeriesVolume

log = logging.getLogger(__name__)


@dataclass
class SeriesContext:
    """What the viewer shows: a stack, its volume, and labels for the corner text."""

    stack: SliceStack
    volume: SeriesVolume
    modality: str = ""
    description: str = ""
    key: str = ""  # stable id of the stack: "<Series Instance UID>#<part, 1-based>"


@dataclass(frozen=True)
class DecodedSlice:
    """A slice decoded and rendered in the worker, for the series shown as ``token``."""

    token: int
    index: int
    frame: Frame
    window: Window | None
    invert: bool
    image: np.ndarray
    labels: ImageLabels | None = None


class _LoadRelay(QObject):
    progressed = Signal(int, int, int)  # token, done, total


class ViewerWidget(QWidget):
    """Canvas + slice slider + readout. Emits what changed so the window can follow."""

    sliceChanged = Signal(int)
    windowChanged = Signal(object)
    readoutChanged = Signal(str)
    loadProgress = Signal(int, int)  # background decode of the series
    errorOccurred = Signal(str)
    frameShown = Signal(int)  # slice index, once its pixels are on the canvas
    cineChanged = Signal(bool)  # playing or not

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = ImageCanvas(self)
        self.canvas.set_placeholder("Open a study: File ▸ Open, or drop files here")
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setObjectName("sliceSlider")
        self.slider.setEnabled(False)
        self.slice_label = QLabel("", self)
        self.slice_label.setObjectName("sliceLabel")
        self.slice_label.setMinimumWidth(90)
        self.slice_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # a segmentation's lesions, slice by slice, along the slider (the lesion controller)
        self.lesion_strip = LesionStripWidget(self.slider, self)
        track = QVBoxLayout()
        track.setContentsMargins(0, 0, 0, 0)
        track.setSpacing(0)
        track.addWidget(self.lesion_strip)
        track.addWidget(self.slider)
        bottom = QHBoxLayout()
        bottom.setContentsMargins(6, 2, 6, 4)
        bottom.addLayout(track, 1)
        bottom.addWidget(self.slice_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(bottom)

        self.context: SeriesContext | None = None
        self.index = 0
        self.window_level: Window | None = None
        self.invert = False
        self.feet_first = False  # axial stacks navigated feet to head (display only)
        self.labels: ImageLabels | None = None  # of the shown slice's header, once decoded
        self._frame: Frame | None = None
        self._frame_index = -1
        self._value_range = ValueRange(0.0, 1.0)
        self._background: BackgroundLoad | None = None
        self._token = 0
        self._relay = _LoadRelay(self)
        self._relay.progressed.connect(self._on_load_progress)
        self._slice_channel = TaskChannel("slice", self)
        self._slice_channel.finished.connect(self._on_slice_decoded)
        self._slice_channel.failed.connect(self.errorOccurred)
        self._rulers: dict[int, list[Ruler]] = {}
        self._wl_timer = QTimer(self)
        self._wl_timer.setSingleShot(True)
        self._wl_timer.setInterval(0)
        self._wl_timer.timeout.connect(self._refresh_image)
        self.render_hook: Callable[[int], None] | None = None
        self.cine_fps = 10
        self._cine = QTimer(self)
        self._cine.timeout.connect(self._cine_tick)

        self.slider.valueChanged.connect(self.set_index)
        self.canvas.sliceStepRequested.connect(self.step)
        self.canvas.windowDragged.connect(self._on_window_drag)
        self.canvas.cursorMoved.connect(self._on_cursor)
        self.canvas.rulerFinished.connect(self._on_ruler)

    # ------------------------------------------------------------------ series
    def set_series(self, context: SeriesContext | None, start: int | None = None) -> None:
        """Show a series: decode the start slice (default the middle) first, the rest behind."""
        self.stop_cine()
        self._stop_background()
        self._token += 1
        self.context = context
        self._frame = None
        self._frame_index = -1
        self.window_level = None
        self.labels = None
        self._rulers = {}
        self.canvas.set_rulers([])
        self._apply_direction()
        if context is None:
            self.slider.setEnabled(False)
            self.canvas.set_image(None)
            self.slice_label.setText("")
            return
        n = len(context.volume)
        index = context.volume.middle() if start is None else min(max(start, 0), n - 1)
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(n - 1, 0))
        self.slider.setValue(index)
        self.slider.setEnabled(n > 1)
        self.slider.blockSignals(False)
        self.index = index
        self._show_index(index)
        token = self._token
        relay = self._relay

        def progress(done: int, total: int) -> None:
            with contextlib.suppress(RuntimeError):  # the viewer is gone
                relay.progressed.emit(token, done, total)

        self._background = context.volume.start_background_load(progress=progress, first=index)

    def _stop_background(self) -> None:
        if self._background is not None:
            self._background.cancel()
            self._background = None

    def shutdown(self) -> None:
        """Stop cine, the background decode and slice requests, and wait for them."""
        self.stop_cine()
        background = self._background
        self._stop_background()
        if background is not None:
            background.wait(30.0)
        self._slice_channel.shutdown()

    # ------------------------------------------------------------------ cine
    @property
    def cine_playing(self) -> bool:
        return self._cine.isActive()

    def set_cine_fps(self, fps: int) -> None:
        self.cine_fps = int(min(max(fps, 1), 60))
        if self._cine.isActive():
            self._cine.setInterval(round(1000 / self.cine_fps))

    def play_cine(self) -> None:
        if self.slice_count < 2:
            return
        self._cine.start(round(1000 / self.cine_fps))
        self.cineChanged.emit(True)

    def stop_cine(self) -> None:
        if self._cine.isActive():
            self._cine.stop()
            self.cineChanged.emit(False)

    def toggle_cine(self) -> None:
        if self._cine.isActive():
            self.stop_cine()
        else:
            self.play_cine()

    def _cine_tick(self) -> None:
        if self.context is None or self.slice_count < 2:
            self.stop_cine()
            return
        # Wait for a slice still being decoded rather than skipping past it.
        if self._frame_index != self.index:
            return
        self.set_index((self.index + self.direction) % self.slice_count)

    def _on_load_progress(self, token: int, done: int, total: int) -> None:
        if token == self._token:
            self.loadProgress.emit(done, total)

    @property
    def slice_count(self) -> int:
        return 0 if self.context is None else len(self.context.volume)

    # ------------------------------------------------------------------ slices
    @property
    def direction(self) -> int:
        """+1, or -1 when an axial (head-first) stack is navigated feet first."""
        runs = self.context.stack.runs if self.context is not None else None
        return -1 if self.feet_first and runs is not None and runs[0].startswith("H") else 1

    def set_feet_first(self, feet_first: bool) -> None:
        self.feet_first = bool(feet_first)
        self._apply_direction()

    def _apply_direction(self) -> None:
        backwards = self.direction < 0
        self.slider.setInvertedAppearance(backwards)
        self.slider.setInvertedControls(backwards)

    def step(self, delta: int) -> None:
        """Move ``delta`` slices in the reading direction (down the screen's order)."""
        if self.context is not None:
            self.set_index(self.index + delta * self.direction)

    def go_to_end(self, last: bool) -> None:
        """Home (``last`` False) and End in the reading direction."""
        first_index, last_index = 0, self.slice_count - 1
        if self.direction < 0:
            first_index, last_index = last_index, first_index
        self.set_index(last_index if last else first_index)

    def set_index(self, index: int) -> None:
        if self.context is None:
            return
        index = min(max(int(index), 0), self.slice_count - 1)
        if index == self.index and self._frame_index == index:
            return
        self.index = index
        if self.slider.value() != index:
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        self._show_index(index)

    def _show_index(self, index: int) -> None:
        """Decode (if needed) and render slice ``index`` in a worker; the GUI thread only
        wraps the result. A newer request supersedes an older one, so fast scrolling skips
        what it has already passed."""
        assert self.context is not None
        self.slice_label.setText(self.context.stack.slice_label(index))
        volume = self.context.volume
        token = self._token
        window, invert = self.window_level, self.invert

        def work(progress: Callable[[int, int], None], stop: threading.Event) -> DecodedSlice:
            frame = volume.frame(index)
            shown = window
            if shown is None and not frame.is_color:
                shown = frame.windows[0] if frame.windows else auto_window(frame.values)
            image = render(frame, shown, invert=invert)
            labels = ImageLabels.from_header(volume.header(index))  # cached by frame()
            return DecodedSlice(token, index, frame, shown, invert, image, labels)

        self._slice_channel.submit(work)
        self.sliceChanged.emit(index)

    def _on_slice_decoded(self, result: DecodedSlice) -> None:
        if result.token == self._token and result.index == self.index:
            r = result
            self.labels = r.labels
            self._set_frame(r.index, r.frame, r.window, r.invert, r.image)

    def _set_frame(
        self,
        index: int,
        frame: Frame,
        window: Window | None,
        invert: bool,
        image: np.ndarray,
    ) -> None:
        first = self._frame is None
        self._frame = frame
        self._frame_index = index
        if first:
            self._value_range = ValueRange.of(frame.values)
            if self.window_level is None and window is not None:
                self.window_level = window
                self.windowChanged.emit(self.window_level)
        if window == self.window_level and invert == self.invert:
            self.canvas.set_image(image)
        else:  # window/level or invert changed while the worker rendered
            self._refresh_image()
        self.canvas.set_rulers(self._rulers.get(index, []))
        if self.render_hook is not None:
            self.render_hook(index)
        self.frameShown.emit(index)

    @property
    def frame(self) -> Frame | None:
        return self._frame

    # ------------------------------------------------------------------ window / level
    def set_window(self, window: Window | None) -> None:
        if self._frame is not None and window is None:
            window = (
                self._frame.windows[0] if self._frame.windows else auto_window(self._frame.values)
            )
        self.window_level = window
        self.windowChanged.emit(window)
        self._wl_timer.start()

    def reset_window(self) -> None:
        self.set_window(None)

    def set_invert(self, invert: bool) -> None:
        self.invert = invert
        self._refresh_image()

    def _on_window_drag(self, dx: float, dy: float) -> None:
        if self._frame is None or self._frame.is_color or self.window_level is None:
            return
        self.window_level = drag_window(self.window_level, dx, dy, self._value_range)
        self.windowChanged.emit(self.window_level)
        self._wl_timer.start()  # coalesce a burst of drag events into one render

    def _refresh_image(self) -> None:
        if self._frame is None:
            return
        try:
            image = render(self._frame, self.window_level, invert=self.invert)
        except Exception as err:
            self.errorOccurred.emit(f"can't display this image: {err}")
            return
        self.canvas.set_image(image)

    def displayed_image(self) -> np.ndarray | None:
        if self._frame is None:
            return None
        return render(self._frame, self.window_level, invert=self.invert)

    # ------------------------------------------------------------------ readout / ruler
    def _on_cursor(self, pos: tuple[float, float] | None) -> None:
        if pos is None or self._frame is None:
            self.readoutChanged.emit("")
            return
        x, y = pos
        modality = self.context.modality if self.context else ""
        text = pixel_readout(
            self._frame.values, x, y, modality=modality, is_color=self._frame.is_color
        )
        self.readoutChanged.emit(text or "")

    def _on_ruler(self, ruler: Ruler) -> None:
        spacing = self._frame.pixel_spacing if self._frame is not None else None
        value, unit = distance_mm(ruler.start, ruler.end, spacing)
        ruler.text = format_distance(value, unit)
        self._rulers.setdefault(self.index, []).append(ruler)
        self.canvas.set_rulers(self._rulers[self.index])

    def clear_rulers(self) -> None:
        self._rulers.pop(self.index, None)
        self.canvas.set_rulers([])

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Left):
            self.step(-1)
        elif key in (Qt.Key.Key_Down, Qt.Key.Key_Right):
            self.step(1)
        elif key == Qt.Key.Key_PageUp:
            self.step(-max(1, self.slice_count // 10))
        elif key == Qt.Key.Key_PageDown:
            self.step(max(1, self.slice_count // 10))
        elif key == Qt.Key.Key_Home:
            self.go_to_end(last=False)
        elif key == Qt.Key.Key_End:
            self.go_to_end(last=True)
        else:
            super().keyPressEvent(event)
