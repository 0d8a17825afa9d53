"""3-D segmentation data and scoring: NIfTI volumes read once and resampled to one spacing, the
CT window / z-score, foreground/background patches, sliding-window logits and per-volume metrics
(``training.seg3d`` trains on them; ``training.evaluate`` scores a 3-D model with them). See
``training.seg3d`` for the rules.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import DataError
from training.dataset import Stopped
from training.metrics import _value, wilson_interval
from training.records import Dataset, Record
from training.seeding import derived_seed
from training.segmasks import class_name, foreground, is_nifti, open_nifti, out_of_memory
from training.segmetrics import bootstrap_mean_ci, dice_per_image, hd95_per_image

log = logging.getLogger(__name__)

MAX_VOXELS = 2**27  # one volume, before and after resampling (512 x 512 x 512)
MAX_TOTAL_VOXELS = 2**29  # all volumes after resampling: 2 GB of float32 images
PATCHES_PER_CASE = 4
INDEX_CAP = 20_000
CT_AIR_HU = -500.0  # a volume reaching this is taken as CT in HU (air is -1000)
WINDOW_PERCENTILES = (0.5, 99.5)
OVERLAP = 0.25
VOXEL_THRESHOLD = 0.5  # a voxel is foreground where its sigmoid reaches this
TWENTY_SIX_CONNECTED = np.ones((3, 3, 3), dtype=bool)
VOLUME_HINT = (
    "give an MSD / nnU-Net folder (imagesTr/ + labelsTr/ of NIfTI volumes) or a manifest of "
    "volumes (NIfTI path and mask, no slice column)"
)

# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class VolumeCase:
    """One case: its image and label volume, the label values that are foreground."""

    case: str
    image: Path
    label: Path
    values: tuple[int, ...] = ()
    split: str | None = None


@dataclass
class VolumeData:
    """The cases as a ``Dataset`` (one record per case, label 1 where it has foreground), their
    resampled raw images (float32) and masks (bool), the common spacing and the modality."""

    data: Dataset
    images: list[np.ndarray]
    masks: list[np.ndarray]
    spacing: tuple[float, float, float]
    modality: str | None  # "CT", another dataset.json modality, or None (unknown, not HU)
    modality_source: str = ""
    original_shapes: list[tuple[int, int, int]] = field(default_factory=list)


def list_volume_cases(
    path: str | Path, labels: Sequence[str] | None
) -> tuple[list[VolumeCase], Dataset, str | None]:
    """The cases of an MSD / nnU-Net folder or a manifest of volumes, a ``Dataset`` shell (no
    records yet) and dataset.json's modality of channel 0 (None without one)."""
    from training.seglayouts import find_seg_layout

    p = Path(path)
    if p.is_dir():
        found = find_seg_layout(p)
        if found is None or found[1] != "msd":
            raise DataError("is not an MSD / nnU-Net folder", p, VOLUME_HINT)
        return _msd_cases(found[0], labels)
    if p.suffix.lower() != ".csv" or not p.is_file():
        raise DataError("is neither a folder nor a CSV manifest", p, VOLUME_HINT)
    return _manifest_cases(p, labels)


def _msd_cases(
    root: Path, labels: Sequence[str] | None
) -> tuple[list[VolumeCase], Dataset, str | None]:
    from training.seglayouts import _cases, _dataset_json, _pick_label, label_values

    meta = _dataset_json(root)
    source = root / "dataset.json" if meta else root
    names = label_values(meta["labels"], source) if "labels" in meta else {}
    name, values = _pick_label(names, labels, source)
    ending = meta.get("file_ending") if isinstance(meta.get("file_ending"), str) else None
    cases = [VolumeCase(c, i, lab, values) for c, i, lab in _cases(root, ending)]
    for case in cases:
        if not (is_nifti(case.image) and is_nifti(case.label)):
            raise DataError(f"case {case.case} is not a NIfTI volume", case.label, VOLUME_HINT)
    text = "\n".join(f"{c.case},{c.image.name},{c.label.name}" for c in cases)
    modality = meta.get("modality") or meta.get("channel_names") or {}
    first = modality.get("0") if isinstance(modality, dict) else None
    data = Dataset(
        source=source, kind="msd", labels=(name,), records=[],
        sha256=hashlib.sha256(("3d\n" + text).encode("utf-8")).hexdigest(),
    )  # fmt: skip
    return cases, data, str(first).upper() if isinstance(first, str) else None


