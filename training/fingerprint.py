"""The dataset fingerprint: what fit knows about the data before it trains (fingerprint.json).

From the records and the image headers only (no pixels are decoded): image sizes and aspect,
pixel spacing, photometric interpretation, bits stored and transfer syntaxes; per-label
prevalence overall and in the train split; patients and images per split; and the annotated
boxes' sizes relative to the image. ``training.autoconfig`` chooses the recipe from it.

A box's size is its smaller side over the image's *longer* side: preprocessing resizes the
longer side to the input size S (aspect kept, padded to a square, ``desktop_app.model.
preprocessing``), so a box of relative size f keeps ``f * S`` pixels at input size.

Headers are read in a bounded thread pool; a large dataset is sampled (seeded, at most
``MAX_HEADERS`` images, and as many boxed images again) and the fingerprint says so.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from desktop_app.infra.atomicio import atomic_write_json
from desktop_app.infra.cpus import available_cpus
from training.data import Dataset, Record, Splits

log = logging.getLogger(__name__)

FINGERPRINT = "fingerprint.json"
FINGERPRINT_VERSION = 1
MAX_HEADERS = 2000  # images whose headers are read for the size statistics (seeded sample)
HEADER_THREADS = 8  # header reads are I/O bound: a few threads beyond the cores
DICOM_TAGS = (
    "Rows",
    "Columns",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "PhotometricInterpretation",
    "BitsStored",
)
Box = tuple[str, float, float, float, float]  # (label, x, y, width, height) in pixels


@dataclass(frozen=True)
class Header:
    """What one image's header says (None where it says nothing, or could not be read)."""

    rows: int | None = None
    cols: int | None = None
    spacing: float | None = None  # mm per pixel along a row, (Imager)PixelSpacing[0]
    photometric: str | None = None
    bits_stored: int | None = None
    transfer_syntax: str | None = None
    error: str | None = None


def read_header(path: Path) -> Header:
    """The header of a DICOM (pydicom, ``stop_before_pixels``, a few tags) or a PNG/JPEG (PIL,
    size and mode without decoding). Never raises: an unreadable file gives ``error``."""
    try:
        if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            return _image_header(path)
        return _dicom_header(path)
    except Exception as err:
        return Header(error=type(err).__name__)


def _image_header(path: Path) -> Header:
    from PIL import Image

    with Image.open(path) as im:  # reads the header only
        cols, rows = im.size
        mode = im.mode
    photometric = "RGB" if mode in ("RGB", "RGBA", "P") else "MONOCHROME2"
    bits = 16 if mode in ("I;16", "I;16B", "I") else 8
    return Header(rows, cols, None, photometric, bits, path.suffix.lower().lstrip("."))


def _dicom_header(path: Path) -> Header:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(DICOM_TAGS))
    spacing = None
    for key in ("PixelSpacing", "ImagerPixelSpacing"):  # PS3.3 C.7.6.3.1.2 and C.8.11.4
        value = ds.get(key)
        if value is not None and len(value) >= 1:
            try:
                s = float(value[0])
            except (TypeError, ValueError):
                continue
            if math.isfinite(s) and s > 0:
                spacing = s
                break
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    syntax = None if uid is None else (uid.name if uid.is_transfer_syntax else str(uid))
    rows, cols = ds.get("Rows"), ds.get("Columns")
    bits = ds.get("BitsStored")
    photometric = ds.get("PhotometricInterpretation")
    return Header(
        int(rows) if rows is not None else None,
        int(cols) if cols is not None else None,
        spacing,
        str(photometric).strip() if photometric is not None else None,
        int(bits) if bits is not None else None,
        syntax,
    )


def record_boxes(record: Record, labels: Sequence[str]) -> list[Box]:
    """The record's boxes as (label, x, y, w, h): ``Record.boxes`` where the reader fills it,
    else its one ``box`` (labelled with the record's first positive label)."""
    boxes = getattr(record, "boxes", None) or ()
    if boxes:
        return [(str(b[0]), *(float(v) for v in b[1:5])) for b in boxes]  # type: ignore[misc]
    if record.box is None:
        return []
    positive = [lab for lab, y in zip(labels, record.labels, strict=False) if y >= 0.5]
    label = positive[0] if positive else (labels[0] if labels else "finding")
    return [(label, *record.box)]


