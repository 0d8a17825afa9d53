"""Where the network runs: device choice (the app's and training's), CUDA failure detection, CPU threads.

``auto`` picks CUDA, then Apple's MPS, then the CPU. A device that was asked for but is not
there (``--device cuda`` on a machine without a GPU) is not an error: the run goes to the CPU
and says so once, exactly like a CUDA failure at start or an out-of-memory error mid-run (the
engine's fallback uses :func:`is_device_failure` to tell those from real bugs).

Threads: PyTorch's intra-op pool is sized to the *physical* cores available to this process
(hyper-threads slow convolutions down), and ONNX Runtime gets the same number; the engine runs
one of them at a time, so they never oversubscribe the cores. ``torch.set_num_threads`` is
process-wide: :func:`configure_cpu_threads` only ever sets it to the same value, so two engines
in one process agree.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import torch

from desktop_app.inference.accel import APP_WORDS, FallbackWords, check_device_name
from desktop_app.infra.cpus import physical_cores
from desktop_app.infra.errors import ConfigError

log = logging.getLogger(__name__)


# Text that marks a RuntimeError as a device (driver, memory, kernel) failure, not a bug.
_FAILURE_MARKERS = (
    "cuda",
    "cudnn",
    "cublas",
    "cufft",
    "nccl",
    "out of memory",
    "nvidia driver",
    "mps backend",
    "mps:",
    "hip error",
    "device-side assert",
)

_threads_lock = threading.Lock()


@dataclass(frozen=True)
class DeviceChoice:
    """The outcome of :func:`choose_device`: the device to use and, if it is not what was
    asked for, a one-line warning saying why."""

    requested: str
    device: torch.device
    warning: str | None = None

    @property
    def name(self) -> str:
        """ "cpu", "cuda:0", "mps"."""
        return device_name(self.device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index or 0}"
    return device.type


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    try:
        return bool(backend is not None and backend.is_available())
    except Exception:  # an old macOS can raise instead of answering
        return False


def cuda_available() -> bool:
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # a broken driver can raise from the query itself
        return False


def cuda_smoke_test(index: int) -> str | None:
    """Run one tiny kernel on ``cuda:index``; None when it works, else the reason (one line).

    ``torch.cuda.is_available()`` can say yes on a machine whose driver then fails on the first
    kernel; this finds out before a long run starts."""
    try:
        torch.zeros(1, device=f"cuda:{index}").add_(1)
        torch.cuda.synchronize(index)
    except Exception as err:  # a broken driver raises all sorts
        return " ".join(str(err).split())[:200]
    return None


def choose_device(
    requested: str = "auto",
    *,
    local_rank: int = 0,
    smoke_test: bool = False,
    words: FallbackWords = APP_WORDS,
) -> DeviceChoice:
    """``auto`` → CUDA, then MPS, then CPU; ``cpu``/``cuda``/``cuda:N``/``mps`` as asked when
    available, else the CPU with a warning. An unknown name is a ConfigError (a usage error).

    ``local_rank`` (under torchrun) picks the GPU of ``auto``/``cuda``: ``local_rank % count``.
    ``smoke_test`` runs a kernel on the chosen GPU first and falls back to the CPU if it fails.
    """
    text = check_device_name(requested)
    base = text.split(":", 1)[0]
    explicit = _explicit_index(requested, text)
    cpu = torch.device("cpu")
    if base == "cpu":
        return DeviceChoice(text, cpu)
    if base == "auto" and not cuda_available():
        return DeviceChoice(text, torch.device("mps") if mps_available() else cpu)
    if base == "mps":
        if mps_available():
            return DeviceChoice(text, torch.device("mps"))
        return DeviceChoice(text, cpu, words.mps_missing)
    if not cuda_available():
        return DeviceChoice(text, cpu, words.cuda_missing)
    count = torch.cuda.device_count()
    index = local_rank % max(1, count) if explicit is None else explicit
    if not 0 <= index < count:
        return DeviceChoice(text, cpu, words.cuda_index.format(index=index, count=count))
    if smoke_test:
        reason = cuda_smoke_test(index)
        if reason is not None:
            return DeviceChoice(text, cpu, words.cuda_failed.format(reason=reason))
    return DeviceChoice(text, torch.device("cuda", index))


def _explicit_index(requested: str, text: str) -> int | None:
    """The N of ``cuda:N``; None when no GPU is named."""
    if ":" not in text:
        return None
    try:
        return int(text.split(":", 1)[1])
    except ValueError:
        raise ConfigError(f"unknown device {requested!r}", hint="write cuda or cuda:N") from None


def is_device_failure(err: BaseException) -> bool:
    """Whether ``err`` is an accelerator failure that the CPU can recover from: CUDA out of
    memory, a driver or kernel error, an MPS error. A plain bug (a shape mismatch) is not."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    accelerator_error = getattr(torch, "AcceleratorError", None)
    if accelerator_error is not None and isinstance(err, accelerator_error):
        return True
    if isinstance(err, RuntimeError | AssertionError):
        text = str(err).lower()
        return any(marker in text for marker in _FAILURE_MARKERS)
    return False


def failure_summary(err: BaseException) -> str:
    """A short reason for the one-line fallback warning (first line, bounded)."""
    if isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower():
        return "out of memory"
    first = " ".join(str(err).strip().splitlines()[:1]) or type(err).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def empty_cache(device: torch.device) -> None:
    """Give cached accelerator memory back after a failure (no-op on the CPU)."""
    try:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        elif device.type == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()
    except Exception:
        log.debug("could not empty the %s cache", device, exc_info=True)


# --------------------------------------------------------------------------- CPU threads


def configure_cpu_threads(threads: int | None = None) -> int:
    """Set PyTorch's intra-op threads to ``threads`` (default: the physical cores) unless it is
    already that; return the number. Process-wide and idempotent."""
    n = max(1, int(threads) if threads else physical_cores())
    with _threads_lock:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
            log.info("PyTorch CPU threads set to %d", n)
    return n
