"""OverlayController: the findings' boxes, outlines, labels and heatmap on the shown slice."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QImage
from PySide6.QtWidgets import QSlider, QWidget

from desktop_app.qt.app_settings import AppSettings
from desktop_app.qt.canvas import CanvasShape
from desktop_app.qt.controllers.view import ViewController
from desktop_app.qt.findings_panel import REJECTED_COLOR, label_color, label_text
from desktop_app.qt.images import array_to_qimage
from desktop_app.qt.viewer import ViewerWidget
from desktop_app.review.state import (
    ABSENT,
    PRESENT,
    UNCERTAIN,
    FindingReview,
    ReviewState,
)

# overlay action id -> (canvas layer, setting that says whether it starts shown)
LAYERS = {
    "toggle_heatmap": ("heatmap", "overlay/heatmap"),
    "toggle_outline": ("outline", "overlay/outline"),
    "toggle_box": ("box", "overlay/box"),
    "toggle_labels": ("text", "overlay/labels"),
}
VERDICT_MARKS = {PRESENT: "✓ ", ABSENT: "✗ ", UNCERTAIN: "? "}


def percent_text(probability: float) -> str:
    """A probability as the canvas label shows it: whole percent, except that nothing short of
    1 reads "100%" (0.998 is "99.8%"), as the findings panel would show it."""
    pct = float(probability) * 100
    if 99.5 <= pct < 100:
        return f"{min(pct, 99.9):.1f}%"
    return f"{pct:.0f}%"


def finding_shape(
    finding: FindingReview, order: int, selected: bool, unreliable: bool = False
) -> CanvasShape:
    """How one finding is drawn: its label's colour (grey and dashed once the reader says it
    is absent), its box, and the model's outline unless the box is the reader's. A finding the
    model missed is labelled so, without the model's probability; one of an unreliable run
    (outside the intended input, or out of distribution) says so and is dashed."""
    mark = VERDICT_MARKS.get(finding.truth, "")
    absent = finding.truth == ABSENT
    what = "missed" if finding.added else percent_text(finding.probability)
    if unreliable and not finding.added:
        what += " ⚠ unreliable"
    return CanvasShape(
        key=finding.finding_id,
        color=REJECTED_COLOR if absent else label_color(order),
        box=finding.shown_box,
        contours=[np.asarray(poly, dtype=np.float64) for poly in finding.shown_outline],
        text=f"{mark}{label_text(finding.label)} {what}",
        selected=selected,
        dashed=absent or (unreliable and not finding.added),
    )


def drawn(state: ReviewState, finding: FindingReview) -> bool:
    """Whether a finding draws on the image: the model calls it positive, or the reader says
    it is present. Negatives are quiet (their heatmap only on request)."""
    return state.positive(finding) or finding.truth == PRESENT


class OverlayController(QObject):
    """Keeps each finding's coloured heatmap (RGBA from the worker, QImage made on first use)
    and draws the findings of the shown slice; owns the toolbar's opacity slider."""

    def __init__(
        self,
        host: QWidget,
        viewer: ViewerWidget,
        view: ViewController,
        prefs: AppSettings,
        acts: Mapping[str, QAction],
    ) -> None:
        super().__init__(host)
        self.viewer = viewer
        self.canvas = viewer.canvas
        self.view = view
        self.prefs = prefs
        self.acts = acts
        self.rgba: dict[str, np.ndarray] = {}  # finding id -> RGBA heatmap
        self.negative_heatmap = False  # the reader asked to see the selected negative's
        self._last: tuple[ReviewState | None, str | None, str | None] = (None, None, None)
        self._images: dict[str, QImage] = {}
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, host)
        self.opacity_slider.setObjectName("opacitySlider")
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setFixedWidth(90)
        self.opacity_slider.setToolTip("Heatmap opacity")
        self.opacity_slider.valueChanged.connect(self._on_opacity_changed)

    # ------------------------------------------------------------------ layers
    def set_layer(self, layer: str, on: bool) -> None:
        self.canvas.set_layer_visibility(**{layer: on})

    def hide_all(self, on: bool) -> None:
        self.canvas.set_layer_visibility(all_hidden=on)

    def set_negative_heatmap(self, on: bool) -> None:
        """Show the selected label's heatmap also when the model calls it negative."""
        self.negative_heatmap = bool(on)
        self.redraw(*self._last)

    def apply_settings(self) -> None:
        """Layer toggles and opacity from the settings (at start-up and after the dialog)."""
        for action_id, (layer, setting) in LAYERS.items():
            on = bool(self.prefs.get(setting))
            self.acts[action_id].setChecked(on)
            self.set_layer(layer, on)
        opacity = float(self.prefs.get("overlay/opacity"))
        self.opacity_slider.setValue(round(opacity * 100))
        self.canvas.set_overlay_opacity(opacity)

    def _on_opacity_changed(self, value: int) -> None:
        self.canvas.set_overlay_opacity(value / 100)

    # ------------------------------------------------------------------ heatmaps
    def add(self, overlays: Mapping[str, np.ndarray]) -> None:
        """New heatmaps for these findings (a run's, or all of them recoloured)."""
        for fid, rgba in overlays.items():
            self.rgba[fid] = rgba
            self._images.pop(fid, None)

    def has_heatmaps(self, state: ReviewState | None, key: str) -> bool:
        return state is not None and any(f.finding_id in self.rgba for f in state.for_series(key))

    def _image(self, fid: str) -> QImage | None:
        image = self._images.get(fid)
        if image is None and fid in self.rgba:
            image = array_to_qimage(self.rgba[fid])
            self._images[fid] = image
        return image

    # ------------------------------------------------------------------ drawing
    def redraw(self, state: ReviewState | None, key: str | None, selected: str | None) -> None:
        """Shapes and the heatmap of ``state``'s findings on the shown slice of ``key``: those
        the model calls positive or the reader says are present (negatives are quiet, even when
        selected); the heatmap is the selected finding's when it is drawn (or when the reader
        asked for a negative's), else the most probable drawn one's not marked absent."""
        self._last = (state, key, selected)
        if state is None or key is None or self.viewer.frame is None:
            self.canvas.set_shapes([])
            self.canvas.set_overlay(None)
            self.view.update_corners()
            return
        index = self.viewer.index
        check = state.input_check(key)
        unreliable = check is not None and check.flagged
        shapes: list[CanvasShape] = []
        here: list[FindingReview] = []
        asked: str | None = None  # a selected negative whose heatmap the reader asked for
        for order, f in enumerate(state.for_series(key)):  # the model's label order
            is_selected = f.finding_id == selected
            if f.shown_slice_index == index and drawn(state, f):
                here.append(f)
                shapes.append(finding_shape(f, order, is_selected, unreliable))
            elif is_selected and self.negative_heatmap and f.slice_index == index:
                asked = f.finding_id
        self.canvas.set_shapes(shapes)
        heat: str | None = None
        if asked is not None:
            heat = asked
        elif selected in {f.finding_id for f in here if not f.added}:
            heat = selected
        else:
            ranked = sorted(
                (
                    f
                    for f in here
                    if f.finding_id in self.rgba and f.truth != ABSENT and state.positive(f)
                ),
                key=lambda f: -f.probability,
            )
            heat = ranked[0].finding_id if ranked else None
        self.canvas.set_overlay(self._image(heat) if heat else None)
        self.view.overlay_warning = (
            "UNRELIABLE: " + ("outside its intended input" if check.out_of_scope
                              else "unlike its training data")
            if check is not None and check.flagged else ""
        )  # fmt: skip
        self.view.update_corners()