def _sample(indices: Sequence[int], limit: int, seed: int) -> list[int]:
    if len(indices) <= limit:
        return list(indices)
    rng = np.random.default_rng([seed, 0xF1E6])
    return sorted(int(i) for i in rng.choice(np.asarray(indices), size=limit, replace=False))


def _dist(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    a = np.asarray(values, dtype=np.float64)
    return {
        "min": float(a.min()),
        "p5": float(np.percentile(a, 5)),
        "median": float(np.median(a)),
        "max": float(a.max()),
    }


def _prevalence(data: Dataset, indices: Sequence[int]) -> dict[str, float | None]:
    y = data.label_matrix(indices)
    out: dict[str, float | None] = {}
    for j, label in enumerate(data.labels):
        column = y[:, j] if len(y) else np.zeros(0)
        known = column[np.isfinite(column)]  # a reader may leave a label unknown (NaN)
        out[label] = round(float(known.mean()), 6) if len(known) else None
    return out


def _box_stats(
    data: Dataset, boxed: Sequence[int], headers: Mapping[int, Header]
) -> dict[str, dict[str, Any]]:
    """Per label: count, and the min / 5th percentile / median of the box's smaller side over
    the image's longer side (and in pixels)."""
    fractions: dict[str, list[float]] = {}
    pixels: dict[str, list[float]] = {}
    for i in boxed:
        h = headers.get(i)
        if h is None or not h.rows or not h.cols:
            continue
        longer = max(h.rows, h.cols)
        for label, _x, _y, w, bh in record_boxes(data.records[i], data.labels):
            side = min(w, bh)
            if side <= 0:
                continue
            fractions.setdefault(label, []).append(side / longer)
            pixels.setdefault(label, []).append(side)
    out: dict[str, dict[str, Any]] = {}
    for label in sorted(fractions):
        f = np.asarray(fractions[label])
        out[label] = {
            "count": len(f),
            "min_side_fraction": {
                "min": round(float(f.min()), 5),
                "p5": round(float(np.percentile(f, 5)), 5),
                "median": round(float(np.median(f)), 5),
            },
            "min_side_pixels_median": round(float(np.median(pixels[label])), 1),
        }
    return out


def _read_headers(
    paths: Mapping[int, Path], workers: int | None, progress: Callable[[int, int], None] | None
) -> dict[int, Header]:
    n = max(1, min(HEADER_THREADS, workers or 2 * available_cpus()))
    keys = list(paths)
    out: dict[int, Header] = {}
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="fingerprint") as pool:
        for done, (k, header) in enumerate(
            zip(keys, pool.map(read_header, [paths[k] for k in keys]), strict=True), start=1
        ):
            out[k] = header
            if progress is not None:
                progress(done, len(keys))
    return out


def _image_stats(headers: Sequence[Header]) -> dict[str, Any]:
    sized = [h for h in headers if h.rows and h.cols]
    rows = [float(h.rows) for h in sized if h.rows]
    cols = [float(h.cols) for h in sized if h.cols]
    aspect = [float(h.cols) / float(h.rows) for h in sized if h.rows and h.cols]
    shorter = [float(min(h.rows, h.cols)) for h in sized if h.rows and h.cols]
    longer = [float(max(h.rows, h.cols)) for h in sized if h.rows and h.cols]
    spacing = [h.spacing for h in headers if h.spacing is not None]
    return {
        "rows": _dist(rows),
        "cols": _dist(cols),
        "aspect": _dist(aspect),  # columns / rows
        "shorter_side": _dist(shorter),
        "longer_side": _dist(longer),
        "pixel_spacing_mm": {
            "median": statistics.median(spacing) if spacing else None,
            "missing": len(headers) - len(spacing),
        },
        "photometric": dict(Counter(h.photometric or "unknown" for h in headers).most_common()),
        "bits_stored": {
            str(k): v for k, v in Counter(h.bits_stored or 0 for h in headers).most_common()
        },
        "transfer_syntax": dict(
            Counter(h.transfer_syntax or "unknown" for h in headers).most_common()
        ),
        "unreadable": sum(1 for h in headers if h.error is not None),
    }


