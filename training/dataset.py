"""Cached datasets: decode and preprocess every image once, then train from memory.

Decoding a radiograph and normalising, resizing and padding it (``desktop_app.model.preprocessing``
steps 1-5, the *unit image*) is the expensive part of a data pipeline; it is done once per
image (``load_units``) and kept as one (N, S, S) tensor (CacheDataset-style). Each epoch then
only augments (train) and scales to the network input (steps 6-7), which is cheap.

Optionally the unit images are also kept on disk as ``.npy`` files (``cache_dir``), keyed by
the SHA-256 of (resolved path, size, mtime, preprocessing spec, dtype), so that a second run
(another fold, a resumed run, evaluation) skips decoding. The folder is created with mode 0700
and refused if someone else owns it or can write to it; files are read with
``np.load(allow_pickle=False)`` and checked for shape and dtype, so nothing is ever unpickled
from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from desktop_app.infra.atomicio import atomic_path
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import ConfigError, DataError, RadAssistError
from desktop_app.model.preprocessing import PreprocessSpec, to_network_input, unit_image
from training.augment import Augmenter, sample_seed
from training.data import Dataset, Record

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


class Stopped(Exception):
    """Raised inside long work when the stop flag is set (callers turn it into a result)."""


# --------------------------------------------------------------------------- disk cache


def prepare_cache_dir(path: str | os.PathLike[str]) -> Path:
    """Create (mode 0700) or check a private cache folder; refuse one that others can write."""
    p = Path(path)
    try:
        p.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = p.stat()
    except OSError as err:
        raise ConfigError(f"cache folder can't be created: {err.strerror or err}", p) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError("cache path is not a folder", p, "choose a folder for --cache-dir")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise ConfigError(
            "cache folder belongs to another user", p, "choose a folder of your own for --cache-dir"
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            "cache folder is writable by other users",
            p,
            f"run chmod 700 {p}, or choose another --cache-dir",
        )
    return p


def cache_key(path: Path, spec: PreprocessSpec, dtype: str) -> str:
    """SHA-256 over the file's identity (resolved path, size, mtime) and the preprocessing."""
    st = path.stat()
    ident = {
        "format": CACHE_FORMAT,
        "path": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "spec": spec.to_dict(),
        "dtype": dtype,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def _load_cached(file: Path, size: int, dtype: str) -> np.ndarray | None:
    try:
        with open(file, "rb") as fh:
            arr = np.load(fh, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as err:
        log.warning("ignoring a damaged cache file %s (%s)", file.name, type(err).__name__)
        return None
    if not isinstance(arr, np.ndarray) or arr.shape != (size, size) or arr.dtype != np.dtype(dtype):
        log.warning("ignoring a cache file of the wrong shape or type: %s", file.name)
        return None
    return arr


def _store_cached(file: Path, arr: np.ndarray) -> None:
    try:
        with atomic_path(file, mode=0o600) as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
    except OSError as err:  # a full disk must not stop training
        log.warning("could not write cache file %s: %s", file.name, err)


# --------------------------------------------------------------------------- decoding


def decode_unit(record: Record, spec: PreprocessSpec, source: Path | None = None) -> np.ndarray:
    """One record -> its unit image (S, S) float32; DataError naming the row on failure."""
    from desktop_app.model.imageio import read_image

    try:
        image = read_image(record.path)
        unit, _ = unit_image(
            image.values, spec, photometric=image.photometric, file_window=image.file_window
        )
    except RadAssistError as err:
        raise DataError(
            f"row {record.row}: image {record.path.name} can't be read: {err.reason}",
            source or record.path,
            "fix or replace the file, or remove its row",
        ) from None
    except (ValueError, MemoryError) as err:
        raise DataError(
            f"row {record.row}: image {record.path.name} can't be preprocessed: {err}",
            source or record.path,
            "fix or replace the file, or remove its row",
        ) from None
    return unit


def load_units(
    records: Sequence[Record],
    spec: PreprocessSpec,
    *,
    dtype: str = "float32",
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int = 1,
    source: Path | None = None,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> torch.Tensor:
    """Decode + preprocess ``records`` once: a (N, S, S) tensor of unit images.

    ``workers`` threads decode in parallel (pydicom, numpy and torch release the GIL for the
    heavy parts). Raises Stopped when ``stop`` is set between images.
    """
    size = spec.image_size
    torch_dtype = getattr(torch, dtype)
    out = torch.empty((len(records), size, size), dtype=torch_dtype)
    folder = prepare_cache_dir(cache_dir) if cache_dir is not None else None
    start = time.perf_counter()
    hits = 0

    def one(i: int) -> bool:
        if stop_requested(stop):
            raise Stopped
        record = records[i]
        file = None
        if folder is not None:
            file = folder / f"{cache_key(record.path, spec, dtype)}.npy"
            cached = _load_cached(file, size, dtype)
            if cached is not None:
                out[i] = torch.from_numpy(cached)
                return True
        unit = decode_unit(record, spec, source).astype(dtype, copy=False)
        out[i] = torch.from_numpy(unit)
        if file is not None:
            _store_cached(file, unit)
        return False

    total = len(records)
    done = 0
    if workers <= 1 or total < 4:
        for i in range(total):
            hits += one(i)
            done += 1
            if progress is not None:
                progress(done, total)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            futures = [pool.submit(one, i) for i in range(total)]
            try:
                for future in futures:
                    hits += future.result()
                    done += 1
                    if progress is not None:
                        progress(done, total)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    log.info(
        "decoded %d images in %.1f s (%d from the disk cache)",
        total - hits,
        time.perf_counter() - start,
        hits,
    )
    return out


# --------------------------------------------------------------------------- datasets


def network_input(unit: torch.Tensor | np.ndarray, spec: PreprocessSpec) -> torch.Tensor:
    """A unit image (S, S) -> the network input (C, S, S): preprocessing steps 6-7."""
    arr = unit.numpy() if isinstance(unit, torch.Tensor) else unit
    return torch.from_numpy(to_network_input(np.asarray(arr, dtype=np.float32), spec))


class UnitImageDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """Items ``(input (C, S, S), labels (L,), index)`` from cached unit images.

    ``units`` and ``labels`` cover the whole dataset; ``indices`` picks this split's rows.
    With an ``augmenter`` (train only), sample ``k`` of epoch ``e`` is augmented with the seed
    ``sample_seed(seed, e, k)``; call :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        units: torch.Tensor,
        labels: np.ndarray,
        indices: Sequence[int],
        spec: PreprocessSpec,
        augmenter: Augmenter | None = None,
        seed: int = 0,
    ) -> None:
        self.units = units
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.float32))
        self.indices = list(indices)
        self.spec = spec
        self.augmenter = augmenter
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        k = self.indices[i]
        unit = self.units[k].to(torch.float32)
        if self.augmenter is not None:
            unit = self.augmenter(unit, sample_seed(self.seed, self.epoch, k))
        return network_input(unit, self.spec), self.labels[k], k


def dataset_units(
    data: Dataset,
    indices: Sequence[int],
    spec: PreprocessSpec,
    **kwargs: object,
) -> torch.Tensor:
    """Unit images for ``indices`` of ``data`` only (the rest stay zero, never read)."""
    records = [data.records[i] for i in indices]
    part = load_units(records, spec, source=data.source, **kwargs)  # type: ignore[arg-type]
    full = torch.zeros((len(data.records), *part.shape[1:]), dtype=part.dtype)
    if len(indices):
        full[list(indices)] = part
    return full
