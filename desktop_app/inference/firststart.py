"""First start: the device RadAssist chose and the time per image on this computer.

On first start the app needs no configuration: ``auto`` picks CUDA, then MPS, then the CPU
(``devices.choose_device``). What the user wants to know next is how long an image will take
here. :func:`estimate_for_engine` times a few batch-1 forward passes of the loaded model at its
input size, through the engine's own forward path (ONNX Runtime or PyTorch, on the chosen
device), within a budget of a second or two, and reports the median.

The result is cached in the user data folder (``firststart.json``), keyed by the model (a
hash of its file header, which holds the manifest and the tensors' sha256), the device, and
the CPU model and count, so it is measured once per machine, model and device. The cache
look-up (:func:`cached_estimate`, :func:`badge_tooltip`) imports neither torch nor Qt: the GUI
may call it from its thread at any time.

The estimate is the network's forward pass only: reading and decoding a study, preprocessing
and Grad-CAM (for positive findings) come on top; ``radassist predict`` reports all of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import statistics
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from desktop_app.infra.atomicio import atomic_write_json
from desktop_app.infra.cpus import available_cpus
from desktop_app.infra.errors import ConfigError, ModelFileError
from desktop_app.infra.userdirs import data_dir
from desktop_app.model.paths import default_model_path

log = logging.getLogger(__name__)

CACHE_NAME = "firststart.json"
CACHE_FORMAT = 1
MAX_CACHE_ENTRIES = 32
DEFAULT_BUDGET_S = 1.5
MAX_PASSES = 20
MAX_HEADER_BYTES = 16 * 1024 * 1024  # the model-file format's own header limit

Clock = Callable[[], float]
Forward = Callable[[np.ndarray], object]


@dataclass(frozen=True)
class SpeedEstimate:
    """The measured time per image for one model on one device of this computer."""

    device: str  # "cpu", "cuda:0", "mps"
    backend: str  # the forward path: "onnxruntime", "torch", "torch-cuda"...
    ms_per_image: float  # median of the timed batch-1 passes
    passes: int
    seconds: float  # time spent measuring (warm-up included)
    model_key: str
    cpu_model: str
    cpu_count: int
    threads: int  # CPU threads the engine ran with
    measured_at: str  # ISO 8601, UTC
    from_cache: bool = False

    def badge_text(self) -> str:
        """The status bar badge, e.g. ``CPU · ~14 ms/image``."""
        return f"{self.device.upper()} · ~{format_ms(self.ms_per_image)}/image"

    def describe(self) -> str:
        """One line for the CLI and the badge's tooltip."""
        when = "cached from first start" if self.from_cache else "measured now"
        return (
            f"~{format_ms(self.ms_per_image)} per image on {self.device.upper()} "
            f"({self.backend}, {self.threads_text()}, batch 1, median of {self.passes} "
            f"passes; {when})"
        )

    def threads_text(self) -> str:
        return f"{self.threads} CPU thread" + ("" if self.threads == 1 else "s")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("from_cache")
        return data

    @classmethod
    def from_dict(cls, data: Any) -> SpeedEstimate:
        """Read a cache entry; ValueError if it is not one (the cache is then ignored)."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        try:
            estimate = cls(
                device=str(data["device"]),
                backend=str(data["backend"]),
                ms_per_image=float(data["ms_per_image"]),
                passes=int(data["passes"]),
                seconds=float(data["seconds"]),
                model_key=str(data["model_key"]),
                cpu_model=str(data["cpu_model"]),
                cpu_count=int(data["cpu_count"]),
                threads=int(data["threads"]),
                measured_at=str(data["measured_at"]),
                from_cache=True,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"bad entry: {err}") from None
        if not (math.isfinite(estimate.ms_per_image) and estimate.ms_per_image > 0):
            raise ValueError(f"bad time {estimate.ms_per_image!r}")
        return estimate


def format_ms(ms: float) -> str:
    """``14 ms``, ``0.8 ms``, ``1.2 s``: two significant digits at most."""
    if ms >= 999.5:
        return f"{ms / 1000:.1f} s"
    if ms >= 9.95:  # what would print as 10.0
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


# --------------------------------------------------------------------------- this computer


def cpu_model(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux: ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return " ".join(value.split())
    return platform.processor() or platform.machine() or "unknown CPU"


def model_key(path: str | os.PathLike[str]) -> str:
    """A hash that names a model file: the sha256 of its safetensors header (which holds the
    manifest with the tensors' sha256), so any change to the weights or the manifest changes
    it, and a 4 GB file costs no more to key than a small one. ModelFileError if the file
    can't be read or is not a safetensors file."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            prefix = fh.read(8)
            if len(prefix) != 8:
                raise ModelFileError("file is too short to be a model file", p)
            (length,) = struct.unpack("<Q", prefix)
            if not 2 <= length <= MAX_HEADER_BYTES:
                raise ModelFileError("not a safetensors model file (bad header length)", p)
            header = fh.read(length)
    except OSError as err:
        raise ModelFileError(f"can't be read: {err.strerror or err}", p) from None
    if len(header) != length:
        raise ModelFileError("file is truncated (header shorter than declared)", p)
    return hashlib.sha256(prefix + header).hexdigest()


def cache_key(model: str, device: str, cpu: str, cpus: int, threads: int) -> str:
    """The cache entry's key: model hash, device, CPU model and count, and the engine's CPU
    threads (the GUI leaves a core to the interface, ``radassist predict`` uses them all)."""
    text = json.dumps([model, device.lower(), cpu, int(cpus), int(threads)], ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cache_path() -> Path:
    """``firststart.json`` in the user data folder (``RADASSIST_DATA_DIR`` overrides)."""
    return data_dir() / CACHE_NAME


# --------------------------------------------------------------------------- timing


def time_forward(
    forward: Forward,
    batch: np.ndarray,
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    max_passes: int = MAX_PASSES,
    clock: Clock = time.perf_counter,
) -> tuple[list[float], float]:
    """Time ``forward(batch)``: one untimed warm-up pass, then timed passes until the budget
    is spent (at least one) or ``max_passes`` are done. Returns the pass times (seconds) and
    the total time spent, warm-up included."""
    if not (math.isfinite(budget_s) and budget_s > 0):
        raise ConfigError(f"time budget {budget_s!r} s must be a positive number")
    if max_passes < 1:
        raise ConfigError(f"max_passes {max_passes} must be at least 1")
    start = clock()
    forward(batch)  # warm-up: first-call allocations, kernel selection
    times: list[float] = []
    while len(times) < max_passes:
        t0 = clock()
        forward(batch)
        t1 = clock()
        times.append(t1 - t0)
        if t1 - start >= budget_s:
            break
    return times, clock() - start


class EngineLike(Protocol):
    """What :func:`estimate_for_engine` reads from ``inference.engine.InferenceEngine`` (besides
    its forward pass, see :func:`engine_forward`)."""

    @property
    def device(self) -> str: ...

    @property
    def backend(self) -> str: ...

    @property
    def model_path(self) -> Path: ...

    @property
    def manifest(self) -> Any: ...

    @property
    def threads(self) -> int: ...


def engine_input_shape(engine: EngineLike) -> tuple[int, int, int]:
    """(channels, size, size) of the engine's model, from its manifest's preprocessing."""
    spec = engine.manifest.preprocessing
    return int(spec.channels), int(spec.image_size), int(spec.image_size)


def engine_forward(engine: EngineLike) -> Forward:
    """The engine's forward pass on a preprocessed batch: its public ``forward`` when it has
    one, else its ``_forward`` (the same path ``run`` uses, CPU fallback included)."""
    forward = getattr(engine, "forward", None) or getattr(engine, "_forward", None)
    if not callable(forward):
        raise ConfigError(f"{type(engine).__name__} has no forward pass to time")
    return forward  # type: ignore[no-any-return]


def measure(
    forward: Forward,
    input_shape: tuple[int, int, int],
    *,
    device: str,
    backend: str,
    key: str,
    threads: int,
    budget_s: float = DEFAULT_BUDGET_S,
    max_passes: int = MAX_PASSES,
    clock: Clock = time.perf_counter,
) -> SpeedEstimate:
    """Time batch-1 forward passes on a seeded input of ``input_shape`` (C, H, W)."""
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((1, *input_shape), dtype=np.float32)
    times, spent = time_forward(
        forward, batch, budget_s=budget_s, max_passes=max_passes, clock=clock
    )
    estimate = SpeedEstimate(
        device=device,
        backend=backend,
        ms_per_image=max(statistics.median(times) * 1000.0, 1e-3),
        passes=len(times),
        seconds=spent,
        model_key=key,
        cpu_model=cpu_model(),
        cpu_count=available_cpus(),
        threads=threads,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    log.info(
        "first start: %.1f ms per image on %s via %s (%d passes in %.2f s)",
        estimate.ms_per_image,
        device,
        backend,
        estimate.passes,
        spent,
    )
    return estimate


# --------------------------------------------------------------------------- the cache


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        log.info("ignoring the first-start cache %s: %s", path, err)
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def cached_estimate(
    model: str | os.PathLike[str] | None,
    device: str,
    *,
    threads: int | None = None,
    path: Path | None = None,
) -> SpeedEstimate | None:
    """The cached estimate for ``model`` (None: the bundled model) on ``device`` ("cpu",
    "cuda:0"...) with ``threads`` CPU threads (None: whichever was measured last) on this
    computer, or None. Cheap, torch-free, never raises."""
    try:
        model_path = default_model_path() if model is None else Path(model)
        mkey, cpu, cpus = model_key(model_path), cpu_model(), available_cpus()
        entries = _read_cache(path or cache_path())
        if threads is not None:
            entry = entries.get(cache_key(mkey, device, cpu, cpus, threads))
            return None if entry is None else SpeedEstimate.from_dict(entry)
        for entry in reversed(list(entries.values())):  # the newest first
            try:
                estimate = SpeedEstimate.from_dict(entry)
            except ValueError:
                continue
            if (estimate.model_key, estimate.device, estimate.cpu_model, estimate.cpu_count) == (
                mkey,
                device.lower(),
                cpu,
                cpus,
            ):
                return estimate
        return None
    except (ValueError, OSError, ModelFileError, ConfigError) as err:
        log.debug("no cached first-start estimate: %s", err)
        return None


def save_estimate(estimate: SpeedEstimate, *, path: Path | None = None) -> Path | None:
    """Add ``estimate`` to the cache (atomically; the oldest entries beyond
    ``MAX_CACHE_ENTRIES`` go). Returns the cache path, or None if it could not be written
    (logged: a read-only data folder must not stop the first start)."""
    try:
        target = path or cache_path()
        entries = _read_cache(target)
        key = cache_key(
            estimate.model_key,
            estimate.device,
            estimate.cpu_model,
            estimate.cpu_count,
            estimate.threads,
        )
        entries.pop(key, None)
        entries[key] = estimate.to_dict()
        kept = dict(list(entries.items())[-MAX_CACHE_ENTRIES:])
        atomic_write_json(target, {"format": CACHE_FORMAT, "entries": kept})
        return target
    except (OSError, ConfigError) as err:
        log.warning("could not save the first-start estimate: %s", err)
        return None


def estimate_for_engine(
    engine: EngineLike,
    *,
    refresh: bool = False,
    budget_s: float = DEFAULT_BUDGET_S,
    path: Path | None = None,
) -> SpeedEstimate:
    """The time per image for a loaded ``InferenceEngine`` on its device: from the cache, or
    measured now (a second or two) and cached. Call it where the engine lives (a worker
    thread in the GUI): measuring runs the network."""
    device = str(engine.device)
    threads = int(engine.threads)
    key = model_key(engine.model_path)
    target = path or cache_path()
    if not refresh:
        entry = _read_cache(target).get(
            cache_key(key, device, cpu_model(), available_cpus(), threads)
        )
        if entry is not None:
            try:
                return SpeedEstimate.from_dict(entry)
            except ValueError as err:
                log.info("re-measuring: the cached first-start entry is unusable (%s)", err)
    estimate = measure(
        engine_forward(engine),
        engine_input_shape(engine),
        device=device,
        backend=str(engine.backend),
        key=key,
        threads=threads,
        budget_s=budget_s,
    )
    if str(engine.device) != device:
        # the device failed while measuring and the engine moved to the CPU: say so, and
        # don't cache a number under the wrong device
        return replace(estimate, device=str(engine.device))
    save_estimate(estimate, path=target)
    return estimate


def first_start(
    model: str | os.PathLike[str] | None = None,
    device: str = "auto",
    *,
    refresh: bool = False,
    budget_s: float = DEFAULT_BUDGET_S,
    path: Path | None = None,
) -> tuple[SpeedEstimate, Any]:
    """Load ``model`` (None: the bundled one) on ``device`` as ``radassist predict`` would,
    and return its estimate (cached or measured) and the engine. Loading may take seconds
    (the CPU path is built once); measuring takes ``budget_s`` at most, once per machine."""
    from desktop_app.inference.engine import InferenceEngine

    engine = InferenceEngine(model, device=device, heatmaps="none")
    return estimate_for_engine(engine, refresh=refresh, budget_s=budget_s, path=path), engine


def try_estimate_for_engine(engine: EngineLike) -> SpeedEstimate | None:
    """:func:`estimate_for_engine` for callers that must go on without it (the GUI's model
    loading): any failure is logged and gives None."""
    try:
        return estimate_for_engine(engine)
    except Exception as err:  # measuring is a courtesy; inference must not depend on it
        log.warning("could not measure the time per image: %s", err)
        log.debug("first-start measurement failed", exc_info=True)
        return None


def badge_tooltip(device_label: str, model: str | os.PathLike[str] | None) -> str:
    """The GUI device badge's tooltip for ``device_label`` (``CPU``, ``CUDA:0``, ``MPS``) and
    ``model`` (None: the bundled one): with a cached estimate, ``Inference runs on CPU · ~14
    ms/image`` and how that was measured; else ``Inference runs on CPU``. Torch-free and
    cheap (a small JSON file and the model file's header): safe in the GUI thread."""
    estimate = cached_estimate(model, device_label.strip().lower())
    if estimate is None:
        return f"Inference runs on {device_label}"
    return (
        f"Inference runs on {estimate.badge_text()} ({estimate.backend}, "
        f"{estimate.threads_text()}, batch 1, median of {estimate.passes} passes, measured on "
        "this computer at first start). The network only: reading, preprocessing and heatmaps "
        "come on top."
    )


__all__ = [
    "DEFAULT_BUDGET_S",
    "EngineLike",
    "SpeedEstimate",
    "badge_tooltip",
    "cache_key",
    "cache_path",
    "cached_estimate",
    "cpu_model",
    "engine_forward",
    "estimate_for_engine",
    "first_start",
    "format_ms",
    "measure",
    "model_key",
    "save_estimate",
    "time_forward",
    "try_estimate_for_engine",
]
