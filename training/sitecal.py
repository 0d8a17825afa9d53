"""Site calibration: a model measured on a site's own cases, its thresholds and temperatures re-set.

Given per label the site's 0/1 truths ``y`` and the model's calibrated probabilities ``p`` (as the
app computed them, with the model file's temperatures), :func:`calibrate_site`:

1. refits the temperature when the model file has temperatures: the logits behind ``p`` are
   ``logit(p) * T_old``; a factor ``s`` is fitted on ``logit(p)`` (``training.calibration``,
   NLL, bounded search) and ``T_new = T_old * s`` (``s = 1``, i.e. ``T_new = T_old``, when the
   site's cases cannot fix it: fewer than 5 of a class, or perfectly separated);
2. chooses the threshold on the re-calibrated probabilities by the site's rule (Youden's J, the
   highest threshold reaching a sensitivity, or the lowest keeping a specificity;
   ``training.metrics.choose_threshold``);
3. measures, at the model's old threshold (old probabilities) and at the new one (new
   probabilities): sensitivity, specificity, PPV and NPV with Wilson 95 % CIs; the AUROC with
   a stratified bootstrap 95 % CI (seeded; the same before and after: scaling keeps the order);
   ECE before and after.

The numbers at the new threshold are measured on the cases the threshold was chosen on
(in-sample): expect them to be a little lower on the site's next cases.

A label with fewer than ``min_positives`` positive or negative cases is refused: it keeps its
threshold and temperature, and is named in the block's ``refused`` with how many are needed.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from desktop_app.infra.errors import ConfigError
from desktop_app.model.applicability import MAX_TEMPERATURE
from training.calibration import MIN_TEMPERATURE, fit_temperature, logits_of
from training.metrics import (
    DEFAULT_BOOTSTRAP,
    auroc,
    bootstrap_auroc,
    choose_threshold,
    confusion,
    expected_calibration_error,
    wilson_interval,
)

DEFAULT_MIN_POSITIVES = 10
RULE_HELP = "youden, sensitivity:0.90 or specificity:0.95"
_VERSION_SUFFIX = re.compile(r"^(?P<base>.*)-site(?P<n>\d+)$")


@dataclass(frozen=True)
class SiteRule:
    """How the site's thresholds are chosen: ``kind`` "youden", "sensitivity" or
    "specificity", with the target for the last two."""

    kind: str
    target: float | None = None

    @property
    def text(self) -> str:
        """As given on the command line: "youden", "sensitivity:0.90"."""
        return self.kind if self.target is None else f"{self.kind}:{self.target:.2f}"

    def describe(self) -> str:
        if self.kind == "youden":
            return "Youden's J (sensitivity + specificity - 1, maximised)"
        if self.kind == "sensitivity":
            return f"the highest threshold reaching sensitivity {self.target:.2f}"
        return f"the lowest threshold keeping specificity {self.target:.2f}"


def parse_rule(text: str) -> SiteRule:
    """``youden``, ``sensitivity:0.90`` or ``specificity:0.95`` (targets in (0, 1))."""
    kind, _, target = text.strip().lower().partition(":")
    if kind == "youden" and not target:
        return SiteRule("youden")
    if kind in ("sensitivity", "specificity") and target:
        try:
            value = float(target)
        except ValueError:
            value = math.nan
        if 0.0 < value < 1.0:
            return SiteRule(kind, value)
        raise ConfigError(
            f"--rule {text!r}: the {kind} target must be a number between 0 and 1",
            hint=f"e.g. {kind}:0.90",
        )
    raise ConfigError(f"unknown --rule {text!r}", hint=f"choose one of: {RULE_HELP}")


def next_site_version(version: str) -> str:
    """The version of a site-calibrated model: "1" -> "1-site1", "1-site1" -> "1-site2"."""
    match = _VERSION_SUFFIX.match(version)
    if match:
        return f"{match['base']}-site{int(match['n']) + 1}"
    return f"{version}-site1"


def _r(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _proportion(successes: int, n: int) -> dict[str, Any]:
    """``{"value", "ci95"}`` of a proportion with its Wilson 95 % interval (None when n = 0)."""
    lo, hi = wilson_interval(successes, n)
    return {"value": _r(successes / n) if n else None, "ci95": [_r(lo), _r(hi)]}


def operating_point(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """Sensitivity, specificity, PPV, NPV (Wilson 95 % CIs) and the confusion counts at
    ``threshold`` (positive when ``p >= threshold``)."""
    cm = confusion(y, p, threshold)
    tp, fp, tn, fn = cm["tp"], cm["fp"], cm["tn"], cm["fn"]
    return {
        "threshold": float(threshold),
        "sensitivity": _proportion(tp, tp + fn),
        "specificity": _proportion(tn, tn + fp),
        "ppv": _proportion(tp, tp + fp),
        "npv": _proportion(tn, tn + fn),
        **cm,
    }


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class LabelResult:
    """One label's site measurement: its block entry, new threshold and temperature."""

    entry: dict[str, Any]
    threshold: float
    temperature: float | None


