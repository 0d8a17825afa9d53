"""Temperature scaling per label (fitted on validation logits) and its ECE before and after.

Guo et al. 2017, "On Calibration of Modern Neural Networks": one scalar ``T`` per label,
``p = sigmoid(logit / T)``, chosen to minimise the negative log-likelihood of the validation
labels. It never changes a label's ranking (AUROC), only how far the probabilities sit from
0.5; the operating thresholds are then chosen on the calibrated probabilities, so the app
(which applies the same temperatures, desktop_app.model.applicability.apply_temperatures)
calls exactly the same images positive as the uncalibrated scores with the equivalent cuts.
Unknown targets (NaN) are left out of each label's fit and report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from desktop_app.model.applicability import MAX_TEMPERATURE, apply_temperatures
from training.batches import sigmoid
from training.metrics import expected_calibration_error

# Sharpening by more than 4x is extrapolation from a few hundred validation images (a label the
# validation split separates almost perfectly would otherwise be pushed to 0 % / 100 %).
MIN_TEMPERATURE = 0.25
# Below this many validation images of each class a label keeps T = 1: the NLL of a handful of
# images would pick an extreme temperature from noise.
MIN_PER_CLASS = 5


def binary_nll(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of 0/1 targets ``y`` under ``sigmoid(logits)``, computed
    without overflow (``log(1 + e^z) - y z``)."""
    z = np.asarray(logits, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    known = ~np.isnan(t)  # unknown targets (NaN) are left out
    z, t = z[known], t[known]
    if z.size == 0:
        return math.nan
    return float(np.mean(np.logaddexp(0.0, z) - t * z))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature in [0.25, 100] minimising the NLL of ``sigmoid(logits / T)``. 1.0 when a
    class has fewer than 5 images, or when the logits separate the classes perfectly (the NLL
    then falls as T -> 0: the data cannot fix a temperature). A bounded 1-D search over log T
    (the NLL is smooth and has a single minimum along it in practice)."""
    z = np.asarray(logits, dtype=np.float64).ravel()
    t = np.asarray(y, dtype=np.float64).ravel()
    keep = np.isfinite(z) & ~np.isnan(t)  # unknown targets (NaN) are left out
    z, t = z[keep], t[keep]
    positives = int((t == 1).sum())
    if positives < MIN_PER_CLASS or len(t) - positives < MIN_PER_CLASS:
        return 1.0
    if z[t == 0].max() < z[t == 1].min():
        return 1.0
    result = minimize_scalar(
        lambda log_t: binary_nll(z / math.exp(log_t), t),
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    value = float(math.exp(float(result.x)))
    # Never worse than leaving the label alone.
    if binary_nll(z / value, t) > binary_nll(z, t):
        return 1.0
    return round(min(max(value, MIN_TEMPERATURE), MAX_TEMPERATURE), 4)


def fit_temperatures(logits: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """One temperature per label (columns of ``logits`` and ``y`` in ``labels`` order)."""
    return {label: fit_temperature(logits[:, j], y[:, j]) for j, label in enumerate(labels)}


def calibrated_probs(
    logits: np.ndarray, labels: Sequence[str], temperatures: Mapping[str, float] | None
) -> np.ndarray:
    """``sigmoid(logit / T)`` per label in float32 (the network's own precision; without
    temperatures exactly the uncalibrated probabilities)."""
    z = apply_temperatures(np.asarray(logits, dtype=np.float32), labels, temperatures)
    return sigmoid(np.asarray(z, dtype=np.float32))


def logits_of(p: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Logits recovered from probabilities (clipped to [eps, 1 - eps]): for predictions that
    were stored as probabilities only (k-fold out-of-fold scores)."""
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(q) - np.log1p(-q)


def calibration_report(
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    labels: Sequence[str],
    temperatures: Mapping[str, float] | None,
) -> dict[str, Any]:
    """Per label: the temperature and, per split (``name -> (y, logits)``), ECE and NLL before
    and after scaling; what metrics.json and the model card show."""
    report: dict[str, Any] = {}
    for j, label in enumerate(labels):
        row: dict[str, Any] = {"temperature": (temperatures or {}).get(label, 1.0)}
        for split, (y, logits) in splits.items():
            if len(y) == 0:
                continue
            before = calibrated_probs(logits, labels, None)[:, j]
            after = calibrated_probs(logits, labels, temperatures)[:, j]
            row[f"{split}_ece_before"] = round(expected_calibration_error(y[:, j], before), 4)
            row[f"{split}_ece_after"] = round(expected_calibration_error(y[:, j], after), 4)
            scaled = logits[:, j] / row["temperature"]
            row[f"{split}_nll_before"] = round(binary_nll(logits[:, j], y[:, j]), 4)
            row[f"{split}_nll_after"] = round(binary_nll(scaled, y[:, j]), 4)
        report[label] = row
    return report
