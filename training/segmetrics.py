"""Segmentation metrics with confidence intervals: per-image Dice, HD95, lesion-wise sensitivity
and false positives per image.

Every metric is computed per image on the network grid at the label's probability threshold
(0.5), then summarised over the split with a percentile bootstrap over images (Wilson for the
lesion sensitivity, a proportion of lesions):

- ``dice``: per image ``2|P∩G| / (|P| + |G|)``; an image with neither foreground scores 1 and
  one with predicted foreground but none true scores 0 (empty images count, as in SIIM-ACR);
  ``dice_positive`` is the mean over the images with true foreground only;
- ``hd95_px``: MONAI's 95th-percentile Hausdorff distance in network-input pixels, over the
  images where both masks have foreground (it is undefined otherwise); ``hd95_mm`` too when
  every image of the split knows its pixel spacing (DICOM Pixel Spacing, NIfTI zooms), in mm
  on the network grid (the original spacing scaled by the resize);
- lesions are 8-connected components (``scipy.ndimage.label``) of one image: a true lesion is
  found when at least one predicted pixel overlaps it (any overlap, not a Dice cut); a
  predicted component that overlaps no true lesion is a false positive. A 3-D case trained as
  slices is scored slice by slice, so a lesion counts once per slice it crosses.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from training.metrics import _value, wilson_interval

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def dice_per_image(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Bool (N, H, W) predictions and truths -> (N,) Dice, 1 where both are empty."""
    p = pred.reshape(len(pred), -1)
    t = truth.reshape(len(truth), -1)
    inter = np.logical_and(p, t).sum(axis=1).astype(np.float64)
    total = p.sum(axis=1) + t.sum(axis=1)
    return np.where(total == 0, 1.0, 2.0 * inter / np.maximum(total, 1))


def hd95_per_image(
    pred: np.ndarray, truth: np.ndarray, spacing: np.ndarray | None = None
) -> np.ndarray:
    """(N,) 95th-percentile Hausdorff distances in pixels, or in mm with ``spacing`` (N, 2)
    (row, column mm per pixel); NaN where either mask is empty."""
    import torch
    from monai.metrics import compute_hausdorff_distance

    out = np.full(len(pred), np.nan)
    both = [i for i in range(len(pred)) if pred[i].any() and truth[i].any()]
    if both:
        p = torch.from_numpy(pred[both][:, None].astype(np.float32))
        t = torch.from_numpy(truth[both][:, None].astype(np.float32))
        with warnings.catch_warnings():  # MONAI 1.6 warns about its own internal argument
            warnings.filterwarnings("ignore", "monai.metrics.utils get_mask_edges", FutureWarning)
            mm = None if spacing is None else [[float(v) for v in spacing[i]] for i in both]
            d = compute_hausdorff_distance(
                p, t, include_background=True, percentile=95.0, spacing=mm
            )
        out[both] = d.reshape(-1).cpu().numpy()
    return out


def lesion_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: true lesions, true lesions found, predicted components that are false."""
    lesions, found, false = (np.zeros(len(pred), dtype=np.int64) for _ in range(3))
    for i in range(len(pred)):
        t_lab, n_t = ndimage.label(truth[i], structure=EIGHT_CONNECTED)
        p_lab, n_p = ndimage.label(pred[i], structure=EIGHT_CONNECTED)
        lesions[i] = n_t
        found[i] = len(np.unique(t_lab[pred[i] & (t_lab > 0)]))
        false[i] = n_p - len(np.unique(p_lab[truth[i] & (p_lab > 0)]))
    return lesions, found, false


def bootstrap_mean_ci(
    values: np.ndarray, *, n_boot: int, level: float, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over images (NaNs dropped); (nan, nan) if empty."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 or n_boot <= 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng([seed, 0xD1CE])
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def _mean(values: np.ndarray) -> float:
    v = values[np.isfinite(values)]
    return float(v.mean()) if v.size else math.nan


def label_seg_metrics(
    pred: np.ndarray, truth: np.ndarray, *, n_boot: int, level: float, seed: int,
    spacing: np.ndarray | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One label's metrics over a split: bool (N, H, W) predictions and truths; ``spacing``
    (N, 2) mm per network pixel (NaN: unknown) adds ``hd95_mm`` when every image has one."""

    def with_ci(values: np.ndarray) -> dict[str, Any]:
        ci = bootstrap_mean_ci(values, n_boot=n_boot, level=level, seed=seed)
        return _value(_mean(values), ci)

    dice = dice_per_image(pred, truth)
    positive = truth.reshape(len(truth), -1).any(axis=1)
    lesions, found, false = lesion_counts(pred, truth)
    n_lesions, n_found = int(lesions.sum()), int(found.sum())
    sensitivity = n_found / n_lesions if n_lesions else math.nan
    out = {
        "images": len(pred),
        "positive_images": int(positive.sum()),
        "lesions": n_lesions,
        "dice": with_ci(dice),
        "dice_positive": with_ci(dice[positive]),
        "hd95_px": with_ci(hd95_per_image(pred, truth)),
        "lesion_sensitivity": _value(sensitivity, wilson_interval(n_found, n_lesions, level)),
        "fp_per_image": with_ci(false.astype(np.float64)),
    }
    if spacing is not None and len(spacing) == len(pred) and np.isfinite(spacing).all():
        out["hd95_mm"] = with_ci(hd95_per_image(pred, truth, spacing))
    return out


def seg_split_metrics(
    probs: np.ndarray,
    truth: np.ndarray,
    labels: Sequence[str],
    thresholds: dict[str, float],
    *,
    n_boot: int,
    level: float,
    seed: int,
    spacing: np.ndarray | None = None,
) -> dict[str, Any]:
    """(N, L, H, W) probabilities and 0/1 truths -> ``{label: {...}, "mean_dice": x}``;
    ``spacing`` (N, 2): mm per network pixel (see ``label_seg_metrics``)."""
    out: dict[str, Any] = {}
    for j, label in enumerate(labels):
        pred = probs[:, j] >= thresholds[label]
        out[label] = label_seg_metrics(
            pred, truth[:, j] > 0, n_boot=n_boot, level=level, seed=seed + j, spacing=spacing
        )
    dices = [out[label]["dice"]["value"] for label in labels]
    out["mean_dice"] = float(np.mean([d for d in dices if d is not None])) if dices else None
    return out


MANY_FALSE_POSITIVES = 1.0  # FP lesions per image over which a perfect sensitivity says little


def false_positive_clause(fp_per_image: float | None) -> str:
    """A caution after the lesion sensitivity when false positive lesions per image exceed
    ``MANY_FALSE_POSITIVES`` (a model that marks much of every image finds every lesion);
    "" otherwise."""
    if fp_per_image is None or not math.isfinite(fp_per_image):
        return ""
    if fp_per_image <= MANY_FALSE_POSITIVES:
        return ""
    count = f"{fp_per_image:.0f}" if fp_per_image >= 10 else f"{fp_per_image:.1f}"
    return f"(with {count} false-positive lesions per image: the model marks much of every image)"
