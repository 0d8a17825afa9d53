"""Binary classification metrics per label, with confidence intervals; plain numpy.

- AUROC: the Mann-Whitney statistic (ties count one half), with a stratified percentile
  bootstrap CI: positives and negatives are resampled separately (B = 1000 by default, seeded),
  so every resample has both classes. Images are resampled, not patients.
- Sensitivity and specificity at a threshold (positive when ``p >= threshold``), with Wilson
  score intervals (analytic, no resampling).
- Expected calibration error: 10 equal-width probability bins, ``sum(n_b / n * |mean(y_b) -
  mean(p_b)|)``.
- Confusion matrix at the threshold: tp, fp, tn, fn.
- Operating thresholds chosen on validation data: Youden's J (maximise sensitivity +
  specificity - 1), the highest threshold that reaches a target sensitivity, or the lowest that
  keeps a target specificity; the cut is put
  midway between the chosen score and the next lower distinct score, so that the validation
  decisions are the same as at the score itself and small shifts in score do not flip them.

A label whose targets are all one class has no AUROC and no threshold from data: its values are
NaN (JSON null), and its threshold falls back to 0.5 with a note.

Unknown targets (NaN: a public layout's uncertain label read with ``uncertainty: ignore``) are
left out per label: each label's metrics, thresholds, ECE and bootstrap use the images whose
target for that label is known (``n`` counts them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

DEFAULT_BOOTSTRAP = 1000
ECE_BINS = 10
FALLBACK_THRESHOLD = 0.5


def _as_arrays(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """One label's targets and scores as float64, without the rows whose target is unknown
    (NaN): every metric here counts known targets only."""
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"targets {y_arr.shape} and scores {p_arr.shape} differ in length")
    known = ~np.isnan(y_arr)
    if not known.all():
        y_arr, p_arr = y_arr[known], p_arr[known]
    if y_arr.size and not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("targets must be 0 or 1")
    return y_arr, p_arr


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (like scipy.stats.rankdata)."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.flatnonzero(np.diff(xs)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [xs.size]])
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1..end
    ranks_sorted = np.repeat(avg, ends - starts)
    ranks = np.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks


def auroc(y: Any, p: Any) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y_arr, p_arr = _as_arrays(y, p)
    n_pos = int(y_arr.sum())
    n_neg = y_arr.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(p_arr)
    return float((ranks[y_arr == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def bootstrap_auroc(
    y: Any,
    p: Any,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    level: float = 0.95,
    seed: int = 0,
    chunk: int = 100,
) -> tuple[float, float]:
    """Stratified percentile bootstrap CI of the AUROC; (nan, nan) if undefined.

    Each resample draws positives and negatives with replacement; its AUROC is computed from
    one sort of the original scores: for every positive, the resampled weight of negatives
    below it plus half of those tied with it.
    """
    y_arr, p_arr = _as_arrays(y, p)
    pos = p_arr[y_arr == 1]
    neg = p_arr[y_arr == 0]
    if pos.size == 0 or neg.size == 0 or n_boot <= 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng([seed, 0xB007])
    neg_sorted = np.sort(neg)
    neg_order = np.argsort(neg, kind="mergesort")
    # for each positive: how many sorted negatives are < it, and <= it
    below = np.searchsorted(neg_sorted, pos, side="left")
    upto = np.searchsorted(neg_sorted, pos, side="right")
    values = []
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        neg_draw = rng.integers(0, neg.size, size=(b, neg.size))
        pos_draw = rng.integers(0, pos.size, size=(b, pos.size))
        # negative weights in sorted order: counts of each original negative
        counts = np.zeros((b, neg.size), dtype=np.int64)
        np.add.at(counts, (np.arange(b)[:, None], neg_draw), 1)
        sorted_counts = counts[:, neg_order]
        cum = np.concatenate([np.zeros((b, 1), np.int64), np.cumsum(sorted_counts, axis=1)], 1)
        lower = cum[:, below]  # (b, n_pos): resampled negatives strictly below each positive
        ties = cum[:, upto] - lower
        score = lower + 0.5 * ties  # per original positive
        picked = np.take_along_axis(score, pos_draw, axis=1)
        values.append(picked.sum(axis=1) / (pos.size * neg.size))
    dist = np.concatenate(values)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(dist, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (nan, nan) when n == 0."""
    if n <= 0:
        return (math.nan, math.nan)
    z = NormalDist().inv_cdf(0.5 + level / 2.0)
    phat = successes / n
    denom = 1.0 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def roc_curve(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): one point per distinct score, from (0, 0) to (1, 1).

    ``thresholds[k]`` is the score at which point ``k`` is reached (positive if ``p >= t``);
    the first point has threshold +inf.
    """
    y_arr, p_arr = _as_arrays(y, p)
    order = np.argsort(-p_arr, kind="mergesort")
    ys, ps = y_arr[order], p_arr[order]
    distinct = np.flatnonzero(np.diff(ps)) if ps.size else np.zeros(0, int)
    ends = np.concatenate([distinct, [ps.size - 1]]) if ps.size else np.zeros(0, int)
    tps = np.cumsum(ys)[ends] if ps.size else np.zeros(0)
    fps = (ends + 1) - tps
    n_pos = max(float(y_arr.sum()), 0.0)
    n_neg = float(y_arr.size) - n_pos
    tpr = np.concatenate([[0.0], tps / n_pos if n_pos else np.full(tps.shape, np.nan)])
    fpr = np.concatenate([[0.0], fps / n_neg if n_neg else np.full(fps.shape, np.nan)])
    thresholds = np.concatenate([[np.inf], ps[ends]])
    return fpr, tpr, thresholds


@dataclass(frozen=True)
class Threshold:
    value: float
    rule: str
    note: str = ""


def _midpoint_below(p: np.ndarray, cut: float) -> float:
    lower = p[p < cut]
    return float((cut + lower.max()) / 2.0) if lower.size else float(cut)


def choose_threshold(
    y: Any,
    p: Any,
    rule: str = "youden",
    target_sensitivity: float = 0.9,
    target_specificity: float = 0.95,
) -> Threshold:
    """An operating threshold from validation scores; see the module docstring. Rules:
    "youden", "sensitivity" (the highest threshold reaching ``target_sensitivity``) and
    "specificity" (the lowest threshold keeping ``target_specificity``, i.e. the most sensitive
    one that does; when even the highest score's cut misses it, a cut above every score)."""
    y_arr, p_arr = _as_arrays(y, p)
    n_pos = int(y_arr.sum())
    if n_pos == 0 or n_pos == y_arr.size:
        return Threshold(
            FALLBACK_THRESHOLD,
            rule,
            f"validation has only one class: threshold {FALLBACK_THRESHOLD} (not tuned)",
        )
    fpr, tpr, thr = roc_curve(y_arr, p_arr)
    fpr, tpr, thr = fpr[1:], tpr[1:], thr[1:]  # drop the +inf start
    if rule == "youden":
        j = tpr - fpr
        k = int(np.argmax(j))  # first maximum: the highest threshold among ties
    elif rule == "sensitivity":
        reached = np.flatnonzero(tpr >= target_sensitivity - 1e-12)
        k = int(reached[0])
    elif rule == "specificity":
        kept = np.flatnonzero(1.0 - fpr >= target_specificity - 1e-12)
        if not kept.size:
            top = float(p_arr.max())
            return Threshold(
                (top + 1.0) / 2.0 if top < 1.0 else 1.0,
                rule,
                f"no cut keeps specificity {target_specificity:g}: above every score",
            )
        k = int(kept[-1])
    else:
        raise ValueError(f"unknown threshold rule {rule!r}")
    value = min(1.0, max(0.0, _midpoint_below(p_arr, float(thr[k]))))
    return Threshold(value, rule)


def expected_calibration_error(y: Any, p: Any, bins: int = ECE_BINS) -> float:
    y_arr, p_arr = _as_arrays(y, p)
    if y_arr.size == 0:
        return math.nan
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p_arr, edges[1:-1], right=False), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() / y_arr.size * abs(y_arr[mask].mean() - p_arr[mask].mean())
    return float(total)