def _manifest_cases(
    p: Path, labels: Sequence[str] | None
) -> tuple[list[VolumeCase], Dataset, str | None]:
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"can't be read: {err}", p, "give a UTF-8 CSV") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    if "path" not in header or "mask" not in header or "slice" in header:
        raise DataError(
            "a manifest of volumes has 'path' and 'mask' columns and no 'slice' column", p,
            VOLUME_HINT,
        )  # fmt: skip
    cases = []
    for number, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        image, mask = p.parent / row["path"], p.parent / row["mask"]
        for f in (image, mask):
            if not is_nifti(f):
                raise DataError(f"row {number}: {f.name} is not a NIfTI volume", p, VOLUME_HINT)
            if not f.is_file():
                raise DataError(f"row {number}: {f.name} not found", p, "fix the path")
        split = row.get("split") or None
        if split is not None and split not in ("train", "val", "test"):
            raise DataError(f"row {number}: split {split!r}", p, "use train, val or test")
        cases.append(VolumeCase(row.get("patient_id") or f"row{number}", image, mask, (), split))
    if not cases:
        raise DataError("manifest has a header but no rows", p, "add one row per volume")
    data = Dataset(
        source=p, kind="manifest", labels=(class_name(labels, p),), records=[],
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        has_patient_ids="patient_id" in header, has_split="split" in header,
    )  # fmt: skip
    return cases, data, None


def _canonical(path: Path) -> Any:
    import nibabel as nib

    image = open_nifti(path)
    try:
        with nib.imageglobals.LoggingOutputSuppressor():
            return nib.as_closest_canonical(image)
    except (OSError, ValueError, EOFError, nib.filebasedimages.ImageFileError) as err:
        raise DataError(
            f"NIfTI can't be read: {err}", path, "give a .nii or .nii.gz file"
        ) from None


def _spatial(image: Any) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """(slices, rows, columns) shape and spacing in mm of a canonical image's header."""
    shape = tuple(int(s) for s in image.shape[:3]) + (1,) * max(0, 3 - len(image.shape))
    zooms = [float(z) for z in image.header.get_zooms()[:3]] + [1.0] * 3
    return (shape[2], shape[1], shape[0]), (zooms[2], zooms[1], zooms[0])


def _layout(data: np.ndarray) -> np.ndarray:
    """Canonical (x, y, z) array -> (slice, row, column) as ``segmasks.read_volume`` lays it."""
    if data.ndim == 4:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[:, :, None]
    return np.ascontiguousarray(data[::-1, ::-1, :].transpose(2, 1, 0))


def check_voxels(case: str, shape: Sequence[int], path: Path, what: str = "") -> None:
    """Refuse a volume over :data:`MAX_VOXELS` in one line."""
    n = math.prod(int(s) for s in shape)
    if n > MAX_VOXELS:
        raise DataError(
            f"case {case}: {what}volume {'x'.join(str(s) for s in shape)} (slices x rows x "
            f"columns) has {n} voxels, over the limit of {MAX_VOXELS}",
            path,
            "crop the volume to the region of interest or resample it coarser",
        )


