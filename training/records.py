"""The training data's types (Record, Dataset, Splits) and the limits every reader shares.

Kept apart from the readers so that ``training.data`` (the manifest, RSNA and the dispatch) and
``training.layouts`` (the public datasets) both build the same objects without importing each
other; ``training.data`` re-exports them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
MAX_MANIFEST_BYTES = 512 * 1024 * 1024
# The model file's rule for label names (desktop_app.model.modelfile.LABEL_PATTERN; a test keeps them
# equal), checked here so that a bad column fails before training rather than at the end;
# kept local so that reading a manifest does not import torch.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,63}$")

# (label, x, y, width, height) in the image's pixels
LabeledBox = tuple[str, float, float, float, float]


@dataclass(frozen=True)
class Record:
    """One image of the dataset.

    ``box`` is the first annotated box (x, y, width, height), kept for the localisation code;
    ``boxes`` holds every box of the image with its label.
    """

    row: int  # row number in the CSV (header = 1)
    path: Path  # absolute
    labels: tuple[float, ...]  # 0 / 1; NaN: unknown (a layout's uncertain label, "ignore")
    patient: str
    split: str | None
    box: tuple[float, float, float, float] | None = None
    boxes: tuple[LabeledBox, ...] = ()


@dataclass
class Dataset:
    """A read manifest or public layout: records, label names, where it came from, its hash."""

    source: Path
    kind: str  # "manifest", "rsna", "nih", "chexpert", "siim", "vindr" or "mimic"
    labels: tuple[str, ...]
    records: list[Record]
    sha256: str
    has_patient_ids: bool = True
    has_split: bool = False
    synthetic: bool = False
    notes: list[str] = field(default_factory=list)

    def label_matrix(self, indices: Sequence[int] | None = None) -> np.ndarray:
        rows = self.records if indices is None else [self.records[i] for i in indices]
        if not rows:
            return np.zeros((0, len(self.labels)), np.float32)
        return np.asarray([r.labels for r in rows], dtype=np.float32)


@dataclass(frozen=True)
class Splits:
    """Record indices per split (disjoint by patient), and how they were made."""

    train: list[int]
    val: list[int]
    test: list[int]
    method: str

    def counts(self, data: Dataset) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        for name in SPLITS:
            idx = getattr(self, name)
            y = data.label_matrix(idx)
            out[name] = {
                "images": len(idx),
                "patients": len({data.records[i].patient for i in idx}),
                "positives": {lab: int(np.nansum(y[:, j])) for j, lab in enumerate(data.labels)},
            }
        return out
