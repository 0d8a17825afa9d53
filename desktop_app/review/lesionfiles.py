"""Saving a series' lesions: the JSON part (verdicts, measurements, geometry) and the label
volume packed as a compressed ``.npz`` of its non-zero bounding box (no pickle), read back with
bounds checks (the shape the review names, the crop inside it, uint16, every id known).
"""

from __future__ import annotations

import hashlib
import io
import math
import zipfile
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import numpy as np

from desktop_app.inference.lesions import MaskGeometry
from desktop_app.infra.errors import ReviewStateError
from desktop_app.review.lesionreview import (
    MAX_LESION_ID,
    LesionReview,
    SeriesLesions,
    _opt,
)

#: The largest label volume read back from a saved review (2048 slices of 512 x 512).
MAX_SAVED_VOXELS = 2**29


def geometry_to_dict(geometry: MaskGeometry | None) -> dict[str, Any] | None:
    if geometry is None:
        return None
    data = asdict(geometry)
    return {k: (None if v is None else _lists(v)) for k, v in data.items()}


def _lists(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_lists(v) for v in value]
    return value


def geometry_from_dict(data: Any) -> MaskGeometry | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError("lesion geometry should be an object")

    def floats(value: Any) -> tuple[float, ...] | None:
        return None if value is None else tuple(float(v) for v in value)

    spacing = floats(data["pixel_spacing"])
    if spacing is None or len(spacing) != 2:
        raise ValueError("lesion geometry: pixel_spacing should be two numbers")
    images = data.get("image_positions")
    orientation = floats(data.get("orientation"))
    if orientation is not None and len(orientation) != 6:
        raise ValueError("lesion geometry: orientation should be six numbers")
    return MaskGeometry(
        pixel_spacing=(spacing[0], spacing[1]),
        slice_positions=floats(data.get("slice_positions")),
        slice_spacing=_opt(data.get("slice_spacing")),
        slice_thickness=_opt(data.get("slice_thickness")),
        image_positions=None
        if images is None
        else tuple((float(p[0]), float(p[1]), float(p[2])) for p in images),
        orientation=orientation,  # type: ignore[arg-type]
    )


def series_to_dict(series: SeriesLesions) -> dict[str, Any]:
    """The JSON part of a series' lesions (the label volume is saved beside it)."""
    return {
        "series_uid": series.series_uid,
        "label": series.label,
        "shape": list(series.shape),
        "geometry": geometry_to_dict(series.geometry),
        "model_sha256": series.model_sha256,
        "value_unit": series.value_unit,
        "next_id": series.next_id,
        "slice_refs": [[uid, frame] for uid, frame in series.slice_refs],
        "lesions": [lesion.to_dict() for lesion in series.ordered()],
    }


def series_from_dict(series_key: str, data: Any, labels: np.ndarray) -> SeriesLesions:
    """A series' lesions from its JSON part and its label volume (checked by the caller with
    :func:`unpack_labels`)."""
    if not isinstance(data, dict):
        raise ValueError(f"lesions of {series_key} should be an object")
    lesions = [LesionReview.from_dict(item, series_key) for item in data.get("lesions", [])]
    return SeriesLesions(
        series_key=series_key,
        series_uid=str(data.get("series_uid", "")),
        label=str(data.get("label", "")),
        labels=labels,
        geometry=geometry_from_dict(data.get("geometry")),
        lesions={lesion.lesion_id: lesion for lesion in lesions},
        model_sha256=str(data.get("model_sha256", "")),
        value_unit=str(data.get("value_unit", "")),
        next_id=int(data.get("next_id", 1)),
        slice_refs=_slice_refs(data.get("slice_refs"), labels.shape[0]),
    )


def _slice_refs(value: Any, slices: int) -> tuple[tuple[str, int], ...]:
    if not value:
        return ()
    if not isinstance(value, list) or len(value) != slices:
        raise ValueError(f"slice_refs should list one image per slice ({slices})")
    return tuple((str(uid), int(frame)) for uid, frame in value)


