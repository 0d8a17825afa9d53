"""Training-only augmentation of the unit image, with MONAI array transforms.

Applied after ``desktop_app.model.preprocessing.unit_image`` (a (S, S) image in [0, 1], air dark, padded
with 0) and before ``to_network_input``; validation, test and the app never see it:

1. ``RandAffine``: small rotation (±7°), isotropic-ish scale (±7 %), translation (±5 % of S),
   zero padding (the preprocessing's own pad value in unit space);
2. ``RandAdjustContrast``: gamma in [0.8, 1.25];
3. ``RandScaleIntensity``: brightness ×(1 ± 0.1);
4. ``RandGaussianNoise``: σ 0.015;
5. ``RandFlip``: horizontal and vertical flips, both off by default for chest radiographs (a
   flipped chest puts the heart on the wrong side, which is itself a finding: dextrocardia);
6. clipped back to [0, 1].

``augment.strength`` multiplies every magnitude (``scaled``); fit chooses it from the dataset
fingerprint unless the config sets it.

Randomness is a function of ``(seed, epoch, index)`` only, so augmentation does not depend on
loader order, worker count or where a resumed run restarted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from training.config import AugmentConfig

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _plain_tensors() -> Iterator[None]:
    """MONAI without MetaTensor bookkeeping (4x faster here); restored afterwards."""
    from monai.data import get_track_meta, set_track_meta

    before = get_track_meta()
    set_track_meta(False)
    try:
        yield
    finally:
        set_track_meta(before)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 31-bit seed for one sample's augmentation in one epoch."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(index), 0xA06])
    return int(state.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


def scaled(config: AugmentConfig, strength: float | None = None) -> AugmentConfig:
    """``config`` with its magnitudes multiplied by ``strength`` (default: its own
    ``strength``, 1 when unset): rotation, scale, translation, intensity and noise linearly,
    gamma's range as a power (0.8..1.25 at strength 0.5 is 0.89..1.12). Probabilities and
    flips are kept; strength 0 leaves no random transform but the flips."""
    s = config.strength if strength is None else strength
    s = 1.0 if s is None else float(s)
    lo, hi = (float(g) for g in config.gamma)
    return dataclasses.replace(
        config,
        strength=s,
        rotate_degrees=min(45.0, config.rotate_degrees * s),
        scale=min(0.45, config.scale * s),
        translate=min(0.45, config.translate * s),
        gamma=[lo**s, hi**s],
        intensity_scale=min(0.9, config.intensity_scale * s),
        noise_std=min(0.9, config.noise_std * s),
    )


class Augmenter:
    """``augmenter(unit, seed)`` -> augmented unit image, both (S, S) float32 in [0, 1]."""

    def __init__(self, config: AugmentConfig, image_size: int) -> None:
        from monai.transforms import (
            Compose,
            RandAdjustContrast,
            RandAffine,
            RandFlip,
            RandGaussianNoise,
            RandScaleIntensity,
        )

        c = self.config = scaled(config)
        size = int(image_size)
        transforms: list[Any] = []
        if c.affine_prob > 0 and (c.rotate_degrees > 0 or c.scale > 0 or c.translate > 0):
            transforms.append(
                RandAffine(
                    prob=c.affine_prob,
                    rotate_range=(math.radians(c.rotate_degrees),),
                    scale_range=(c.scale, c.scale),
                    translate_range=(c.translate * size, c.translate * size),
                    padding_mode="zeros",
                    mode="bilinear",
                    spatial_size=(size, size),
                    cache_grid=True,
                )
            )
        if c.contrast_prob > 0 and c.gamma[0] < c.gamma[1]:
            transforms.append(RandAdjustContrast(prob=c.contrast_prob, gamma=tuple(c.gamma)))
        if c.intensity_prob > 0 and c.intensity_scale > 0:
            transforms.append(RandScaleIntensity(factors=c.intensity_scale, prob=c.intensity_prob))
        if c.noise_prob > 0 and c.noise_std > 0:
            transforms.append(RandGaussianNoise(prob=c.noise_prob, mean=0.0, std=c.noise_std))
        if c.hflip_prob > 0:
            transforms.append(RandFlip(prob=c.hflip_prob, spatial_axis=1))
        if c.vflip_prob > 0:
            transforms.append(RandFlip(prob=c.vflip_prob, spatial_axis=0))
        self.transform = Compose(transforms)
        self.active = bool(transforms)

    def __call__(self, unit: np.ndarray | torch.Tensor, seed: int) -> torch.Tensor:
        x = torch.as_tensor(unit, dtype=torch.float32)
        if not self.active:
            return x
        with _plain_tensors():
            self.transform.set_random_state(seed=int(seed))
            out = self.transform(x[None])
        out = torch.as_tensor(out).as_subclass(torch.Tensor)[0]
        return out.clamp_(0.0, 1.0).contiguous()


def build_augmenter(config: AugmentConfig, image_size: int) -> Augmenter | None:
    """The train-time augmenter, or None when augmentation is off."""
    if not config.enabled:
        return None
    augmenter = Augmenter(config, image_size)
    return augmenter if augmenter.active else None
