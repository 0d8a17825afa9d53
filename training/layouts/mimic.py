"""MIMIC-CXR-JPG (2.0 / 2.1, PhysioNet) as published: ``mimic-cxr-2.0.0-metadata.csv``,
``-chexpert.csv`` (or ``-negbio.csv``), ``-split.csv`` (each may be ``.csv.gz``) beside
``files/pNN/pSUBJECT/sSTUDY/<dicom_id>.jpg``.

- Files: ``--data`` names the folder or any of the four files (told apart by header, the
  labelers by name); the others are found beside it by name (``mimic-cxr-<version>-<kind>``).
  The metadata file is required (it lists the images and their views); the split file is not.
- Labels: the CheXpert labeler's 14 observations, **per study**: each study's values apply to
  every image of the study. 1 / 0 / -1 / blank as in CheXpert (blank = not mentioned = 0), and
  the same uncertainty policy (``LayoutOptions.uncertainty``, u-ones by default; see
  ``training.layouts.chexpert``). Images of a study without a labels row (the release labels
  every study with a report section to label, not quite all) are left out with a note.
- Labeler (``LayoutOptions.labeler``): the ``chexpert`` file by default, ``negbio`` on
  request; naming a labels file with ``--data`` reads that file.
- Views: ``ViewPosition`` PA and AP are frontal; LATERAL, LL (and RL, XTABLE LATERAL) lateral.
  When ``ViewPosition`` is blank, ``ViewCodeSequence_CodeMeaning`` decides where it names a view
  (postero-anterior / antero-posterior / lateral / left or right lateral). Any other position
  (decubitus AP LLD, AP AXIAL, oblique LAO/RAO/LPO, SWIMMERS) or none at all passes only the
  ``all`` filter: the app's models read one PA or AP radiograph. Frontal only by default, as
  for CheXpert; such images are counted in a note.
- Patients: ``subject_id``. Splits: the split file's train / validate / test (validate is
  val); without it, a seeded split by subject_id.
- Images are found by ``<dicom_id>.jpg`` below ``files/`` (or the folder), from one walk, so a
  partial download (one ``pNN`` folder) reads with the missing images counted.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from desktop_app.infra.errors import DataError
from training.layouts.chexpert import (
    CHEXPERT_LABELS,
    label_value,
    settle_uncertain,
    uncertain_note,
    view_kept,
)
from training.layouts.common import (
    FileIndex,
    LayoutOptions,
    Table,
    choose_labels,
    combined_sha256,
    first_line,
    keep_found,
    read_table,
)
from training.records import Dataset, Record

log = logging.getLogger(__name__)

METADATA_COLUMNS = ("dicom_id", "subject_id", "study_id", "ViewPosition")
LABELS_COLUMNS = ("subject_id", "study_id")
SPLIT_COLUMNS = ("dicom_id", "study_id", "subject_id", "split")
VIEW_CODE_COLUMN = "ViewCodeSequence_CodeMeaning"
FRONTAL_POSITIONS = frozenset({"PA", "AP"})
LATERAL_POSITIONS = frozenset({"LATERAL", "LL", "RL", "XTABLE LATERAL"})
VIEW_CODES = {
    "postero-anterior": "frontal",
    "antero-posterior": "frontal",
    "lateral": "lateral",
    "left lateral": "lateral",
    "right lateral": "lateral",
}
SPLIT_NAMES = {"train": "train", "validate": "val", "val": "val", "test": "test"}
# mimic-cxr-2.0.0-metadata.csv(.gz): the version is that of the label files, not the release
FILE_NAME = re.compile(r"^mimic-cxr-[0-9][0-9.]*-(metadata|chexpert|negbio|split)\.csv(\.gz)?$")
FILES_NOTE = "mimic-cxr-2.0.0-metadata.csv (MIMIC-CXR-JPG)"
FIX = "use the MIMIC-CXR-JPG files as published"
DIGITS = re.compile(r"^[0-9]+$")


def mimic_role(header: Sequence[str]) -> str | None:
    """Which MIMIC-CXR-JPG file a header is: "metadata", "labels", "split" or None."""
    names = set(header)
    if names.issuperset(METADATA_COLUMNS):
        return "metadata"
    if names.issuperset(SPLIT_COLUMNS):
        return "split"
    labels_only = not names & {"dicom_id", "Path", "path"}
    if names.issuperset(LABELS_COLUMNS) and labels_only and names & set(CHEXPERT_LABELS):
        return "labels"
    return None


def is_mimic_header(header: Sequence[str]) -> bool:
    return mimic_role(header) is not None


def find_mimic_file(folder: Path, kind: str) -> Path | None:
    """``mimic-cxr-*-<kind>.csv(.gz)`` in ``folder`` (the newest version if several)."""
    try:
        names = sorted(
            e.name
            for e in os.scandir(folder)
            if (m := FILE_NAME.match(e.name)) and m.group(1) == kind and e.is_file()
        )
    except OSError:
        return None
    return folder / names[-1] if names else None


def find_mimic(folder: Path) -> Path | None:
    """The MIMIC-CXR-JPG file that stands for ``folder``: the metadata file (or, when it is
    missing, a labels or split file, so that reading says what is missing)."""
    for kind in ("metadata", "chexpert", "negbio", "split"):
        found = find_mimic_file(folder, kind)
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class SplitFile:
    """The split file read: dicom_id -> (train / val / test, subject_id, row)."""

    path: Path
    by_image: dict[str, tuple[str, str, int]]


@dataclass(frozen=True)
class StudyLabels:
    subject: str
    row: int
    values: tuple[float, ...]  # NaN: unknown (uncertain under the policy "ignore")


def read_mimic(
    path: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    options: LayoutOptions | None = None,
) -> Dataset:
    """Read MIMIC-CXR-JPG from its folder's files (see the module docstring)."""
    opts = options or LayoutOptions()
    named = Path(path)
    folder = named.parent
    role = mimic_role(first_line(named))
    if role is None:
        raise DataError(
            "row 1: not a MIMIC-CXR-JPG metadata, labels or split file "
            f"(expected the columns {','.join(METADATA_COLUMNS)}, ...)",
            named,
            FIX,
        )
    if role == "labels":
        labeler = "negbio" if "negbio" in named.name.lower() else "chexpert"
        labels_path: Path | None = named
    else:
        labeler = opts.labeler
        labels_path = find_mimic_file(folder, labeler)
    meta_path = named if role == "metadata" else find_mimic_file(folder, "metadata")
    split_path = named if role == "split" else find_mimic_file(folder, "split")
    if meta_path is None or labels_path is None:
        missing = f"mimic-cxr-2.0.0-{'metadata' if meta_path is None else labeler}.csv(.gz)"
        raise DataError(
            f"{missing} is not beside it",
            named,
            "put the MIMIC-CXR-JPG label files of the release together in one folder",
        )
    # one table's rows at a time (the release's metadata has 377,110): each is dropped once read
    label_table = read_table(labels_path, min_fields=len(LABELS_COLUMNS) + 1)
    chosen, studies = _study_labels(label_table, labels, opts)
    label_table = replace(label_table, rows=[])
    split_table = read_table(split_path, min_fields=len(SPLIT_COLUMNS)) if split_path else None
    split_of = _splits(split_table) if split_table is not None else None
    split_table = replace(split_table, rows=[]) if split_table is not None else None
    meta = read_table(meta_path, min_fields=len(METADATA_COLUMNS))
    notes = [f"labels: {labels_path.name} (the {labeler} labeler), per study"]
    records = _records(meta, studies, split_of, folder, opts, notes)
    meta = replace(meta, rows=[])
    if not records:
        raise DataError(
            f"no image is left after the view filter ({opts.views}) and the uncertainty "
            f"policy ({opts.uncertainty})",
            meta_path,
            "choose another view filter, uncertainty policy or labels",
        )
    if split_table is not None:
        notes.append(f"splits: {split_table.path.name} (train / validate / test; validate is val)")
    else:
        notes.append("no mimic-cxr-2.0.0-split.csv beside it: a seeded split by subject_id")
    tables = [meta, label_table] + ([split_table] if split_table is not None else [])
    log.info("MIMIC-CXR-JPG: %d images, %d labels", len(records), len(chosen))
    return Dataset(
        source=named,
        kind="mimic",
        labels=tuple(chosen),
        records=records,
        sha256=combined_sha256(tables),
        has_patient_ids=True,
        has_split=split_table is not None,
        notes=notes,
    )


