"""Seeds and generator states: seeds derived from the run's seed, seeding every generator, and
the generators' states as plain data so that a resumed run continues exactly."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def derived_seed(seed: int, *parts: int) -> int:
    state = np.random.SeedSequence([int(seed), *[int(p) for p in parts]])
    return int(state.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


def seed_everything(seed: int) -> None:
    """Python, numpy and torch generators (MONAI's set_determinism does the same)."""
    from monai.utils import set_determinism

    set_determinism(seed=int(seed) % (2**32 - 1))


def rng_state() -> dict[str, Any]:
    """The global generators' states as tensors and plain containers (weights_only-safe)."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())  # type: ignore[arg-type]
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