def pack_labels(series: SeriesLesions) -> bytes:
    """The label volume as a compressed ``.npz`` of its non-zero bounding box (``labels``,
    ``offset``, ``shape``); cached until the next edit."""
    if series._packed is not None and series._packed[0] == series.version:
        return series._packed[1]
    labels = series.labels
    extent = series.nonzero_extent()  # from the lesions' boxes: no pass over the volume
    if extent is not None:
        z0, z1, r0, r1, c0, c1 = extent
        lo, crop = [z0, r0, c0], labels[z0:z1, r0:r1, c0:c1]
    else:
        lo, crop = [0, 0, 0], np.zeros((0, 0, 0), dtype=np.uint16)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        labels=np.ascontiguousarray(crop, dtype=np.uint16),
        offset=np.asarray(lo, dtype=np.int64),
        shape=np.asarray(series.shape, dtype=np.int64),
    )
    data = buffer.getvalue()
    series._packed = (series.version, data)
    return data


def labels_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _declared_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """The bytes the ``.npy`` member's header declares (shape x item size), read from its
    first bytes alone: a 1 kB member may declare terabytes, which ``np.load`` would allocate."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _fortran, dtype = read_header(member)
    if dtype.hasobject:
        raise ValueError("an object array")
    return math.prod(int(n) for n in shape) * dtype.itemsize


def unpack_labels(
    data: bytes, shape: Iterable[int], known_ids: Iterable[int], where: str = ""
) -> np.ndarray:
    """The label volume saved by :func:`pack_labels`, checked: the shape the review names, the
    crop inside it, uint16, and every id one of ``known_ids``. Raises ReviewStateError (one
    line) on anything off."""
    want = tuple(int(v) for v in shape)

    def bad(reason: str) -> ReviewStateError:
        return ReviewStateError(
            f"lesion mask {reason}", where or None, "the lesions of that series start over"
        )

    if len(want) != 3 or min(want) < 1 or math.prod(want) > MAX_SAVED_VOXELS:
        raise bad(f"shape {want} is not a (slices, rows, cols) volume up to {MAX_SAVED_VOXELS:,}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:  # sizes before inflating anything
            inflated = sum(info.file_size for info in archive.infolist())
            if inflated > 2 * math.prod(want) + 4096:
                raise bad(f"would inflate to {inflated:,} bytes, more than the series' volume")
            declared = sum(_declared_bytes(archive, info) for info in archive.infolist())
        if declared > 2 * math.prod(want) + 4096:  # np.load allocates what a header says
            raise bad(f"declares arrays of {declared:,} bytes, more than the series' volume")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            crop, offset, saved = npz["labels"], npz["offset"], npz["shape"]
    except (OSError, ValueError, KeyError, EOFError, MemoryError, zipfile.BadZipFile) as err:
        raise bad(f"is damaged ({type(err).__name__})") from None
    got = tuple(int(v) for v in np.ravel(saved))
    if got != want:
        raise bad(f"is {got}, not the series' {want}")
    if crop.dtype != np.uint16 or crop.ndim != 3 or offset.shape != (3,):
        raise bad(f"holds {crop.dtype} {crop.shape} at {offset.shape}, not uint16 (s, r, c)")
    lo = [int(v) for v in offset]
    if any(o < 0 or o + n > w for o, n, w in zip(lo, crop.shape, want, strict=True)):
        raise bad(f"crop {crop.shape} at {tuple(lo)} is outside {want}")
    allowed = np.zeros(MAX_LESION_ID + 1, dtype=bool)
    allowed[0] = True
    for lesion_id in known_ids:
        allowed[int(lesion_id)] = True
    if crop.size and not allowed[crop].all():
        unknown = sorted({int(v) for v in np.unique(crop) if not allowed[v]})[:5]
        raise bad(f"holds lesion ids {unknown} the review does not list")
    labels = np.zeros(want, dtype=np.uint16)
    labels[
        lo[0] : lo[0] + crop.shape[0], lo[1] : lo[1] + crop.shape[1], lo[2] : lo[2] + crop.shape[2]
    ] = crop
    return labels


__all__ = [
    "MAX_SAVED_VOXELS",
    "geometry_from_dict",
    "geometry_to_dict",
    "labels_digest",
    "pack_labels",
    "series_from_dict",
    "series_to_dict",
    "unpack_labels",
]