def confusion(y: Any, p: Any, threshold: float) -> dict[str, int]:
    y_arr, p_arr = _as_arrays(y, p)
    pred = p_arr >= threshold
    pos = y_arr == 1
    return {
        "tp": int((pred & pos).sum()),
        "fp": int((pred & ~pos).sum()),
        "tn": int((~pred & ~pos).sum()),
        "fn": int((~pred & pos).sum()),
    }


def _value(v: float, ci: tuple[float, float] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": None if math.isnan(v) else float(v)}
    if ci is not None:
        out["ci95"] = [None if math.isnan(c) else float(c) for c in ci]
    return out


def label_metrics(
    y: Any,
    p: Any,
    threshold: float,
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of one label, JSON-ready (``{"value": v, "ci95": [lo, hi]}`` pairs)."""
    y_arr, p_arr = _as_arrays(y, p)
    cm = confusion(y_arr, p_arr, threshold)
    n_pos, n_neg = cm["tp"] + cm["fn"], cm["tn"] + cm["fp"]
    sens = cm["tp"] / n_pos if n_pos else math.nan
    spec = cm["tn"] / n_neg if n_neg else math.nan
    auc = auroc(y_arr, p_arr)
    auc_ci = (
        bootstrap_auroc(y_arr, p_arr, n_boot=n_boot, level=level, seed=seed) if n_boot else None
    )
    return {
        "n": int(y_arr.size),
        "positives": n_pos,
        "auroc": _value(auc, auc_ci),
        "sensitivity": _value(sens, wilson_interval(cm["tp"], n_pos, level)),
        "specificity": _value(spec, wilson_interval(cm["tn"], n_neg, level)),
        "ece": None if y_arr.size == 0 else expected_calibration_error(y_arr, p_arr),
        "threshold": float(threshold),
        **cm,
    }


def split_metrics(
    y: np.ndarray,
    p: np.ndarray,
    labels: tuple[str, ...] | list[str],
    thresholds: dict[str, float],
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """``{label: label_metrics, ..., "mean_auroc": float or None}`` for (N, L) arrays."""
    out: dict[str, Any] = {}
    aucs = []
    for j, label in enumerate(labels):
        m = label_metrics(
            y[:, j], p[:, j], thresholds[label], n_boot=n_boot, level=level, seed=seed + j
        )
        out[label] = m
        if m["auroc"]["value"] is not None:
            aucs.append(m["auroc"]["value"])
    out["mean_auroc"] = float(np.mean(aucs)) if aucs else None
    return out


def per_label_auroc(
    y: np.ndarray, p: np.ndarray, labels: tuple[str, ...] | list[str]
) -> dict[str, float]:
    return {lab: auroc(y[:, j], p[:, j]) for j, lab in enumerate(labels)}


def nanmean(values: Any) -> float:
    arr = np.asarray(list(values), dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else math.nan
