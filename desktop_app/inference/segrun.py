"""A segmentation model's run over a stack, slice by slice: per-pixel probabilities on the
original grid, then the lesions (``lesions.find_lesions``) with their HU values.

The engine hands over its plan (``sources.plan_slices``), its preprocessing and its forward
pass; this module runs ``batch_size`` slices at a time, takes the sigmoid of the per-pixel
logits (N, labels, S, S), maps each slice's map back onto its original pixel grid
(``Geometry.heatmap_to_original``: padding cut, resize undone) and writes it into one
(slices, rows, cols) volume. With several labels the volume holds each pixel's highest
probability and a pixel is inside where it reaches the lowest of the labels' thresholds.

Memory is bounded by the plan (``sources.MAX_RUN_IMAGES`` slices at most): the probability
volume is float16 (probabilities need no more) beside a float32 volume of the modality values
(HU on CT) for each lesion's mean and maximum; both are dropped once the lesion table (and its
uint16 label volume, the mask for the SEG) is made.

The out-of-distribution score comes from the same forward pass: with ``ood`` (the model file's
statistics), each slice's pooled encoder features (the forward outputs' ``penultimate``) give
its score (``SegOutcome.ood_scores``), which the engine turns into flags exactly as for a
classifier (``inputcheck.RunMarks``). A model file without statistics, or a stored graph without
that output, gives none.

Not every component is a lesion: one under ``lesions.MIN_DIAMETER_MM`` (3 mm) longest axial
diameter is dropped (a note in the table counts them), or, when the images carry no pixel
spacing, one under ``lesions.MIN_VOXELS_UNKNOWN_SPACING`` pixels. The model file has no
post-processing block to carry its own floor, so this is the engine's, the same for the GUI and
``radassist predict``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from desktop_app.inference.lesions import (
    MIN_DIAMETER_MM,
    MIN_VOXELS_UNKNOWN_SPACING,
    LesionTable,
    MaskGeometry,
    find_lesions,
)
from desktop_app.inference.ortrun import ForwardOutputs
from desktop_app.inference.sources import SlicePlan, Source
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import Cancelled, DataError, InferenceError, RadAssistError
from desktop_app.model.imageio import ImageForModel
from desktop_app.model.preprocessing import Geometry
from desktop_app.studies.series import SliceStack
from desktop_app.studies.volume import SeriesVolume

log = logging.getLogger(__name__)

Preprocess = Callable[[Sequence[ImageForModel]], tuple[np.ndarray, list[Geometry]]]
Forward = Callable[[np.ndarray], ForwardOutputs]
OodScore = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SegOutcome:
    """A segmentation run's outcome: ``probabilities`` (slices, labels), each slice's highest
    pixel probability per label (NaN where the slice could not be read), the lesion table (its
    ``labels`` is the lesion-id volume on the original grid, in plan order), the unreadable
    slices, the seconds spent, and each slice's out-of-distribution score (slices,) (NaN where
    unread; None without OOD statistics or features)."""

    probabilities: np.ndarray
    table: LesionTable
    unreadable: list[tuple[str, str]]
    preprocess_seconds: float
    network_seconds: float
    postprocess_seconds: float
    ood_scores: np.ndarray | None = None


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float32)))).astype(np.float32)


def _stack_of(source: Source) -> SliceStack | None:
    if isinstance(source, SeriesVolume):
        return source.stack
    return source if isinstance(source, SliceStack) else None


def _spacing_known(source: Source, first: ImageForModel | None) -> bool:
    """Whether the pixels have a size in mm (the stack's Pixel Spacing, or the first image's)."""
    stack = _stack_of(source)
    if stack is not None and stack.pixel_spacing is not None:
        return True
    return first is not None and first.pixel_spacing is not None


def mask_geometry(source: Source, plan: SlicePlan, first: ImageForModel | None) -> MaskGeometry:
    """Where the plan's slices are: the stack's geometry (only the planned slices, when a long
    stack was sampled down), else the first image's pixel spacing (1 mm when unknown)."""
    stack = _stack_of(source)
    if stack is not None and stack.pixel_spacing is not None:
        whole = MaskGeometry.from_stack(stack)
        picked = [ref.index for ref in plan.refs]
        positions = whole.slice_positions
        images = whole.image_positions
        numbers = whole.instance_numbers
        return MaskGeometry(
            pixel_spacing=whole.pixel_spacing,
            slice_positions=None if positions is None else tuple(positions[i] for i in picked),
            slice_spacing=whole.slice_spacing,
            slice_thickness=whole.slice_thickness,
            image_positions=None if images is None else tuple(images[i] for i in picked),
            orientation=whole.orientation,
            instance_numbers=None if numbers is None else tuple(numbers[i] for i in picked),
        )
    spacing = None if first is None else first.pixel_spacing
    return MaskGeometry(
        pixel_spacing=(1.0, 1.0) if spacing is None else (float(spacing[0]), float(spacing[1])),
        slice_spacing=1.0 if len(plan) > 1 else None,
    )


