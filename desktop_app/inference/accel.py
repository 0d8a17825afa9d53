"""Whether this machine might run a model on a GPU, answered without importing PyTorch: the CPU
path (ONNX Runtime) needs no torch, so a CPU-only workstation never pays its import.

An accelerator is possible when PyTorch is installed and an NVIDIA driver is present (Linux:
``/proc/driver/nvidia/version`` or ``/dev/nvidia0``; Windows: ``nvcuda.dll``), or on an Apple
silicon Mac (MPS). Only then does the engine import torch and let ``devices.choose_device``
decide, with its smoke tests and fallbacks. A GPU asked for on a machine without one falls
back to the CPU with the same words as ``devices`` uses.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from desktop_app.infra.errors import ConfigError
from desktop_app.settings.schema import DEVICES


@dataclass(frozen=True)
class FallbackWords:
    """How each fallback to the CPU is worded; ``{index}``, ``{count}`` and ``{reason}`` are
    filled in. The app and training each keep the wording their users already see."""

    cuda_missing: str
    mps_missing: str
    cuda_index: str
    cuda_failed: str


APP_WORDS = FallbackWords(
    cuda_missing="CUDA was requested but no usable CUDA device was found; running on the CPU",
    mps_missing="MPS was requested but is not available; running on the CPU",
    cuda_index="CUDA device {index} does not exist ({count} found); running on the CPU",
    cuda_failed="CUDA failed at start ({reason}); running on the CPU",
)
NO_TORCH_GPU = (
    "{device} was requested but this installation has no PyTorch (the CPU build); "
    "running on the CPU"
)


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def nvidia_driver_present() -> bool:
    if sys.platform.startswith("linux"):
        return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()
    if sys.platform == "win32":
        root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        return (Path(root) / "System32" / "nvcuda.dll").exists()
    return False


def apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def accelerator_possible() -> bool:
    """Whether PyTorch might find a CUDA or MPS device here (no torch import)."""
    return torch_installed() and (nvidia_driver_present() or apple_silicon())


def check_device_name(requested: str) -> str:
    """The normalised device name; ConfigError (a usage error) for an unknown one."""
    text = str(requested or "auto").strip().lower()
    base = text.split(":", 1)[0]
    if base not in DEVICES or (":" in text and base != "cuda"):
        raise ConfigError(
            f"unknown device {requested!r}", hint=f"choose one of: {', '.join(DEVICES)}"
        )
    if ":" in text and not text.split(":", 1)[1].isdigit():
        raise ConfigError(f"unknown device {requested!r}", hint="write cuda or cuda:N")
    return text


@dataclass(frozen=True)
class CpuDecision:
    """``cpu``: the CPU is certain, so no torch is needed to decide; ``warning``: why a GPU
    that was asked for is not used."""

    cpu: bool
    warning: str | None = None


def decide_without_torch(requested: str, words: FallbackWords = APP_WORDS) -> CpuDecision:
    """Whether ``requested`` surely means the CPU here (then the engine needs no torch)."""
    text = check_device_name(requested)
    base = text.split(":", 1)[0]
    if base == "cpu":
        return CpuDecision(True)
    if accelerator_possible():
        return CpuDecision(False)  # torch decides, with its checks
    if base == "auto":
        return CpuDecision(True)
    if not torch_installed():
        return CpuDecision(True, NO_TORCH_GPU.format(device=base.upper()))
    return CpuDecision(True, words.mps_missing if base == "mps" else words.cuda_missing)
