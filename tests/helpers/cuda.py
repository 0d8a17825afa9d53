"""Pretended CUDA for the engine's fallback tests on a machine without a GPU: a CUDA device
that is there, a network whose move to it fails, or a forward pass on it that runs out of
memory. Used by tests/inference/test_engine.py (classifiers) and test_seg_backends.py
(segmentation models)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from desktop_app.inference import fastpath


def pretend_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def fail_moving_to_cuda(monkeypatch: pytest.MonkeyPatch, network: torch.nn.Module) -> None:
    """``network.to("cuda")`` raises as a driver without a kernel for the card does."""
    real_to = network.to

    def to(*args: Any, **kwargs: Any) -> Any:
        if "cuda" in str(args[0] if args else kwargs.get("device")):
            raise RuntimeError("CUDA error: no kernel image is available for execution")
        return real_to(*args, **kwargs)

    monkeypatch.setattr(network, "to", to)


def out_of_memory_on_cuda(monkeypatch: pytest.MonkeyPatch, network: torch.nn.Module) -> list[str]:
    """``network`` stays where it is, and every forward pass on a CUDA runner raises out of
    memory; returns the device type of each forward pass, in order."""
    monkeypatch.setattr(network, "to", lambda *a, **k: network)  # stays put
    real_call = fastpath.TorchRunner.__call__
    calls: list[str] = []

    def call(self: fastpath.TorchRunner, x: np.ndarray) -> np.ndarray:
        calls.append(self.device.type)
        if self.device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_call(self, x)

    monkeypatch.setattr(fastpath.TorchRunner, "__call__", call)
    return calls
