"""NIH ChestX-ray14 as published: ``Data_Entry_2017*.csv``, the ``images*/`` folders,
``BBox_List_2017.csv`` and the official ``train_val_list.txt`` / ``test_list.txt``.

- Labels: the 14 findings of ``Finding Labels`` (joined with ``|``); "No Finding" is all
  zeros. Without ``labels``, the findings that occur in the file, in the published order.
- Images: found by file name anywhere below the CSV's folder (``images/``, the Kaggle release's
  ``images_001/images/``, ...), from one directory walk.
- Header: the published header is not quoted, so ``OriginalImage[Width,Height]`` and
  ``OriginalImagePixelSpacing[x,y]`` each span two CSV fields; columns are found by name for
  the first seven and the rest are not needed. The 2017 file's trailing comma is accepted.
- Boxes: ``BBox_List_2017.csv`` beside it (``Image Index,Finding Label,Bbox [x,y,w,h],,,``:
  x, y, w, h in the 1024 x 1024 image's pixels; "Infiltrate" there is "Infiltration" here).
- Splits: ``test_list.txt`` is the test split and the rest is train (val is carved from train
  by patient, stratified); without the lists, a seeded per-patient split by ``Patient ID``.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
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
    read_text,
)
from training.records import Dataset, LabeledBox, Record

log = logging.getLogger(__name__)

NIH_LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
NO_FINDING = "No Finding"
ENTRY_PREFIX = "Data_Entry_2017"
BBOX_NAMES = ("BBox_List_2017.csv", "BBox_List_2017.csv.gz")
BOX_ALIASES = {"Infiltrate": "Infiltration"}
ENTRY_COLUMNS = ("Image Index", "Finding Labels", "Follow-up #", "Patient ID")
FIX = "use Data_Entry_2017.csv as published"


def find_entry_file(folder: Path) -> Path | None:
    """The newest ``Data_Entry_2017*.csv(.gz)`` in ``folder`` (v2020 sorts after 2017)."""
    names = sorted(
        e.name
        for e in os.scandir(folder)
        if e.name.startswith(ENTRY_PREFIX) and e.name.endswith((".csv", ".csv.gz")) and e.is_file()
    )
    return folder / names[-1] if names else None


def is_nih_header(header: Sequence[str]) -> bool:
    return tuple(header[:4]) == ENTRY_COLUMNS


def read_nih(
    path: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    options: LayoutOptions | None = None,
) -> Dataset:
    """Read NIH ChestX-ray14 from its ``Data_Entry_2017*.csv`` (see the module docstring)."""
    opts = options or LayoutOptions()
    csv_path = Path(path)
    folder = csv_path.parent
    table = read_table(csv_path, min_fields=len(ENTRY_COLUMNS))
    if not is_nih_header(table.header):
        raise DataError(
            f"row 1: expected the columns {','.join(ENTRY_COLUMNS)}, ...", csv_path, FIX
        )
    findings, patients, names = _parse_entries(table)
    occurring = set().union(*findings)
    present = [lab for lab in NIH_LABELS if lab in occurring]
    columns = choose_labels(present if labels is None else NIH_LABELS, labels, csv_path)
    chosen = [(present if labels is None else NIH_LABELS)[c] for c in columns]
    if not chosen:
        raise DataError("no finding occurs in the file", csv_path, FIX)
    index = FileIndex(folder)
    found = [index.find(name) for name in names]
    notes: list[str] = []
    rows = [number for number, _ in table.rows]
    keep = keep_found(found, rows, csv_path, folder, opts.missing_images, notes)
    boxes, box_table = _read_boxes(folder, set(chosen))
    split_of, split_note = _official_splits(folder, names)
    records = []
    for i in keep:
        image_boxes = tuple(boxes.get(names[i], ()))
        y = tuple(1.0 if lab in findings[i] else 0.0 for lab in chosen)
        first = image_boxes[0][1:] if image_boxes else None
        split = split_of.get(names[i], "train") if split_of else None
        image = found[i]
        assert image is not None
        records.append(Record(rows[i], image, y, patients[i], split, first, image_boxes))
    tables = [table] + ([box_table] if box_table is not None else [])
    data = Dataset(
        source=csv_path,
        kind="nih",
        labels=tuple(chosen),
        records=records,
        sha256=combined_sha256(tables),
        has_patient_ids=True,
        has_split=bool(split_of),
        notes=notes,
    )
    if split_note:
        data.notes.append(split_note)
    log.info("NIH ChestX-ray14: %d images, %d labels", len(records), len(chosen))
    return data


def _parse_entries(table: Table) -> tuple[list[set[str]], list[str], list[str]]:
    """Per row: its findings, its patient, its image name; strict about each."""
    findings: list[set[str]] = []
    patients: list[str] = []
    names: list[str] = []
    seen: set[str] = set()
    known = set(NIH_LABELS)
    for number, values in table.rows:
        name, labels_text, patient = values[0].strip(), values[1].strip(), values[3].strip()
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise DataError(
                f"row {number}: Image Index is empty or not a file name", table.path, FIX
            )
        if name in seen:
            raise DataError(f"row {number}: its image is listed twice", table.path, FIX)
        seen.add(name)
        if not patient:
            raise DataError(f"row {number}: Patient ID is empty", table.path, FIX)
        parts = {p.strip() for p in labels_text.split("|")} - {""}
        if not parts:
            raise DataError(
                f"row {number}: Finding Labels is empty", table.path, f"write {NO_FINDING!r}"
            )
        unknown = parts - known - {NO_FINDING}
        if unknown:
            raise DataError(
                f"row {number}: unknown finding {sorted(unknown)[0]!r}",
                table.path,
                f"the NIH findings are {', '.join(NIH_LABELS)} and {NO_FINDING!r}",
            )
        if NO_FINDING in parts and len(parts) > 1:
            raise DataError(f"row {number}: {NO_FINDING!r} together with findings", table.path, FIX)
        findings.append(parts - {NO_FINDING})
        patients.append(patient)
        names.append(name)
    return findings, patients, names


def _read_boxes(folder: Path, wanted: set[str]) -> tuple[dict[str, list[LabeledBox]], Table | None]:
    """``BBox_List_2017.csv`` beside the entries: image name -> its boxes (of ``wanted``)."""
    path = next((folder / n for n in BBOX_NAMES if (folder / n).is_file()), None)
    if path is None:
        return {}, None
    fix = "use BBox_List_2017.csv as published"
    table = read_table(path, min_fields=6)
    if table.header[:2] != ["Image Index", "Finding Label"]:
        raise DataError("row 1: expected Image Index,Finding Label,Bbox [x,y,w,h]", path, fix)
    boxes: dict[str, list[LabeledBox]] = defaultdict(list)
    for number, values in table.rows:
        label = values[1].strip()
        label = BOX_ALIASES.get(label, label)
        if label not in NIH_LABELS:
            raise DataError(f"row {number}: unknown finding {label!r}", path, fix)
        try:
            x, y, w, h = (float(v) for v in values[2:6])
        except ValueError:
            raise DataError(f"row {number}: the box is not four numbers", path, fix) from None
        if not all(v == v and abs(v) != float("inf") for v in (x, y, w, h)) or w < 0 or h < 0:
            raise DataError(f"row {number}: the box is not a finite box", path, fix)
        if label in wanted:
            boxes[values[0].strip()].append((label, x, y, w, h))
    return boxes, table


def _official_splits(folder: Path, names: Sequence[str]) -> tuple[dict[str, str], str | None]:
    """Image name -> "test" / "train" from test_list.txt (or train_val_list.txt)."""
    test_file, train_file = folder / "test_list.txt", folder / "train_val_list.txt"
    if test_file.is_file():
        test = set(read_text(test_file).split())
        split = {n: ("test" if n in test else "train") for n in names}
        return split, "splits: test_list.txt is the test split, val is carved from the rest"
    if train_file.is_file():
        train = set(read_text(train_file).split())
        split = {n: ("train" if n in train else "test") for n in names}
        return split, "splits: train_val_list.txt is train+val, the other images are the test split"
    return {}, None