def resample(volume: np.ndarray, spacing: Sequence[float], target: Sequence[float],
             *, label: bool) -> np.ndarray:  # fmt: skip
    """``volume`` from ``spacing`` to ``target`` mm per voxel (slice, row, column), linear; a
    label is interpolated as 0/1 and cut at 0.5 (nnU-Net's rule: nearest neighbour loses a
    small lesion's voxels); each voxel covers its cell (``grid_mode``), so a structure keeps
    its extent in mm."""
    shape = [
        max(1, round(n * s / t)) for n, s, t in zip(volume.shape, spacing, target, strict=True)
    ]
    if list(volume.shape) == shape:
        return volume
    zoom = [o / n for o, n in zip(shape, volume.shape, strict=True)]
    out = ndimage.zoom(
        volume.astype(np.float32, copy=False), zoom, order=1, mode="nearest", grid_mode=True
    )
    return out >= 0.5 if label else out


def load_volume_data(
    path: str | Path, labels: Sequence[str] | None = None, *,
    spacing: Sequence[float] | None = None, progress: Progress | None = None,
    stop: StopFlag = None,
) -> VolumeData:  # fmt: skip
    """Read every case once, resampled to ``spacing`` (default: the cases' median spacing)."""
    cases, data, modality = list_volume_cases(path, labels)
    headers = []
    for c in cases:
        image, label = _canonical(c.image), _canonical(c.label)
        (shape, sp), (lshape, _) = _spatial(image), _spatial(label)
        check_voxels(c.case, shape, c.image)
        if shape != lshape or not np.allclose(image.affine, label.affine, atol=1e-2):
            raise DataError(
                f"case {c.case}: the label volume {'x'.join(map(str, lshape))} is on another "
                f"grid than its image {'x'.join(map(str, shape))} (shape or affine differ)",
                c.label,
                "give the label volume made on this image (same shape and affine)",
            )
        headers.append((shape, sp))
    chosen = spacing if spacing is not None else np.median([sp for _, sp in headers], axis=0)
    target = (float(chosen[0]), float(chosen[1]), float(chosen[2]))
    total = 0
    for c, (shape, sp) in zip(cases, headers, strict=True):
        out = [max(1, round(n * s / t)) for n, s, t in zip(shape, sp, target, strict=True)]
        check_voxels(c.case, out, c.image, "resampled ")
        total += math.prod(out)
    if total > MAX_TOTAL_VOXELS:
        raise DataError(
            f"the {len(cases)} resampled volumes hold {total} voxels, over the limit of "
            f"{MAX_TOTAL_VOXELS}", data.source,
            "train on fewer cases, or crop the volumes to the region of interest",
        )  # fmt: skip
    images, masks, records = [], [], []
    for k, (c, (_, sp)) in enumerate(zip(cases, headers, strict=True)):
        if stop_requested(stop):
            raise Stopped
        try:
            raw = np.asanyarray(_canonical(c.image).dataobj)
            lab = np.asanyarray(_canonical(c.label).dataobj)
            images.append(resample(_layout(raw).astype(np.float32), sp, target, label=False))
            masks.append(resample(foreground(_layout(lab), c.values), sp, target, label=True))
        except MemoryError:
            raise out_of_memory(c.image, _canonical(c.image)) from None
        records.append(Record(k + 2, c.image, (float(masks[-1].any()),), c.case, c.split))
        if progress is not None:
            progress(k + 1, len(cases))
    data.records = records
    found, how = modality, "dataset.json"
    if found is None:
        hu = all(float(img.min()) <= CT_AIR_HU for img in images)
        found, how = ("CT", "HU-like values (air at -500 or below)") if hu else (None, "")
    data.notes.append(
        f"{len(cases)} volumes resampled to {' x '.join(f'{v:.3g}' for v in target)} mm "
        "(slice x row x column)"
    )
    return VolumeData(data, images, masks, target, found, how, [h for h, _ in headers])


# --------------------------------------------------------------------------- intensity


