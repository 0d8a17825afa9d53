"""Safe reading of one DICOM file's header or whole dataset with pydicom (PS3.10 file format).

Before pydicom sees a file, its element structure is walked and checked against
:class:`ReadLimits` (:mod:`desktop_app.dicom.walk`; :mod:`desktop_app.dicom.headerscan` for a
header). Only a file that passes is handed to pydicom, and any exception pydicom still raises
is turned into the project's own one-line errors (:class:`NotDicomError`,
:class:`DicomReadError`, :class:`LimitExceededError`), each naming the path. The walk's
results (:class:`ScanResult`, :class:`PixelDataInfo`, :class:`TopLevel`) and the walks
themselves (:func:`scan_file`, :func:`scan_header`) are importable from here too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pydicom.config
import pydicom.hooks
from pydicom.dataset import Dataset

from desktop_app.dicom.headerscan import scan_header
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.dicom.structure import (
    HINT_CORRUPT,
    PIXEL_KEYWORDS,
    PixelDataInfo,
    ScanResult,
    TopLevel,
    plausible_first_element,
)
from desktop_app.dicom.walk import scan_file
from desktop_app.infra.errors import FATAL, DicomReadError, PathLike

__all__ = [
    "PIXEL_KEYWORDS",
    "PixelDataInfo",
    "ScanResult",
    "TopLevel",
    "pixel_data_info",
    "quiet_pydicom",
    "read_dataset",
    "read_header",
    "read_scanned_header",
    "scan_file",
    "scan_header",
    "scan_notes",
    "sniff_dicom",
]

log = logging.getLogger(__name__)


# pydicom validates values while reading and warns (with the value in the message, which may be
# a patient's name). The app never wants that: the values are used tolerantly (dsvalues).
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


def _tolerant_raw_element_value(raw: Any, data: dict[str, Any], **kwargs: Any) -> None:
    """pydicom's value conversion, falling back to the raw bytes as UN (PS3.5 6.2.2).

    A corrupt VR (e.g. 'DW') or an unconvertible value otherwise raises later, whenever any
    code touches the element (iterating, printing, anonymising). Registered as pydicom's
    ``raw_element_value`` hook.
    """
    try:
        _default_raw_element_value(raw, data, **kwargs)
    except Exception:
        data["VR"] = "UN"
        data["value"] = raw.value if isinstance(raw.value, bytes) else b""


def _tolerant_raw_element_vr(raw: Any, data: dict[str, Any], **kwargs: Any) -> None:
    """pydicom's VR lookup, falling back to UN when it fails (e.g. a malformed private tag)."""
    try:
        _default_raw_element_vr(raw, data, **kwargs)
    except Exception:
        data["VR"] = "UN"


_default_raw_element_value = pydicom.hooks.raw_element_value
_default_raw_element_vr = pydicom.hooks.raw_element_vr
pydicom.hooks.hooks.register_callback("raw_element_value", _tolerant_raw_element_value)
pydicom.hooks.hooks.register_callback("raw_element_vr", _tolerant_raw_element_vr)


# --------------------------------------------------------------------------- warnings


