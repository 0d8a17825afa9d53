"""Segmentation data: manifests with a ``mask`` column, the public segmentation folder layouts
(``training.seglayouts``) and SIIM-ACR's RLE masks, decoded once with their images onto the
network grid, and augmented together.

Manifest (``--task segmentation``): ``path`` (the image, as for classification, or a NIfTI
volume), ``mask`` (relative to the CSV), optional ``slice``, ``patient_id`` and ``split``. The
``mask`` is read by ``training.segmasks``:

- a PNG/TIFF/GIF/JPEG label image of the image's size: nonzero pixels are foreground;
- a NIfTI file. When ``path`` is a NIfTI volume too, the row is axial slice ``slice`` (0-based,
  inferior to superior; 0 when there is no ``slice`` column) of both, each reoriented to the
  viewer's axial layout (``segmasks.read_volume``), and the two volumes must have one shape.
  When ``path`` is a PNG/JPEG/DICOM image, the NIfTI is taken as stored: a 2-D array (rows,
  columns), or a 3-D one whose last axis ``slice`` picks;
- a DICOM SEG: the frames drawn on the row's DICOM image (by SOP Instance UID, else plane
  position); any segment is foreground, or the one named by ``--labels``;
- a DICOM RTSTRUCT: its closed contours on the row's DICOM image's plane, rasterised; any
  ROI, or the one named by ``--labels``.

One mask per image, so one segment class: it is named by ``--labels NAME`` (one name) and is
called ``lesion`` otherwise; any 0/1 columns are ignored. An empty mask (no foreground) is a
negative image, which the split stratifies on.

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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
from training.records import Dataset, Record
from training.segmasks import (
    DicomMask,
    LabelImage,
    MaskSource,
    SegDataset,
    VolumeSlice,
    class_name,
    image_plane,
    is_nifti,
    mask_source,
    read_label_image,
    read_mask,
    read_volume,
)

log = logging.getLogger(__name__)

MASK_COLUMN = "mask"
SLICE_COLUMN = "slice"
RASTER_ONLY_SUFFIXES = (".tif", ".tiff", ".bmp")  # images of the folders layout Pillow reads


def read_segmentation_data(
    path: str | os.PathLike[str], labels: Sequence[str] | None = None
) -> SegDataset:
    """``--data`` for segmentation: a manifest with a ``mask`` column, a folder in a public
    segmentation layout (``training.seglayouts``), or SIIM's RLE CSV."""
    from training.seglayouts import find_seg_layout, read_seg_layout

    folder = Path(path)
    if folder.is_dir() and not (folder / "manifest.csv").is_file():
        found = find_seg_layout(folder)
        if found is not None:
            return read_seg_layout(found[0], found[1], labels)
    csv_path, kind = resolve_data_path(path)
    if kind == "siim":
        return _read_siim(csv_path, labels)
    if kind != "manifest":
        raise DataError(
            f"the {kind} layout has no masks",
            csv_path,
            "segmentation reads a manifest with a 'mask' column, SIIM's train-rle.csv, or a "
            "folder with imagesTr/ + labelsTr/ (MSD, nnU-Net) or images/ + masks/",
        )
    return _read_mask_manifest(csv_path, labels)


def _slice_of(values: dict[str, str], number: int, p: Path) -> int | None:
    text = values.get(SLICE_COLUMN, "")
    if not text:
        return None
    try:
        index = int(text)
    except ValueError:
        index = -1
    if index < 0:
        raise DataError(
            f"row {number}: slice {text!r} is not a whole number >= 0",
            p,
            "the slice column counts axial slices from 0",
        )
    return index


