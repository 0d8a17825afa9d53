"""VinDr-CXR as published: VinBigData's ``train.csv`` (Kaggle) or PhysioNet's
``annotations/annotations_train.csv`` (+ ``annotations_test.csv``), one row per box per reader,
with the images as ``<image_id>.dicom`` (or ``.dcm``) below the folder.

- Columns: ``image_id``, ``class_name``, ``rad_id`` and ``x_min, y_min, x_max, y_max`` (pixels
  of the DICOM image), found by name; ``class_id`` is not needed. "No finding" rows have
  empty boxes. A file without ``rad_id`` (a consensus file) counts as one reader per image.
- Labels: the 14 classes; "Nodule/Mass" is named ``Nodule-Mass`` (a label name can't hold '/').
  Label rule (``LayoutOptions.label_rule``), **majority by default**: a finding is present when
  more than half of the image's readers (three in the training set) marked it. Single readers
  disagree often on this set; the majority is the closest the training data comes to the
  consensus the test set was labelled with. ``any`` counts one reader's mark (more sensitive,
  noisier).
- Boxes are fused across readers (``fuse_boxes``): per label, boxes of different readers that
  overlap with IoU >= 0.4 form one cluster (at most one box per reader; a reader's two boxes
  are two findings), and a cluster's box is the mean of its boxes. Under the majority rule the
  clusters marked by a majority are kept (all clusters of a present finding when the readers
  agree on the finding but not on where it is); under ``any`` every cluster is kept.
- Splits: PhysioNet's ``annotations_test.csv`` beside the train file is the test split (val
  is carved from train); Kaggle's ``train.csv`` alone gets a seeded split. There are no patient
  identifiers: each image is its own patient (noted).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from desktop_app.infra.errors import DataError
from training.layouts.common import (
    FileIndex,
    LayoutOptions,
    Table,
    choose_labels,
    combined_sha256,
    keep_found,
    read_table,
)
from training.records import Dataset, LabeledBox, Record

log = logging.getLogger(__name__)

NO_FINDING = "No finding"
VINDR_REQUIRED = ("image_id", "class_name", "x_min", "y_min", "x_max", "y_max")
VINDR_SUFFIXES = (".dicom", ".dcm")
FUSION_IOU = 0.4
PHYSIONET_TRAIN = "annotations_train.csv"
PHYSIONET_TEST = "annotations_test.csv"
FIX = "use the VinDr-CXR annotations file as published"

Box = tuple[float, float, float, float]  # x_min, y_min, x_max, y_max


def is_vindr_header(header: Sequence[str]) -> bool:
    return all(c in header for c in VINDR_REQUIRED)


def label_name(class_name: str) -> str:
    """A class name as a usable label name ("Nodule/Mass" -> "Nodule-Mass")."""
    return re.sub(r"[^A-Za-z0-9_.\- ]", "-", class_name.strip())


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x_min, y_min, x_max, y_max) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Cluster:
    """Boxes of one finding by different readers; ``box`` is their mean."""

    readers: list[str]
    boxes: list[Box]

    @property
    def box(self) -> Box:
        n = len(self.boxes)
        x0, y0, x1, y1 = (sum(b[k] for b in self.boxes) / n for k in range(4))
        return (x0, y0, x1, y1)


def fuse_boxes(marks: Sequence[tuple[str, Box]], threshold: float = FUSION_IOU) -> list[Cluster]:
    """Cluster one label's (reader, box) marks: each box joins the cluster whose mean box it
    overlaps most (IoU >= ``threshold``) among those without a box of its reader, or starts a
    new one. Marks are taken in a fixed order (reader, box), so the result does not depend on
    the file's row order."""
    clusters: list[Cluster] = []
    for reader, box in sorted(marks):
        best, best_iou = None, threshold
        for cluster in clusters:
            if reader in cluster.readers:
                continue
            overlap = iou(cluster.box, box)
            if overlap >= best_iou:
                best, best_iou = cluster, overlap
        if best is None:
            clusters.append(Cluster([reader], [box]))
        else:
            best.readers.append(reader)
            best.boxes.append(box)
    return clusters


@dataclass
class _Image:
    row: int
    readers: set[str]
    marks: dict[str, list[tuple[str, Box]]]  # label -> (reader, box)
    flagged: dict[str, set[str]]  # label -> readers who marked it (with or without a box)