class _Volumes:
    """The probability and value volumes, allocated on the first slice read (its grid)."""

    def __init__(self, slices: int) -> None:
        self.slices = slices
        self.probability: np.ndarray | None = None
        self.values: np.ndarray | None = None
        self.first: ImageForModel | None = None

    def put(self, index: int, probability: np.ndarray, image: ImageForModel) -> None:
        shape = image.values.shape[:2]
        if self.probability is None or self.values is None:
            self.first = image
            self.probability = np.zeros((self.slices, *shape), dtype=np.float16)
            self.values = np.zeros((self.slices, *shape), dtype=np.float32)
        if self.probability.shape[1:] != shape:
            raise InferenceError(
                f"slice {index} is {shape[0]} x {shape[1]} pixels, the series' first "
                f"{self.probability.shape[1]} x {self.probability.shape[2]}: a mask volume "
                "needs one grid",
                hint="run the slices of a different size as a series of their own",
            )
        self.probability[index] = probability
        self.values[index] = image.values


def segment(
    source: Source,
    plan: SlicePlan,
    *,
    preprocess: Preprocess,
    forward: Forward,
    batch_size: int,
    thresholds: Mapping[str, float],
    labels: Sequence[str],
    progress: Progress | None,
    stop: StopFlag,
    ood: OodScore | None = None,
) -> SegOutcome:
    """Run a segmentation network over ``plan`` and measure the lesions of its mask; with
    ``ood`` (features (N, C) -> scores (N,)), score each slice's pooled encoder features.

    Progress: one unit per slice out of slices + 1 (the last is the lesion table's). Raises
    Cancelled when ``stop`` is set before a batch, the first slice's error when none could be
    read, InferenceError when the network's output is not (N, labels, S, S).
    """
    n, total = len(plan), len(plan) + 1
    probs = np.full((n, len(labels)), np.nan, dtype=np.float32)
    volumes = _Volumes(n)
    ood_scores = None if ood is None else np.full(n, np.nan, dtype=np.float64)
    scored = False  # the forward pass gave features (a graph made before them gives none)
    unreadable: list[tuple[str, str]] = []
    first_error: RadAssistError | None = None
    t_pre = t_net = t_post = 0.0
    if progress is not None:
        progress(0, total)
    for start in range(0, n, batch_size):
        if stop_requested(stop):
            raise Cancelled(f"stopped after {start} of {n} slices")
        t0 = time.perf_counter()
        ok: list[int] = []
        images: list[ImageForModel] = []
        for i in range(start, min(start + batch_size, n)):
            try:
                images.append(plan.load(i))
                ok.append(i)
            except RadAssistError as err:
                first_error = first_error or err
                unreadable.append((plan.paths[i], err.one_line()))
        if images:
            x, geometries = preprocess(images)
            t1 = time.perf_counter()
            t_pre += t1 - t0
            out = forward(x)
            logits = out.logits
            if ood_scores is not None and ood is not None and out.penultimate is not None:
                with np.errstate(all="ignore"):  # non-finite features score NaN: flagged
                    ood_scores[ok] = ood(out.penultimate)
                scored = True
            t2 = time.perf_counter()
            t_net += t2 - t1
            if logits.ndim != 4 or logits.shape[:2] != (len(images), len(labels)):
                raise InferenceError(
                    f"the network gave outputs of shape {logits.shape}, expected per-pixel "
                    f"logits ({len(images)}, {len(labels)}, S, S)"
                )
            p = _sigmoid(logits)
            probs[ok] = p.max(axis=(2, 3))
            for k, i in enumerate(ok):
                on_grid = geometries[k].heatmap_to_original(p[k].max(axis=0))
                volumes.put(i, np.clip(on_grid, 0.0, 1.0), images[k])
            t_post += time.perf_counter() - t2
        else:
            t_pre += time.perf_counter() - t0
        if progress is not None:
            progress(min(start + batch_size, n), total)
    if volumes.probability is None:
        assert first_error is not None
        raise first_error
    t0 = time.perf_counter()
    table = _lesions(source, plan, volumes, min(thresholds[label] for label in labels))
    t_post += time.perf_counter() - t0
    return SegOutcome(
        probs, table, unreadable, t_pre, t_net, t_post, ood_scores if scored else None
    )


def _lesions(source: Source, plan: SlicePlan, volumes: _Volumes, threshold: float) -> LesionTable:
    assert volumes.probability is not None
    geometry = mask_geometry(source, plan, volumes.first)
    modality = plan.modality.upper()
    unit = "HU" if modality == "CT" else ""
    # the size floor in mm where the pixels have a known size, else in pixels
    known = _spacing_known(source, volumes.first)
    mask = volumes.probability if len(plan) > 1 else volumes.probability[0]
    values = volumes.values if len(plan) > 1 else volumes.values[0]  # type: ignore[index]
    try:
        return find_lesions(
            mask.astype(np.float32) if mask.ndim == 2 else mask,
            geometry,
            values=values,
            value_unit=unit,
            threshold=threshold,
            min_voxels=1 if known else MIN_VOXELS_UNKNOWN_SPACING,
            min_diameter_mm=MIN_DIAMETER_MM if known else 0.0,
            with_labels=True,
        )
    except DataError as err:
        raise InferenceError(f"the lesions can't be measured: {err.reason}") from None


__all__ = ["SegOutcome", "mask_geometry", "segment"]