def _read_mask_manifest(p: Path, labels: Sequence[str] | None) -> SegDataset:
    text = _read_text(p)
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    for column in ("path", MASK_COLUMN):
        if column not in header:
            raise DataError(
                f"row 1: there is no {column!r} column, which segmentation needs",
                p,
                "add a 'mask' column: a PNG, NIfTI, DICOM SEG or RTSTRUCT mask per image, "
                "relative to the CSV",
            )
    name = class_name(labels, p)
    names = tuple(labels or ())
    records: list[Record] = []
    masks: list[MaskSource] = []
    images: list[VolumeSlice | None] = []
    volumes: dict[Path, np.ndarray] = {}

    def volume(path: Path) -> np.ndarray:
        if path not in volumes:
            volumes.clear()  # rows of one volume come together; keep one in memory
            volumes[path] = read_volume(path)[0]
        return volumes[path]

    for number, raw in enumerate(reader, start=2):
        values = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        image = _image_path(p.parent, values["path"], number, p)
        mask_path = _image_path(p.parent, values[MASK_COLUMN], number, p)
        index = _slice_of(values, number, p)
        image_slice = VolumeSlice(image, index or 0) if is_nifti(image) else None
        if image_slice is not None and not is_nifti(mask_path):
            raise DataError(
                f"row {number}: image {image.name} is a NIfTI volume but mask "
                f"{mask_path.name} is not",
                p,
                "give the label volume (.nii/.nii.gz) of the same shape as the mask",
            )
        source = mask_source(mask_path, index=index, values=(), names=names,
                             image_is_volume=image_slice is not None)  # fmt: skip
        positive = float(_row_mask(source, image, number, p, volume).any())
        patient = _patient_of(values, number, p) if "patient_id" in header else f"row{number}"
        split = _split_of(values, number, p) if "split" in header else None
        records.append(Record(number, image, (positive,), patient, split))
        masks.append(source)
        images.append(image_slice)
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
    return SegDataset(data, masks, images if any(images) else [])


def _row_mask(
    source: MaskSource, image: Path, row: int, manifest: Path,
    volume: Callable[[Path], np.ndarray],
) -> np.ndarray:  # fmt: skip
    """The mask of a manifest row, read to tell positive rows from negative ones (the image's
    size is checked when the pairs are loaded)."""
    try:
        if isinstance(source, DicomMask):
            plane = image_plane(image)
            return read_mask(source, image, (plane.rows, plane.columns))
        if isinstance(source, VolumeSlice):
            data = volume(source.path)
            return read_mask(source, image, data.shape[1:], volume)
        assert isinstance(source, LabelImage)
        return read_label_image(source)
    except DataError as err:
        raise row_error(err, row, manifest) from None


def row_error(err: DataError, row: int, manifest: Path) -> DataError:
    """A mask file's error as the manifest's row ``row`` error, naming the file."""
    name = f"{err.path.name}: " if err.path is not None and err.path != manifest else ""
    return DataError(f"row {row}: {name}{err.reason}", manifest, err.hint)


def _read_siim(csv_path: Path, labels: Sequence[str] | None) -> SegDataset:
    from training.layouts.siim import image_masks, read_siim

    data = read_siim(csv_path, labels)
    runs = image_masks(csv_path)
    return SegDataset(data, [runs.get(r.patient, ()) for r in data.records])


