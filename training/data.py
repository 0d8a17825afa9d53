"""Training data: the manifest CSV, the RSNA Pneumonia layout and the dispatch to the public
layouts (``training.layouts``), per-patient splits, k-fold.

Manifest (``shared/DESIGN.md`` "Training data"): one row per image; ``path`` relative to the
CSV (DICOM, PNG or JPEG); one 0/1 column per finding (every column that is not a known
metadata column and holds 0/1 values, or the ones named with ``labels``; a column without any
0/1 value, e.g. a view position, is noted and left out); optional ``patient_id``, ``split``
(train/val/test) and ``x,y,width,height``.

RSNA Pneumonia Detection Challenge: ``stage_2_train_labels.csv``
(``patientId,x,y,width,height,Target``; one row per box, so several rows per patient) beside a
folder of ``<patientId>.dcm`` is read as it is: one image per patientId, label ``pneumonia``
(any Target 1), every box kept (``Record.boxes``; ``Record.box`` is the first).

Splits are always per patient, never per image:

- ``split`` gives train, val and test: used as they are (a patient in two splits is an error);
- train and test but no val: val is carved from train by patient (``val_fraction /
  (1 - test_fraction)`` of the train patients, stratified);
- no split column: a seeded, stratified per-patient split (default 70/15/15);
- k-fold: patients of train+val dealt into K stratified folds (test is never touched).

Stratification orders patients by label combination (then by a seeded random key) and deals
them out so that every prefix matches the fractions; rare combinations spread evenly. An
unknown label (NaN: a public layout's uncertain value under ``uncertainty: ignore``) counts as
negative there.

Errors are DataError with the CSV path, the row number (the header is row 1) and the fix.
Patient identifiers are never put into messages or logs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from desktop_app.infra.errors import DataError
from training.layouts.common import LayoutOptions
from training.layouts.detect import LABELS_FILES, find_layout, layout_of_file, read_layout
from training.records import (
    LABEL_PATTERN,
    MAX_MANIFEST_BYTES,
    SPLITS,
    Dataset,
    LabeledBox,
    Record,
    Splits,
)

__all__ = [
    "LABEL_PATTERN",
    "MAX_MANIFEST_BYTES",
    "SPLITS",
    "Dataset",
    "LabeledBox",
    "LayoutOptions",
    "Record",
    "Splits",
    "kfold_by_patient",
    "read_dataset",
    "read_manifest",
    "read_rsna",
    "resolve_data_path",
    "single_class_labels",
    "split_dataset",
]

log = logging.getLogger(__name__)

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
    "holdout": "test",
}
BOX_COLUMNS = ("x", "y", "width", "height")
# Columns that are never labels. Anything else must hold 0/1, or be left out with --labels.
METADATA_COLUMNS = frozenset(
    {
        "path",
        "patient_id",
        "split",
        *BOX_COLUMNS,
        "box_label",
        "mask",  # a segmentation mask (PNG, NIfTI, SEG, RTSTRUCT), training/segmasks.py
        "slice",  # the axial slice of a NIfTI volume in path/mask, training/segmasks.py
        "frame",
        "study_id",
        "series_id",
        "view",
        "view_position",
        "sex",
        "age",
        "comment",
        "notes",
    }
)
RSNA_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")
RSNA_LABEL = "pneumonia"
RSNA_CSV_NAMES = ("stage_2_train_labels.csv", "stage_1_train_labels.csv")
RSNA_IMAGE_DIRS = ("stage_2_train_images", "stage_1_train_images", "train_images", "images")
TRUE_VALUES = {"1", "1.0", "true", "yes"}
FALSE_VALUES = {"0", "0.0", "false", "no"}


# --------------------------------------------------------------------------- reading


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError("manifest not found", path, "check the --data path") from None
    except OSError as err:
        raise DataError(f"manifest can't be read: {err.strerror or err}", path) from None
    if size > MAX_MANIFEST_BYTES:
        raise DataError(f"manifest is {size} bytes, over {MAX_MANIFEST_BYTES}", path)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"manifest is not UTF-8 text (byte {err.start})", path, "save the CSV as UTF-8"
        ) from None
    except OSError as err:
        raise DataError(f"manifest can't be read: {err.strerror or err}", path) from None


def _rows(path: Path, text: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(
            "manifest is empty", path, "write a header row and one row per image"
        ) from None
    except csv.Error as err:
        raise DataError(f"row 1: {err}", path) from None
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dup = next(h for h in header if header.count(h) > 1)
        raise DataError(f"row 1: column {dup!r} appears twice", path, "rename one of them")
    rows = []
    try:
        for values in reader:
            number = reader.line_num
            if not any(v.strip() for v in values):
                continue  # blank line
            if len(values) != len(header):
                raise DataError(
                    f"row {number}: has {len(values)} fields, the header has {len(header)}",
                    path,
                    "quote fields that contain commas, and give every row every column",
                )
            rows.append((number, {h: v.strip() for h, v in zip(header, values, strict=True)}))
    except csv.Error as err:
        raise DataError(f"row {reader.line_num}: {err}", path) from None
    return header, rows


def _binary(value: str, column: str, row: int, path: Path) -> float:
    v = value.strip().lower()
    if v in TRUE_VALUES:
        return 1.0
    if v in FALSE_VALUES:
        return 0.0
    shown = value if value else "an empty value"
    raise DataError(
        f"row {row}: label {column!r} is {shown!r}, not 0 or 1"
        if value
        else f"row {row}: label {column!r} has {shown}",
        path,
        "write 0 or 1 for every label, or pick the label columns with --labels",
    )


def _box(values: dict[str, str], row: int, path: Path) -> tuple[float, float, float, float] | None:
    present = [c for c in BOX_COLUMNS if c in values]
    if not present:
        return None
    raw = [values.get(c, "") for c in BOX_COLUMNS]
    if all(not v for v in raw):
        return None
    try:
        box = tuple(float(v) for v in raw)
    except ValueError:
        bad = next(c for c, v in zip(BOX_COLUMNS, raw, strict=True) if not _is_float(v))
        raise DataError(
            f"row {row}: box column {bad!r} is {values.get(bad, '')!r}, not a number",
            path,
            "give x,y,width,height as pixel numbers, or leave all four empty",
        ) from None
    if not all(math.isfinite(v) for v in box) or box[2] < 0 or box[3] < 0:
        raise DataError(
            f"row {row}: box {raw} is not a finite box with non-negative size",
            path,
            "give x,y,width,height as pixel numbers, or leave all four empty",
        )
    return box  # type: ignore[return-value]


def _box_label(values: dict[str, str], labels: Sequence[str], y: Sequence[float]) -> str:
    """A manifest box's label: ``box_label``, else the row's first positive label (the rule
    make-demo-data and manifest-from-reviews write by), else "" (not known)."""
    named = values.get("box_label", "")
    if named:
        return named
    return next((lab for lab, v in zip(labels, y, strict=True) if v == 1.0), "")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _image_path(base: Path, value: str, row: int, csv_path: Path) -> Path:
    if not value:
        raise DataError(
            f"row {row}: path is empty", csv_path, "give each image's path relative to the CSV"
        )
    p = Path(value)
    full = p if p.is_absolute() else base / p
    if not full.is_file():
        raise DataError(
            f"row {row}: image {value} not found",
            csv_path,
            "paths are relative to the CSV's folder; fix the path or remove the row",
        )
    return full


def resolve_data_path(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """``--data`` -> (the labels CSV, its kind: "manifest", "rsna" or a public layout of
    ``training.layouts``: "nih", "chexpert", "siim", "vindr", "mimic"). A folder is searched for an RSNA
    labels CSV, ``manifest.csv``, then the public layouts' labels files (by name, also one
    folder down); a file is told by its header."""
    p = Path(path)
    if p.is_dir():
        for name in RSNA_CSV_NAMES:
            if (p / name).is_file():
                return p / name, "rsna"
        if (p / "manifest.csv").is_file():
            return p / "manifest.csv", "manifest"
        found = find_layout(p)
        if found is not None:
            return found
        raise DataError(
            "folder holds no manifest.csv, stage_2_train_labels.csv or public labels file",
            p,
            f"point --data at the manifest CSV, or at a folder holding one of: {LABELS_FILES}",
        )
    if not p.exists():
        raise DataError("manifest not found", p, "check the --data path")
    layout = layout_of_file(p)
    if layout is not None:
        return p, layout
    try:
        with open(p, encoding="utf-8-sig", newline="") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError):
        return p, "manifest"  # _read_text reports it properly
    header = [h.strip() for h in first.strip().split(",")]
    return p, ("rsna" if tuple(header) == RSNA_COLUMNS else "manifest")


def read_dataset(
    path: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    options: LayoutOptions | None = None,
) -> Dataset:
    """Read ``--data``: a manifest CSV, an RSNA labels CSV, a public layout's labels file, or a
    folder holding one. ``options`` say how a public layout's labels are read (uncertainty
    policy, views, label rule, missing images); the manifest and RSNA ignore them."""
    csv_path, kind = resolve_data_path(path)
    if kind == "rsna":
        return read_rsna(csv_path, labels)
    if kind == "manifest":
        return read_manifest(csv_path, labels)
    return read_layout(kind, csv_path, labels, options)


def read_manifest(path: str | os.PathLike[str], labels: Sequence[str] | None = None) -> Dataset:
    """Read a manifest CSV strictly; see the module docstring."""
    p = Path(path)
    text = _read_text(p)
    header, rows = _rows(p, text)
    if "path" not in header:
        raise DataError("row 1: there is no 'path' column", p, "name the image column 'path'")
    if not rows:
        raise DataError("manifest has a header but no rows", p, "add one row per image")
    chosen, ignored = _label_columns(p, header, rows, labels)
    has_patient = "patient_id" in header
    has_split = "split" in header
    records = []
    for number, values in rows:
        image = _image_path(p.parent, values["path"], number, p)
        y = tuple(_binary(values[lab], lab, number, p) for lab in chosen)
        patient = _patient_of(values, number, p) if has_patient else f"row{number}"
        split = _split_of(values, number, p) if has_split else None
        box = _box(values, number, p)
        boxes = () if box is None else ((_box_label(values, chosen, y), *box),)
        records.append(Record(number, image, y, patient, split, box, boxes))
    data = Dataset(
        source=p,
        kind="manifest",
        labels=tuple(chosen),
        records=records,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        has_patient_ids=has_patient,
        has_split=has_split,
        synthetic=_is_synthetic(p.parent),
    )
    if ignored and labels is None:
        note = (
            f"column(s) {', '.join(repr(h) for h in ignored)} hold no 0/1 values and are not "
            "used as labels"
        )
        log.warning("%s", note)
        data.notes.append(note)
    if not has_patient:
        note = (
            "the manifest has no patient_id column: every image is treated as its own patient, "
            "so two images of one patient could land in different splits"
        )
        log.warning("%s", note)
        data.notes.append(note)
    return data


def _label_columns(
    p: Path,
    header: Sequence[str],
    rows: Sequence[tuple[int, dict[str, str]]],
    labels: Sequence[str] | None,
) -> tuple[list[str], list[str]]:
    """The label columns to read (``labels``, or every 0/1 column) and the columns that were
    left out because they hold no 0/1 values."""
    candidates = [h for h in header if h not in METADATA_COLUMNS]
    ignored = [h for h in candidates if not _looks_binary(h, rows)]
    candidates = [h for h in candidates if h not in ignored]
    if labels is None:
        chosen = candidates
        if not chosen:
            raise DataError(
                "row 1: no label columns (no column besides the metadata holds 0/1 values)",
                p,
                "add one 0/1 column per finding",
            )
    else:
        chosen = list(labels)
        for lab in chosen:
            if lab not in header or lab in METADATA_COLUMNS:
                raise DataError(
                    f"unknown label {lab!r}",
                    p,
                    f"the manifest's label columns are: {', '.join(candidates) or 'none'}",
                )
    for lab in chosen:
        if not LABEL_PATTERN.match(lab):
            raise DataError(
                f"row 1: label column {lab!r} is not a usable label name",
                p,
                "use 1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit",
            )
    return chosen, ignored


def _patient_of(values: dict[str, str], number: int, p: Path) -> str:
    patient = values["patient_id"]
    if not patient:
        raise DataError(
            f"row {number}: patient_id is empty",
            p,
            "give every row its patient's id (images of one patient share it)",
        )
    return patient


def _split_of(values: dict[str, str], number: int, p: Path) -> str:
    raw = values["split"].lower()
    if raw not in SPLIT_ALIASES:
        raise DataError(
            f"row {number}: split {values['split']!r} is not train, val or test",
            p,
            "write train, val or test in every row, or drop the split column",
        )
    return SPLIT_ALIASES[raw]


def _looks_binary(column: str, rows: Sequence[tuple[int, dict[str, str]]]) -> bool:
    """A label column holds 0/1 values; one that holds none at all (text such as a view
    position, or numbers such as an age) is other metadata. A column that mixes 0/1 with
    other values is a label with bad rows, reported row by row when it is read."""
    known = TRUE_VALUES | FALSE_VALUES
    return any(values[column].strip().lower() in known for _, values in rows)


def _is_synthetic(folder: Path) -> bool:
    """``make-demo-data`` writes dataset.json with ``"synthetic": true`` beside its manifest."""
    import json

    summary = folder / "dataset.json"
    try:
        if summary.is_file() and summary.stat().st_size < 10_000_000:
            return bool(json.loads(summary.read_text(encoding="utf-8")).get("synthetic"))
    except (OSError, ValueError, AttributeError):
        return False
    return False


def _rsna_image_dir(csv_path: Path, first_id: str) -> Path:
    folder = csv_path.parent
    names = list(RSNA_IMAGE_DIRS) + sorted(
        d.name for d in folder.iterdir() if d.is_dir() and d.name not in RSNA_IMAGE_DIRS
    )
    for name in names:
        candidate = folder / name
        if (candidate / f"{first_id}.dcm").is_file():
            return candidate
    raise DataError(
        "no folder beside the labels CSV holds the first patient's <patientId>.dcm",
        csv_path,
        "put the DICOM files in stage_2_train_images/ next to the CSV",
    )


def read_rsna(path: str | os.PathLike[str], labels: Sequence[str] | None = None) -> Dataset:
    """Read the RSNA Pneumonia layout as it is (see the module docstring)."""
    p = Path(path)
    if labels is not None and list(labels) != [RSNA_LABEL]:
        bad = next(lab for lab in labels if lab != RSNA_LABEL)
        raise DataError(f"unknown label {bad!r}", p, f"the RSNA layout has one label: {RSNA_LABEL}")
    text = _read_text(p)
    header, rows = _rows(p, text)
    if tuple(header) != RSNA_COLUMNS:
        raise DataError(
            f"row 1: expected the RSNA columns {','.join(RSNA_COLUMNS)}",
            p,
            "use the challenge's stage_2_train_labels.csv as it is",
        )
    if not rows:
        raise DataError("labels CSV has a header but no rows", p)
    image_dir = _rsna_image_dir(p, rows[0][1]["patientId"])
    first_row: dict[str, int] = {}
    target: dict[str, float] = {}
    boxes: dict[str, list[LabeledBox]] = defaultdict(list)
    for number, values in rows:
        pid = values["patientId"]
        if not pid or "/" in pid or "\\" in pid or pid.startswith("."):
            raise DataError(f"row {number}: patientId is empty or not a plain name", p)
        t = _binary(values["Target"], "Target", number, p)
        b = _box(values, number, p) if t else None
        if t and b is None:
            raise DataError(
                f"row {number}: Target is 1 but the box is empty", p, "give the box or set Target 0"
            )
        if pid not in first_row:
            first_row[pid] = number
            target[pid] = t
        else:
            target[pid] = max(target[pid], t)
        if b is not None:
            boxes[pid].append((RSNA_LABEL, *b))
    records = []
    for pid, number in first_row.items():
        image = image_dir / f"{pid}.dcm"
        if not image.is_file():
            raise DataError(
                f"row {number}: its image {image_dir.name}/<patientId>.dcm is missing",
                p,
                "copy the image in, or remove the patient's rows",
            )
        every = tuple(boxes.get(pid, ()))
        first = every[0][1:] if every else None
        records.append(Record(number, image, (target[pid],), pid, None, first, every))
    return Dataset(
        source=p,
        kind="rsna",
        labels=(RSNA_LABEL,),
        records=records,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        has_patient_ids=True,
        has_split=False,
    )


# --------------------------------------------------------------------------- splits


def _patients(data: Dataset, indices: Sequence[int]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i in indices:
        groups[data.records[i].patient].append(i)
    return dict(groups)


def _stratified_order(
    data: Dataset, groups: dict[str, list[int]], rng: np.random.Generator
) -> list[str]:
    """Patients ordered by label combination (any image positive; an unknown label, NaN,
    counts as negative), shuffled within each."""
    names = sorted(groups)
    keys = rng.random(len(names))
    combo = {
        name: tuple(
            any(data.records[i].labels[j] == 1.0 for i in groups[name])
            for j in range(len(data.labels))
        )
        for name in names
    }
    order = sorted(range(len(names)), key=lambda k: (combo[names[k]], keys[k]))
    return [names[k] for k in order]


def deal(order: Sequence[str], fractions: Sequence[float]) -> list[list[str]]:
    """Deal ordered items into buckets so that every prefix matches ``fractions``."""
    counts = [0] * len(fractions)
    out: list[list[str]] = [[] for _ in fractions]
    for position, item in enumerate(order, start=1):
        deficit = [fractions[s] * position - counts[s] for s in range(len(fractions))]
        s = int(np.argmax(deficit))
        counts[s] += 1
        out[s].append(item)
    return out


def _ensure_nonempty(buckets: list[list[str]], donors: int = 0) -> None:
    """Move one patient from the largest bucket into an empty one (tiny datasets)."""
    for bucket in buckets:
        if not bucket:
            largest = max(buckets, key=len)
            if len(largest) > 1:
                bucket.append(largest.pop())


def split_dataset(
    data: Dataset,
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> Splits:
    """Per-patient train/val/test indices; see the module docstring for the rules."""
    rng = np.random.default_rng([seed, 0x5B117])
    all_idx = list(range(len(data.records)))
    if data.has_split:
        by_split: dict[str, list[int]] = {s: [] for s in SPLITS}
        seen: dict[str, tuple[str, int]] = {}
        for i, r in enumerate(data.records):
            assert r.split is not None
            if r.patient in seen and seen[r.patient][0] != r.split:
                other_split, other_row = seen[r.patient]
                raise DataError(
                    f"rows {other_row} and {r.row}: one patient is in both {other_split} and "
                    f"{r.split}",
                    data.source,
                    "put all of a patient's images in one split",
                )
            seen.setdefault(r.patient, (r.split, r.row))
            by_split[r.split].append(i)
        if not by_split["train"]:
            raise DataError("the train split is empty", data.source, "mark some rows split=train")
        method = "manifest split column"
        if not by_split["val"]:
            groups = _patients(data, by_split["train"])
            share = val_fraction / max(1e-9, 1.0 - test_fraction)
            order = _stratified_order(data, groups, rng)
            train_p, val_p = deal(order, [1.0 - share, share])
            _ensure_nonempty([train_p, val_p])
            val_set = set(val_p)
            by_split["val"] = [i for i in by_split["train"] if data.records[i].patient in val_set]
            by_split["train"] = [
                i for i in by_split["train"] if data.records[i].patient not in val_set
            ]
            method = (
                f"manifest split column; val carved from train by patient ({share:.0%} of the "
                f"train patients, stratified, seed {seed})"
            )
        splits = Splits(by_split["train"], by_split["val"], by_split["test"], method)
    else:
        groups = _patients(data, all_idx)
        order = _stratified_order(data, groups, rng)
        fractions = [1.0 - val_fraction - test_fraction, val_fraction, test_fraction]
        buckets = deal(order, fractions)
        if test_fraction > 0:
            _ensure_nonempty(buckets)
        else:
            _ensure_nonempty(buckets[:2])
        split_of = {p: SPLITS[s] for s, bucket in enumerate(buckets) for p in bucket}
        lists: dict[str, list[int]] = {s: [] for s in SPLITS}
        for i in all_idx:
            lists[split_of[data.records[i].patient]].append(i)
        splits = Splits(
            lists["train"],
            lists["val"],
            lists["test"],
            f"seeded per-patient split {fractions[0]:.0%}/{val_fraction:.0%}/{test_fraction:.0%}"
            f" (stratified by label combination, seed {seed})",
        )
    if not splits.train:
        raise DataError("the train split is empty", data.source, "add more images or patients")
    if not splits.val:
        raise DataError(
            "the val split is empty (too few patients to hold some out)",
            data.source,
            "add images of more patients, or mark some rows split=val",
        )
    return splits


def kfold_by_patient(
    data: Dataset, indices: Sequence[int], k: int, *, seed: int = 0
) -> list[tuple[list[int], list[int]]]:
    """K stratified folds over ``indices`` by patient: ``[(train, held_out), ...]``."""
    groups = _patients(data, indices)
    if len(groups) < k:
        raise DataError(
            f"{k} folds need at least {k} patients in train+val, there are {len(groups)}",
            data.source,
            "use fewer --folds",
        )
    rng = np.random.default_rng([seed, 0xF01D])
    order = _stratified_order(data, groups, rng)
    buckets = deal(order, [1.0 / k] * k)
    folds = []
    index_set = list(indices)
    for bucket in buckets:
        held = set(bucket)
        folds.append(
            (
                [i for i in index_set if data.records[i].patient not in held],
                [i for i in index_set if data.records[i].patient in held],
            )
        )
    return folds


def single_class_labels(data: Dataset, indices: Sequence[int]) -> list[str]:
    """Labels whose known targets over ``indices`` are all 0 or all 1, or none (their AUROC is
    undefined); unknown targets (NaN) are left out."""
    y = data.label_matrix(indices)
    out = []
    for j, lab in enumerate(data.labels):
        known = y[:, j][~np.isnan(y[:, j])] if len(indices) else np.zeros(0)
        if known.size == 0 or known.min() == known.max():
            out.append(lab)
    return out
