"""Seeded random streams, one per named purpose, shared by the chest and CT phantoms."""

from __future__ import annotations

import hashlib

import numpy as np

from desktop_app.infra.errors import ConfigError


def derive_rng(seed: int, *purpose: str | int) -> np.random.Generator:
    """A random generator for one named purpose of one seed.

    Each purpose (anatomy, acquisition, noise, each finding) draws from its own stream, so
    adding a finding or drawing more numbers for one part never shifts another part.
    """
    if not isinstance(seed, int | np.integer) or int(seed) < 0:
        raise ConfigError(f"seed {seed!r} must be a non-negative integer")
    value = int(seed)
    words = [value & 0xFFFFFFFF, (value >> 32) & 0xFFFFFFFF]
    for part in purpose:
        digest = hashlib.sha256(str(part).encode("utf-8")).digest()
        words.append(int.from_bytes(digest[:4], "little"))
    return np.random.default_rng(np.random.SeedSequence(words))
