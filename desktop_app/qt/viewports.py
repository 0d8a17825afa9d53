"""ViewportGrid: the 1×1, 1×2 and 2×2 viewports, each a ViewerWidget in a frame that takes a
series dragged from the browser; a click, wheel or key in a viewport makes it the active one.

Viewport 0 is the window's ``viewer``: the controllers that show a series, its findings and its
review drive it. The others are made when a layout first needs them and kept (with their
series) while a smaller layout hides them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QFrame, QGridLayout, QVBoxLayout, QWidget

from desktop_app.qt.study_browser import STACK_MIME
from desktop_app.qt.viewer import ViewerWidget

LAYOUTS: dict[str, tuple[int, int]] = {"1x1": (1, 1), "1x2": (1, 2), "2x2": (2, 2)}
ACTIVE_COLOR = "#3d8bfd"
IDLE_COLOR = "#2a2d33"
EMPTY_TEXT = "Drag a series here from the Studies list"
_ACTIVATING = {QEvent.Type.MouseButtonPress, QEvent.Type.Wheel, QEvent.Type.FocusIn}


class ViewportFrame(QFrame):
    """One viewport: a viewer in an outline that shows whether it is active; accepts a
    browser row dropped on it."""

    activated = Signal(int)  # position
    stackDropped = Signal(int, str)  # position, stack key

    def __init__(self, position: int, viewer: ViewerWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.position = position
        self.viewer = viewer
        self.setObjectName(f"viewport{position}")
        self.setAcceptDrops(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(viewer)
        for widget in (viewer.canvas, viewer.slider):
            widget.installEventFilter(self)
        self.set_outline(active=False, shown=False)

    def set_outline(self, *, active: bool, shown: bool) -> None:
        """A 2 px outline, blue when active, once there is more than one viewport."""
        color = ACTIVE_COLOR if active else IDLE_COLOR
        width = 2 if shown else 0
        self.setStyleSheet(f"#{self.objectName()} {{ border: {width}px solid {color}; }}")
        self.setProperty("active", active)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in _ACTIVATING:
            self.activated.emit(self.position)
        return False  # the viewer still handles it

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasFormat(STACK_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()  # files go on to the window, which opens them

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if event.mimeData().hasFormat(STACK_MIME):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        data = event.mimeData()
        if not data.hasFormat(STACK_MIME):
            event.ignore()
            return
        key = bytes(data.data(STACK_MIME).data()).decode("utf-8", "replace")
        if key:
            self.stackDropped.emit(self.position, key)
            event.acceptProposedAction()


class ViewportGrid(QWidget):
    """Lays out up to four viewports; tracks the active one and forwards view actions to it."""

    activeChanged = Signal(int)
    layoutChanged = Signal(str)
    stackDropped = Signal(int, str)  # position, stack key
    viewerAdded = Signal(int)  # position of a viewer just made

    def __init__(
        self,
        primary: ViewerWidget,
        parent: QWidget | None = None,
        make_viewer: Callable[[QWidget], ViewerWidget] = ViewerWidget,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("viewportGrid")
        self._make_viewer = make_viewer
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.frames: list[ViewportFrame] = []
        self.layout_name = "1x1"
        self.active_index = 0
        self._add(primary)
        self._place()

    # ------------------------------------------------------------------ viewers
    @property
    def viewers(self) -> list[ViewerWidget]:
        return [f.viewer for f in self.frames]

    @property
    def shown_count(self) -> int:
        rows, cols = LAYOUTS[self.layout_name]
        return rows * cols

    def shown_viewers(self) -> list[ViewerWidget]:
        """The viewers the current layout shows, in reading order."""
        return self.viewers[: self.shown_count]

    @property
    def active(self) -> ViewerWidget:
        return self.frames[self.active_index].viewer

    def _add(self, viewer: ViewerWidget) -> None:
        frame = ViewportFrame(len(self.frames), viewer, self)
        frame.activated.connect(self.activate)
        frame.stackDropped.connect(self.stackDropped)
        self.frames.append(frame)

    # ------------------------------------------------------------------ layout
    def set_layout(self, name: str) -> None:
        """Show ``name`` ("1x1", "1x2" or "2x2"); viewports beyond it keep their series hidden."""
        if name not in LAYOUTS:
            raise ValueError(f"layout {name!r} should be one of {', '.join(LAYOUTS)}")
        self.layout_name = name
        while len(self.frames) < self.shown_count:
            viewer = self._make_viewer(self)
            viewer.canvas.set_placeholder(EMPTY_TEXT)
            self._add(viewer)
            self.viewerAdded.emit(len(self.frames) - 1)
        self._place()
        if self.active_index >= self.shown_count:
            self.activate(0)
        self.layoutChanged.emit(name)

    def _place(self) -> None:
        rows, cols = LAYOUTS[self.layout_name]
        for frame in self.frames:
            self._grid.removeWidget(frame)
        for i, frame in enumerate(self.frames):
            if i < rows * cols:
                self._grid.addWidget(frame, i // cols, i % cols)
                frame.show()
            else:
                frame.viewer.stop_cine()
                frame.hide()
        for r in range(2):
            self._grid.setRowStretch(r, 1 if r < rows else 0)
        for c in range(2):
            self._grid.setColumnStretch(c, 1 if c < cols else 0)
        self._outline()

    def activate(self, position: int) -> None:
        if not 0 <= position < self.shown_count or position == self.active_index:
            return
        self.active_index = position
        self._outline()
        self.activeChanged.emit(position)

    def _outline(self) -> None:
        several = self.shown_count > 1
        for i, frame in enumerate(self.frames):
            frame.set_outline(active=several and i == self.active_index, shown=several)

    # ------------------------------------------------------------------ actions
    def on_active(self, path: str, *args: object) -> None:
        """Call ``path`` (e.g. ``"canvas.zoom_by"``) on the active viewer, for the View actions."""
        operator.attrgetter(path)(self.active)(*args)

    def shutdown(self) -> None:
        """Stop the viewers this grid made (the window stops viewport 0 itself)."""
        for frame in self.frames[1:]:
            frame.viewer.shutdown()