def compute_fingerprint(
    data: Dataset,
    splits: Splits,
    *,
    seed: int = 0,
    max_headers: int = MAX_HEADERS,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The fingerprint of ``data`` (JSON-ready): see the module docstring."""
    start = time.perf_counter()
    n = len(data.records)
    sampled = _sample(range(n), max_headers, seed)
    boxed_all = [i for i, r in enumerate(data.records) if record_boxes(r, data.labels)]
    boxed = _sample(boxed_all, max_headers, seed + 1)
    wanted = sorted(set(sampled) | set(boxed))
    headers = _read_headers({i: data.records[i].path for i in wanted}, workers, progress)
    images = _image_stats([headers[i] for i in sampled])
    images["headers_read"] = len(sampled)
    if len(sampled) < n:
        images["sampled"] = f"a seeded sample of {len(sampled)} of {n} images (seed {seed})"
    split_counts = {}
    for name in ("train", "val", "test"):
        idx = getattr(splits, name)
        split_counts[name] = {
            "images": len(idx),
            "patients": len({data.records[i].patient for i in idx}),
        }
    fingerprint: dict[str, Any] = {
        "version": FINGERPRINT_VERSION,
        "source": data.source.name,
        "format": data.kind,
        "images": n,
        "patients": len({r.patient for r in data.records}),
        "labels": list(data.labels),
        "splits": split_counts,
        "prevalence": {
            "overall": _prevalence(data, range(n)),
            "train": _prevalence(data, splits.train),
        },
        "image": images,
        "boxes": {
            "images_with_boxes": len(boxed_all),
            "headers_read": len(boxed),
            "per_label": _box_stats(data, boxed, headers),
        },
    }
    fingerprint["seconds"] = round(time.perf_counter() - start, 3)
    return fingerprint


def smallest_finding(fingerprint: Mapping[str, Any]) -> tuple[str, float, int] | None:
    """(label, the 5th-percentile box min-side fraction, box count) of the label whose
    annotated boxes are smallest; None without boxes."""
    per_label = fingerprint.get("boxes", {}).get("per_label", {})
    best: tuple[str, float, int] | None = None
    for label, entry in per_label.items():
        p5 = float(entry["min_side_fraction"]["p5"])
        if p5 > 0 and (best is None or p5 < best[1]):
            best = (label, p5, int(entry["count"]))
    return best


def write_fingerprint(fingerprint: Mapping[str, Any], out_dir: Path) -> Path:
    return atomic_write_json(out_dir / FINGERPRINT, dict(fingerprint))


def _fmt_dist(d: Mapping[str, float] | None, digits: int = 0) -> str:
    if not d:
        return "n/a"
    return f"{d['min']:.{digits}f}/{d['median']:.{digits}f}/{d['max']:.{digits}f}"


def summary_lines(fingerprint: Mapping[str, Any]) -> list[str]:
    """A few human lines (fit prints them): sizes, spacing, kinds, prevalence, boxes."""
    im = fingerprint["image"]
    splits = fingerprint["splits"]
    lines = [
        f"{fingerprint['images']} images of {fingerprint['patients']} patients; "
        + ", ".join(
            f"{k} {v['images']} ({v['patients']} patients)" for k, v in splits.items() if v
        ),
        f"image rows {_fmt_dist(im['rows'])}, columns {_fmt_dist(im['cols'])} (min/median/max)"
        f", aspect {_fmt_dist(im['aspect'], 2)}"
        + (f"; {im['sampled']}" if im.get("sampled") else ""),
    ]
    spacing = im["pixel_spacing_mm"]
    kinds = ", ".join(f"{k} {v}" for k, v in im["photometric"].items())
    bits = ", ".join(f"{k}-bit {v}" for k, v in im["bits_stored"].items() if k != "0")
    lines.append(
        "pixel spacing "
        + (f"median {spacing['median']:.3f} mm" if spacing["median"] is not None else "none")
        + f" ({spacing['missing']} without); {kinds}"
        + (f"; {bits}" if bits else "")
        + (f"; {im['unreadable']} unreadable" if im["unreadable"] else "")
    )
    train = fingerprint["prevalence"]["train"]
    lines.append(
        "train prevalence: "
        + ", ".join(f"{k} {v:.1%}" if v is not None else f"{k} n/a" for k, v in train.items())
    )
    per_label = fingerprint["boxes"]["per_label"]
    if per_label:
        lines.append(
            "boxes (smaller side / image's longer side, 5th pct / median): "
            + ", ".join(
                f"{k} {v['count']}: {v['min_side_fraction']['p5']:.3f} / "
                f"{v['min_side_fraction']['median']:.3f}"
                for k, v in per_label.items()
            )
        )
    else:
        lines.append("no annotated boxes")
    return lines
