"""RLE Lossless frames (PS3.5 Annex G): the header check and the pylibjpeg-rle fast path.

pylibjpeg-rle (Rust) decodes ~4x faster than pydicom's Python decoder; a frame it can't take
(a bad header, an error, a Rust panic) returns None here and ``decode`` falls back to
pydicom's decoder, which bounds-checks in Python.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import math
import os
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pydicom.pixels
from pydicom.uid import RLELossless

from desktop_app.dicom.pixels.geometry import PixelGeometry

log = logging.getLogger(__name__)


def rle_header_ok(frame: bytes, segments: int) -> bool:
    """Whether an RLE frame's header is sane (PS3.5 G.5): 64 bytes of 16 little-endian
    uint32, the number of segments first (``segments`` = Samples per Pixel x bytes per sample,
    G.2), then 15 offsets: the first 64, each larger than the last and inside the frame, the
    unused ones 0."""
    if len(frame) < 64 or not 1 <= segments <= 15:
        return False
    count, *offsets = struct.unpack("<16L", frame[:64])
    if count != segments or offsets[0] != 64:
        return False
    used = offsets[:count]
    if any(b <= a for a, b in itertools.pairwise(used)) or used[-1] >= len(frame):
        return False
    return not any(offsets[count:])


_NATIVE_STDERR_LOCK = threading.Lock()
_native_stderr_sink: Any = None  # one anonymous temporary file per process, reused under the lock


@contextlib.contextmanager
def _native_stderr_held() -> Iterator[list[bytes]]:
    """Send what native code writes to file descriptor 2 into a buffer for the duration (the
    caller decides whether to replay it: ``held[0]``). One holder at a time, process-wide; if
    descriptor 2 can't be redirected (no stderr), nothing is held. The sink is created once
    and emptied before each use, so a series of RLE frames creates no file per frame."""
    global _native_stderr_sink
    held: list[bytes] = []
    with _NATIVE_STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            yield held
            return
        try:
            if _native_stderr_sink is None:
                _native_stderr_sink = tempfile.TemporaryFile()  # noqa: SIM115 - lives with the process
                atexit.register(_native_stderr_sink.close)  # no ResourceWarning at exit
            sink = _native_stderr_sink
            sink.seek(0)
            sink.truncate()
            os.dup2(sink.fileno(), 2)
            try:
                yield held
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                held.append(sink.read())
        finally:
            os.close(saved)


def decode_rle_fast(
    single: bytes, frame: bytes, geometry: PixelGeometry, opts: dict[str, Any]
) -> np.ndarray | None:
    """RLE Lossless through pylibjpeg-rle (Rust; ~4x faster than pydicom's Python decoder),
    or None to fall back to pydicom's decoder.

    Only a frame whose header is sane (:func:`rle_header_ok`) is tried. pylibjpeg-rle raises
    ValueError on most damage but panics (a ``PanicException``, a BaseException, after its
    panic hook printed a message and maybe a backtrace on stderr) when a segment decodes to
    more bytes than the frame holds; both mean: fall back. Descriptor 2 is held while it runs,
    and what was written there is replayed unless it panicked.
    """
    samples = int(geometry.samples)
    bytes_per_sample = math.ceil(int(opts.get("bits_allocated", 8)) / 8)
    if not rle_header_ok(frame, samples * bytes_per_sample):
        return None
    try:
        import rle  # noqa: F401  # pylibjpeg-rle: pydicom's "pylibjpeg" RLE plugin
    except ImportError:
        return None
    failed: BaseException | None = None
    arr: Any = None
    with _native_stderr_held() as held:
        try:
            arr, _ = pydicom.pixels.get_decoder(RLELossless).as_array(
                single, index=0, validate=True, decoding_plugin="pylibjpeg", **opts
            )
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # PanicException derives from BaseException
            failed = err
    if held and held[0] and failed is None:
        os.write(2, held[0])
    if failed is not None:
        log.debug("pylibjpeg-rle failed (%s); using pydicom's RLE decoder", type(failed).__name__)
        return None
    return np.asarray(arr)