def _columns(table: Table, required: Sequence[str]) -> list[int]:
    missing = [c for c in required if c not in table.header]
    if missing:
        raise DataError(f"row 1: there is no {missing[0]!r} column", table.path, FIX)
    return [table.header.index(c) for c in required]


def _ids(table: Table, number: int, values: Sequence[str], cols: Sequence[int]) -> list[str]:
    """The subject_id / study_id fields of a row, stripped; numbers or an error."""
    out = []
    for c in cols:
        text = values[c].strip()
        if not DIGITS.match(text):
            raise DataError(f"row {number}: {table.header[c]} is not a number", table.path, FIX)
        out.append(text)
    return out


def _dicom_id(table: Table, number: int, text: str) -> str:
    name = text.strip()
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise DataError(f"row {number}: dicom_id is empty or not a file name", table.path, FIX)
    return name


def _study_labels(
    table: Table, wanted: Sequence[str] | None, opts: LayoutOptions
) -> tuple[list[str], dict[str, StudyLabels]]:
    """The chosen labels, and per study_id its subject, row and values (after the policy)."""
    subject_col, study_col = _columns(table, LABELS_COLUMNS)
    available = [lab for lab in CHEXPERT_LABELS if lab in table.header]
    if not available:
        raise DataError("row 1: there is no CheXpert observation column", table.path, FIX)
    chosen = [available[c] for c in choose_labels(available, wanted, table.path)]
    label_cols = [table.header.index(lab) for lab in chosen]
    studies: dict[str, StudyLabels] = {}
    # the release has a few thousand distinct rows of values for 227,827 studies: parse each once
    parsed: dict[tuple[str, ...], tuple[float, ...]] = {}
    for number, values in table.rows:
        if len(values) != len(table.header):
            raise DataError(
                f"row {number}: has {len(values)} fields, the header has {len(table.header)}",
                table.path,
                FIX,
            )
        subject, study = _ids(table, number, values, (subject_col, study_col))
        if study in studies:
            raise DataError(
                f"row {number}: its study is listed twice (first in row {studies[study].row})",
                table.path,
                FIX,
            )
        raw = tuple(values[c] for c in label_cols)
        if raw not in parsed:
            y = [
                label_value(v, table.header[c], number, table.path, FIX)
                for v, c in zip(raw, label_cols, strict=True)
            ]
            parsed[raw] = tuple(settle_uncertain(y, opts.uncertainty))
        studies[study] = StudyLabels(subject, number, parsed[raw])
    return chosen, studies