def mask_to_unit(mask: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """A bool mask on the original grid -> uint8 (S, S) on the unit image's grid."""
    geometry = geometry_for(mask.shape, spec.image_size)
    h, w = geometry.resized_shape
    small = resize(mask.astype(np.float32), (h, w), "bilinear") >= 0.5
    out = np.zeros((spec.image_size, spec.image_size), dtype=np.uint8)
    top, left = geometry.pad
    out[top : top + h, left : left + w] = small
    return out


def _group_key(seg: SegDataset, i: int) -> object:
    """Records read together: the slices of one NIfTI volume (or of one mask file), so that
    each volume is decompressed once."""
    image = seg.image_of(i)
    if image is not None:
        return image.path
    mask = seg.masks[i]
    if isinstance(mask, (VolumeSlice, DicomMask)):
        return mask.path
    return i


def load_pairs(
    seg: SegDataset,
    spec: PreprocessSpec,
    *,
    workers: int = 1,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Every record's unit image (N, S, S) float32, mask (N, 1, S, S) uint8 and the network
    grid's pixel spacing (N, 2) in mm (row, column; NaN where the image gives none), decoded
    once."""
    records, size = seg.data.records, spec.image_size
    units = torch.empty((len(records), size, size), dtype=torch.float32)
    masks = torch.zeros((len(records), 1, size, size), dtype=torch.uint8)
    spacing = np.full((len(records), 2), np.nan)
    groups: dict[object, list[int]] = {}
    for i in range(len(records)):
        groups.setdefault(_group_key(seg, i), []).append(i)

    def one_group(indices: list[int]) -> int:
        volumes: dict[Path, tuple[np.ndarray, tuple[float, float]]] = {}

        def volume(path: Path) -> np.ndarray:
            if path not in volumes:
                volumes[path] = read_volume(path, _channel(seg, indices[0], path))
            return volumes[path][0]

        for i in indices:
            if stop_requested(stop):
                raise Stopped
            record = records[i]
            values, photometric, window, mm = _image_values(seg, i, volume, volumes)
            unit, geometry = unit_image(values, spec, photometric=photometric, file_window=window)
            shape = (int(values.shape[-2]), int(values.shape[-1]))
            try:
                _check_volumes(seg.image_of(i), seg.masks[i], volume)
                mask = read_mask(seg.masks[i], record.path, shape, volume)
            except DataError as err:
                if seg.data.kind != "manifest":  # a folder layout has no rows: the file says it
                    raise
                raise row_error(err, record.row, seg.data.source) from None
            units[i] = torch.from_numpy(unit)
            masks[i, 0] = torch.from_numpy(mask_to_unit(mask, spec))
            if mm is not None:
                h, w = geometry.resized_shape
                spacing[i] = (mm[0] * shape[0] / h, mm[1] * shape[1] / w)
        return len(indices)

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode") as pool:
        for future in [pool.submit(one_group, g) for g in groups.values()]:
            done += future.result()
            if progress is not None:
                progress(done, len(records))
    return units, masks, spacing


def _check_volumes(
    image: VolumeSlice | None, mask: MaskSource, volume: Callable[[Path], np.ndarray]
) -> None:
    if image is None or not isinstance(mask, VolumeSlice) or mask.path == image.path:
        return
    a, b = volume(image.path).shape, volume(mask.path).shape
    if a != b:
        raise DataError(
            f"NIfTI label is {b[2]}x{b[1]}x{b[0]} (columns x rows x slices) but its image "
            f"{image.path.name} is {a[2]}x{a[1]}x{a[0]}",
            mask.path,
            "give the label volume made on this image (same grid)",
        )


def _channel(seg: SegDataset, i: int, path: Path) -> int:
    image = seg.image_of(i)
    return image.channel if image is not None and image.path == path else 0


def _image_values(
    seg: SegDataset, i: int, volume: Callable[[Path], np.ndarray],
    volumes: dict[Path, tuple[np.ndarray, tuple[float, float]]],
) -> tuple[np.ndarray, str, object | None, tuple[float, float] | None]:  # fmt: skip
    """Record ``i``'s grey values, photometric, file window and pixel spacing (mm or None)."""
    from desktop_app.model.imageio import read_image

    record = seg.data.records[i]
    image_slice = seg.image_of(i)
    try:
        if image_slice is not None:
            data = volume(image_slice.path)
            if not 0 <= image_slice.index < data.shape[0]:
                raise DataError(
                    f"slice {image_slice.index} asked of a volume of {data.shape[0]} slices",
                    image_slice.path,
                    "the slice column counts axial slices from 0",
                )
            values = data[image_slice.index].astype(np.float32)
            return values, "MONOCHROME2", None, volumes[image_slice.path][1]
        if record.path.suffix.lower() in RASTER_ONLY_SUFFIXES:
            from desktop_app.model.imageio import _read_raster  # read_image sniffs PNG/JPEG only

            image = _read_raster(record.path, 0)
        else:
            image = read_image(record.path)
    except (RadAssistError, ValueError, MemoryError) as err:
        reason = err.reason if isinstance(err, RadAssistError) else str(err)
        where = f"row {record.row}: " if seg.data.kind == "manifest" else ""
        raise DataError(
            f"{where}image {record.path.name} can't be read: {reason}",
            seg.data.source,
            "fix or replace the file, or remove its row"
            if where
            else "fix or replace the file, or move it out of the folder",
        ) from None
    mm = image.pixel_spacing
    known = mm is not None and all(float(v) > 0 for v in mm)
    spacing = (float(mm[0]), float(mm[1])) if known and mm is not None else None
    return image.values, image.photometric, image.file_window, spacing


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
