"""LesionController: a segmentation's lesions in the viewer — their masks on the shown slice,
the marker strip beside the slice slider, next / previous lesion, and the lesion rows of the
findings panel with Accept / Reject applied to the review.

Where the lesions come from: the study's review (``ReviewState.lesion_labels`` and
``lesions_for``: the reader's edited masks and verdicts) once it holds the series; else the
last segmentation run's own lesion table and mask (shown, not reviewable).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from desktop_app.infra.errors import RadAssistError
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.qt.controllers.feedback import Feedback
from desktop_app.qt.controllers.review import ReviewController
from desktop_app.qt.controllers.shown import Shown
from desktop_app.qt.dicom_graphics import GraphicsScene
from desktop_app.qt.findings_panel import FindingsPanelWidget
from desktop_app.qt.inference import InferenceController
from desktop_app.qt.lesion_overlay import (
    LesionLayer,
    LesionMaskItem,
    LesionSlices,
    LesionView,
    lesion_color,
    lesion_extents,
    lesion_mask_items,
    views_from_reviews,
    views_from_table,
)
from desktop_app.qt.lesion_rows import LesionListWidget, lesion_text
from desktop_app.qt.viewer import ViewerWidget

log = logging.getLogger(__name__)

SLICE_CACHE = 64  # slices whose lesion fills and outlines are kept


@dataclass
class RunLesions:
    """Lesions of one series shown without a review to hold them: the label volume (lesion
    ids, (slices, rows, cols), stack order) and the lesions."""

    labels: np.ndarray
    views: list[LesionView]
    model_text: str = ""
    extents: dict[int, tuple[int, int, int, int, int, int]] | None = None  # lesion_extents


class LesionController(QObject):
    """Draws and navigates the shown series' lesions; applies the reader's lesion verdicts."""

    lesionSelected = Signal(int)  # lesion id (0: none)
    lesionsShown = Signal()  # the shown series' lesions were (re)read: the corners follow

    def __init__(
        self,
        host: QWidget,
        shown: Shown,
        viewer: ViewerWidget,
        review: ReviewController,
        inference: InferenceController,
        panel: FindingsPanelWidget,
        feedback: Feedback,
    ) -> None:
        super().__init__(host)
        self.shown = shown
        self.viewer = viewer
        self.review = review
        self.inference = inference
        self.feedback = feedback
        self.layer = LesionLayer(viewer.canvas)
        self.strip = viewer.lesion_strip
        self.panel = panel
        self.rows: LesionListWidget = panel.lesions
        self.rows.namer = self.slice_name
        self.runs: dict[str, RunLesions] = {}  # series key -> the last run's lesions
        self.selected: int | None = None
        self.views: list[LesionView] = []
        self.labels: np.ndarray | None = None
        self.where: LesionSlices | None = None
        self.reviewable = False
        self.unreliable = False  # the shown run is flagged: its lesions are dashed and marked
        self._key: str | None = None
        self._stamp: tuple[object, ...] = ()
        self._cache: dict[int, list[LesionMaskItem]] = {}

        viewer.frameShown.connect(self._on_frame)
        inference.finished.connect(self._on_outcome)
        review.reviewChanged.connect(lambda _fid: self.refresh())
        self.strip.sliceClicked.connect(viewer.set_index)
        viewer.canvas.pointClicked.connect(self.select_at)
        self.rows.lesionClicked.connect(self.go_to_lesion)
        self.rows.acceptRequested.connect(self.accept_lesion)
        self.rows.rejectRequested.connect(self.reject_lesion)
        self.rows.clearRequested.connect(self.clear_lesion)

    # ------------------------------------------------------------------ sources
    def slice_name(self, index: int) -> str:
        """A slice as the viewer names it ("Im 17")."""
        ctx = self.viewer.context
        if ctx is None or not 0 <= index < len(ctx.stack):
            return f"#{index + 1}"
        return ctx.stack.short_label(index)

    def _on_outcome(self, outcome: Any) -> None:
        """Keep a segmentation run's lesions (``review.lesionreview.SeriesLesions``; None from
        a classifier) for a series whose review can't hold them."""
        found = getattr(outcome, "lesions", None)
        if found is None:
            self.runs.pop(outcome.series_key, None)
        else:
            model = f"Model: {outcome.model.name} {outcome.model.version}"
            ordered = found.ordered()
            self.runs[outcome.series_key] = RunLesions(
                found.labels,
                views_from_reviews(ordered, None),
                model,
                lesion_extents(ordered, found.labels.shape),
            )
        if outcome.series_key == self.shown.key:
            self.refresh()

    def take_table(self, series_key: str, table: Any, mask: np.ndarray, label: str,
                   model_text: str = "") -> None:  # fmt: skip
        """Show an engine lesion table (``inference.lesions.LesionTable``) and its label volume
        for ``series_key``, unreviewed (a saved findings.json, a script)."""
        extents = lesion_extents(getattr(table, "lesions", ()), np.shape(mask))
        self.runs[series_key] = RunLesions(
            mask, views_from_table(table, label), model_text, extents
        )
        if series_key == self.shown.key:
            self.refresh()

    def _review_source(self, key: str) -> tuple[np.ndarray, list[Any], int, str] | None:
        """The review's label volume, lesions, edit count and model line for ``key``."""
        state = self.review.current_state()
        labels_of = getattr(state, "lesion_labels", None)
        if state is None or not callable(labels_of):
            return None
        labels = labels_of(key)
        if labels is None:
            return None
        found = getattr(state, "lesion_sets", {}).get(key)
        version = int(getattr(found, "version", 0))
        model = state.model
        text = f"Model: {model.name} {model.version}" if model is not None else ""
        return labels, list(state.lesions_for(key)), version, text

    def refresh(self, masks_changed: bool = False) -> None:
        """Re-read the shown series' lesions (after a run, a series change, a verdict or an
        edit of the masks: an edit the review counts is noticed without ``masks_changed``)
        and redraw them."""
        key = self.shown.key
        if key != self._key:
            self.selected = None
        self._key = key
        reviewed = self._review_source(key) if key is not None else None
        run = self.runs.get(key) if key is not None else None
        labels: np.ndarray | None = None
        model_text = ""
        extents = None  # each lesion's box: counting inside them spares a pass over the volume
        if reviewed is not None:
            labels, reviews, version, model_text = reviewed
            stamp: tuple[object, ...] = (key, id(labels), version)
            extents = lesion_extents(reviews, labels.shape)
        elif run is not None:
            labels, model_text, extents = run.labels, run.model_text, run.extents
            stamp = (key, id(labels), -1)
        else:
            stamp = (key,)
        if labels is not None and (masks_changed or stamp != self._stamp or self.where is None):
            self.where = LesionSlices.of(labels, extents)
        self._stamp = stamp
        if reviewed is not None:
            self.views = views_from_reviews(reviews, self.where)
        elif run is not None:
            self.views = run.views
        else:
            self.where, self.views = None, []
        self.labels = labels
        self.reviewable = reviewed is not None
        state = self.review.current_state() if key is not None else None
        check = state.input_check(key) if state is not None and key is not None else None
        self.unreliable = check is not None and check.flagged
        self._cache.clear()  # verdicts change the drawing too
        if self.selected not in {v.lesion_id for v in self.views}:
            self.selected = None
        shows = reviewed is not None or run is not None
        was_hidden = self.rows.isHidden()
        self.rows.set_lesions(self.views if shows else None, model_text, self.reviewable)
        if self.rows.isHidden() != was_hidden:
            self.panel.refresh()  # its summary line gives way to the lesion rows
        self.rows.select(self.selected)
        self._update_strip()
        self.redraw()
        self.lesionsShown.emit()

    def _update_strip(self) -> None:
        where = self.where
        if where is None or self.labels is None or where.slices != self.viewer.slice_count:
            self.strip.set_ticks([])
            return
        ticks = [(s, lesion_color(i)) for s, i in where.ticks()]
        chosen = where.slices_of(self.selected) if self.selected is not None else []
        self.strip.set_ticks(ticks, chosen)

    # ------------------------------------------------------------------ drawing
    def _on_frame(self, _index: int) -> None:
        if self.shown.key != self._key:
            self.refresh()
        else:
            self.redraw()

    def redraw(self) -> None:
        self.layer.set_scene(self.scene_for(self.viewer.index))

    def scene_for(self, index: int) -> GraphicsScene:
        """The lesion masks on slice ``index`` of the shown series."""
        scene = GraphicsScene()
        labels = self.labels
        size = self.viewer.canvas.image_size()
        if labels is None or size is None or labels.ndim != 3 or not 0 <= index < len(labels):
            return scene
        if (labels.shape[2], labels.shape[1]) != tuple(size):
            return scene  # not this series' grid (another part of it is shown)
        items = self._cache.get(index)
        if items is None:
            views = {v.lesion_id: v for v in self.views}
            items = lesion_mask_items(labels[index], views, unreliable=self.unreliable)
            if len(self._cache) >= SLICE_CACHE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = items
        for item in items:
            item.selected = item.lesion_id == self.selected
        scene.masks.extend(items)
        return scene

    # ------------------------------------------------------------------ navigation
    def view_of(self, lesion_id: int) -> LesionView | None:
        return next((v for v in self.views if v.lesion_id == lesion_id), None)

    def select_lesion(self, lesion_id: int | None) -> None:
        self.selected = lesion_id if self.view_of(lesion_id or 0) is not None else None
        self.rows.select(self.selected)
        self._update_strip()
        self.redraw()
        self.lesionSelected.emit(self.selected or 0)

    def select_at(self, x: float, y: float) -> None:
        """A click on the image (Pan tool): the lesion under it is selected, its row shown and
        named in the status line; the slice stays. A click beside every lesion changes
        nothing."""
        labels, index = self.labels, self.viewer.index
        if labels is None or labels.ndim != 3 or not 0 <= index < len(labels):
            return
        row, col = int(y), int(x)
        if not (0 <= row < labels.shape[1] and 0 <= col < labels.shape[2]):
            return
        lesion_id = int(labels[index, row, col])
        view = self.view_of(lesion_id) if lesion_id else None
        if view is None:
            return
        self.select_lesion(lesion_id)
        widget = self.rows.rows.get(lesion_id)
        if widget is not None:
            self.panel.cards_scroll.ensureWidgetVisible(widget)
        label = view.label.replace("_", " ")
        self.feedback.message(f"{view.name} {label} — {lesion_text(view, self.slice_name)}", 8000)

    def go_to_lesion(self, lesion_id: int) -> None:
        """Select a lesion and show its largest slice; the status line names it."""
        view = self.view_of(lesion_id)
        if view is None:
            return
        self.select_lesion(lesion_id)
        slice_index = view.largest_slice
        if self.where is not None:
            slice_index = self.where.largest(lesion_id) or slice_index
        self.viewer.set_index(slice_index)
        position = [v.lesion_id for v in self.views].index(lesion_id) + 1
        label = view.label.replace("_", " ")
        self.feedback.message(
            f"Lesion {position} of {len(self.views)} · {view.name} {label} — "
            f"{lesion_text(view, self.slice_name)}",
            8000,
        )

    def step_lesion(self, delta: int) -> None:
        """Next (+1) or previous (-1) lesion in the list's order, wrapping around."""
        if not self.views:
            self.feedback.message("No lesions on this series", 4000)
            return
        ids = [v.lesion_id for v in self.views]
        if self.selected in ids:
            at = (ids.index(self.selected) + delta) % len(ids)
        else:
            at = 0 if delta > 0 else len(ids) - 1
        self.go_to_lesion(ids[at])

    # ------------------------------------------------------------------ verdicts
    def accept_lesion(self, lesion_id: int) -> None:
        self._verdict(lesion_id, "accept", lambda s, k, who: s.accept_lesion(k, lesion_id, who))

    def reject_lesion(self, lesion_id: int, reason: str) -> None:
        self._verdict(
            lesion_id, "reject", lambda s, k, who: s.reject_lesion(k, lesion_id, reason, who)
        )

    def clear_lesion(self, lesion_id: int) -> None:
        self._verdict(
            lesion_id, "clear", lambda s, k, who: s.clear_lesion_verdict(k, lesion_id, who)
        )

    def _verdict(
        self, lesion_id: int, action: str, apply: Callable[[Any, str, str | None], Any]
    ) -> None:
        state, key, entry = self.review.current_state(), self.shown.key, self.shown.entry
        if state is None or key is None or entry is None or not self.reviewable:
            self.feedback.show_error("this series' lesions are not in a review yet (run the model)")
            return

        def done() -> None:
            try:
                lesion = apply(state, key, self.review.reviewer() or None)
            except (RadAssistError, KeyError, ValueError) as err:
                self.feedback.show_error(f"lesion L{lesion_id}: {err}")
                return
            self.review.save(state)
            self.review.writer.audit(
                "lesion_review",
                study_hash=uid_hash(state.study_uid),
                series_hash=uid_hash(entry.stack.series_instance_uid),
                lesion_id=lesion_id,
                label=lesion.label,
                action=action,
                verdict=lesion.verdict,
                reason=lesion.reason,
                reviewer=lesion.reviewer or self.review.reviewer(),
            )
            self.select_lesion(lesion_id)
            self.refresh()

        self.review.with_reader(done)


__all__ = ["LesionController", "RunLesions"]
