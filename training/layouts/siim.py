"""SIIM-ACR Pneumothorax as published: ``train-rle.csv`` (``ImageId, EncodedPixels``) with the
``<ImageId>.dcm`` files anywhere below its folder; the competition's run-length masks.

- Rows: one per pneumothorax region, several rows for an image with several regions, and one
  row ``-1`` for an image without pneumothorax. The header's second name has a leading space
  (``ImageId, EncodedPixels``) and values may have one too: both are stripped.
- Label: ``pneumothorax`` (1 when any row of the image has a mask). Boxes: one per row, the
  bounding box of its mask, in the 1024 x 1024 image's pixels.
- Masks (for segmentation): ``decode_rle`` decodes one row; ``image_masks`` reads the file
  into each image's encodings and ``union_mask`` joins an image's rows.
- Encoding (the competition's ``mask_functions.py``): whitespace-separated pairs (offset,
  length); each offset counts from the end of the previous run (the first from pixel 0), over
  the pixels in column-major order (down each column, then the next column to the right).
- Patients: the file names images only, and the released DICOMs carry a different PatientID per
  image, so each image is its own patient (noted).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from desktop_app.infra.errors import DataError
from training.layouts.common import FileIndex, LayoutOptions, Table, keep_found, read_table
from training.records import Dataset, LabeledBox, Record

log = logging.getLogger(__name__)

SIIM_LABEL = "pneumothorax"
SIIM_SIZE = 1024  # every image of the release is 1024 x 1024
SIIM_HEADER = ("ImageId", "EncodedPixels")
SIIM_CSV_NAMES = ("train-rle.csv", "train-rle.csv.gz")
NO_MASK = "-1"
FIX = "use train-rle.csv as published"


def is_siim_header(header: Sequence[str]) -> bool:
    return tuple(h.strip() for h in header) == SIIM_HEADER


def rle_runs(encoded: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The runs of a relative RLE string as absolute (starts, lengths) in column-major pixel
    order; DataError when it is not pairs of non-negative offsets and positive lengths that
    fit in ``width * height`` pixels."""
    try:
        values = np.array([int(v) for v in encoded.split()], dtype=np.int64)
    except ValueError:
        raise DataError(
            "the mask is not whitespace-separated integers", hint="give the RLE or -1"
        ) from None
    if values.size % 2:
        raise DataError(f"the mask has {values.size} numbers, not (offset, length) pairs")
    offsets, lengths = values[0::2], values[1::2]
    if (offsets < 0).any() or (lengths <= 0).any():
        raise DataError("the mask has a negative offset or a run length under 1")
    # each offset counts from the end of the previous run
    ends_before = np.concatenate([[0], np.cumsum(offsets + lengths)[:-1]])
    starts = ends_before + offsets
    if values.size and starts[-1] + lengths[-1] > width * height:
        raise DataError(
            f"the mask runs to pixel {int(starts[-1] + lengths[-1])}, past {width} x {height}",
            hint="check the image size",
        )
    return starts, lengths


def decode_rle(encoded: str, width: int = SIIM_SIZE, height: int = SIIM_SIZE) -> np.ndarray:
    """One ``EncodedPixels`` value -> a bool mask (rows x cols = height x width); "-1" or an
    empty value is an empty mask."""
    mask = np.zeros(width * height, dtype=bool)
    text = encoded.strip()
    if text and text != NO_MASK:
        starts, lengths = rle_runs(text, width, height)
        # mark run edges and integrate: linear in the pixels, not in the runs' lengths
        edges = np.zeros(width * height + 1, dtype=np.int32)
        np.add.at(edges, starts, 1)
        np.add.at(edges, starts + lengths, -1)
        mask = np.cumsum(edges[:-1]) > 0
    return mask.reshape(width, height).T