_quiet_lock = threading.Lock()
_quiet_users = 0
_QUIET_FILTERS = (
    ("ignore", None, UserWarning, None, 0),
    ("ignore", None, RuntimeWarning, None, 0),
)


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's and the decoders' UserWarnings while reading.

    Broken-but-readable files make pydicom warn; the core reports problems through its own
    exceptions and notes instead. ``warnings.catch_warnings`` is not thread-safe, so the
    filters are added while any reader is active (a counter) and removed by the last one.
    """
    global _quiet_users
    with _quiet_lock:
        if _quiet_users == 0:
            for entry in _QUIET_FILTERS:
                warnings.filters.insert(0, entry)  # type: ignore[attr-defined]
            _filters_mutated()
        _quiet_users += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_users -= 1
            if _quiet_users == 0:
                for entry in _QUIET_FILTERS:
                    # ValueError: someone reset the filters meanwhile
                    with contextlib.suppress(ValueError):
                        warnings.filters.remove(entry)  # type: ignore[attr-defined]
                _filters_mutated()


def _filters_mutated() -> None:
    mutated = getattr(warnings, "_filters_mutated", None)
    if mutated is not None:
        mutated()


# --------------------------------------------------------------------------- sniffing


def sniff_dicom(path: PathLike) -> bool:
    """Cheap check: 'DICM' at offset 128 (PS3.10 7.1), or a plausible first element.

    Files without the preamble and meta header (pre-PS3.10 files, e.g. an ACR-NEMA style
    dump) start directly with an element of group 0002 or 0008. PNG, text and other files
    give False. Never raises.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(144)
            size = os.fstat(fh.fileno()).st_size
    except (OSError, ValueError):
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    return plausible_first_element(head, size)


# --------------------------------------------------------------------------- reading


def _read_with_pydicom(
    p: Path, scan: ScanResult, *, stop_before_pixels: bool, defer_size: str | None
) -> Dataset:
    try:
        with quiet_pydicom():
            ds = pydicom.dcmread(
                p,
                stop_before_pixels=stop_before_pixels,
                force=True,
                defer_size=defer_size,
            )
    except (RecursionError, MemoryError) as err:
        raise DicomReadError(
            f"can't be read safely ({type(err).__name__})", p, HINT_CORRUPT
        ) from None
    except FATAL:
        raise
    except BaseException as err:
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise DicomReadError(f"can't be read as DICOM: {reason}", p, HINT_CORRUPT) from None
    if not isinstance(ds, Dataset):
        raise DicomReadError("can't be read as DICOM", p, HINT_CORRUPT)
    object.__setattr__(ds, "_radassist_pixel_info", scan.pixel)
    object.__setattr__(ds, "_radassist_scan_notes", tuple(scan.notes))
    return ds


def read_header(path: PathLike, *, limits: ReadLimits = DEFAULT_LIMITS) -> Dataset:
    """Read everything before the pixel data, after checking the whole file's structure.

    Like pydicom's ``stop_before_pixels``, but :func:`pixel_data_info` on the result still
    tells where the pixel data is, its length and its encoding. Values over 1 MiB are left in
    the file and read when first used. Files without preamble or meta header (PS3.10 7.1) are
    read when they start with a plausible element; the transfer syntax is then guessed as
    pydicom does.
    """
    scan, _ = scan_header(path, limits=limits)
    return read_scanned_header(scan)


def read_scanned_header(scan: ScanResult) -> Dataset:
    """:func:`read_header` of the file that :func:`scan_header` (or :func:`scan_file`) has
    just walked into ``scan``: pydicom's parse without a second walk."""
    defer = None if scan.deflated else "1 MB"
    return _read_with_pydicom(scan.path, scan, stop_before_pixels=True, defer_size=defer)


def read_dataset(path: PathLike, *, limits: ReadLimits = DEFAULT_LIMITS) -> Dataset:
    """Read the whole dataset, pixel data included, with the same checks as read_header."""
    p = Path(path)
    scan = scan_file(p, limits=limits)
    return _read_with_pydicom(p, scan, stop_before_pixels=False, defer_size=None)


def pixel_data_info(ds: Dataset) -> PixelDataInfo | None:
    """Where the pixel data of a dataset from read_header/read_dataset lives, or None."""
    info = ds.__dict__.get("_radassist_pixel_info")
    return info if isinstance(info, PixelDataInfo) else None


def scan_notes(ds: Dataset) -> tuple[str, ...]:
    """Oddities the structure walk noticed (tolerated, not errors), e.g. a guessed syntax."""
    notes = ds.__dict__.get("_radassist_scan_notes")
    return notes if isinstance(notes, tuple) else ()
