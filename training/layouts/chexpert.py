"""CheXpert as published: ``train.csv`` / ``valid.csv`` with ``Path``, the 14 observations as
1 / 0 / -1 / blank, ``Frontal/Lateral`` and ``AP/PA``.

- Paths: the CSV's ``Path`` starts with the release folder (``CheXpert-v1.0-small/train/...``)
  while the CSV sits inside that folder, so a path is resolved relative to the CSV's parent
  (as published, also when the folder was renamed) or to the CSV's folder (a CSV moved up
  beside the release folder). One walk of the CSV's folder answers every row.
- Values: 1 positive, 0 negative, blank not mentioned in the report (= 0), -1 uncertain. The
  uncertainty policy (``LayoutOptions.uncertainty``) is **u-ones by default**: in the CheXpert
  paper (Irvin et al., AAAI 2019) U-Ones was best or level on most of the competition tasks
  (atelectasis and oedema markedly), and for a second-reader tool a missed finding costs more
  than a false alarm. ``u-zeros`` reads -1 as 0; ``ignore`` is U-Ignore: the uncertain value
  becomes unknown (NaN in ``Record.labels``), the image stays, and training leaves that label
  of that image out of its loss, metrics, thresholds and calibration (its other labels count).
- Views: **frontal only by default** (``Frontal/Lateral`` = Frontal: PA and AP): the app's
  models read one frontal radiograph, and a lateral view is another kind of image;
  ``lateral`` or ``all`` on request.
- Patients: the ``patientNNNNN`` folder of the path; studies share a patient.
- Splits: ``valid.csv`` beside ``train.csv`` is the **test** split (234 images read by a
  consensus of three radiologists, no uncertain labels: the best labels of the release, so they
  measure the model); val is carved from train by patient. Pointing ``--data`` at
  ``valid.csv`` reads it alone, without splits (an external evaluation).
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

from desktop_app.infra.errors import DataError
from training.layouts.common import (
    LayoutOptions,
    Table,
    choose_labels,
    combined_sha256,
    keep_found,
    read_table,
)
from training.records import Dataset, Record

log = logging.getLogger(__name__)

CHEXPERT_LABELS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
VIEW_COLUMN = "Frontal/Lateral"
PATIENT_PART = re.compile(r"^patient\d+$")
VALUES = {"1": 1.0, "1.0": 1.0, "0": 0.0, "0.0": 0.0, "": 0.0, "-1": -1.0, "-1.0": -1.0}
RASTER_SUFFIXES = (".jpg", ".jpeg", ".png")
FIX = "use CheXpert's train.csv / valid.csv as published"


def is_chexpert_header(header: Sequence[str]) -> bool:
    return "Path" in header and VIEW_COLUMN in header


def read_chexpert(
    path: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    options: LayoutOptions | None = None,
) -> Dataset:
    """Read CheXpert from ``train.csv`` (with ``valid.csv`` beside it as the test split) or from
    ``valid.csv`` alone; see the module docstring."""
    opts = options or LayoutOptions()
    csv_path = Path(path)
    files: list[tuple[Path, str | None]] = [(csv_path, None)]
    valid = csv_path.parent / "valid.csv"
    if csv_path.name == "train.csv" and valid.is_file():
        files = [(csv_path, "train"), (valid, "test")]
    index = _relative_index(csv_path.parent)
    records: list[Record] = []
    tables: list[Table] = []
    notes: list[str] = []
    chosen: list[str] = []
    for file, split in files:
        table = read_table(file, min_fields=2)
        if not is_chexpert_header(table.header):
            raise DataError(f"row 1: expected the columns Path and {VIEW_COLUMN}", file, FIX)
        available = [h for h in CHEXPERT_LABELS if h in table.header]
        picked = [available[c] for c in choose_labels(available, labels, file)]
        if chosen and picked != chosen:
            raise DataError("its label columns differ from train.csv's", file, FIX)
        chosen = picked
        records += _records(table, chosen, split, index, opts, notes)
        tables.append(table)
    if not records:
        raise DataError(
            f"no image is left after the view filter ({opts.views}) and the uncertainty "
            f"policy ({opts.uncertainty})",
            csv_path,
            "choose another view filter, uncertainty policy or labels",
        )
    log.info("CheXpert: %d images, %d labels", len(records), len(chosen))
    return Dataset(
        source=csv_path,
        kind="chexpert",
        labels=tuple(chosen),
        records=records,
        sha256=combined_sha256(tables),
        has_patient_ids=True,
        has_split=len(files) > 1,
        notes=notes,
    )


def _records(
    table: Table,
    chosen: Sequence[str],
    split: str | None,
    index: dict[str, str],
    opts: LayoutOptions,
    notes: list[str],
) -> list[Record]:
    path_col = table.column("Path", FIX)
    view_col = table.column(VIEW_COLUMN, FIX)
    label_cols = [table.header.index(lab) for lab in chosen]
    rows: list[int] = []
    found: list[Path | None] = []
    entries: list[tuple[tuple[float, ...], str]] = []
    uncertain_kept = 0
    for number, values in table.rows:
        if len(values) != len(table.header):
            raise DataError(
                f"row {number}: has {len(values)} fields, the header has {len(table.header)}",
                table.path,
                FIX,
            )
        view = values[view_col].strip().lower()
        if view not in ("frontal", "lateral"):
            raise DataError(f"row {number}: {VIEW_COLUMN} is {values[view_col]!r}", table.path, FIX)
        if not view_kept(view, opts.views):
            continue
        y = settle_uncertain(
            [label_value(values[c], table.header[c], number, table.path) for c in label_cols],
            opts.uncertainty,
        )
        uncertain_kept += any(math.isnan(v) for v in y)
        relative = values[path_col].strip().replace("\\", "/")
        parts = relative.split("/")
        patient = next((p for p in parts if PATIENT_PART.match(p)), None)
        if patient is None or ".." in parts or relative.startswith("/"):
            raise DataError(
                f"row {number}: Path has no patientNNNNN folder, or leaves the dataset",
                table.path,
                FIX,
            )
        hit = index.get(relative) or index.get("/".join(parts[1:]))
        rows.append(number)
        found.append(None if hit is None else Path(hit))
        entries.append((tuple(y), patient))
    if uncertain_kept:
        notes.append(uncertain_note(uncertain_kept, table.path.name))
    if not rows:
        return []
    keep = keep_found(found, rows, table.path, table.path.parent, opts.missing_images, notes)
    out = []
    for i in keep:
        image = found[i]
        assert image is not None
        out.append(Record(rows[i], image, entries[i][0], entries[i][1], split))
    return out


def label_value(text: str, column: str, number: int, path: Path, fix: str = FIX) -> float:
    """A CheXpert-labeler value (CheXpert, MIMIC-CXR): 1 / 0 / -1, blank (not mentioned) = 0."""
    value = VALUES.get(text.strip())
    if value is None:
        raise DataError(f"row {number}: {column!r} is {text!r}, not 1, 0, -1 or blank", path, fix)
    return value


def settle_uncertain(y: Sequence[float], policy: str) -> list[float]:
    """``y`` with its -1 (uncertain) values read by the uncertainty policy: 1 (u-ones), 0
    (u-zeros) or NaN, unknown (ignore: U-Ignore, that label of that image is left out)."""
    if -1.0 not in y:
        return list(y)
    fill = {"u-ones": 1.0, "u-zeros": 0.0}.get(policy, math.nan)
    return [fill if v == -1.0 else v for v in y]


def uncertain_note(count: int, source: str) -> str:
    return (
        f"{count} image(s) of {source} are uncertain (-1) for a chosen label: that label is "
        "unknown for them and left out of its loss and metrics (uncertainty policy: ignore)"
    )


def view_kept(view: str | None, views: str) -> bool:
    """Whether an image of ``view`` ("frontal", "lateral", or None for another or no view)
    passes the view filter ``views`` ("frontal", "lateral" or "all")."""
    return views == "all" or view == views


def _relative_index(root: Path) -> dict[str, str]:
    """Every raster image below ``root``, by its path relative to ``root`` ('/'-separated)."""
    out: dict[str, str] = {}
    base = len(str(root)) + 1
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = folder[base:].replace(os.sep, "/")
        for name in files:
            if name.lower().endswith(RASTER_SUFFIXES):
                full = os.path.join(folder, name)
                out[f"{rel}/{name}" if rel else name] = full
    return out