def ct_window(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], seed: int) -> list[float]:
    """The 0.5-99.5 percentile window of the cases' foreground (nnU-Net's CT rule)."""
    rng = np.random.default_rng([seed, 0x3D])
    parts = []
    for image, mask in zip(images, masks, strict=True):
        values = image[mask]
        if values.size > 100_000:
            values = values[rng.integers(0, values.size, 100_000)]
        parts.append(values)
    values = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if values.size == 0:
        return [-1000.0, 1000.0]
    lo, hi = (float(v) for v in np.percentile(values, WINDOW_PERCENTILES))
    return [lo, hi] if hi > lo else [lo - 1.0, lo + 1.0]


def normalize(image: np.ndarray, window: Sequence[float] | None) -> np.ndarray:
    """A window clips and scales to [0, 1]; None: clip to the volume's 0.5-99.5 percentiles and
    z-score."""
    if window is not None:
        lo, hi = float(window[0]), float(window[1])
        return ((np.clip(image, lo, hi) - lo) / (hi - lo)).astype(np.float32)
    lo, hi = np.percentile(image, WINDOW_PERCENTILES)
    x = np.clip(image, lo, hi)
    return ((x - x.mean()) / max(float(x.std()), 1e-6)).astype(np.float32)


# --------------------------------------------------------------------------- patches


def _pad_to(x: np.ndarray, size: int, value: float) -> np.ndarray:
    pads = [(0, max(0, size - n)) for n in x.shape[-3:]]
    if not any(p for _, p in pads):
        return x
    return np.pad(x, [(0, 0)] * (x.ndim - 3) + pads, constant_values=value)


class PatchDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """:data:`PATCHES_PER_CASE` random patches per case of ``indices``, foreground- and
    background-centred 1:1, flipped at random (see the module docstring)."""

    def __init__(
        self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], indices: Sequence[int],
        patch: int, seed: int,
    ) -> None:  # fmt: skip
        from monai.transforms import RandCropByPosNegLabeld

        self.images, self.masks, self.indices = images, masks, list(indices)
        self.patch, self.seed, self.epoch = patch, seed, 0
        rng = np.random.default_rng([seed, 0x1D])
        self.fg, self.bg = {}, {}
        for i in self.indices:
            flat = masks[i].reshape(-1)
            fg = np.flatnonzero(flat)
            self.fg[i] = fg if fg.size <= INDEX_CAP else rng.choice(fg, INDEX_CAP, replace=False)
            draw = rng.integers(0, flat.size, INDEX_CAP)
            self.bg[i] = np.unique(draw[~flat[draw]])
        self.crop = RandCropByPosNegLabeld(
            keys=("image", "label"), label_key="label", spatial_size=(patch,) * 3, pos=1.0,
            neg=1.0, num_samples=1, fg_indices_key="fg", bg_indices_key="bg", allow_smaller=True,
        )  # fmt: skip

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices) * PATCHES_PER_CASE

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        case = self.indices[i % len(self.indices)]
        seed = derived_seed(self.seed, self.epoch, i, 0x3D)
        self.crop.set_random_state(seed=seed)
        item: dict[Any, Any] = {
            "image": self.images[case][None], "label": self.masks[case][None].astype(np.float32),
            "fg": self.fg[case], "bg": self.bg[case],
        }  # fmt: skip
        out = self.crop(item)[0]
        x = _pad_to(np.asarray(out["image"]), self.patch, float(self.images[case].min()))
        y = _pad_to(np.asarray(out["label"]), self.patch, 0.0)
        flips = np.random.default_rng(seed).random(3) < 0.5
        axes = tuple(int(a) + 1 for a in np.flatnonzero(flips))
        if axes:
            x, y = np.flip(x, axes), np.flip(y, axes)
        return torch.from_numpy(x.copy()), torch.from_numpy(y.copy()), i


def sliding_window_logits(
    model: nn.Module, image: np.ndarray, patch: int, device: torch.device, sw_batch: int = 2
) -> torch.Tensor:
    """(1, L, slices, rows, columns) logits of a whole normalised volume: MONAI's
    ``sliding_window_inference`` (ROI = patch, overlap 0.25, gaussian), the input's shape."""
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)[None, None]).to(device)
    model.eval()
    with torch.no_grad():
        out = sliding_window_inference(
            x, (patch,) * 3, sw_batch, model, overlap=OVERLAP, mode="gaussian"
        )
    return torch.as_tensor(out).float()


