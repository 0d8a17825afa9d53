"""A lazily loaded stack of images: decode one slice on demand, the rest in the background.

``SeriesVolume(stack)`` reads nothing until asked. ``stored(i)`` decodes slice ``i`` (once;
thread-safe) into one contiguous buffer of stored values, so a whole series costs its raw
voxel bytes and no more: the Modality LUT (PS3.3 C.11.1) is applied per slice when a
:class:`~desktop_app.dicom.pixels.Frame` is asked for (``frame(i)``), never to the whole
volume (float32 would double int16 data). ``start_background_load`` decodes the remaining
slices on a thread pool, nearest to the shown slice first, so the first image is on screen
long before the series is read.

Fast path: native (uncompressed) little-endian grey pixel data (PS3.5 A.1 and A.2, 8.1.1) is
read straight from the file into the buffer at the offset that the header walk found
(``dicomfile.pixel_data_info``), with no pydicom dataset parse and no intermediate copy; the
read releases the GIL, so threads overlap. Unused high bits are cleared (signed data sign
extended) exactly as pydicom does (PS3.5 8.1.1). Everything else goes through
``pixels.decode_frame``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from desktop_app.dicom.dicomfile import quiet_pydicom, read_header
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.dicom.pixels import Frame, decode_frame, frame_from_stored
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.cpus import available_cpus
from desktop_app.infra.errors import (
    FATAL,
    DicomReadError,
    LimitExceededError,
    PixelDecodeError,
    RadAssistError,
)
from desktop_app.studies.index import InstanceInfo
from desktop_app.studies.series import SliceStack, instance_stack

log = logging.getLogger(__name__)


_NATIVE_LE = frozenset({str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)})
_GREY = frozenset({"MONOCHROME1", "MONOCHROME2"})
_SLICE_LOCKS = 64


def native_layout(inst: InstanceInfo) -> tuple[np.dtype, int] | None:
    """(dtype, bytes per frame) when ``inst`` can take the fast path, else None.

    Fast-path data: top-level Pixel Data, not encapsulated or deflated, little endian, one
    sample per pixel, MONOCHROME1/2, Bits Allocated 8, 16 or 32 (PS3.5 8.1.1), and enough bytes
    for every frame.
    """
    info = inst.pixel_data
    if (
        info is None
        or info.keyword != "PixelData"
        or info.length is None
        or info.deflated
        or not info.little_endian
        or inst.transfer_syntax_uid not in _NATIVE_LE
        or inst.samples_per_pixel != 1
        or inst.photometric not in _GREY
        or inst.bits_allocated not in (8, 16, 32)
        or not 1 <= inst.bits_stored <= inst.bits_allocated
        or inst.pixel_representation not in (0, 1)
        or inst.rows < 1
        or inst.columns < 1
    ):
        return None
    itemsize = inst.bits_allocated // 8
    frame_bytes = inst.rows * inst.columns * itemsize
    if info.length < frame_bytes * max(inst.number_of_frames, 1):
        return None  # short pixel data: the slow path reports it properly
    if info.value_offset + info.length > info.file_size:
        return None
    kind = "i" if inst.pixel_representation == 1 else "u"
    return np.dtype(f"<{kind}{itemsize}"), frame_bytes


def read_native_frame(
    inst: InstanceInfo, frame: int, out: np.ndarray | None = None
) -> np.ndarray | None:
    """Read one native frame straight from the file (see :func:`native_layout`).

    Returns the (rows, columns) stored values, written into ``out`` when given, or None when
    the file does not qualify (or changed since it was indexed); the caller then decodes
    through pydicom. Raises DicomReadError when the file can't be read.
    """
    layout = native_layout(inst)
    if layout is None:
        return None
    if not 0 <= frame < max(inst.number_of_frames, 1):
        raise PixelDecodeError(f"frame {frame} is out of range", inst.path)
    if out is None:
        out = np.empty((inst.rows, inst.columns), dtype=layout[0])
    elif (
        out.dtype != layout[0]
        or out.shape != (inst.rows, inst.columns)
        or not out.flags.c_contiguous
    ):
        return None
    block = read_native_frames(inst, frame, 1, out.reshape(1, inst.rows, inst.columns))
    return None if block is None else out


def read_native_frames(
    inst: InstanceInfo, first: int, count: int, out: np.ndarray | None = None
) -> np.ndarray | None:
    """Read frames ``first`` to ``first + count`` of a native object in one read (see
    :func:`read_native_frame`): a (count, rows, columns) array, or None when the file does not
    qualify. ``radassist inspect`` checks a multi-frame object's frames this way, a block at
    a time, instead of one open-seek-read per frame."""
    layout = native_layout(inst)
    info = inst.pixel_data
    if layout is None or info is None:
        return None
    dtype, frame_bytes = layout
    frames = max(inst.number_of_frames, 1)
    if count < 1 or not first >= 0 or first + count > frames:
        raise PixelDecodeError(f"frames {first} to {first + count - 1} are out of range", inst.path)
    shape = (count, inst.rows, inst.columns)
    if out is None:
        out = np.empty(shape, dtype=dtype)
    elif out.dtype != dtype or out.shape != shape or not out.flags.c_contiguous:
        return None
    wanted = frame_bytes * count
    try:
        with open(inst.path, "rb", buffering=0) as fh:
            if os.fstat(fh.fileno()).st_size != info.file_size:
                return None  # changed since indexing
            fh.seek(info.value_offset + first * frame_bytes)
            view = memoryview(out.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
            got = 0
            while got < wanted:
                n = fh.readinto(view[got:])
                if not n:
                    break
                got += n
    except OSError as err:
        raise DicomReadError(
            f"pixel data can't be read: {err.strerror or type(err).__name__}", inst.path
        ) from None
    if got < wanted:
        cut = first + got // frame_bytes
        raise PixelDecodeError(
            f"pixel data of frame {cut} is cut off ({got % frame_bytes} of {frame_bytes} bytes)",
            inst.path,
            "the file is truncated; re-export or re-transfer it",
        )
    shift = inst.bits_allocated - inst.bits_stored
    if shift:
        # PS3.5 8.1.1: bits above Bits Stored are not pixel data; pydicom clears them the same
        # way (shift left, then arithmetic shift right sign-extends signed data).
        np.left_shift(out, shift, out=out)
        np.right_shift(out, shift, out=out)
    return out


def instance_frame(
    inst: InstanceInfo, frame: int = 0, *, limits: ReadLimits = DEFAULT_LIMITS
) -> Frame:
    """One frame of one indexed instance, ready for display, without assembling its series.

    For a preview while the index is still running (``index_paths(on_instance=...)``): the
    first image can be on screen after one header read and one frame decode.
    """
    return SeriesVolume(instance_stack(inst), limits=limits, keep=False).frame(frame)


@dataclass
class BackgroundLoad:
    """A running background load; ``wait()`` blocks until it ends, ``cancel()`` stops it."""

    future: Future[None]
    _cancel: threading.Event

    def cancel(self) -> None:
        self._cancel.set()

    def done(self) -> bool:
        return self.future.done()

    def wait(self, timeout: float | None = None) -> bool:
        """True when the load has finished (all slices, or stopped)."""
        try:
            self.future.result(timeout)
        except TimeoutError:
            return False
        return True


class SeriesVolume:
    """The images of one :class:`~desktop_app.studies.series.SliceStack`, decoded lazily.

    ``keep=False`` decodes without caching (``radassist inspect`` checks every image with
    constant memory). All methods are thread-safe.
    """

    def __init__(
        self,
        stack: SliceStack,
        *,
        limits: ReadLimits = DEFAULT_LIMITS,
        keep: bool = True,
        header_cache: int = 8,
    ) -> None:
        if not stack.slices:
            raise DicomReadError("the stack holds no images")
        self.stack = stack
        self.limits = limits
        self.keep = keep
        n = len(stack.slices)
        # One lock per slice, striped: a 100,000-frame object gets 64 locks, not 100,000.
        self._slice_locks = [threading.Lock() for _ in range(min(n, _SLICE_LOCKS))]
        self._lock = threading.Lock()
        self._loaded = np.zeros(n, dtype=bool)
        self._buffer: np.ndarray | None = None
        self._extra: dict[int, np.ndarray] = {}
        self._errors: dict[int, RadAssistError] = {}
        self._headers: OrderedDict[Path, Dataset] = OrderedDict()
        self._header_cache = max(1, header_cache)
        layout = native_layout(stack.slices[0].instance)
        if keep and layout is not None:
            self._allocate((n, stack.rows, stack.columns), layout[0])

    # ------------------------------------------------------------------ shape and state
    def __len__(self) -> int:
        return len(self.stack.slices)

    @property
    def shape(self) -> tuple[int, ...] | None:
        """(slices, rows, columns[, samples]) once the first slice is decoded, else None."""
        with self._lock:
            return None if self._buffer is None else tuple(self._buffer.shape)

    @property
    def loaded_count(self) -> int:
        with self._lock:
            return int(self._loaded.sum())

    def is_loaded(self, index: int) -> bool:
        with self._lock:
            return bool(self._loaded[index])

    @property
    def errors(self) -> dict[int, RadAssistError]:
        """Slices that could not be decoded, by index (each error names its file)."""
        with self._lock:
            return dict(self._errors)

    @property
    def nbytes(self) -> int:
        """Bytes held for decoded slices (the buffer plus odd-shaped extras)."""
        with self._lock:
            extra = sum(a.nbytes for a in self._extra.values())
            return (0 if self._buffer is None else self._buffer.nbytes) + extra

    def middle(self) -> int:
        return len(self) // 2

    # ------------------------------------------------------------------ decoding
    def _allocate(self, shape: tuple[int, ...], dtype: np.dtype) -> None:
        # np.empty maps memory lazily: pages cost RAM only once a slice is written.
        self._buffer = np.empty(shape, dtype=dtype)

    def header(self, index: int) -> Dataset:
        """The header of slice ``index``'s file (a small LRU cache of parsed headers)."""
        path = self.stack.slices[index].instance.path
        with self._lock:
            ds = self._headers.get(path)
            if ds is not None:
                self._headers.move_to_end(path)
                return ds
        ds = read_header(path, limits=self.limits)
        with self._lock:
            self._headers[path] = ds
            while len(self._headers) > self._header_cache:
                self._headers.popitem(last=False)
        return ds

    def _decode(self, index: int) -> np.ndarray:
        ref = self.stack.slices[index]
        inst = ref.instance
        target: np.ndarray | None = None
        if self.keep and self._buffer is not None and self._buffer.ndim == 3:
            target = self._buffer[index]
        layout = native_layout(inst)
        if layout is not None:
            objbytes = layout[1] * max(inst.number_of_frames, 1)
            if objbytes > self.limits.max_object_bytes:
                raise LimitExceededError(
                    f"declared pixel data is {objbytes} bytes, over the limit of "
                    f"{self.limits.max_object_bytes}",
                    inst.path,
                )
            arr = read_native_frame(inst, ref.frame, target)
            if arr is not None:
                return arr
        ds = self.header(index)
        arr = decode_frame(inst.path, ref.frame, ds=ds, limits=self.limits)
        return np.asarray(arr)

    def stored(self, index: int) -> np.ndarray:
        """Slice ``index``'s stored values (colour as RGB), decoded once; read-only.

        Raises the project's DicomReadError (or a subclass) naming the file when the slice
        can't be decoded; the error is remembered and raised again on the next call.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"slice {index} is out of range 0..{len(self) - 1}")
        with self._slice_locks[index % len(self._slice_locks)]:
            with self._lock:
                if self._loaded[index]:
                    return self._view(index)
                err = self._errors.get(index)
            if err is not None:
                raise err
            try:
                with quiet_pydicom():
                    arr = self._decode(index)
            except RadAssistError as known:
                with self._lock:
                    self._errors[index] = known
                raise
            except BaseException as err:
                if isinstance(err, FATAL):
                    raise
                path = self.stack.slices[index].instance.path
                if isinstance(err, MemoryError):
                    error = PixelDecodeError("not enough memory to decode this image", path)
                else:  # a decoder's own bug or panic: still one line, for this slice only
                    log.debug("unexpected error decoding %s", path, exc_info=True)
                    text = " ".join(str(err).split())
                    error = PixelDecodeError(
                        f"unexpected error: {type(err).__name__}: {text}", path
                    )
                with self._lock:
                    self._errors[index] = error
                raise error from None
            if not self.keep:
                arr.flags.writeable = False
                return arr
            with self._lock:
                self._store(index, arr)
                self._loaded[index] = True
                return self._view(index)

    def _store(self, index: int, arr: np.ndarray) -> None:
        if self._buffer is None:
            self._allocate((len(self), *arr.shape), arr.dtype)
        buf = self._buffer
        assert buf is not None
        if arr.shape == buf.shape[1:] and arr.dtype == buf.dtype:
            if not np.shares_memory(arr, buf):
                buf[index] = arr
        else:
            self._extra[index] = arr  # odd one out: kept as decoded

    def _view(self, index: int) -> np.ndarray:
        arr = self._extra.get(index)
        if arr is None:
            assert self._buffer is not None
            arr = self._buffer[index]
        view = arr.view()
        view.flags.writeable = False
        return view

    def frame(self, index: int) -> Frame:
        """Slice ``index`` ready for display: Modality LUT or palette applied, windows read."""
        return self.to_frame(index, self.stored(index))

    def to_frame(self, index: int, stored: np.ndarray) -> Frame:
        """A Frame from slice ``index``'s stored values (as returned by ``stored``)."""
        ref = self.stack.slices[index]
        ds = self.header(index)
        with quiet_pydicom():
            return frame_from_stored(
                np.asarray(stored), ds, ref.frame, path=ref.instance.path, limits=self.limits
            )

    # ------------------------------------------------------------------ background
    def load_order(self, first: int | None = None) -> list[int]:
        """Slice indices nearest ``first`` (default: the middle) first, alternating sides."""
        n = len(self)
        start = self.middle() if first is None else min(max(first, 0), n - 1)
        order = [start]
        for step in range(1, n):
            for i in (start + step, start - step):
                if 0 <= i < n:
                    order.append(i)
        return order

    def start_background_load(
        self,
        progress: Progress | None = None,
        stop: StopFlag = None,
        *,
        first: int | None = None,
        workers: int | None = None,
    ) -> BackgroundLoad:
        """Decode every slice on ``workers`` threads, nearest ``first`` first.

        ``progress(done, total)`` is called from the worker threads; ``stop`` (or the
        returned handle's ``cancel()``) ends the load between slices. Failures are kept in
        ``errors`` and do not stop the load.
        """
        cancel = threading.Event()
        order = iter(self.load_order(first))
        total = len(self)
        n_workers = max(1, workers or min(4, available_cpus() + 1))
        lock = threading.Lock()
        done = 0

        # Each worker pulls the next index itself: no per-slice futures to wait on, so no
        # thread wakes up (and takes the GIL) for every slice but the ones doing the work.
        def work() -> None:
            nonlocal done
            while not cancel.is_set():
                if stop_requested(stop):
                    cancel.set()
                    return
                with lock:
                    index = next(order, None)
                if index is None:
                    return
                try:
                    self.stored(index)
                except RadAssistError:
                    pass  # kept in self.errors
                except BaseException as err:  # never let one slice kill the load
                    if isinstance(err, FATAL):
                        raise
                    log.debug("unexpected error decoding slice %d", index, exc_info=True)
                with lock:
                    done += 1
                    count = done
                if progress is not None:
                    progress(count, total)

        coordinator: Future[None] = Future()
        threads = [
            threading.Thread(target=work, name=f"radassist-load-{k}", daemon=True)
            for k in range(n_workers)
        ]

        def drive() -> None:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            coordinator.set_result(None)

        threading.Thread(target=drive, name="radassist-load-driver", daemon=True).start()
        return BackgroundLoad(coordinator, cancel)

    def load_all(
        self, progress: Progress | None = None, stop: StopFlag = None, *, workers: int | None = None
    ) -> np.ndarray:
        """Decode every slice (in parallel) and return the stacked stored values, read-only.

        Raises the first slice's error (in slice order) when any slice failed, or
        DicomReadError when stopped before the end.
        """
        handle = self.start_background_load(progress, stop, workers=workers)
        handle.wait()
        errors = self.errors
        if errors:
            raise errors[min(errors)]
        with self._lock:
            if not self._loaded.all():
                raise DicomReadError("loading was stopped before every slice was read")
            if self._extra:
                raise PixelDecodeError(
                    f"{len(self._extra)} slice(s) decode to a different shape or type",
                    self.stack.slices[min(self._extra)].instance.path,
                )
            assert self._buffer is not None
            view = self._buffer.view()
        view.flags.writeable = False
        return view
