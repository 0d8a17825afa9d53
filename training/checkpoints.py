"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint holds tensors and plain containers only (model, optimiser, scheduler, scaler,
generator states, epoch, best metric, early-stopping counter, history), so reading one never
runs code. ``last.pt`` is the state after the last complete epoch; ``best.pt`` the best weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from desktop_app.infra.atomicio import atomic_path
from desktop_app.infra.errors import ConfigError
from desktop_app.model.networks import unwrap

CHECKPOINT_FORMAT = "radassist-checkpoint"
CHECKPOINT_VERSION = 1
LAST = "last.pt"
BEST = "best.pt"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path, mode=0o600) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: tensors and plain containers only."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(
            f"checkpoint can't be read ({type(err).__name__}: {' '.join(str(err).split())[:160]})",
            path,
            "delete it to start over, or resume from a copy",
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError("is not a RadAssist training checkpoint", path)
    if obj.get("version") != CHECKPOINT_VERSION:
        raise ConfigError(
            f"checkpoint version {obj.get('version')!r} is not {CHECKPOINT_VERSION}", path
        )
    return obj


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}
