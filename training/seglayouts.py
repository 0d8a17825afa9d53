"""Public segmentation folder layouts read as a ``SegDataset``: the Medical Segmentation
Decathlon / nnU-Net raw layout (imagesTr + labelsTr [+ dataset.json]) and image and mask
folders matched by file stem.

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

Image and mask folders (Kvasir-SEG's ``images/`` + ``masks/``, ISIC's ``..._Input/`` +
``..._GroundTruth/x_segmentation.png``, Montgomery's ``CXR_png/`` + ``ManualMask/leftMask/`` and
``rightMask/``, BUSI's ``x.png`` + ``x_mask.png`` in one folder, CVC's ``Original/`` +
``Ground Truth/``), searched :data:`MAX_DEPTH` folders down: an image ``x`` (PNG, JPEG, TIFF,
BMP or DICOM) pairs with every mask file (PNG, GIF, TIFF, BMP or JPEG) named ``x`` plus a mask
tail (``_mask``, ``-mask``, ``_seg``, ``_segmentation``, ``_label``, ``_gt``, each maybe
followed by ``_1``...) in any folder, or named ``x`` in a folder whose name says it holds masks
(mask, label, seg, truth, annotation, manual, gt) where the image's folder's does not. Of
several candidates the ones in the nearest folder are kept (``images/train`` pairs with
``masks/train``, not ``masks/test``). An image's mask files are united (``segmasks``: which
pixels are foreground); when an image has masks in several folders, ``--labels NAME`` keeps
the folders whose name holds NAME (SCR's ``left lung`` + ``right lung`` for ``--labels lung``).
The image's folders give the split when every image is under a train / val / test folder
(``training``, ``valid``, ``validation``, ``testing``: ``train/images``, ``images/test``,
``ISIC2018_Task1-2_Validation_Input``) and one is test; else it is made by image. Images
without a mask in folders where others have one are left out, and counted in the notes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
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
    open_nifti,
    read_volume,
)

log = logging.getLogger(__name__)

MAX_FOREGROUND_SLICES = 48
MAX_FOREGROUND_TOTAL = 4800  # over all cases: ~6400 slices, 1.3 GB of 224 px unit images
EMPTY_PER_FOREGROUND = 3
MAX_DEPTH = 5  # folders below --data searched for images and masks
MAX_FOLDERS = 5000
SPLIT_DIRS = {"train": "train", "training": "train", "val": "val", "valid": "val",
              "validation": "val", "test": "test", "testing": "test"}  # fmt: skip
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", "")
MASK_SUFFIXES = (".png", ".gif", ".tif", ".tiff", ".bmp", ".jpg", ".jpeg")
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}
RAW_SUFFIXES = (".img", ".raw")
MAX_DATASET_JSON_BYTES = 16 * 2**20  # MSD's largest dataset.json is a few hundred kB
MAX_LABEL_VALUE = 2**31 - 1  # label values are non-negative integers of a NIfTI's int32 at most
# x_mask, x-mask, x_seg, x_segmentation, x_label, x_gt, each maybe + _1, _2 (BUSI's 2nd lesion)
MASK_TAIL = re.compile(r"[_-](?:mask|seg|segmentation|label|gt)(?:[_-]?\d+)?$", re.IGNORECASE)
# a folder of masks: masks/, labels/, ManualMask/leftMask, ..._GroundTruth, Ground Truth, gt/
MASK_WORDS = re.compile(r"mask|label|seg|truth|annot|manual|(?:^|[^a-z])gt(?:[^a-z]|$)", re.I)
LAYOUT_NAMES = "imagesTr/ + labelsTr/ (MSD, nnU-Net) or image and mask folders"


def _visible(folder: Path) -> list[Path]:
    """Files of ``folder``, sorted, without hidden ones (MSD archives carry macOS ``._*``)."""
    try:
        return sorted(
            Path(e.path) for e in os.scandir(folder) if e.is_file() and not e.name.startswith(".")
        )
    except OSError:
        return []


def _is_msd(folder: Path) -> bool:
    return (folder / "imagesTr").is_dir() and (folder / "labelsTr").is_dir()


def find_seg_layout(folder: Path) -> tuple[Path, str] | None:
    """(the layout's root, "msd" or "folders"): an MSD / nnU-Net folder at ``folder`` or one
    folder below it, else ``folder`` when images with masks (or a folder of masks) are found
    in it or below."""
    if _is_msd(folder):
        return folder, "msd"
    try:
        below = sorted(
            Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")
        )
    except OSError:
        return None
    for sub in below:
        if _is_msd(sub):
            return sub, "msd"
    if _folder_pairs(folder)[0]:
        return folder, "folders"
    tree = _walk(folder)
    has_csv = any(f.suffix.lower() == ".csv" for f in tree.get(folder, []))  # SIIM, manifests
    if not has_csv and any(_names_masks(d.relative_to(folder).parts) for d in tree):
        return folder, "folders"  # masks that pair with nothing: the folders reader says so
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
                name, values = value, (_label_value(key),)
            elif isinstance(value, list):  # nnU-Net v2 region: {"whole": [1, 2, 3]}
                name, values = str(key), tuple(_label_value(v) for v in value)
            else:
                name, values = str(key), (_label_value(value),)
        except (TypeError, ValueError, OverflowError):
            raise DataError(
                f"dataset.json label {key!r}: {value!r} is not a label value",
                source,
                'give "labels" as {"0": "background", "1": "name"} or {"background": 0, "name": 1}',
            ) from None
        if values != (0,) and name.casefold() != "ignore":  # nnU-Net v2's unlabelled voxels
            out[name] = values
    return out


def _label_value(value: Any) -> int:
    """A label value: a whole number 0..MAX_LABEL_VALUE (ValueError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(value)
    number = float(value) if isinstance(value, float) else int(value)
    if not (isinstance(number, int) or number.is_integer()) or not 0 <= number <= MAX_LABEL_VALUE:
        raise ValueError(value)
    return int(number)


def _dataset_json(root: Path) -> dict[str, Any]:
    path = root / "dataset.json"
    if not path.is_file():
        return {}
    try:
        size = path.stat().st_size
        if size > MAX_DATASET_JSON_BYTES:
            raise DataError(
                f"dataset.json is {size} bytes, over the limit of {MAX_DATASET_JSON_BYTES}",
                path,
                "give MSD's dataset.json (labels, modality, file_ending), not a data file",
            )
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"dataset.json can't be read: {err}", path, "fix the JSON") from None
    except RecursionError:
        raise DataError(
            "dataset.json is nested too deeply to be read", path, "fix the JSON"
        ) from None
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

    image = open_nifti(path)
    try:
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


# --------------------------------------------------------------------------- image + mask folders


def _walk(root: Path) -> dict[Path, list[Path]]:
    """Visible files of ``root`` and its folders (breadth first, at most MAX_DEPTH down and
    MAX_FOLDERS folders), by folder."""
    out: dict[Path, list[Path]] = {}
    level = [root]
    for _ in range(MAX_DEPTH + 1):
        below: list[Path] = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            out[folder] = [Path(e.path) for e in entries
                           if not e.name.startswith(".") and e.is_file()]  # fmt: skip
            below += [Path(e.path) for e in entries if not e.name.startswith(".") and e.is_dir()]
            if len(out) + len(below) > MAX_FOLDERS:
                return out
        level = below
    return out


def _base_stem(stem: str) -> str | None:
    """``x`` for a mask named ``x`` + a mask tail (+ ``_1``...), else None."""
    found = MASK_TAIL.search(stem)
    return stem[: found.start()] if found and found.start() > 0 else None


def _names_masks(parts: Sequence[str]) -> bool:
    return any(MASK_WORDS.search(part) for part in parts)


def _beyond(a: Path, b: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The parts of ``a`` and of ``b`` below their common folder."""
    n = 0
    while n < min(len(a.parts), len(b.parts)) and a.parts[n] == b.parts[n]:
        n += 1
    return a.parts[n:], b.parts[n:]


def _split_of_folder(parts: Sequence[str]) -> str | None:
    """train / val / test named by the image's folders (``train/images``, ``images/val``,
    ``ISIC2018_Task1-2_Validation_Input``), None when none or several are."""
    named = {SPLIT_DIRS[w] for part in parts for w in re.split(r"[^a-z]+", part.casefold())
             if w in SPLIT_DIRS}  # fmt: skip
    return named.pop() if len(named) == 1 else None


def _folder_pairs(root: Path) -> tuple[list[tuple[Path, list[Path]]], list[Path]]:
    """(image, its mask files) for every image that has a mask, and the images left without
    one in the folders where others have one.

    A mask file pairs with an image by file stem: ``x`` + a mask tail (``x_mask``,
    ``x_mask_1``, ``x_segmentation``...) in any folder, or ``x`` itself in a folder named as
    holding masks (mask, label, seg, truth, annotation, gt) that the image's folder is not."""
    tree = _walk(root)
    tailed: dict[str, list[Path]] = {}
    plain: dict[str, list[Path]] = {}
    images: list[Path] = []
    for files in tree.values():
        for f in files:
            suffix = f.suffix.lower()
            base = _base_stem(f.stem)
            if base is not None and suffix in MASK_SUFFIXES:
                tailed.setdefault(base.casefold(), []).append(f)
                continue
            if suffix in MASK_SUFFIXES:
                plain.setdefault(f.stem.casefold(), []).append(f)
            if suffix in IMAGE_SUFFIXES:
                images.append(f)
    pairs: list[tuple[Path, list[Path]]] = []
    unpaired: dict[Path, list[Path]] = {}
    for image in images:
        key = image.stem.casefold()
        masks = list(tailed.get(key, []))
        for mask in plain.get(key, []):
            if mask.parent == image.parent:
                continue
            mask_parts, image_parts = _beyond(mask.parent, image.parent)
            if _names_masks(mask_parts) and not _names_masks(image_parts):
                masks.append(mask)
        if masks:
            pairs.append((image, _nearest(image, masks)))
        else:
            unpaired.setdefault(image.parent, []).append(image)
    used = {m for _, masks in pairs for m in masks}
    beside: dict[Path, list[Path]] = {}
    for folder in tree:
        beside.setdefault(folder.parent, []).append(folder)
    cases = [(found[0], masks) for folder, found in unpaired.items()
             if (masks := _case_masks(folder, found, tree, beside, used))]  # fmt: skip
    if not pairs and len(cases) >= 2:  # one such folder may be a misnamed images/ + masks/
        pairs = cases
    paired_in = {image.parent for image, _ in pairs}
    mask_files = {m for _, masks in pairs for m in masks}
    pairs = [(image, masks) for image, masks in pairs if image not in mask_files]
    taken = mask_files | {image for image, _ in pairs}
    left = [i for d, found in unpaired.items() if d in paired_in for i in found
            if i not in taken]  # fmt: skip
    return pairs, left


def _case_masks(
    folder: Path, found: list[Path], tree: dict[Path, list[Path]],
    beside: dict[Path, list[Path]], used: set[Path],
) -> list[Path]:  # fmt: skip
    """Case folders (Data Science Bowl 2018's ``<id>/images/<id>.png`` with one mask per
    nucleus, of other names, in ``<id>/masks/``): every mask file of the folders named for
    masks beside a folder that holds one image (used when no file pairs by name, and at
    least two such case folders are found)."""
    if len(found) != 1 or _names_masks((folder.name,)):
        return []
    out = []
    for sibling in beside.get(folder.parent, []):
        if sibling != folder and _names_masks((sibling.name,)):
            out += [f for f in tree[sibling] if f.suffix.lower() in MASK_SUFFIXES and f not in used]
    return sorted(out)


def _nearest(image: Path, masks: list[Path]) -> list[Path]:
    """The masks whose folder is nearest the image's: most folder names in common below their
    common folder (``images/train`` and ``masks/train``), then fewest steps apart; ties stay
    (``ManualMask/leftMask`` and ``ManualMask/rightMask``)."""

    def distance(mask: Path) -> tuple[int, int]:
        a, b = _beyond(mask.parent, image.parent)
        return -len(set(a) & set(b)), len(a) + len(b)

    best = min(distance(m) for m in masks)
    return sorted(m for m in masks if distance(m) == best)


def _mask_group(image: Path, mask: Path) -> str:
    """What a mask file's folder is called, seen from its image ("" for the image's own)."""
    parts, _ = _beyond(mask.parent, image.parent)
    return "/".join(parts)


def _pick_groups(
    pairs: list[tuple[Path, list[Path]]], labels: Sequence[str] | None, root: Path
) -> tuple[list[tuple[Path, list[Path]]], list[str]]:
    """The masks kept when an image has masks in several folders (Montgomery's leftMask and
    rightMask; SCR's lungs, heart and clavicles): all of them united, or those whose folder
    names ``--labels NAME``; and the notes that say so."""
    groups = sorted({_mask_group(i, m) for i, masks in pairs for m in masks})
    several = any(len({_mask_group(i, m) for m in masks}) > 1 for i, masks in pairs)
    if not several:
        return pairs, []
    if labels is None:
        return pairs, [f"each image's masks in {', '.join(groups)} are united (--labels NAME "
                       "keeps the mask folders whose name holds NAME)"]  # fmt: skip
    wanted = re.sub(r"[^a-z0-9]", "", labels[0].casefold())
    kept_groups = [g for g in groups if wanted in re.sub(r"[^a-z0-9]", "", g.casefold())]
    if not kept_groups:
        raise DataError(
            f"--labels {labels[0]}: no mask folder is named so; they are: {', '.join(groups)}",
            root,
            "pick a word of a mask folder's name, or leave --labels out to unite them all",
        )
    kept = [(i, [m for m in masks if _mask_group(i, m) in kept_groups]) for i, masks in pairs]
    note = f"masks of {', '.join(kept_groups)} are used (--labels {labels[0]})"
    return [(i, masks) for i, masks in kept if masks], [note]


def _no_pairs(root: Path) -> DataError:
    tree = _walk(root)
    suffixes = sorted({f.suffix.lower() for files in tree.values() for f in files} - {""})
    raw = [x for x in suffixes if x in RAW_SUFFIXES]
    if raw:
        return DataError(
            f"no image has a mask; {', '.join(raw)} files are headerless raw images, which "
            "are not read",
            root,
            "convert them to PNG (e.g. JSRT's 2048x2048 12-bit .IMG), named as their masks",
        )
    return DataError(
        "no image has a mask of the same file stem",
        root,
        "name each mask after its image: images/x.png with masks/x.png (or x_mask.png beside "
        "it, or in any folder)",
    )


def _read_folders(root: Path, labels: Sequence[str] | None) -> SegDataset:
    name = class_name(labels, root)
    pairs, left = _folder_pairs(root)
    if not pairs:
        raise _no_pairs(root)
    pairs, notes = _pick_groups(pairs, labels, root)
    named = [_split_of_folder(image.parent.relative_to(root).parts) for image, _ in pairs]
    order = sorted(
        range(len(pairs)), key=lambda i: (SPLIT_ORDER.get(named[i] or "", 3), pairs[i][0])
    )
    pairs, splits = [pairs[i] for i in order], [named[i] for i in order]
    if None in splits or "test" not in splits:  # then split by image, with a test
        splits = [None] * len(pairs)
    stems = [image.stem for image, _ in pairs]
    unique = len(set(stems)) == len(stems)
    records: list[Record] = []
    masks: list[MaskSource] = []
    for (image, files), split in zip(pairs, splits, strict=True):
        mask = LabelImage(files[0], more=tuple(files[1:]))
        positive = float(_label_foreground(mask).any())
        patient = image.stem if unique else image.relative_to(root).with_suffix("").as_posix()
        records.append(Record(len(records) + 1, image, (positive,), patient, split))
        masks.append(mask)
    # Paths below root: the same folder hashes the same given as kv, ./kv or /abs/kv, so
    # evaluate knows the model's own training data and --resume accepts it.
    text = "\n".join(",".join(p.relative_to(root).as_posix() for p in (r.path, m.path, *m.more))
                     for r, m in zip(records, masks, strict=True)
                     if isinstance(m, LabelImage))  # fmt: skip
    data = Dataset(
        source=root, kind="folders", labels=(name,), records=records,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        has_patient_ids=False, has_split=splits[0] is not None,
    )  # fmt: skip
    data.notes += notes
    if left:
        data.notes.append(f"{len(left)} image(s) without a mask of the same stem were left out")
    log.info("image + mask folders: %d images, class %s", len(records), name)
    return SegDataset(data, masks)