def _splits(table: Table) -> SplitFile:
    """The split file's images with their split (validate is val), subject and row."""
    dicom_col, subject_col, split_col = (
        table.column(c, FIX) for c in ("dicom_id", "subject_id", "split")
    )
    out: dict[str, tuple[str, str, int]] = {}
    for number, values in table.rows:
        dicom = _dicom_id(table, number, values[dicom_col])
        (subject,) = _ids(table, number, values, (subject_col,))
        split = SPLIT_NAMES.get(values[split_col].strip().lower())
        if split is None:
            raise DataError(
                f"row {number}: split is {values[split_col].strip()!r}, not train, validate "
                "or test",
                table.path,
                FIX,
            )
        if dicom in out:
            raise DataError(f"row {number}: its image is listed twice", table.path, FIX)
        out[dicom] = (split, subject, number)
    return SplitFile(table.path, out)


def view_of(position: str, code_meaning: str) -> str | None:
    """ "frontal", "lateral" or None (another or no view) from ViewPosition, or from
    ViewCodeSequence_CodeMeaning when ViewPosition is blank."""
    pos = position.strip().upper()
    if pos in FRONTAL_POSITIONS:
        return "frontal"
    if pos in LATERAL_POSITIONS:
        return "lateral"
    if pos:
        return None
    return VIEW_CODES.get(code_meaning.strip().lower())


