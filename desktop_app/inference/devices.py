"""Where the network runs: device choice, CUDA failure detection, CPU thread count.

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

from desktop_app.infra.cpus import physical_cores
from desktop_app.infra.errors import ConfigError

log = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")

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


def choose_device(requested: str = "auto") -> DeviceChoice:
    """``auto`` → CUDA, then MPS, then CPU; ``cpu``/``cuda``/``cuda:N``/``mps`` as asked when
    available, else the CPU with a warning. An unknown name is a ConfigError (a usage error)."""
    text = str(requested or "auto").strip().lower()
    base = text.split(":", 1)[0]
    if base not in DEVICE_CHOICES or (":" in text and base != "cuda"):
        raise ConfigError(
            f"unknown device {requested!r}", hint=f"choose one of: {', '.join(DEVICE_CHOICES)}"
        )
    if base == "auto":
        if cuda_available():
            return DeviceChoice(text, torch.device("cuda", 0))
        if mps_available():
            return DeviceChoice(text, torch.device("mps"))
        return DeviceChoice(text, torch.device("cpu"))
    if base == "cpu":
        return DeviceChoice(text, torch.device("cpu"))
    if base == "mps":
        if mps_available():
            return DeviceChoice(text, torch.device("mps"))
        return DeviceChoice(
            text, torch.device("cpu"), "MPS was requested but is not available; running on the CPU"
        )
    index = 0
    if ":" in text:
        try:
            index = int(text.split(":", 1)[1])
        except ValueError:
            raise ConfigError(
                f"unknown device {requested!r}", hint="write cuda or cuda:N"
            ) from None
    if not cuda_available():
        return DeviceChoice(
            text,
            torch.device("cpu"),
            "CUDA was requested but no usable CUDA device was found; running on the CPU",
        )
    count = torch.cuda.device_count()
    if not 0 <= index < count:
        return DeviceChoice(
            text,
            torch.device("cpu"),
            f"CUDA device {index} does not exist ({count} found); running on the CPU",
        )
    return DeviceChoice(text, torch.device("cuda", index))


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
