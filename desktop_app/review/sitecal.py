"""A model's site calibration (its manifest's ``site_calibration`` block) as one line per label."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def _measure(entry: Any) -> tuple[float, tuple[float, float] | None] | None:
    """``{"value": v, "ci95": [lo, hi]}`` (or a bare number) as (v, (lo, hi) or None)."""
    if isinstance(entry, Mapping):
        value, ci = entry.get("value"), entry.get("ci95")
    else:
        value, ci = entry, None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    bounds = None
    if (
        isinstance(ci, list | tuple)
        and len(ci) == 2
        and all(isinstance(v, int | float) and math.isfinite(v) for v in ci)
    ):
        bounds = (float(ci[0]), float(ci[1]))
    return float(value), bounds


def _text(name: str, measured: tuple[float, tuple[float, float] | None]) -> str:
    value, ci = measured
    return f"{name} {value:.2f}" + (f" ({ci[0]:.2f}–{ci[1]:.2f})" if ci else "")


def site_calibration_text(block: Mapping[str, Any] | None, label: str) -> str | None:
    """ "at this site: sensitivity 0.82 (0.70–0.90), specificity 0.91 (0.86–0.95) on 143
    reviewed cases" for ``label``; None when the block has no usable numbers for it (no site
    calibration, the label not measured, or a malformed entry)."""
    if not isinstance(block, Mapping):
        return None
    labels = block.get("labels")
    entry = labels.get(label) if isinstance(labels, Mapping) else None
    if not isinstance(entry, Mapping):
        return None
    parts = [
        _text(name, measured)
        for name in ("sensitivity", "specificity")
        if (measured := _measure(entry.get(name))) is not None
    ]
    if not parts:
        return None
    n = entry.get("n", block.get("n_cases"))
    what = "labelled image" if block.get("source") == "manifest" else "reviewed case"
    cases = (
        f" on {int(n)} {what}{'s' if int(n) != 1 else ''}"
        if isinstance(n, int) and not isinstance(n, bool)
        else ""
    )
    return f"at this site: {', '.join(parts)}{cases}"
