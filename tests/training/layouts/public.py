"""Public layouts laid out in tmp_path as their releases lay them out: the real label-file
slices of tests/fixtures/public_labels and tiny images made here (seeded; no patient data)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers.dicomfiles import image_dataset, save

SLICES = Path(__file__).resolve().parents[2] / "fixtures" / "public_labels"


def slice_text(name: str) -> str:
    """A committed slice's text (see tests/fixtures/public_labels/README.md)."""
    return gzip.decompress((SLICES / name).read_bytes()).decode("utf-8")


def write_slice(name: str, target: Path, *, edit: str | None = None) -> Path:
    """Write slice ``name`` as ``target`` (optionally replacing its text with ``edit``)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(slice_text(name) if edit is None else edit, encoding="utf-8")
    return target


def pixels(seed: int, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (size, size), dtype=np.uint8)


def write_png(path: Path, seed: int = 0, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels(seed, size)).save(path)
    return path


def write_jpeg(path: Path, seed: int = 0, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels(seed, size)).save(path, quality=90)
    return path


def write_dicom(path: Path, seed: int = 0, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(image_dataset(pixels(seed, size).astype(np.uint16), modality="DX"), path)


def data_rows(text: str) -> list[str]:
    return [line for line in text.splitlines()[1:] if line.strip()]