def encode_rle(mask: np.ndarray) -> str:
    """A bool mask (rows x cols) -> the competition's relative RLE ("-1" when empty)."""
    flat = np.asarray(mask, dtype=bool).T.ravel()
    padded = np.concatenate([[False], flat, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    starts, ends = changes[0::2], changes[1::2]
    if starts.size == 0:
        return NO_MASK
    previous_end = np.concatenate([[0], ends[:-1]])
    pairs = np.stack([starts - previous_end, ends - starts], axis=1).ravel()
    return " ".join(str(int(v)) for v in pairs)


def union_mask(
    encodings: Sequence[str], width: int = SIIM_SIZE, height: int = SIIM_SIZE
) -> np.ndarray:
    """An image's mask: the union of its rows' masks."""
    out = np.zeros((height, width), dtype=bool)
    for encoded in encodings:
        out |= decode_rle(encoded, width, height)
    return out


def rle_box(encoded: str, width: int = SIIM_SIZE, height: int = SIIM_SIZE) -> tuple[float, ...]:
    """The bounding box (x, y, width, height) of a non-empty mask, from its runs alone."""
    starts, lengths = rle_runs(encoded, width, height)
    ends = starts + lengths - 1
    col0, col1 = starts // height, ends // height
    one_column = col0 == col1
    row0 = np.where(one_column, starts % height, 0)
    row1 = np.where(one_column, ends % height, height - 1)
    x, y = int(col0.min()), int(row0.min())
    return (float(x), float(y), float(col1.max() - x + 1), float(row1.max() - y + 1))


def image_masks(path: str | os.PathLike[str]) -> dict[str, tuple[str, ...]]:
    """``train-rle.csv`` -> ImageId -> its non-empty encodings (() for "-1"), for the masks."""
    table = _table(Path(path))
    out: dict[str, list[str]] = defaultdict(list)
    for _, values in table.rows:
        image_id, encoded = values[0].strip(), values[1].strip()
        runs = out[image_id]  # an image with "-1" only has no runs
        if encoded != NO_MASK:
            runs.append(encoded)
    return {k: tuple(v) for k, v in out.items()}


def _table(path: Path) -> Table:
    table = read_table(path, min_fields=2)
    if not is_siim_header(table.header):
        raise DataError("row 1: expected the columns ImageId, EncodedPixels", path, FIX)
    return table


def read_siim(
    path: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    options: LayoutOptions | None = None,
) -> Dataset:
    """Read SIIM-ACR Pneumothorax from ``train-rle.csv`` (see the module docstring)."""
    opts = options or LayoutOptions()
    csv_path = Path(path)
    if labels is not None and list(labels) != [SIIM_LABEL]:
        bad = next(lab for lab in labels if lab != SIIM_LABEL)
        raise DataError(
            f"unknown label {bad!r}", csv_path, f"this layout has one label: {SIIM_LABEL}"
        )
    table = _table(csv_path)
    first_row: dict[str, int] = {}
    boxes: dict[str, list[LabeledBox]] = defaultdict(list)
    negative_rows: dict[str, int] = {}
    for number, values in table.rows:
        if len(values) != 2:
            raise DataError(f"row {number}: has {len(values)} fields, not 2", csv_path, FIX)
        image_id, encoded = values[0].strip(), values[1].strip()
        if not image_id or "/" in image_id or "\\" in image_id or image_id.startswith("."):
            raise DataError(f"row {number}: ImageId is empty or not a plain name", csv_path, FIX)
        first_row.setdefault(image_id, number)
        if encoded == NO_MASK:
            negative_rows.setdefault(image_id, number)
            continue
        try:
            box = rle_box(encoded)
        except DataError as err:
            raise DataError(f"row {number}: {err.reason}", csv_path, err.hint or FIX) from None
        boxes[image_id].append((SIIM_LABEL, *box))  # type: ignore[arg-type]
    both = next((i for i in boxes if i in negative_rows), None)
    if both is not None:
        raise DataError(
            f"row {negative_rows[both]}: -1 (no pneumothorax) for an image that has a mask "
            f"in row {first_row[both]}",
            csv_path,
            FIX,
        )
    ids = list(first_row)
    index = FileIndex(csv_path.parent, (".dcm",))
    found = [index.find(f"{image_id}.dcm") for image_id in ids]
    notes: list[str] = []
    rows = [first_row[i] for i in ids]
    keep = keep_found(found, rows, csv_path, csv_path.parent, opts.missing_images, notes)
    records = []
    for k in keep:
        image_id, image = ids[k], found[k]
        assert image is not None
        every = tuple(boxes.get(image_id, ()))
        label = 1.0 if every else 0.0
        first = every[0][1:] if every else None
        records.append(Record(rows[k], image, (label,), image_id, None, first, every))
    notes.append(
        "SIIM gives no patient grouping (one PatientID per image): each image is its own patient"
    )
    log.info("SIIM-ACR Pneumothorax: %d images", len(records))
    return Dataset(
        source=csv_path,
        kind="siim",
        labels=(SIIM_LABEL,),
        records=records,
        sha256=table.sha256,
        has_patient_ids=False,
        has_split=False,
        notes=notes,
    )