def read_vindr(
    path: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    options: LayoutOptions | None = None,
) -> Dataset:
    """Read VinDr-CXR / VinBigData (see the module docstring)."""
    opts = options or LayoutOptions()
    csv_path = Path(path)
    files: list[tuple[Path, str | None]] = [(csv_path, None)]
    test = csv_path.parent / PHYSIONET_TEST
    if csv_path.name == PHYSIONET_TRAIN and test.is_file():
        files = [(csv_path, "train"), (test, "test")]
    root = csv_path.parent.parent if csv_path.parent.name == "annotations" else csv_path.parent
    index = FileIndex(root, VINDR_SUFFIXES)
    parsed = [(read_table(f, min_fields=len(VINDR_REQUIRED)), split) for f, split in files]
    classes = sorted({c for table, _ in parsed for c in _classes(table)})
    chosen = [classes[c] for c in choose_labels(classes, labels, csv_path)]
    records: list[Record] = []
    notes: list[str] = []
    for table, split in parsed:
        images = _images(table)
        ids = list(images)
        found = [_find(index, image_id) for image_id in ids]
        rows = [images[i].row for i in ids]
        keep = keep_found(found, rows, table.path, root, opts.missing_images, notes)
        for k in keep:
            image = found[k]
            assert image is not None
            y, boxes = _labels_and_boxes(images[ids[k]], chosen, opts.label_rule)
            first = boxes[0][1:] if boxes else None
            records.append(Record(rows[k], image, y, ids[k], split, first, boxes))
    notes.append("VinDr-CXR has no patient identifiers: each image is its own patient")
    log.info("VinDr-CXR: %d images, %d labels, rule %s", len(records), len(chosen), opts.label_rule)
    return Dataset(
        source=csv_path,
        kind="vindr",
        labels=tuple(chosen),
        records=records,
        sha256=combined_sha256(t for t, _ in parsed),
        has_patient_ids=False,
        has_split=len(files) > 1,
        notes=notes,
    )


def _find(index: FileIndex, image_id: str) -> Path | None:
    for suffix in VINDR_SUFFIXES:
        hit = index.find(image_id + suffix)
        if hit is not None:
            return hit
    return None


def _classes(table: Table) -> set[str]:
    if not is_vindr_header(table.header):
        raise DataError(
            f"row 1: expected the columns {','.join(VINDR_REQUIRED)} (and rad_id)", table.path, FIX
        )
    col = table.header.index("class_name")
    names = {values[col].strip() for _, values in table.rows} - {NO_FINDING, ""}
    return {label_name(n) for n in names}


def _images(table: Table) -> dict[str, _Image]:
    h = table.header
    id_col, class_col = h.index("image_id"), h.index("class_name")
    rad_col = h.index("rad_id") if "rad_id" in h else None
    box_cols = [h.index(c) for c in VINDR_REQUIRED[2:]]
    images: dict[str, _Image] = {}
    for number, values in table.rows:
        if len(values) != len(h):
            raise DataError(
                f"row {number}: has {len(values)} fields, the header has {len(h)}", table.path, FIX
            )
        image_id = values[id_col].strip()
        if not image_id or "/" in image_id or "\\" in image_id or image_id.startswith("."):
            raise DataError(f"row {number}: image_id is empty or not a plain name", table.path, FIX)
        reader = values[rad_col].strip() if rad_col is not None else "consensus"
        if not reader:
            raise DataError(f"row {number}: rad_id is empty", table.path, FIX)
        entry = images.setdefault(image_id, _Image(number, set(), defaultdict(list), {}))
        entry.readers.add(reader)
        class_name = values[class_col].strip()
        if not class_name:
            raise DataError(f"row {number}: class_name is empty", table.path, FIX)
        if class_name == NO_FINDING:
            continue
        label = label_name(class_name)
        entry.flagged.setdefault(label, set()).add(reader)
        box = _box([values[c] for c in box_cols], number, table.path)
        if box is not None:
            entry.marks[label].append((reader, box))
    return images


def _box(raw: Sequence[str], number: int, path: Path) -> Box | None:
    if all(not v.strip() for v in raw):
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in raw)
    except ValueError:
        raise DataError(f"row {number}: the box is not four numbers", path, FIX) from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 < x0 or y1 < y0:
        raise DataError(f"row {number}: the box has x_max < x_min or y_max < y_min", path, FIX)
    return (x0, y0, x1, y1)


def _labels_and_boxes(
    image: _Image, chosen: Sequence[str], rule: str
) -> tuple[tuple[float, ...], tuple[LabeledBox, ...]]:
    needed = len(image.readers) // 2 + 1 if rule == "majority" else 1
    y: list[float] = []
    boxes: list[LabeledBox] = []
    for label in chosen:
        present = len(image.flagged.get(label, ())) >= needed
        y.append(1.0 if present else 0.0)
        if not present:
            continue
        clusters = fuse_boxes(image.marks.get(label, []))
        agreed = [c for c in clusters if len(c.readers) >= needed]
        for cluster in agreed or clusters:
            x0, y0, x1, y1 = cluster.box
            boxes.append((label, x0, y0, x1 - x0, y1 - y0))
    return tuple(y), tuple(boxes)