def measure_label(
    y: np.ndarray,
    p: np.ndarray,
    *,
    threshold_before: float,
    temperature_before: float | None,
    rule: SiteRule,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> LabelResult:
    """Calibrate one label on the site's cases (both classes present); see the module
    docstring."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    temperature_after = temperature_before
    p_after = p
    if temperature_before is not None:
        z = logits_of(p)
        factor = fit_temperature(z, y)
        t_new = min(max(temperature_before * factor, MIN_TEMPERATURE), MAX_TEMPERATURE)
        temperature_after = round(t_new, 4)
        p_after = _sigmoid(z * temperature_before / temperature_after)
    choice = choose_threshold(
        y,
        p_after,
        rule.kind,
        target_sensitivity=rule.target or 0.9,
        target_specificity=rule.target or 0.95,
    )
    threshold_after = float(choice.value)  # not rounded: a rounded cut could flip a case
    before = operating_point(y, p, threshold_before)
    after = operating_point(y, p_after, threshold_after)
    auc_lo, auc_hi = (
        bootstrap_auroc(y, p_after, n_boot=n_boot, seed=seed) if n_boot else (None, None)
    )
    positives = int(y.sum())
    entry: dict[str, Any] = {
        "n": int(y.size),
        "positives": positives,
        "negatives": int(y.size) - positives,
        "prevalence": _r(positives / y.size),
        "sensitivity": after["sensitivity"],
        "specificity": after["specificity"],
        "ppv": after["ppv"],
        "npv": after["npv"],
        "auroc": {"value": _r(auroc(y, p_after)), "ci95": [_r(auc_lo), _r(auc_hi)]},
        **{k: after[k] for k in ("tp", "fp", "tn", "fn")},
        "threshold_before": float(threshold_before),
        "threshold_after": threshold_after,
        "temperature_before": temperature_before,
        "temperature_after": temperature_after,
        "ece_before": _r(expected_calibration_error(y, p)),
        "ece_after": _r(expected_calibration_error(y, p_after)),
        "at_threshold_before": {k: v for k, v in before.items() if k != "threshold"},
    }
    if choice.note:
        entry["note"] = choice.note
    return LabelResult(entry, threshold_after, temperature_after)


@dataclass
class SiteCalibration:
    """What :func:`calibrate_site` decided: the manifest block, the thresholds and temperatures
    the new model file carries, and the labels refused (label -> one-line reason)."""

    block: dict[str, Any]
    thresholds: dict[str, float]
    temperatures: dict[str, float] | None
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def calibrated(self) -> list[str]:
        return list(self.block["labels"])


def refusal(label: str, positives: int, negatives: int, needed: int) -> str | None:
    """Why ``label`` can't be calibrated on these cases, in one line (None: it can)."""
    short = [
        f"{count} {kind} case{'s' if count != 1 else ''}"
        for count, kind in ((positives, "positive"), (negatives, "negative"))
        if count < needed
    ]
    if not short:
        return None
    return (
        f"label {label!r} not calibrated: {' and '.join(short)}, at least {needed} of each "
        "needed to choose a threshold; it keeps its threshold"
    )


def calibrate_site(
    cases: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    labels: tuple[str, ...],
    thresholds: Mapping[str, float],
    temperatures: Mapping[str, float] | None,
    rule: SiteRule,
    min_positives: int = DEFAULT_MIN_POSITIVES,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    provenance: Mapping[str, Any] | None = None,
) -> SiteCalibration:
    """Calibrate every label of ``labels`` on ``cases`` (label -> (y, p); a label missing
    there has no cases). ``provenance`` (source, source_sha256, n_cases, ...) opens the block."""
    new_thresholds = {label: float(thresholds[label]) for label in labels}
    new_temperatures = dict(temperatures) if temperatures is not None else None
    per_label: dict[str, Any] = {}
    refused: dict[str, str] = {}
    refused_counts: dict[str, Any] = {}
    for j, label in enumerate(labels):
        y, p = cases.get(label, (np.zeros(0), np.zeros(0)))
        positives = int(np.asarray(y).sum())
        negatives = int(np.asarray(y).size) - positives
        why = refusal(label, positives, negatives, min_positives)
        if why is not None:
            refused[label] = why
            refused_counts[label] = {
                "positives": positives,
                "negatives": negatives,
                "needed": min_positives,
            }
            continue
        result = measure_label(
            y,
            p,
            threshold_before=new_thresholds[label],
            temperature_before=None if temperatures is None else float(temperatures[label]),
            rule=rule,
            n_boot=n_boot,
            seed=seed + j,
        )
        per_label[label] = result.entry
        new_thresholds[label] = result.threshold
        if new_temperatures is not None and result.temperature is not None:
            new_temperatures[label] = result.temperature
    block: dict[str, Any] = {
        **(provenance or {}),
        "date": _dt.datetime.now(_dt.UTC).date().isoformat(),
        "rule": rule.text,
        "min_positives": min_positives,
        "temperatures_refitted": temperatures is not None,
        "bootstrap": n_boot,
        "labels": per_label,
        "refused": refused_counts,
        "note": "measured on the cases the thresholds were chosen on (in-sample)",
    }
    return SiteCalibration(block, new_thresholds, new_temperatures, refused)