# --------------------------------------------------------------------------- metrics


def volume_metrics(
    preds: Sequence[np.ndarray], truths: Sequence[np.ndarray], spacing: Sequence[float], *,
    n_boot: int, level: float, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """One label's metrics over cases: bool (slices, rows, columns) predictions and truths on
    the resampled grid, ``spacing`` its mm per voxel; the keys of ``segmetrics``'s per-image
    metrics, counted per volume (``images`` = cases), plus ``cases``."""
    n = len(preds)
    dice, hd_px, hd_mm = np.zeros(n), np.full(n, np.nan), np.full(n, np.nan)
    lesions, found, false = (np.zeros(n, dtype=np.int64) for _ in range(3))
    for k, (p, t) in enumerate(zip(preds, truths, strict=True)):
        dice[k] = dice_per_image(p[None], t[None])[0]
        hd_px[k] = hd95_per_image(p[None], t[None])[0]
        hd_mm[k] = hd95_per_image(p[None], t[None], np.asarray([spacing], float))[0]
        t_lab, n_t = ndimage.label(t, structure=TWENTY_SIX_CONNECTED)
        p_lab, n_p = ndimage.label(p, structure=TWENTY_SIX_CONNECTED)
        lesions[k] = n_t
        found[k] = len(np.unique(t_lab[p & (t_lab > 0)]))
        false[k] = n_p - len(np.unique(p_lab[t & (p_lab > 0)]))

    def with_ci(values: np.ndarray) -> dict[str, Any]:
        finite = values[np.isfinite(values)]
        mean = float(finite.mean()) if finite.size else math.nan
        return _value(mean, bootstrap_mean_ci(values, n_boot=n_boot, level=level, seed=seed))

    positive = np.array([t.any() for t in truths], dtype=bool)
    n_lesions, n_found = int(lesions.sum()), int(found.sum())
    return {
        "images": n, "cases": n, "positive_images": int(positive.sum()), "lesions": n_lesions,
        "dice": with_ci(dice), "dice_positive": with_ci(dice[positive]),
        "hd95_px": with_ci(hd_px), "hd95_mm": with_ci(hd_mm),
        "lesion_sensitivity": _value(
            n_found / n_lesions if n_lesions else math.nan,
            wilson_interval(n_found, n_lesions, level),
        ),
        "fp_per_image": with_ci(false.astype(np.float64)),
    }  # fmt: skip


def predict_volumes(
    model: nn.Module, images: Sequence[np.ndarray], patch: int, device: torch.device,
    stop: StopFlag = None,
) -> list[np.ndarray]:  # fmt: skip
    """(L, slices, rows, columns) sigmoid probabilities per volume, by sliding window."""
    out = []
    for image in images:
        if stop_requested(stop):
            raise Stopped
        out.append(torch.sigmoid(sliding_window_logits(model, image, patch, device))[0].numpy())
    return out


def split_metrics_3d(
    probs: Sequence[np.ndarray], masks: Sequence[np.ndarray], labels: Sequence[str],
    spacing: Sequence[float], *, n_boot: int, level: float, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """``{label: volume_metrics, "mean_dice": x}`` at :data:`VOXEL_THRESHOLD`."""
    out: dict[str, Any] = {}
    for j, label in enumerate(labels):
        out[label] = volume_metrics(
            [p[j] >= VOXEL_THRESHOLD for p in probs], list(masks), spacing, n_boot=n_boot,
            level=level, seed=seed + j,
        )  # fmt: skip
    dices = [out[label]["dice"]["value"] for label in labels]
    out["mean_dice"] = float(np.mean([d for d in dices if d is not None])) if dices else None
    return out
