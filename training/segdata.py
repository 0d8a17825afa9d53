"""Segmentation data: manifests with a ``mask`` column and SIIM-ACR's RLE masks, decoded once
with their images onto the network grid, and augmented together.

Manifest (``--task segmentation``): ``path`` (the image, as for classification), ``mask`` (a
PNG relative to the CSV, the image's size; nonzero pixels are foreground), optional
``patient_id`` and ``split``. One mask per image, so one segment class: it is named by
``--labels NAME`` (one name) and is called ``lesion`` otherwise; any 0/1 columns are ignored.
An empty mask (no foreground) is a negative image, which the split stratifies on.

SIIM-ACR Pneumothorax (``train-rle.csv``): the class is ``pneumothorax``; an image's mask is
the union of its rows' run-length encodings (``training.layouts.siim``).

A mask goes through the image's own geometry (``preprocessing.geometry_for``): resized to the
image's resized shape (antialiased, then foreground where the resampled value reaches 0.5) and
padded with background, so mask pixel (r, c) is unit-image pixel (r, c).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import DataError, RadAssistError
from desktop_app.model.preprocessing import PreprocessSpec, geometry_for, resize, unit_image
from training.augment import _plain_tensors, sample_seed, scaled
from training.config import AugmentConfig
from training.data import (
    _image_path,
    _is_synthetic,
    _patient_of,
    _read_text,
    _split_of,
    resolve_data_path,
)
from training.dataset import Stopped, network_input
from training.records import LABEL_PATTERN, Dataset, Record

log = logging.getLogger(__name__)

MASK_COLUMN = "mask"
DEFAULT_CLASS = "lesion"


@dataclass
class SegDataset:
    """A classification ``Dataset`` (records, labels = segment classes, label 1 where the mask
    has foreground) and each record's mask source: a path, or SIIM RLE strings."""

    data: Dataset
    masks: list[Path | tuple[str, ...]]


def read_segmentation_data(
    path: str | os.PathLike[str], labels: Sequence[str] | None = None
) -> SegDataset:
    """``--data`` for segmentation: a manifest with a ``mask`` column, or SIIM's RLE CSV."""
    csv_path, kind = resolve_data_path(path)
    if kind == "siim":
        return _read_siim(csv_path, labels)
    if kind != "manifest":
        raise DataError(
            f"the {kind} layout has no masks",
            csv_path,
            "segmentation reads a manifest with a 'mask' column, or SIIM's train-rle.csv",
        )
    return _read_mask_manifest(csv_path, labels)


def _class_name(labels: Sequence[str] | None, source: Path) -> str:
    if labels is None:
        return DEFAULT_CLASS
    if len(labels) != 1 or not LABEL_PATTERN.match(labels[0]):
        raise DataError(
            f"--labels {','.join(labels)}: a segmentation manifest has one mask per image, so "
            "one class",
            source,
            "name the class with one --labels NAME, or leave it out (lesion)",
        )
    return labels[0]


def _read_mask_manifest(p: Path, labels: Sequence[str] | None) -> SegDataset:
    text = _read_text(p)
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    for column in ("path", MASK_COLUMN):
        if column not in header:
            raise DataError(
                f"row 1: there is no {column!r} column, which segmentation needs",
                p,
                "add a 'mask' column: a PNG mask per image, relative to the CSV",
            )
    name = _class_name(labels, p)
    records: list[Record] = []
    masks: list[Path | tuple[str, ...]] = []
    for number, raw in enumerate(reader, start=2):
        values = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        image = _image_path(p.parent, values["path"], number, p)
        mask = _image_path(p.parent, values[MASK_COLUMN], number, p)
        positive = float(_read_mask_file(mask, number, p).any())
        patient = _patient_of(values, number, p) if "patient_id" in header else f"row{number}"
        split = _split_of(values, number, p) if "split" in header else None
        records.append(Record(number, image, (positive,), patient, split))
        masks.append(mask)
    if not records:
        raise DataError("manifest has a header but no rows", p, "add one row per image")
    data = Dataset(
        source=p,
        kind="manifest",
        labels=(name,),
        records=records,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        has_patient_ids="patient_id" in header,
        has_split="split" in header,
        synthetic=_is_synthetic(p.parent),
    )
    return SegDataset(data, masks)


def _read_siim(csv_path: Path, labels: Sequence[str] | None) -> SegDataset:
    from training.layouts.siim import image_masks, read_siim

    data = read_siim(csv_path, labels)
    runs = image_masks(csv_path)
    return SegDataset(data, [runs.get(r.patient, ()) for r in data.records])