@dataclass
class _Counts:
    other_view: int = 0
    unlabelled: int = 0
    uncertain: int = 0


def _records(
    meta: Table,
    studies: dict[str, StudyLabels],
    split_of: SplitFile | None,
    folder: Path,
    opts: LayoutOptions,
    notes: list[str],
) -> list[Record]:
    dicom_col, subject_col, study_col, view_col = _columns(meta, METADATA_COLUMNS)
    code_col = meta.header.index(VIEW_CODE_COLUMN) if VIEW_CODE_COLUMN in meta.header else None
    counts = _Counts()
    seen: set[str] = set()
    rows: list[int] = []
    names: list[str] = []
    entries: list[tuple[tuple[float, ...], str, str | None]] = []
    for number, values in meta.rows:
        if len(values) != len(meta.header):
            raise DataError(
                f"row {number}: has {len(values)} fields, the header has {len(meta.header)}",
                meta.path,
                FIX,
            )
        dicom = _dicom_id(meta, number, values[dicom_col])
        if dicom in seen:
            raise DataError(f"row {number}: its image is listed twice", meta.path, FIX)
        seen.add(dicom)
        subject, study = _ids(meta, number, values, (subject_col, study_col))
        view = view_of(values[view_col], values[code_col] if code_col is not None else "")
        if not view_kept(view, opts.views):
            counts.other_view += view is None
            continue
        study_labels = studies.get(study)
        if study_labels is None:
            counts.unlabelled += 1
            continue
        if study_labels.subject != subject:
            raise DataError(
                f"row {number}: its subject_id differs from that of its study in the labels "
                f"file (row {study_labels.row})",
                meta.path,
                FIX,
            )
        counts.uncertain += any(math.isnan(v) for v in study_labels.values)
        rows.append(number)
        names.append(dicom)
        entries.append((study_labels.values, subject, _split(split_of, dicom, subject, number)))
    _note_counts(counts, meta, opts, notes)
    if not rows:
        return []
    root = folder / "files" if (folder / "files").is_dir() else folder
    index = FileIndex(root, (".jpg",))
    found = [index.find(f"{name}.jpg") for name in names]
    keep = keep_found(found, rows, meta.path, root, opts.missing_images, notes)
    out = []
    for i in keep:
        image = found[i]
        assert image is not None
        values_i, subject, split = entries[i]
        out.append(Record(rows[i], image, values_i, subject, split))
    return out


def _split(split_of: SplitFile | None, dicom: str, subject: str, number: int) -> str | None:
    """The split of the image of metadata row ``number`` (None without a split file)."""
    if split_of is None:
        return None
    entry = split_of.by_image.get(dicom)
    if entry is None:
        raise DataError(
            f"the image of metadata row {number} is not in the split file",
            split_of.path,
            "use the split file of the same release (or move it away for a seeded split)",
        )
    if entry[1] != subject:
        raise DataError(
            f"row {entry[2]}: its subject_id differs from the metadata's (row {number})",
            split_of.path,
            FIX,
        )
    return entry[0]


def _note_counts(counts: _Counts, meta: Table, opts: LayoutOptions, notes: list[str]) -> None:
    if counts.other_view:
        notes.append(
            f"{counts.other_view} image(s) of {meta.path.name} have another or no view position "
            f"(decubitus, axial, oblique, blank) and are left out (views: {opts.views})"
        )
    if counts.unlabelled:
        notes.append(
            f"{counts.unlabelled} image(s) of {meta.path.name} belong to a study without a row "
            "in the labels file and are left out"
        )
    if counts.uncertain:
        notes.append(uncertain_note(counts.uncertain, meta.path.name))
