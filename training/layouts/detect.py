"""Which public layout a ``--data`` folder or labels file is (by file names, then by header),
and reading it with its reader.

A folder is searched for the layouts' labels files by name, in the folder itself and then one
level down (a release unpacked into its own folder, e.g. ``CheXpert-v1.0-small/``); a file is
recognised by its header. The generic ``train.csv`` name is told apart by its header too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from training.layouts.chexpert import is_chexpert_header, read_chexpert
from training.layouts.common import LayoutOptions, first_line
from training.layouts.mimic import FILES_NOTE, find_mimic, is_mimic_header, read_mimic
from training.layouts.nih import find_entry_file, is_nih_header, read_nih
from training.layouts.siim import SIIM_CSV_NAMES, is_siim_header, read_siim
from training.layouts.vindr import PHYSIONET_TRAIN, is_vindr_header, read_vindr
from training.records import Dataset

Reader = Callable[[Path, Sequence[str] | None, LayoutOptions | None], Dataset]
READERS: dict[str, Reader] = {
    "nih": read_nih,
    "chexpert": read_chexpert,
    "siim": read_siim,
    "vindr": read_vindr,
    "mimic": read_mimic,
}
LABELS_FILES = (
    "Data_Entry_2017*.csv (NIH ChestX-ray14), train.csv (CheXpert, VinBigData), "
    f"train-rle.csv (SIIM-ACR), annotations/annotations_train.csv (VinDr-CXR), {FILES_NOTE}; "
    "for --task segmentation also imagesTr/ + labelsTr/ (MSD, nnU-Net) or images/ + masks/"
)


def layout_of_file(path: Path) -> str | None:
    """The public layout whose header ``path`` has, or None."""
    header = first_line(path)
    if not header:
        return None
    if is_nih_header(header):
        return "nih"
    if is_siim_header(header):
        return "siim"
    if is_chexpert_header(header):
        return "chexpert"
    if is_vindr_header(header):
        return "vindr"
    if is_mimic_header(header):
        return "mimic"
    return None


def _in_folder(folder: Path) -> tuple[Path, str] | None:
    entry = find_entry_file(folder)
    if entry is not None:
        return entry, "nih"
    for name in SIIM_CSV_NAMES:
        if (folder / name).is_file():
            return folder / name, "siim"
    mimic = find_mimic(folder)
    if mimic is not None:
        return mimic, "mimic"
    for candidate in (folder / "train.csv", folder / "annotations" / PHYSIONET_TRAIN):
        if candidate.is_file():
            kind = layout_of_file(candidate)
            if kind is not None:
                return candidate, kind
    return None


def find_layout(folder: Path) -> tuple[Path, str] | None:
    """The labels file and layout of a dataset folder (or of one folder below it), or None."""
    found = _in_folder(folder)
    if found is not None:
        return found
    try:
        below = sorted(
            e.path for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")
        )
    except OSError:
        return None
    for sub in below:
        found = _in_folder(Path(sub))
        if found is not None:
            return found
    return None


def read_layout(
    kind: str,
    path: Path,
    labels: Sequence[str] | None = None,
    options: LayoutOptions | None = None,
) -> Dataset:
    """Read ``path`` with the reader of public layout ``kind``."""
    return READERS[kind](path, labels, options)