def _read_mask_file(path: Path, row: int, source: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L")) > 0
    except (OSError, ValueError) as err:
        raise DataError(
            f"row {row}: mask {path.name} can't be read: {err}", source, "give a PNG mask"
        ) from None


def _mask_of(source: Path | tuple[str, ...], shape: tuple[int, int], record: Record,
             data_source: Path) -> np.ndarray:  # fmt: skip
    """The record's mask on the original grid (bool, ``shape``)."""
    if isinstance(source, tuple):
        from training.layouts.siim import union_mask

        return union_mask(source, width=shape[1], height=shape[0])
    mask = _read_mask_file(source, record.row, data_source)
    if mask.shape != shape:
        raise DataError(
            f"row {record.row}: mask {source.name} is {mask.shape[1]}x{mask.shape[0]} but its "
            f"image is {shape[1]}x{shape[0]}",
            data_source,
            "give a mask of the image's size",
        )
    return mask


def mask_to_unit(mask: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """A bool mask on the original grid -> uint8 (S, S) on the unit image's grid."""
    geometry = geometry_for(mask.shape, spec.image_size)
    h, w = geometry.resized_shape
    small = resize(mask.astype(np.float32), (h, w), "bilinear") >= 0.5
    out = np.zeros((spec.image_size, spec.image_size), dtype=np.uint8)
    top, left = geometry.pad
    out[top : top + h, left : left + w] = small
    return out


def load_pairs(
    seg: SegDataset,
    spec: PreprocessSpec,
    *,
    workers: int = 1,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every record's unit image (N, S, S) float32 and mask (N, 1, S, S) uint8, decoded once."""
    from desktop_app.model.imageio import read_image

    records, size = seg.data.records, spec.image_size
    units = torch.empty((len(records), size, size), dtype=torch.float32)
    masks = torch.zeros((len(records), 1, size, size), dtype=torch.uint8)

    def one(i: int) -> None:
        if stop_requested(stop):
            raise Stopped
        record = records[i]
        try:
            image = read_image(record.path)
            unit, _ = unit_image(
                image.values, spec, photometric=image.photometric, file_window=image.file_window
            )
        except (RadAssistError, ValueError, MemoryError) as err:
            reason = err.reason if isinstance(err, RadAssistError) else str(err)
            raise DataError(
                f"row {record.row}: image {record.path.name} can't be read: {reason}",
                seg.data.source,
                "fix or replace the file, or remove its row",
            ) from None
        shape = (int(image.values.shape[-2]), int(image.values.shape[-1]))
        units[i] = torch.from_numpy(unit)
        masks[i, 0] = torch.from_numpy(mask_to_unit(_mask_of(seg.masks[i], shape, record,
                                                             seg.data.source), spec))  # fmt: skip

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        for done, future in enumerate([pool.submit(one, i) for i in range(len(records))], 1):
            future.result()
            if progress is not None:
                progress(done, len(records))
    return units, masks


class PairAugmenter:
    """``augmenter(unit, mask, seed)``: the geometric transforms of ``training.augment`` on the
    image and its mask together (the mask by nearest neighbour), the intensity ones on the image
    only; magnitudes scaled by ``augment.strength`` as there."""

    def __init__(self, config: AugmentConfig, image_size: int) -> None:
        from monai.transforms import (
            Compose,
            RandAdjustContrastd,
            RandAffined,
            RandFlipd,
            RandGaussianNoised,
            RandScaleIntensityd,
        )

        c = scaled(config)
        size, both = int(image_size), ("image", "mask")
        transforms: list[Any] = []
        if c.affine_prob > 0 and (c.rotate_degrees > 0 or c.scale > 0 or c.translate > 0):
            transforms.append(
                RandAffined(
                    both, prob=c.affine_prob, rotate_range=(math.radians(c.rotate_degrees),),
                    scale_range=(c.scale, c.scale),
                    translate_range=(c.translate * size, c.translate * size),
                    padding_mode="zeros", mode=("bilinear", "nearest"), spatial_size=(size, size),
                )
            )  # fmt: skip
        if c.contrast_prob > 0 and c.gamma[0] < c.gamma[1]:
            transforms.append(
                RandAdjustContrastd("image", prob=c.contrast_prob, gamma=(c.gamma[0], c.gamma[1]))
            )
        if c.intensity_prob > 0 and c.intensity_scale > 0:
            transforms.append(
                RandScaleIntensityd("image", factors=c.intensity_scale, prob=c.intensity_prob)
            )
        if c.noise_prob > 0 and c.noise_std > 0:
            transforms.append(RandGaussianNoised("image", prob=c.noise_prob, std=c.noise_std))
        if c.hflip_prob > 0:
            transforms.append(RandFlipd(both, prob=c.hflip_prob, spatial_axis=1))
        if c.vflip_prob > 0:
            transforms.append(RandFlipd(both, prob=c.vflip_prob, spatial_axis=0))
        self.transform = Compose(transforms)
        self.active = bool(transforms)

    def __call__(
        self, unit: torch.Tensor, mask: torch.Tensor, seed: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.active:
            return unit, mask
        with _plain_tensors():
            self.transform.set_random_state(seed=int(seed))
            out = self.transform({"image": unit[None], "mask": mask.float()})
        image = torch.as_tensor(out["image"]).as_subclass(torch.Tensor)[0].clamp(0.0, 1.0)
        return image.contiguous(), (torch.as_tensor(out["mask"]) >= 0.5).to(torch.uint8)


class PairDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """Items ``(input (C, S, S), mask (L, S, S) float, index)``; augmented per (seed, epoch,
    index) like ``training.dataset.UnitImageDataset``."""

    def __init__(
        self,
        units: torch.Tensor,
        masks: torch.Tensor,
        indices: Sequence[int],
        spec: PreprocessSpec,
        augmenter: PairAugmenter | None = None,
        seed: int = 0,
    ) -> None:
        self.units, self.masks, self.indices = units, masks, list(indices)
        self.spec, self.augmenter, self.seed, self.epoch = spec, augmenter, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        k = self.indices[i]
        unit, mask = self.units[k].to(torch.float32), self.masks[k]
        if self.augmenter is not None:
            unit, mask = self.augmenter(unit, mask, sample_seed(self.seed, self.epoch, k))
        return network_input(unit, self.spec), mask.to(torch.float32), k


def build_pair_augmenter(config: AugmentConfig, image_size: int) -> PairAugmenter | None:
    if not config.enabled:
        return None
    augmenter = PairAugmenter(config, image_size)
    return augmenter if augmenter.active else None
