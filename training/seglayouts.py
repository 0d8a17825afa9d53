"""Public segmentation folder layouts read as a ``SegDataset``: the Medical Segmentation
Decathlon / nnU-Net raw layout (imagesTr + labelsTr [+ dataset.json]) and a pair of folders
(images/ + masks/ or labels/) matched by file stem.

MSD / nnU-Net (``DIR/imagesTr``, ``DIR/labelsTr``, optional ``DIR/dataset.json``; ``imagesTs``
has no labels and is not read): each ``labelsTr`` file is a case; its image is
``imagesTr/<case>_0000<ending>`` (nnU-Net's first channel) or ``imagesTr/<case><ending>``
(MSD; a 4-D MSD image gives its first channel). ``<ending>`` is dataset.json's
``file_ending`` (nnU-Net v2), else ``.nii.gz``/``.nii``, or ``.png`` for 2-D datasets. Label
names come from dataset.json's ``labels``: MSD's ``{"0": "background", "1": "tumour"}`` or
nnU-Net v2's ``{"background": 0, "tumour": 1}`` (a region's list of values is allowed).
``--labels NAME`` trains that label only; without it every label of dataset.json is foreground
(any nonzero value without a dataset.json; nnU-Net v2's ``ignore`` label never is), named by
the one foreground label (``foreground`` when there are several).

A 3-D case is trained on as axial 2-D slices, laid out as the viewer shows axial DICOM
(``segmasks.read_volume``: image and label each brought to canonical orientation): every
slice with foreground (at most :data:`MAX_FOREGROUND_SLICES` a case, and fewer, down to 8,
when the cases would hold more than :data:`MAX_FOREGROUND_TOTAL`; evenly spaced) and one
empty slice for every :data:`EMPTY_PER_FOREGROUND` of them (evenly spaced, at least one).
The case is the split unit (``patient_id``), so a case's slices never straddle splits.

Folders (``DIR/images`` with ``DIR/masks``, ``mask``, ``labels`` or ``label``; or the same
under ``DIR/train``, ``DIR/val`` (``valid``, ``validation``) and ``DIR/test``, which then
give the split): an image ``x.png`` (PNG, JPEG, TIFF, BMP or DICOM) pairs with the mask file
whose stem is ``x`` or ``x`` plus ``_mask``, ``_seg``, ``_segmentation``, ``_label`` or ``_gt``
(PNG, GIF, TIFF, BMP or JPEG; nonzero is foreground, JPEG >= 128). Images without a mask are
left out, and counted in the dataset's notes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from desktop_app.infra.errors import DataError
from training.records import LABEL_PATTERN, Dataset, Record
from training.segmasks import (
    DEFAULT_CLASS,
    LabelImage,
    MaskSource,
    SegDataset,
    VolumeSlice,
    class_name,
    foreground,
    is_nifti,
    nifti_stem,
    read_volume,
)

log = logging.getLogger(__name__)

MAX_FOREGROUND_SLICES = 48
MAX_FOREGROUND_TOTAL = 4800  # over all cases: ~6400 slices, 1.3 GB of 224 px unit images
EMPTY_PER_FOREGROUND = 3
IMAGE_DIRS = ("images", "image", "imgs", "img")
MASK_DIRS = ("masks", "mask", "labels", "label")
SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", "")
MASK_SUFFIXES = (".png", ".gif", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")
MASK_TAILS = ("", "_mask", "-mask", "_seg", "_segmentation", "_label", "_gt")
LAYOUT_NAMES = "imagesTr/ + labelsTr/ (MSD, nnU-Net) or images/ + masks/ (or labels/)"


def _visible(folder: Path) -> list[Path]:
    """Files of ``folder``, sorted, without hidden ones (MSD archives carry macOS ``._*``)."""
    try:
        return sorted(
            Path(e.path) for e in os.scandir(folder) if e.is_file() and not e.name.startswith(".")
        )
    except OSError:
        return []


def _pair_dirs(folder: Path) -> tuple[Path, Path] | None:
    images = next((folder / n for n in IMAGE_DIRS if (folder / n).is_dir()), None)
    masks = next((folder / n for n in MASK_DIRS if (folder / n).is_dir()), None)
    return (images, masks) if images is not None and masks is not None else None


def _kind_of(folder: Path) -> str | None:
    if (folder / "imagesTr").is_dir() and (folder / "labelsTr").is_dir():
        return "msd"
    if _pair_dirs(folder) is not None:
        return "folders"
    if any(_pair_dirs(folder / name) is not None for name in SPLIT_DIRS):
        return "folders"
    return None


def find_seg_layout(folder: Path) -> tuple[Path, str] | None:
    """(the layout's root, "msd" or "folders") of ``folder`` or of one folder below it."""
    kind = _kind_of(folder)
    if kind is not None:
        return folder, kind
    try:
        below = sorted(
            Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")
        )
    except OSError:
        return None
    for sub in below:
        kind = _kind_of(sub)
        if kind is not None:
            return sub, kind
    return None


def read_seg_layout(root: Path, kind: str, labels: Sequence[str] | None = None) -> SegDataset:
    """Read the layout ``kind`` found by :func:`find_seg_layout` at ``root``."""
    return _read_msd(root, labels) if kind == "msd" else _read_folders(root, labels)


# --------------------------------------------------------------------------- MSD / nnU-Net


def label_values(spec: Any, source: Path) -> dict[str, tuple[int, ...]]:
    """dataset.json's ``labels`` as {name: values}, background left out (MSD's value -> name
    and nnU-Net v2's name -> value or region list both)."""
    if not isinstance(spec, dict):
        raise DataError("dataset.json has no 'labels' object", source, "give labels as in MSD")
    out: dict[str, tuple[int, ...]] = {}
    for key, value in spec.items():
        values: tuple[int, ...]
        try:
            if isinstance(value, str):  # MSD: {"1": "tumour"}
                name, values = value, (int(key),)
            elif isinstance(value, list):  # nnU-Net v2 region: {"whole": [1, 2, 3]}
                name, values = str(key), tuple(int(v) for v in value)
            else:
                name, values = str(key), (int(value),)
        except (TypeError, ValueError):
            raise DataError(
                f"dataset.json label {key!r}: {value!r} is not a label value",
                source,
                'give "labels" as {"0": "background", "1": "name"} or {"background": 0, "name": 1}',
            ) from None
        if values != (0,) and name.casefold() != "ignore":  # nnU-Net v2's unlabelled voxels
            out[name] = values
    return out


def _dataset_json(root: Path) -> dict[str, Any]:
    path = root / "dataset.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"dataset.json can't be read: {err}", path, "fix the JSON") from None
    return data if isinstance(data, dict) else {}


def _pick_label(
    names: dict[str, tuple[int, ...]], labels: Sequence[str] | None, source: Path
) -> tuple[str, tuple[int, ...]]:
    if labels is None:
        every = tuple(sorted({v for values in names.values() for v in values}))
        if len(names) == 1:
            name = next(iter(names))
            return (name if LABEL_PATTERN.match(name) else DEFAULT_CLASS), every
        return ("foreground" if names else DEFAULT_CLASS), every
    wanted = class_name(labels, source)
    for name, values in names.items():
        if name.casefold() == wanted.casefold():
            return wanted, values
    if not names:
        return wanted, ()
    raise DataError(
        f"--labels {wanted}: dataset.json has no such label; it has: {', '.join(names)}",
        source,
        "pick one of its labels, or leave --labels out (every label is foreground)",
    )


def _cases(root: Path, ending: str | None) -> list[tuple[str, Path, Path]]:
    """(case, image, label) per labelsTr file."""
    out = []
    missing = []
    for label in _visible(root / "labelsTr"):
        name = label.name
        if ending is not None:
            if not name.endswith(ending):
                continue
            case, end = name[: -len(ending)], ending
        elif is_nifti(label):
            case, end = nifti_stem(label), name[len(nifti_stem(label)) :]
        elif label.suffix.lower() in MASK_SUFFIXES:
            case, end = label.stem, label.suffix
        else:
            continue
        image = next(
            (p for p in (root / "imagesTr" / f"{case}_0000{end}", root / "imagesTr" / name)
             if p.is_file()),
            None,
        )  # fmt: skip
        if image is None:
            missing.append(case)
            continue
        out.append((case, image, label))
    if missing:
        raise DataError(
            f"{len(missing)} case(s) of labelsTr have no image in imagesTr, e.g. {missing[0]}",
            root / "imagesTr",
            f"add imagesTr/{missing[0]}_0000{ending or '.nii.gz'} (or without _0000), or "
            "remove the label",
        )
    if not out:
        raise DataError(
            "labelsTr holds no label files",
            root / "labelsTr",
            "put one label file per case there (.nii.gz, or .png for 2-D datasets)",
        )
    return out


def canonical_shape(path: Path) -> tuple[int, ...]:
    """(slices, rows, columns) that ``segmasks.read_volume`` gives, from the header only."""
    import nibabel as nib

    try:
        image: Any = nib.load(str(path))
        shape = tuple(int(s) for s in image.shape[:3])
        ornt = nib.orientations.io_orientation(image.affine)
    except (OSError, ValueError, EOFError, nib.filebasedimages.ImageFileError) as err:
        raise DataError(
            f"NIfTI can't be read: {err}", path, "give a .nii or .nii.gz file"
        ) from None
    shape = shape + (1,) * (3 - len(shape))
    out = [0, 0, 0]
    for axis, (target, _) in enumerate(ornt[: len(shape)]):
        out[int(target) if math.isfinite(target) else axis] = shape[axis]
    return (out[2], out[1], out[0])


def choose_slices(has_foreground: np.ndarray, cap: int = MAX_FOREGROUND_SLICES) -> list[int]:
    """Every foreground slice (at most ``cap``, evenly spaced) plus one empty slice per
    EMPTY_PER_FOREGROUND of them (evenly spaced, at least one), sorted."""

    def spread(indices: np.ndarray, n: int) -> list[int]:
        if n >= len(indices):
            return [int(i) for i in indices]
        return [int(indices[k]) for k in np.linspace(0, len(indices) - 1, n).round().astype(int)]

    full = np.flatnonzero(has_foreground)
    empty = np.flatnonzero(~has_foreground)
    chosen = spread(full, cap)
    n_empty = max(1, math.ceil(len(chosen) / EMPTY_PER_FOREGROUND)) if len(empty) else 0
    return sorted(chosen + spread(empty, n_empty))


def _read_msd(root: Path, labels: Sequence[str] | None) -> SegDataset:
    meta = _dataset_json(root)
    source = root / "dataset.json" if meta else root
    names = label_values(meta["labels"], source) if "labels" in meta else {}
    name, values = _pick_label(names, labels, source)
    ending = meta.get("file_ending") if isinstance(meta.get("file_ending"), str) else None
    records: list[Record] = []
    masks: list[MaskSource] = []
    images: list[VolumeSlice | None] = []
    slices_3d = 0
    cases = _cases(root, ending)
    cap = min(MAX_FOREGROUND_SLICES, max(8, MAX_FOREGROUND_TOTAL // len(cases)))
    for case, image, label in cases:
        if not is_nifti(label):
            mask = LabelImage(label, None, values)
            positive = float(_label_foreground(mask).any())
            records.append(Record(len(records) + 1, image, (positive,), case, None))
            masks.append(mask)
            images.append(None)
            continue
        if not is_nifti(image):
            raise DataError(
                f"case {case}: the label is NIfTI but the image is not", image,
                "give imagesTr and labelsTr in one format",
            )  # fmt: skip
        a, b = canonical_shape(image), canonical_shape(label)
        if a != b:
            raise DataError(
                f"case {case}: label is {b[2]}x{b[1]}x{b[0]} (columns x rows x slices) but "
                f"its image is {a[2]}x{a[1]}x{a[0]}",
                label,
                "give the label volume made on this image (same grid)",
            )
        volume, _ = read_volume(label)
        has = np.asarray(foreground(volume, values).reshape(len(volume), -1).any(axis=1))
        for z in choose_slices(has, cap):
            records.append(Record(len(records) + 1, image, (float(has[z]),), case, None))
            masks.append(VolumeSlice(label, z, values=values))
            images.append(VolumeSlice(image, z))
        slices_3d += int(volume.shape[0])
    text = "\n".join(f"{r.path.name},{r.patient},{r.labels[0]}" for r in records)
    data = Dataset(
        source=source, kind="msd", labels=(name,), records=records,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        has_patient_ids=True, has_split=False,
    )  # fmt: skip
    if slices_3d:
        data.notes.append(
            f"{len(set(r.patient for r in records))} cases: {len(records)} of their "
            f"{slices_3d} axial slices are trained on (every one with foreground up to "
            f"{cap} a case, and 1 empty one per {EMPTY_PER_FOREGROUND})"
        )
    log.info("MSD/nnU-Net layout: %d images, class %s", len(records), name)
    return SegDataset(data, masks, images if any(images) else [])


def _label_foreground(mask: LabelImage) -> np.ndarray:
    from training.segmasks import read_label_image

    return read_label_image(mask)


# --------------------------------------------------------------------------- images/ + masks/


def _mask_for(stem: str, masks: dict[str, Path]) -> Path | None:
    for tail in MASK_TAILS:
        found = masks.get((stem + tail).casefold())
        if found is not None:
            return found
    return None


def _pairs(folder: Path) -> tuple[list[tuple[Path, Path]], int]:
    dirs = _pair_dirs(folder)
    assert dirs is not None
    image_dir, mask_dir = dirs
    masks = {p.stem.casefold(): p for p in _visible(mask_dir) if p.suffix.lower() in MASK_SUFFIXES}
    pairs, unmatched = [], 0
    for image in _visible(image_dir):
        if image.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        mask = _mask_for(image.stem, masks)
        if mask is None:
            unmatched += 1
        else:
            pairs.append((image, mask))
    return pairs, unmatched


def _read_folders(root: Path, labels: Sequence[str] | None) -> SegDataset:
    name = class_name(labels, root)
    parts: list[tuple[str | None, Path]] = []
    if _pair_dirs(root) is not None:
        parts.append((None, root))
    else:
        parts += [(split, root / d) for d, split in SPLIT_DIRS.items() if _pair_dirs(root / d)]
        if not any(split == "test" for split, _ in parts):  # then split by image, with a test
            parts = [(None, folder) for _, folder in parts]
    records: list[Record] = []
    masks: list[MaskSource] = []
    unmatched = 0
    for split, folder in parts:
        pairs, left = _pairs(folder)
        unmatched += left
        for image, mask_path in pairs:
            mask = LabelImage(mask_path)
            positive = float(_label_foreground(mask).any())
            patient = f"{split}/{image.stem}" if split else image.stem
            records.append(Record(len(records) + 1, image, (positive,), patient, split))
            masks.append(mask)
    if not records:
        raise DataError(
            "no image has a mask of the same file stem",
            root,
            "name each mask after its image: images/x.png with masks/x.png (or x_mask.png)",
        )
    text = "\n".join(f"{r.path},{m.path}" for r, m in zip(records, masks, strict=True)
                     if isinstance(m, LabelImage))  # fmt: skip
    data = Dataset(
        source=root, kind="folders", labels=(name,), records=records,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        has_patient_ids=False, has_split=parts[0][0] is not None,
    )  # fmt: skip
    if unmatched:
        data.notes.append(f"{unmatched} image(s) without a mask of the same stem were left out")
    return SegDataset(data, masks)
