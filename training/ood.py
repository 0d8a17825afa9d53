"""The out-of-distribution statistics: a Gaussian of the train split's penultimate features
(Ledoit-Wolf shrunk covariance) and its threshold on the validation split's scores.

Score = sqrt of the Mahalanobis distance (Lee et al. 2018, "A Simple Unified Framework for
Detecting Out-of-Distribution Samples"); desktop_app.model.applicability.OodModel computes it in
the app from the same mean and precision. With fewer training images than feature dimensions
(about 840 against Lite0's 1280 here) the sample covariance is singular: Ledoit & Wolf (2004)
shrink it towards a scaled identity by the amount that minimises the expected squared error,
which makes it invertible and its inverse well conditioned.
"""

from __future__ import annotations

import logging

import numpy as np

from desktop_app.infra.errors import DataError
from desktop_app.model.applicability import OodModel, OodSpec

log = logging.getLogger(__name__)

DEFAULT_PERCENTILE = 95.0
MIN_TRAIN_IMAGES = 10


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean (d,), shrunk covariance (d, d) and shrinkage in [0, 1] of the rows of ``x`` (n, d):
    ``(1 - s) S + s mu I`` with ``mu = trace(S) / d`` and ``s`` from Ledoit & Wolf (2004),
    Lemma 3.1 (the formula scikit-learn's ``ledoit_wolf`` uses)."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / n
    mu = float(np.trace(cov)) / d
    delta = float(((cov - mu * np.eye(d)) ** 2).sum()) / d  # distance to the target
    x2 = xc**2
    beta = float(((x2.T @ x2) / n - cov**2).sum()) / (d * n)  # variance of S's entries
    shrinkage = 0.0 if delta == 0.0 else min(beta, delta) / delta
    shrunk = (1.0 - shrinkage) * cov
    shrunk[np.diag_indices(d)] += shrinkage * mu
    return mean, shrunk, shrinkage


def mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """sqrt((x - mean)^T P (x - mean)) per row: the same numbers OodModel.score gives."""
    xc = np.asarray(x, dtype=np.float64) - np.asarray(mean, dtype=np.float64)
    d2 = np.einsum("ij,jk,ik->i", xc, np.asarray(precision, dtype=np.float64), xc)
    return np.sqrt(np.maximum(d2, 0.0))


def fit_ood(
    train_features: np.ndarray,
    val_features: np.ndarray,
    percentile: float = DEFAULT_PERCENTILE,
) -> OodModel:
    """The OOD model: a Gaussian of ``train_features``, thresholded at ``percentile`` of the
    validation features' scores (so about 100 - percentile % of images like the validation split
    are flagged). With no validation images the train split's own scores set the threshold
    (optimistic: those images shaped the Gaussian; the model card says so)."""
    train = np.asarray(train_features, dtype=np.float64)
    if train.ndim != 2 or len(train) < MIN_TRAIN_IMAGES:
        raise DataError(
            f"the OOD statistics need at least {MIN_TRAIN_IMAGES} training images, "
            f"not {len(train)}",
            hint="add training images, or set applicability.ood: false",
        )
    if not np.isfinite(train).all():
        raise DataError(
            "the network's features on the train split hold NaN or infinite values",
            hint="the training diverged: lower the learning rate",
        )
    mean64, cov, shrinkage = ledoit_wolf(train)
    precision64 = np.linalg.inv(cov)
    # The file stores float32: every score below comes from the stored values, as in the app.
    mean = mean64.astype(np.float32)
    precision = ((precision64 + precision64.T) / 2.0).astype(np.float32)
    val = np.asarray(val_features, dtype=np.float64).reshape(-1, train.shape[1])
    held = val if len(val) else train
    where = "validation" if len(val) else "train (no validation split)"
    held_scores = mahalanobis(held, mean, precision)
    threshold = round(float(np.percentile(held_scores, percentile)), 4)
    train_scores = mahalanobis(train, mean, precision)
    spec = OodSpec(
        method="mahalanobis",
        feature_dim=int(train.shape[1]),
        threshold=threshold,
        threshold_rule=(
            f"the {percentile:g}th percentile of the {where} split's scores "
            f"({len(held)} images), so about {100 - percentile:g} % of images like them "
            "are flagged"
        ),
        stats={
            "train_images": len(train),
            "val_images": len(val),
            "shrinkage": round(shrinkage, 4),
            "train_score_median": round(float(np.median(train_scores)), 3),
            "val_score_median": round(float(np.median(held_scores)), 3),
        },
    )
    log.info(
        "OOD: %d-d Gaussian of %d train images (shrinkage %.3f), threshold %.3f",
        spec.feature_dim, len(train), shrinkage, threshold,
    )  # fmt: skip
    return OodModel(spec, mean, precision)
