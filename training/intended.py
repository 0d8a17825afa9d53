"""The intended input that ``fit`` writes into the model file, read from the training headers.

Modality, Body Part Examined and View Position (PS3.3 C.7.3.1, C.8.11.7) of every train-split
DICOM image, the image kind (projection radiographs unless the data are cross-sectional slices)
and the smallest matrix. Header values found in the train split become the lists the engine
checks; the config's ``applicability`` section replaces any of them.

``min_matrix`` is half the smallest side of the smallest training image: the network sees every
image resized to its input size, so an image a little smaller than any in training is still
readable, but one with less than half the pixels has lost detail the model relied on (and
thumbnails, icons and secondary captures are usually far below it).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from desktop_app.model.applicability import IntendedInput, projection_modality
from training.config import ApplicabilityConfig
from training.data import Record

log = logging.getLogger(__name__)

_TAGS = ("Modality", "BodyPartExamined", "ViewPosition", "Rows", "Columns", "NumberOfFrames")


@dataclass
class HeaderSummary:
    """What the training images' headers say: counts per value, and the smallest side."""

    images: int = 0
    dicom: int = 0
    modalities: Counter[str] = field(default_factory=Counter)
    body_parts: Counter[str] = field(default_factory=Counter)
    view_positions: Counter[str] = field(default_factory=Counter)
    multiframe: int = 0
    min_side: int | None = None

    def note_side(self, rows: int, cols: int) -> None:
        side = min(int(rows), int(cols))
        if side > 0:
            self.min_side = side if self.min_side is None else min(self.min_side, side)


def _code(value: object) -> str | None:
    text = str(value or "").strip().upper()
    return text or None


def _read_one(path: Path, summary: HeaderSummary) -> None:
    import pydicom
    from pydicom.errors import InvalidDicomError

    summary.images += 1
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_TAGS))
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError):
        ds = None
    if ds is None or "Rows" not in ds:
        _raster_size(path, summary)
        return
    summary.dicom += 1
    for key, counter in (
        ("Modality", summary.modalities),
        ("BodyPartExamined", summary.body_parts),
        ("ViewPosition", summary.view_positions),
    ):
        code = _code(ds.get(key))
        if code is not None:
            counter[code] += 1
    try:
        summary.note_side(int(ds.Rows), int(ds.Columns))
        summary.multiframe += int(ds.get("NumberOfFrames") or 1) > 1
    except (TypeError, ValueError, AttributeError):
        pass


def _raster_size(path: Path, summary: HeaderSummary) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            summary.note_side(img.height, img.width)
    except (UnidentifiedImageError, OSError, ValueError):
        pass


def summarise_headers(records: Sequence[Record]) -> HeaderSummary:
    """The header values and smallest side of ``records`` (headers only, no pixel data)."""
    summary = HeaderSummary()
    for record in records:
        _read_one(record.path, summary)
    return summary


def _image_kind(summary: HeaderSummary) -> str:
    kinds = {projection_modality(m) for m in summary.modalities}
    if kinds == {False}:
        return "slice"
    if kinds == {True, False}:
        return "any"
    return "projection"  # radiographs, or no DICOM headers at all (PNG/JPEG chest datasets)


def intended_from_headers(summary: HeaderSummary, override: ApplicabilityConfig) -> IntendedInput:
    """The intended input: the headers' values, each replaced where the config gives one."""
    found = {
        "modalities": tuple(sorted(summary.modalities)),
        "body_parts": tuple(sorted(summary.body_parts)),
        "view_positions": tuple(sorted(summary.view_positions)),
    }
    chosen: dict[str, tuple[str, ...]] = {}
    overridden = []
    for key, value in found.items():
        given = getattr(override, key)
        if given is not None:
            overridden.append(key)
        chosen[key] = tuple(given) if given is not None else value
    kind = override.image_kind or _image_kind(summary)
    if override.image_kind is not None:
        overridden.append("image_kind")
    if override.min_matrix is not None:
        min_matrix = override.min_matrix
        overridden.append("min_matrix")
    else:
        min_matrix = (summary.min_side or 0) // 2
    source = f"fit: {summary.images} images"
    if summary.dicom < summary.images:
        source += f" ({summary.images - summary.dicom} without DICOM headers)"
    if overridden:
        source += f"; config: {', '.join(overridden)}"
    return IntendedInput(
        chosen["modalities"],
        chosen["body_parts"],
        chosen["view_positions"],
        kind,
        int(min_matrix),
        source,
    )


def intended_input_for(records: Sequence[Record], override: ApplicabilityConfig) -> IntendedInput:
    """Read the headers of ``records`` (the train split) and build the intended input."""
    summary = summarise_headers(records)
    intended = intended_from_headers(summary, override)
    log.info("intended input: %s (%s)", intended.describe(), intended.source)
    return intended
