"""LayoutController: viewport layouts, a series into a viewport (dropped, or clicked while that
viewport is active), scroll / zoom-pan / W/L sync across viewports, compare with prior, and
the AI flicker key (hold to hide the AI overlays in every viewport).

Viewport 0 is the window's viewer: the studies, overlays and review controllers drive it. This
controller shows a series in the others, draws their AI findings and corner text, and keeps
them in step. A viewport that gets a new series takes the others' position, zoom and W/L; after
that, whichever viewport the reader moves leads (``studies.compare`` maps the slices).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QImage, QKeyEvent, QKeySequence
from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from desktop_app.dicom.limits import interactive_limits
from desktop_app.infra.errors import describe
from desktop_app.qt.canvas import CanvasShape
from desktop_app.qt.controllers.feedback import Feedback
from desktop_app.qt.controllers.overlays import OverlayController, drawn, finding_shape
from desktop_app.qt.controllers.review import ReviewController
from desktop_app.qt.controllers.studies import StudyController
from desktop_app.qt.images import array_to_qimage
from desktop_app.qt.study_browser import StackEntry
from desktop_app.qt.viewer import SeriesContext, ViewerWidget
from desktop_app.qt.viewports import EMPTY_TEXT, ViewportGrid
from desktop_app.review.state import ABSENT
from desktop_app.settings import shortcuts
from desktop_app.studies.compare import (
    StackGeometry,
    StackSummary,
    find_prior,
    follow,
    offset_between,
    summarize,
)
from desktop_app.studies.volume import SeriesVolume

SYNCS = ("scroll", "zoom", "wl")
LAYOUT_ACTIONS = {"1x1": "layout_1x1", "1x2": "layout_1x2", "2x2": "layout_2x2"}
MENU_ITEMS = ("layout_1x1", "layout_1x2", "layout_2x2", "-", "sync_scroll", "sync_zoom",
              "sync_wl", "-", "compare_prior")  # fmt: skip
OVERLAY_ACTIONS = ("toggle_heatmap", "toggle_outline", "toggle_box", "toggle_labels",
                   "hide_overlays")  # fmt: skip
VIEW_ACTIONS = ("smooth_zoom", "hide_identifiers", "axial_feet_first")  # the first viewport's


class LayoutController(QObject):
    """Owns what the viewports beyond the first show and how all of them stay in step."""

    priorShown = Signal(int, str)  # viewport, stack key of the prior's series
    flickerChanged = Signal(bool)  # AI overlays hidden by the held key

    def __init__(
        self,
        host: QWidget,
        grid: ViewportGrid,
        studies: StudyController,
        review: ReviewController,
        overlays: OverlayController,
        acts: Mapping[str, QAction],
        feedback: Feedback,
    ) -> None:
        super().__init__(host)
        self.host = host
        self.grid = grid
        self.studies = studies
        self.browser = studies.browser
        self.review = review
        self.overlays = overlays
        self.acts = acts  # filled once the window has built its actions
        self.feedback = feedback
        self.sync = dict.fromkeys(SYNCS, False)
        self.keys: dict[int, str] = {}  # viewport (beyond 0) -> stack key shown
        self.offsets: dict[tuple[int, int], float] = {}  # (leader, follower) -> mm or slices
        self.flicker_held = False
        self._volumes: dict[str, SeriesVolume] = {}
        self._geometry: dict[int, tuple[object, StackGeometry]] = {}
        self._seen: dict[int, object] = {}  # the context each viewer's last slice was of
        self._wl_seen: dict[int, object] = {}
        self._sizes: dict[int, tuple[int, int] | None] = {}
        self._heat: dict[str, QImage] = {}
        self._summaries: tuple[object, object, dict[str, StackSummary]] | None = None
        self._guard = False
        flicker = QKeySequence(shortcuts.BY_ID["ai_flicker"].default)
        self._flicker_key = flicker[0].key() if flicker.count() else None  # type: ignore[index]

        self.layout_button = QToolButton(host)
        self.layout_button.setObjectName("layoutButton")
        self.layout_button.setText("Layout ▾")
        self.layout_button.setToolTip("Viewports, sync and compare with prior")
        self.layout_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.layout_button.setMenu(QMenu(self.layout_button))

        for position in range(len(grid.frames)):
            self._wire(position)
        grid.viewerAdded.connect(self._wire)
        grid.stackDropped.connect(self.show_in)
        grid.layoutChanged.connect(lambda _n: self._refresh_secondaries())
        studies.seriesShown.connect(self._on_primary_shown)
        # A click in the browser shows the series in the active viewport, not always the first.
        self.browser.stackActivated.disconnect(studies.show_stack)
        self.browser.stackActivated.connect(self.show_from_browser)
        # The browser is refilled after an open or a close: drop series no longer open.
        self.browser.model().modelReset.connect(
            lambda: QTimer.singleShot(0, self, self._drop_closed)
        )

    def apply_defaults(self) -> None:
        """Once the actions exist: every sync on, the layout button's menu, overlays followed."""
        menu = self.layout_button.menu()
        for item in MENU_ITEMS:
            if item == "-":
                menu.addSeparator()
            else:
                menu.addAction(self.acts[item])
        for name in SYNCS:
            self.acts[f"sync_{name}"].setChecked(True)
        for action_id in OVERLAY_ACTIONS:
            self.acts[action_id].toggled.connect(lambda _on: self._refresh_layers())
        for action_id in VIEW_ACTIONS:
            if action_id in self.acts:
                self.acts[action_id].toggled.connect(lambda _on: self._refresh_secondaries())

    def shutdown(self) -> None:
        self.grid.shutdown()

    # ------------------------------------------------------------------ viewports
    @property
    def viewers(self) -> list[ViewerWidget]:
        return self.grid.viewers

    def _wire(self, position: int) -> None:
        viewer = self.grid.viewers[position]
        viewer.sliceChanged.connect(lambda index, p=position: self._on_slice(p, index))
        viewer.windowChanged.connect(lambda w, p=position: self._on_window(p, w))
        viewer.canvas.viewChanged.connect(lambda p=position: self._on_view(p))
        viewer.canvas.installEventFilter(self)  # the flicker key, in whichever viewport
        if position == 0:
            return  # the window and its controllers already follow the first viewer
        viewer.frameShown.connect(lambda _i, p=position: self._draw_secondary(p))
        viewer.readoutChanged.connect(self.feedback.readout.setText)
        viewer.errorOccurred.connect(self.feedback.show_error)

    def key_of(self, position: int) -> str | None:
        """The stack key shown in viewport ``position`` (None when it is empty)."""
        if position == 0:
            return self.studies.shown.key if self.viewers[0].context is not None else None
        return self.keys.get(position) if self.viewers[position].context is not None else None

    def set_layout(self, name: str) -> None:
        self.grid.set_layout(name)
        self.acts[LAYOUT_ACTIONS[name]].setChecked(True)

    def show_from_browser(self, key: str) -> None:
        position = self.grid.active_index
        if position == 0 or position >= self.grid.shown_count:
            self.studies.show_stack(key)
        else:
            self.show_in(position, key)

    def show_in(self, position: int, key: str) -> None:
        """Show stack ``key`` in viewport ``position`` at the others' position (when synced)."""
        entry = self.browser.entries.get(key)
        if entry is None:
            self.feedback.show_error("That series is no longer open: open its study again")
            return
        if position == 0:
            self.studies.show_stack(key)
            return
        try:
            volume = self._volume(entry)
        except Exception as err:
            self.feedback.show_error(describe(err))
            return
        viewer = self.viewers[position]
        self.keys[position] = key
        geometry = StackGeometry.of(entry.stack)
        self._geometry[position] = (entry.stack, geometry)
        context = SeriesContext(entry.stack, volume, entry.modality, entry.description, key)
        viewer.set_series(context, start=self._start_index(position, geometry))
        self._corners(position)

    def _volume(self, entry: StackEntry) -> SeriesVolume:
        volume = self.studies.volumes.get(entry.key) or self._volumes.get(entry.key)
        if volume is None:
            limit = int(self.studies.prefs.get("reading/max_object_mib"))
            volume = SeriesVolume(
                entry.stack,
                header_cache=min(len(entry.stack), 2048),
                limits=interactive_limits(limit),
            )
        shown = {self.keys.get(p) for p in range(1, len(self.viewers))} | {entry.key}
        self._volumes = {k: v for k, v in self._volumes.items() if k in shown}
        self._volumes[entry.key] = volume
        return volume

    def _drop_closed(self) -> None:
        for position, key in list(self.keys.items()):
            if key not in self.browser.entries:
                del self.keys[position]
                self.viewers[position].set_series(None)
                self.viewers[position].canvas.set_placeholder(EMPTY_TEXT)
                self._corners(position)

    def _refresh_secondaries(self) -> None:
        for position in range(1, self.grid.shown_count):
            self._corners(position)
        self._refresh_layers()

    # ------------------------------------------------------------------ compare with prior
    def compare_with_prior(self) -> None:
        """Show the same patient's previous study's matching series beside the active one."""
        source = self.grid.active_index
        key = self.key_of(source)
        if key is None or self.studies.index is None:
            self.feedback.message("Show a series first, then compare it with its prior", 8000)
            return
        summaries = self._all_summaries()
        current = summaries.get(key)
        if current is None:
            return
        result = find_prior(current, summaries.values())
        if result.match is None:
            self.feedback.message(result.message, 10000)
            return
        if self.grid.shown_count == 1:
            self.set_layout("1x2")
        target = source + 1 if source + 1 < self.grid.shown_count else source - 1
        self.show_in(target, result.match.key)
        self.feedback.message(result.message, 10000)
        self.priorShown.emit(target, result.match.key)

    def _all_summaries(self) -> dict[str, StackSummary]:
        """Every open stack's summary, made again only when the open studies change."""
        index = self.studies.index
        assemblies = getattr(self.studies, "assemblies", None)
        if index is None:
            return {}
        cached = self._summaries
        if cached is None or cached[0] is not index or cached[1] is not assemblies:
            cached = (index, assemblies, summarize(index, assemblies))
            self._summaries = cached
        return cached[2]

    # ------------------------------------------------------------------ sync
    def set_sync(self, name: str, on: bool) -> None:
        """Turn one sync on or off. Turning scroll sync on keeps the stacks' offset as they
        stand, so a reader can align two studies by hand first."""
        self.sync[name] = bool(on)
        if name == "scroll" and on:
            shown = self._with_series()
            for i in shown:
                for j in shown:
                    if i != j:
                        a, b = self._geo(i), self._geo(j)
                        ia, ib = self.viewers[i].index, self.viewers[j].index
                        self.offsets[(i, j)] = offset_between(a, ia, b, ib)

    @contextmanager
    def _syncing(self) -> Iterator[None]:
        self._guard = True
        try:
            yield
        finally:
            self._guard = False

    def _with_series(self, but: int | None = None) -> list[int]:
        return [
            p for p, v in enumerate(self.grid.shown_viewers()) if v.context is not None and p != but
        ]

    def _geo(self, position: int) -> StackGeometry:
        context = self.viewers[position].context
        assert context is not None
        cached = self._geometry.get(position)
        if cached is None or cached[0] is not context.stack:
            cached = (context.stack, StackGeometry.of(context.stack))
            self._geometry[position] = cached
        return cached[1]

    def _reference(self, position: int) -> int | None:
        """Whom a viewport that gets a new series follows: the active one, else the first."""
        others = self._with_series(but=position)
        if not others:
            return None
        return self.grid.active_index if self.grid.active_index in others else others[0]

    def _start_index(self, position: int, geometry: StackGeometry) -> int | None:
        """Where a series new in ``position`` starts: at the leader's position, when synced."""
        ref = self._reference(position)
        if ref is None or not self.sync["scroll"]:
            return None
        return follow(self._geo(ref), self.viewers[ref].index, geometry)

    def _forget(self, position: int) -> None:
        """A new series in ``position``: its offsets go back to none (absolute positions)."""
        self.offsets = {k: v for k, v in self.offsets.items() if position not in k}

    def _on_primary_shown(self, _key: str) -> None:
        if self.viewers[0].context is None:
            return
        start = self._start_index(0, self._geo(0))
        if start is not None:
            with self._syncing():
                self.viewers[0].set_index(start)

    def _on_slice(self, position: int, index: int) -> None:
        viewer = self.viewers[position]
        if viewer.context is not self._seen.get(position):
            self._seen[position] = viewer.context  # a series just loaded: it follows, not leads
            self._forget(position)
        elif not self._guard and self.sync["scroll"] and position < self.grid.shown_count:
            source = self._geo(position)
            with self._syncing():
                for other in self._with_series(but=position):
                    offset = self.offsets.get((position, other), 0.0)
                    self.viewers[other].set_index(follow(source, index, self._geo(other), offset))
        self._corners(position)

    def _on_window(self, position: int, window: object) -> None:
        viewer = self.viewers[position]
        if window is None or self._guard or viewer.context is None:
            self._corners(position)
            return
        same = [
            p
            for p in self._with_series(but=position)
            if self.viewers[p].context.modality == viewer.context.modality  # type: ignore[union-attr]
        ]
        if viewer.context is not self._wl_seen.get(position):
            self._wl_seen[position] = viewer.context  # its first window: take the others'
            leader = next((p for p in same if self.viewers[p].window_level is not None), None)
            if self.sync["wl"] and leader is not None:
                with self._syncing():
                    viewer.set_window(self.viewers[leader].window_level)
        elif self.sync["wl"] and viewer.frame is not None and not viewer.frame.is_color:
            with self._syncing():
                for p in same:
                    self.viewers[p].set_window(viewer.window_level)
        self._corners(position)

    def _on_view(self, position: int) -> None:
        canvas = self.viewers[position].canvas
        size = canvas.image_size()
        if size != self._sizes.get(position):
            self._sizes[position] = size  # a new image, fitted: it takes the leader's view
            ref = self._reference(position)
            if self.sync["zoom"] and size is not None and ref is not None and not self._guard:
                self._copy_view(ref, position)
        elif not self._guard and self.sync["zoom"] and position == self.grid.active_index:
            for other in self._with_series(but=position):
                self._copy_view(position, other)
        if position:
            self._corners(position)

    def _copy_view(self, source: int, target: int) -> None:
        """The same mm per screen pixel and the same point (mm from the image's centre)."""
        src, dst = self.viewers[source], self.viewers[target]
        s_size, d_size = src.canvas.image_size(), dst.canvas.image_size()
        if s_size is None or d_size is None or src.context is None or dst.context is None:
            return
        s_mm, d_mm = src.context.stack.pixel_spacing, dst.context.stack.pixel_spacing
        s_px, d_px = (s_mm[1], d_mm[1]) if s_mm and d_mm else (1.0, 1.0)
        scale = s_px / d_px
        center = src.canvas.center
        with self._syncing():
            dst.canvas.zoom = src.canvas.zoom / scale
            dst.canvas.center_on(
                d_size[0] / 2 + (center.x() - s_size[0] / 2) * scale,
                d_size[1] / 2 + (center.y() - s_size[1] / 2) * scale,
            )
        if target:
            self._corners(target)

    # ------------------------------------------------------------------ secondary drawing
    def _corners(self, position: int) -> None:
        """Corner text and orientation letters of a viewport beyond the first, as the view
        controller writes the first's (identifiers hidden with it); its reading direction and
        magnification follow the first's too."""
        if position == 0 or position >= len(self.viewers):
            return
        viewer, primary = self.viewers[position], self.viewers[0]
        canvas = viewer.canvas
        if viewer.feet_first != primary.feet_first:
            viewer.set_feet_first(primary.feet_first)
        if canvas.smooth != primary.canvas.smooth:
            canvas.set_smooth(primary.canvas.smooth)
        self.overlays.view.corners_for(viewer)

    def _draw_secondary(self, position: int) -> None:
        """The AI findings of the series in viewport ``position`` on its shown slice, drawn as
        in the first viewport (its label colours, the most probable one's heatmap)."""
        viewer = self.viewers[position]
        key = self.keys.get(position)
        entry = self.browser.entries.get(key) if key else None
        state = self.review.review_for(entry.study_uid) if entry is not None else None
        shapes: list[CanvasShape] = []
        heat: str | None = None
        if state is not None and key is not None and viewer.frame is not None:
            best = -1.0
            for order, f in enumerate(state.for_series(key)):
                if f.shown_slice_index != viewer.index or not drawn(state, f):
                    continue
                shapes.append(finding_shape(f, order, False))
                if (
                    f.finding_id in self.overlays.rgba
                    and f.truth != ABSENT
                    and f.probability > best
                ):
                    heat, best = f.finding_id, f.probability
        viewer.canvas.set_shapes(shapes)
        if heat is not None and heat not in self._heat:
            self._heat[heat] = array_to_qimage(self.overlays.rgba[heat])
        viewer.canvas.set_overlay(self._heat.get(heat) if heat else None)
        layers = self._layers()
        if viewer.canvas.layer_visibility() != layers:
            viewer.canvas.set_layer_visibility(**layers)
        self._corners(position)

    def _layers(self) -> dict[str, bool]:
        """The layers the first viewport draws; the Raw toggle or the held flicker key hide all."""
        layers = self.viewers[0].canvas.layer_visibility()
        raw = self.acts["hide_overlays"].isChecked() if "hide_overlays" in self.acts else False
        layers["all_hidden"] = raw or self.flicker_held
        return layers

    def _refresh_layers(self) -> None:
        layers = self._layers()
        for viewer in self.viewers:
            viewer.canvas.set_layer_visibility(**layers)

    # ------------------------------------------------------------------ AI flicker
    def set_flicker(self, held: bool) -> None:
        """Hide the AI overlays in every viewport while the flicker key is held."""
        if held == self.flicker_held:
            return
        self.flicker_held = held
        self._refresh_layers()
        self.flickerChanged.emit(held)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """On each viewport's canvas: the flicker key down hides, up shows again (its auto
        repeats ignored); losing the focus shows again, as the release would go elsewhere."""
        kind = event.type()
        if kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            assert isinstance(event, QKeyEvent)
            plain = event.modifiers() == Qt.KeyboardModifier.NoModifier
            if event.key() == self._flicker_key and plain:
                if not event.isAutoRepeat():
                    self.set_flicker(kind == QEvent.Type.KeyPress)
                return True
        elif kind == QEvent.Type.FocusOut:
            self.set_flicker(False)
        return False
