"""What an inference run iterates over: the slices of a volume, stack, file or images, as a plan.

:func:`plan_slices` turns what the caller passes (a ``SeriesVolume``, a ``SliceStack``, a file
path, or a sequence of 2-D images) into a :class:`SlicePlan`: one ``ResultSlice`` per image, a
name for each (its file, for the unreadable list) and a loader that decodes one slice into the
``ImageForModel`` the model's preprocessing takes. Nothing is decoded until the run asks.

A stack's frames are checked before the plan is made (``studies.frames.check_frames``: the
frame limit, and frames the pixel data can hold), so a run refuses a truncated or lying
multi-frame object at once, as ``radassist inspect`` does, instead of failing frame by frame.
A stack of more than :data:`MAX_RUN_IMAGES` images (a long cine loop, a 20,000-frame object)
is run on that many images spread evenly over it, first and last included; the plan's
``notes`` say so in one line, and every result names the stack positions it ran on
(``ResultSlice.index``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from desktop_app.inference.findings import ResultSlice
from desktop_app.infra.errors import DicomReadError, InferenceError
from desktop_app.model.imageio import ImageForModel, image_from_frame, image_kind, read_image
from desktop_app.studies.frames import check_frames, spread
from desktop_app.studies.series import SliceStack, instance_stack
from desktop_app.studies.volume import SeriesVolume

Source = SeriesVolume | SliceStack | str | os.PathLike[str] | Sequence[ImageForModel | np.ndarray]
"""What ``InferenceEngine.run`` takes."""

MAX_RUN_IMAGES = 512
"""The most images of one stack a run decodes and scores; more are sampled evenly down to
this many (a CPU scores ~20-60 images a second, so this bounds a run to tens of seconds)."""


@dataclass(frozen=True)
class SlicePlan:
    """The slices of one run: their references, names (paths) and a loader for each image;
    the series they belong to (empty for plain images); ``notes``: one line each about what the
    plan left out (see :data:`MAX_RUN_IMAGES`)."""

    refs: list[ResultSlice]
    paths: list[str]
    load: Callable[[int], ImageForModel]
    series_uid: str = ""
    study_uid: str = ""
    modality: str = ""
    part: int = 1
    parts: int = 1
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.refs)


def _from_volume(volume: SeriesVolume, max_images: int) -> SlicePlan:
    stack = volume.stack
    slices = stack.slices
    if stack.is_multiframe:
        check_frames(slices[0].instance, volume.limits)  # before any frame is decoded
    chosen = spread(len(slices), max_images)
    picked = [slices[i] for i in chosen]
    notes: tuple[str, ...] = ()
    if len(picked) < len(slices):
        notes = (
            f"the model ran on {len(picked)} of the {len(slices)} images of this stack, "
            f"spread evenly (about one in {len(slices) / len(picked):.0f}); the others were "
            "not read",
        )
    return SlicePlan(
        refs=[
            ResultSlice(
                i, s.instance.sop_instance_uid, s.frame, s.instance.rows, s.instance.columns
            )
            for i, s in zip(chosen, picked)
        ],
        paths=[str(s.instance.path) for s in picked],
        load=lambda k: image_from_frame(volume.frame(chosen[k])),
        series_uid=stack.series_instance_uid,
        modality=slices[0].instance.modality,
        part=stack.part,
        parts=stack.parts,
        notes=notes,
    )


def _from_path(path: Path, max_images: int) -> SlicePlan:
    """One file: every frame of a DICOM instance, or a PNG/JPEG image."""
    from desktop_app.studies.index import index_paths

    if image_kind(path) != "dicom":
        image = read_image(path)
        rows, cols = image.values.shape[:2]
        return SlicePlan([ResultSlice(0, "", 0, rows, cols)], [str(path)], lambda _i: image)
    index = index_paths([path], executor="serial")
    if index.problems:
        problem = index.problems[0]
        raise DicomReadError(problem.reason, problem.path)
    found = [
        (study, series, inst)
        for _, study, series in index.iter_series()
        for inst in series.instances
        if inst.has_pixels
    ]
    if not found:
        raise DicomReadError("has no image to run the model on (no pixel data)", path)
    study, series, inst = found[0]
    plan = _from_volume(SeriesVolume(instance_stack(inst), keep=False), max_images)
    return replace(plan, series_uid=series.series_instance_uid, study_uid=study.study_instance_uid)


def _from_images(images: Sequence[ImageForModel | np.ndarray]) -> SlicePlan:
    items = [
        im if isinstance(im, ImageForModel) else ImageForModel(np.asarray(im, np.float32))
        for im in images
    ]
    if not items:
        raise InferenceError("no images to run the model on")
    refs = []
    for i, item in enumerate(items):
        if item.values.ndim != 2:
            raise InferenceError(f"image {i} must be 2-D grey values, got {item.values.shape}")
        refs.append(ResultSlice(i, "", 0, int(item.values.shape[0]), int(item.values.shape[1])))
    return SlicePlan(refs, [f"<image {i}>" for i in range(len(items))], lambda i: items[i])


def plan_slices(source: Source, *, max_images: int | None = None) -> SlicePlan:
    """The slices of ``source`` (of a stack at most ``max_images``, by default
    :data:`MAX_RUN_IMAGES`); TypeError naming what it takes for anything else."""
    if max_images is None:
        max_images = MAX_RUN_IMAGES
    if max_images < 1:
        raise ValueError(f"`max_images` {max_images} should be at least 1.")
    if isinstance(source, SeriesVolume):
        return _from_volume(source, max_images)
    if isinstance(source, SliceStack):
        return _from_volume(SeriesVolume(source, keep=False), max_images)
    if isinstance(source, str | os.PathLike):
        return _from_path(Path(source), max_images)
    if isinstance(source, Sequence | np.ndarray):
        return _from_images(list(source))  # type: ignore[arg-type]  # str was handled above
    raise TypeError(
        f"can't run the model on a {type(source).__name__}: pass a SeriesVolume, a SliceStack, "
        "a file path, or a sequence of 2-D images"
    )
