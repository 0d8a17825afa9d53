"""Training plots as PNG: loss and AUROC curves per epoch, ROC curves per label.

Uses matplotlib's object API with the Agg canvas directly (no pyplot, no global backend
switch), so it runs headless and never touches a GUI. Files are written atomically.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from desktop_app.infra.atomicio import atomic_write_bytes

log = logging.getLogger(__name__)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())


def _finite(values: Sequence[Any]) -> list[float]:
    return [float(v) if v is not None and math.isfinite(float(v)) else math.nan for v in values]


def plot_loss_curves(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Train/val loss (left) and train/val mean AUROC plus per-label val AUROC (right)."""
    fig = _figure(10, 4)
    ax_loss, ax_auc = fig.subplots(1, 2)
    epochs = [int(h["epoch"]) for h in history]
    ax_loss.plot(epochs, _finite([h.get("train_loss") for h in history]), "o-", label="train")
    ax_loss.plot(epochs, _finite([h.get("val_loss") for h in history]), "s-", label="validation")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("BCE loss")
    ax_loss.set_title("Loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    ax_auc.plot(
        epochs, _finite([h.get("train_auroc_mean") for h in history]), "o-", label="train (mean)"
    )
    ax_auc.plot(
        epochs, _finite([h.get("val_auroc_mean") for h in history]), "s-", label="validation (mean)"
    )
    labels = list(history[0].get("val_auroc", {})) if history else []
    if len(labels) > 1:
        for label in labels:
            ax_auc.plot(
                epochs,
                _finite([h.get("val_auroc", {}).get(label) for h in history]),
                ":",
                alpha=0.7,
                label=f"val {label}",
            )
    ax_auc.set_xlabel("epoch")
    ax_auc.set_ylabel("AUROC")
    ax_auc.set_ylim(0.0, 1.02)
    ax_auc.set_title("AUROC")
    ax_auc.legend(fontsize="small")
    ax_auc.grid(alpha=0.3)
    for ax in (ax_loss, ax_auc):
        ax.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
    return _save(fig, Path(path))


def plot_roc_curves(
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray, float]]],
    path: str | Path,
    thresholds_at: Mapping[str, Mapping[str, tuple[float, float]]] | None = None,
) -> Path:
    """One panel per split: ``curves[split][label] = (fpr, tpr, auc)``; a dot marks each
    label's operating point ``thresholds_at[split][label] = (fpr, tpr)``."""
    splits = list(curves)
    fig = _figure(4.5 * max(1, len(splits)), 4.3)
    axes = fig.subplots(1, max(1, len(splits)), squeeze=False)[0]
    for ax, split in zip(axes, splits, strict=False):
        for label, (fpr, tpr, auc) in curves[split].items():
            text = "n/a" if auc is None or not math.isfinite(auc) else f"{auc:.3f}"
            (line,) = ax.plot(fpr, tpr, label=f"{label} (AUC {text})")
            point = (thresholds_at or {}).get(split, {}).get(label)
            if point is not None and all(math.isfinite(v) for v in point):
                ax.plot([point[0]], [point[1]], "o", color=line.get_color())
        ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.set_title(f"ROC ({split})")
        ax.legend(loc="lower right", fontsize="small")
        ax.grid(alpha=0.3)
    return _save(fig, Path(path))
