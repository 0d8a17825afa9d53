"""Evaluation: predictions of a network on cached images, metrics with CIs, thresholds, tables.

Used by ``fit`` (validation and test metrics, operating thresholds for the model file) and by
``radassist-train evaluate`` (a model file scored on a manifest's split, or on every row of an
external set without a split column). Preprocessing is the
model file's own spec through ``desktop_app.model.preprocessing`` (float32, no augmentation), exactly
what the app does.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from desktop_app.infra.cancel import Progress, StopFlag
from desktop_app.infra.errors import ConfigError, DataError
from desktop_app.model.applicability import OodModel
from desktop_app.model.archs import is_volume
from desktop_app.model.preprocessing import PreprocessSpec
from training.batches import predict_logits_and_features
from training.calibration import calibrated_probs
from training.data import Dataset, LayoutOptions, Splits, read_dataset, split_dataset
from training.dataset import UnitImageDataset, load_units
from training.metrics import choose_threshold, roc_curve, split_metrics
from training.runtime import Runtime, select_device
from training.segmetrics import false_positive_clause

log = logging.getLogger(__name__)

EVAL_SPLITS = ("train", "val", "test", "all")


@dataclass(frozen=True)
class ThresholdChoice:
    thresholds: dict[str, float]
    rule: str  # the text stored in the model file
    notes: list[str]


def threshold_rule_text(rule: str, target_sensitivity: float, where: str) -> str:
    if rule == "youden":
        text = (
            f"Youden's J (sensitivity + specificity - 1, maximised) on {where}; the cut lies "
            "midway between the chosen score and the next lower one; positive when p >= threshold"
        )
    else:
        text = (
            f"the highest threshold that reaches sensitivity >= {target_sensitivity:.2f} on "
            f"{where}; the cut lies midway between the chosen score and the next lower one; "
            "positive when p >= threshold"
        )
    return text


def choose_thresholds(
    y: np.ndarray,
    p: np.ndarray,
    labels: Sequence[str],
    rule: str = "youden",
    target_sensitivity: float = 0.9,
    where: str = "the validation split",
) -> ThresholdChoice:
    """Per-label operating thresholds from validation targets ``y`` and probabilities ``p``."""
    thresholds: dict[str, float] = {}
    notes = []
    for j, label in enumerate(labels):
        choice = choose_threshold(y[:, j], p[:, j], rule, target_sensitivity)
        thresholds[label] = choice.value
        if choice.note:
            notes.append(f"{label}: {choice.note}")
    text = threshold_rule_text(rule, target_sensitivity, where)
    if notes:
        text += ". " + "; ".join(notes)
    return ThresholdChoice(thresholds, text, notes)


def roc_points(
    y: np.ndarray, p: np.ndarray, labels: Sequence[str], thresholds: Mapping[str, float]
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, float]], dict[str, tuple[float, float]]]:
    """ROC curves and each label's operating point (fpr, tpr) for plotting."""
    from training.metrics import auroc

    curves, points = {}, {}
    for j, label in enumerate(labels):
        fpr, tpr, _ = roc_curve(y[:, j], p[:, j])
        curves[label] = (fpr, tpr, auroc(y[:, j], p[:, j]))
        known = ~np.isnan(y[:, j])  # an unknown target (NaN) is neither
        pred = p[known, j] >= thresholds[label]
        pos = y[known, j] == 1
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        points[label] = (
            float((pred & ~pos).sum() / n_neg) if n_neg else math.nan,
            float((pred & pos).sum() / n_pos) if n_pos else math.nan,
        )
    return curves, points


def predict_indices(
    model: torch.nn.Module,
    data: Dataset,
    units: torch.Tensor,
    indices: Sequence[int],
    spec: PreprocessSpec,
    runtime: Runtime,
    *,
    temperatures: Mapping[str, float] | None = None,
    labels: Sequence[str] = (),
    batch_size: int = 32,
    workers: int = 0,
    channels_last: bool = False,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (len(indices), L) of ``model`` on cached unit images, no augmentation,
    temperature-scaled as the app does when ``temperatures`` are given (columns in ``labels``
    order), and the penultimate features (len(indices), D) of the same float32 pass."""
    ds = UnitImageDataset(units, data.label_matrix(), indices, spec)
    logits, features = predict_logits_and_features(
        model, ds, runtime, batch_size=batch_size, workers=workers,
        channels_last=channels_last, progress=progress, stop=stop,
    )  # fmt: skip
    return calibrated_probs(logits, labels, temperatures), features


def split_indices(splits: Splits, split: str, n: int) -> list[int]:
    if split == "all":
        return list(range(n))
    return list(getattr(splits, split))


# --------------------------------------------------------------------------- evaluate command


def layout_for_model(
    training_data: Mapping[str, Any], flags: Mapping[str, str] | None = None
) -> LayoutOptions:
    """How to read a public layout for a model file: the options its training recorded
    (``training_data["layout"]``; the documented defaults when it recorded none), with the
    ``flags`` given (``data.layout`` keys) over them."""
    recorded = training_data.get("layout")
    names = {f.name for f in fields(LayoutOptions)}
    base = LayoutOptions()
    if isinstance(recorded, Mapping):
        known = {k: v for k, v in recorded.items() if k in names and isinstance(v, str)}
        try:
            base = LayoutOptions(**known)
        except ConfigError:
            log.warning("the model file's recorded layout options are unknown: defaults used")
    try:
        return replace(base, **dict(flags or {}))
    except (ConfigError, TypeError) as err:
        raise DataError(f"layout options {dict(flags or {})}: {err}") from None


def _read_model_labels(
    data_path: str | Path, labels: list[str], options: LayoutOptions | None = None
) -> Dataset:
    """The manifest's columns for the model's labels; a missing one is named as the model's.
    ``options``: how a public layout is read (``layout_for_model``)."""
    try:
        return read_dataset(data_path, labels=labels, options=options)
    except DataError as err:
        if err.reason.startswith("unknown label"):
            raise DataError(
                f"the model's {err.reason.replace('unknown label', 'label')} is not a label "
                "column of this manifest",
                err.path,
                err.hint,
            ) from None
        raise


def _split_as_trained(data: Dataset, training_data: dict[str, Any]) -> Splits:
    """The splits that training made: its seed and fractions, as the model file records them."""
    return split_dataset(
        data,
        seed=int(training_data.get("split_seed", 0)),
        val_fraction=float(training_data.get("val_fraction", 0.15)),
        test_fraction=float(training_data.get("test_fraction", 0.15)),
    )


def evaluate_model_file(
    model_path: str | Path,
    data_path: str | Path,
    *,
    split: str | None = None,
    device: str = "auto",
    batch_size: int = 32,
    workers: int = 0,
    n_boot: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    layout: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> dict[str, Any]:
    """Score a model file on ``split`` of a manifest; the result is JSON-ready. A public
    layout is read as the model's training read it, with ``layout`` (``data.layout`` keys)
    over that (``layout_for_model``).

    Without ``split``: a manifest or layout without a split column is an external set and
    every row is scored (``data.external``), unless it is the model's own training data
    (``is_training_data``), whose test split is scored (``data.note`` says so); a manifest
    with a split column gives its test split. With ``split``, a manifest without a split
    column is split as training split it: with the seed and fractions the model file's
    training_data records.
    """
    from desktop_app.model.modelfile import load_model_file

    start = time.perf_counter()
    if split is not None and split not in EVAL_SPLITS:
        raise DataError(f"unknown split {split!r}", hint=f"choose one of: {', '.join(EVAL_SPLITS)}")
    dev = select_device(device)
    loaded = load_model_file(model_path, map_location=dev)
    manifest = loaded.manifest
    if manifest.task == "segmentation" and is_volume(manifest.architecture):
        return evaluate_volume_model(
            loaded, model_path, data_path, split=split, device=dev, n_boot=n_boot,
            ci_level=ci_level, seed=seed, progress=progress, stop=stop, start=start,
        )  # fmt: skip
    if manifest.task == "segmentation":
        return evaluate_segmentation(
            loaded, model_path, data_path, split=split, device=dev, batch_size=batch_size,
            workers=workers, n_boot=n_boot, ci_level=ci_level, seed=seed, progress=progress,
            stop=stop, start=start,
        )  # fmt: skip
    labels = list(manifest.labels)
    options = layout_for_model(manifest.training_data, layout)
    data = _read_model_labels(data_path, labels, options)
    split, external, note, indices, method = _scored_rows(data, manifest.training_data, split)
    spec = manifest.preprocessing
    units = torch.zeros((len(data.records), spec.image_size, spec.image_size), dtype=torch.float32)
    units[indices] = load_units(
        [data.records[i] for i in indices],
        spec,
        workers=max(1, workers),
        source=data.source,
        progress=progress,
        stop=stop,
    )
    runtime = Runtime(dev)
    probs, features = predict_indices(
        loaded.network, data, units, indices, spec, runtime, batch_size=batch_size, stop=stop,
        temperatures=manifest.temperatures, labels=labels,
    )  # fmt: skip
    y = data.label_matrix(indices)
    metrics = split_metrics(
        y, probs, labels, dict(manifest.thresholds), n_boot=n_boot, level=ci_level, seed=seed
    )
    return {
        "model": _model_block(model_path, manifest),
        "data": {
            "manifest": str(data.source),
            "manifest_sha256": data.sha256,
            **({"layout": asdict(options)} if data.kind not in ("manifest", "rsna") else {}),
            "split": split,
            "split_method": method,
            "external": external,
            "images": len(indices),
            "patients": len({data.records[i].patient for i in indices}),
            **({"note": note} if note else {}),
        },
        "device": str(dev),
        "bootstrap": n_boot,
        "ci_level": ci_level,
        "labels": {label: metrics[label] for label in labels},
        "mean_auroc": metrics["mean_auroc"],
        "calibrated": manifest.temperatures is not None,
        "ood": _ood_summary(loaded.ood, features),
        "seconds": round(time.perf_counter() - start, 3),
    }


def predict_masks(
    model: torch.nn.Module, ds: Any, device: torch.device, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, L, S, S) float32 and truths (N, L, S, S) uint8 for ``ds``."""
    model.eval()
    probs, truths = [], []
    with torch.no_grad():
        for x, y, _ in torch.utils.data.DataLoader(ds, batch_size=batch_size):
            probs.append(torch.sigmoid(model(x.to(device)).float()).cpu().numpy())
            truths.append(y.numpy().astype(np.uint8))
    if not probs:
        return np.zeros((0,)), np.zeros((0,))
    return np.concatenate(probs), np.concatenate(truths)


def evaluate_segmentation(
    loaded: Any, model_path: str | Path, data_path: str | Path, *, split: str | None,
    device: torch.device, batch_size: int, workers: int, n_boot: int, ci_level: float,
    seed: int, progress: Progress | None, stop: StopFlag, start: float,
) -> dict[str, Any]:  # fmt: skip
    """``evaluate_model_file`` for a segmentation model: the masks read as its training read
    them (``training.segdata``, the model's class as ``--labels`` unless it is a default
    name), the same split rules, then Dice, HD95, lesion sensitivity and false positives per
    image with CIs (``training.segmetrics``) on the network grid."""
    from training.segdata import PairDataset, load_pairs, read_segmentation_data
    from training.segmasks import DEFAULT_CLASS, SegDataset
    from training.segmetrics import seg_split_metrics

    manifest = loaded.manifest
    labels = list(manifest.labels)
    picked = None if labels in ([DEFAULT_CLASS], ["foreground"]) else labels
    seg = read_segmentation_data(data_path, picked)
    data = seg.data
    split, external, note, indices, method = _scored_rows(
        data, manifest.training_data, split, legacy_folder_hashes(seg)
    )
    subset = SegDataset(
        replace(data, records=[data.records[i] for i in indices]),
        [seg.masks[i] for i in indices],
        [seg.images[i] for i in indices] if seg.images else [],
    )
    spec = manifest.preprocessing
    units, masks, spacing = load_pairs(
        subset, spec, workers=max(1, workers), progress=progress, stop=stop
    )
    ds = PairDataset(units, masks, range(len(indices)), spec)
    probs, truth = predict_masks(loaded.network, ds, device, batch_size)
    metrics = seg_split_metrics(
        probs, truth, labels, dict(manifest.thresholds), n_boot=n_boot, level=ci_level,
        seed=seed, spacing=spacing,
    )  # fmt: skip
    return _seg_report(
        model_path, manifest, data, (split, external, note, indices, method), metrics,
        device=device, n_boot=n_boot, ci_level=ci_level, start=start,
    )  # fmt: skip


def evaluate_volume_model(
    loaded: Any, model_path: str | Path, data_path: str | Path, *, split: str | None,
    device: torch.device, n_boot: int, ci_level: float, seed: int, progress: Progress | None,
    stop: StopFlag, start: float,
) -> dict[str, Any]:  # fmt: skip
    """``evaluate_model_file`` for a 3-D model (``training.seg3ddata``): the volumes resampled to the
    model's spacing, normalised by its window (or z-score), scored by sliding window with the
    split rules of 2-D segmentation."""
    from training.seg3ddata import load_volume_data, normalize, predict_volumes, split_metrics_3d
    from training.segmasks import DEFAULT_CLASS

    manifest = loaded.manifest
    args = manifest.arch_args
    labels = list(manifest.labels)
    picked = None if labels in ([DEFAULT_CLASS], ["foreground"]) else labels
    vols = load_volume_data(data_path, picked, spacing=args["spacing"], progress=progress,
                            stop=stop)  # fmt: skip
    data = vols.data
    split, external, note, indices, method = _scored_rows(data, manifest.training_data, split)
    images = [normalize(vols.images[i], args["window"]) for i in indices]
    probs = predict_volumes(loaded.network, images, args["image_size"], device, stop)
    metrics = split_metrics_3d(
        probs, [vols.masks[i] for i in indices], labels, vols.spacing, n_boot=n_boot,
        level=ci_level, seed=seed,
    )  # fmt: skip
    return {"dims": 3, **_seg_report(
        model_path, manifest, data, (split, external, note, indices, method), metrics,
        device=device, n_boot=n_boot, ci_level=ci_level, start=start,
        spacing_mm=list(vols.spacing),
    )}  # fmt: skip


def _model_block(model_path: str | Path, manifest: Any) -> dict[str, Any]:
    """The report's ``model``: the file and what names it."""
    return {
        "path": str(model_path), "name": manifest.name, "version": manifest.version,
        "architecture": manifest.architecture, "tensor_sha256": manifest.tensor_sha256,
        "threshold_rule": manifest.threshold_rule,
    }  # fmt: skip


def _seg_report(
    model_path: str | Path, manifest: Any, data: Dataset,
    scored: tuple[str, bool, str | None, list[int], str], metrics: Mapping[str, Any], *,
    device: torch.device, n_boot: int, ci_level: float, start: float, **data_extra: Any,
) -> dict[str, Any]:  # fmt: skip
    """A segmentation model's report (2-D or 3-D): ``scored`` is :func:`_scored_rows`'s
    answer, ``data_extra`` more of the ``data`` block (a 3-D model's spacing)."""
    split, external, note, indices, method = scored
    labels = list(manifest.labels)
    return {
        "task": "segmentation",
        "model": _model_block(model_path, manifest),
        "data": {
            "manifest": str(data.source), "manifest_sha256": data.sha256, "kind": data.kind,
            "split": split, "split_method": method, "external": external,
            "images": len(indices), "patients": len({data.records[i].patient for i in indices}),
            **data_extra, **({"note": note} if note else {}),
        },
        "device": str(device), "bootstrap": n_boot, "ci_level": ci_level,
        "labels": {label: metrics[label] for label in labels},
        "mean_dice": metrics["mean_dice"], "mean_auroc": None, "calibrated": False, "ood": None,
        "seconds": round(time.perf_counter() - start, 3),
    }  # fmt: skip


def _scored_rows(
    data: Dataset, training_data: Mapping[str, Any], split: str | None,
    aliases: Sequence[str] = (),
) -> tuple[str, bool, str | None, list[int], str]:  # fmt: skip
    """(split, external, note, row indices, split method) of the rows to score: the split as
    training made it, or every row of an external set; DataError for an empty split."""
    split, external, note = _default_split(data, training_data, split, aliases)
    if external:
        indices = list(range(len(data.records)))
        method = "none: an external set without a split column, every row scored"
    else:
        splits = _split_as_trained(data, dict(training_data))
        indices = split_indices(splits, split, len(data.records))
        method = splits.method
    if note is not None:
        note = own_data_line(len(indices))
    if not indices:
        raise DataError(
            f"the {split} split is empty",
            data.source,
            "choose another --split, or mark rows with that split",
        )
    return split, external, note, indices, method


def _default_split(
    data: Dataset, training_data: Mapping[str, Any], split: str | None,
    aliases: Sequence[str] = (),
) -> tuple[str, bool, str | None]:  # fmt: skip
    """(split, external, note) for ``split`` None (see ``evaluate_model_file``)."""
    if split is not None:
        return split, False, None
    if data.has_split:
        return "test", False, None
    if is_training_data(data, training_data, aliases):
        return "test", False, own_data_line(None)
    return "all", True, None


def own_data_line(images: int | None) -> str:
    """What evaluate says when it scores the test split of the model's own training data."""
    count = "" if images is None else f" ({images} image{'' if images == 1 else 's'})"
    return (
        f"the model's own training data: scoring its test split{count}; "
        "--split all scores every image"
    )


def is_training_data(
    data: Dataset, training_data: Mapping[str, Any], aliases: Sequence[str] = ()
) -> bool:
    """Whether ``data`` is the data the model was trained on: its hash (or one of ``aliases``,
    the hashes the same data had under an older reader) is the one the model file records."""
    return training_data.get("manifest_sha256") in (data.sha256, *aliases)


def legacy_folder_hashes(seg: Any) -> list[str]:
    """The hashes an image + mask folder had before they were taken of paths below the folder
    (model files trained then record one): the same lines with the folder as the user may have
    typed it, absolute or relative to any folder above it (``kv``, ``data/kv``, ``/abs/kv``)."""
    from training.segmasks import LabelImage

    data = seg.data
    if data.kind != "folders":
        return []
    root = Path(data.source).resolve()
    try:
        lines = [(Path(r.path).resolve().relative_to(root),
                  [Path(p).resolve().relative_to(root) for p in (m.path, *m.more)])
                 for r, m in zip(data.records, seg.masks, strict=True)
                 if isinstance(m, LabelImage)]  # fmt: skip
    except ValueError:
        return []
    prefixes = [root, *(Path(*root.parts[-k:]) for k in range(1, len(root.parts)))]
    return [
        hashlib.sha256("\n".join(
            f"{prefix / image},{','.join(str(prefix / m) for m in masks)}"
            for image, masks in lines
        ).encode("utf-8")).hexdigest()
        for prefix in prefixes
    ]  # fmt: skip


def _ood_summary(ood: OodModel | None, features: np.ndarray) -> dict[str, Any] | None:
    """The OOD threshold and the fraction of the split's images over it (None: no OOD)."""
    if ood is None:
        return None
    flags = ood.flags(ood.score(features))
    return {
        "threshold": ood.threshold,
        "flagged": int(flags.sum()),
        "flag_rate": round(float(flags.mean()), 4) if len(flags) else None,
    }


# --------------------------------------------------------------------------- tables


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}"


def _with_ci(entry: Mapping[str, Any]) -> str:
    value = _num(entry.get("value"))
    ci = entry.get("ci95")
    if ci and ci[0] is not None and ci[1] is not None:
        return f"{value} ({_num(ci[0], 2)}-{_num(ci[1], 2)})"
    return value


def format_seg_table(label_metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """A segmentation model's table: one row per class, then the mean Dice."""
    header = ("label", "images", "pos", "Dice (95% CI)", "Dice pos. (95% CI)", "HD95 px",
              "HD95 mm", "lesions", "lesion sens. (95% CI)", "FP/image (95% CI)")  # fmt: skip
    rows = [header]
    for label, m in label_metrics.items():
        mm = m.get("hd95_mm")
        rows.append(
            (label, str(m["images"]), str(m["positive_images"]), _with_ci(m["dice"]),
             _with_ci(m["dice_positive"]), _num(m["hd95_px"].get("value"), 1),
             _num(mm.get("value"), 1) if mm else "n/a", str(m["lesions"]),
             _with_ci(m["lesion_sensitivity"]), _with_ci(m["fp_per_image"]))
        )  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    dices = [m["dice"]["value"] for m in label_metrics.values() if m["dice"]["value"] is not None]
    lines.append(f"mean Dice {_num(float(np.mean(dices)) if dices else None)}")
    for label, m in label_metrics.items():
        many = false_positive_clause(m["fp_per_image"].get("value"))
        if many:
            lines.append(
                f"{label}: lesion sensitivity {_num(m['lesion_sensitivity'].get('value'))} {many}"
            )
    return "\n".join(lines)


def format_table(label_metrics: Mapping[str, Mapping[str, Any]], mean_auroc: float | None) -> str:
    """A fixed-width human table: one row per label, then the mean AUROC (a segmentation
    model's metrics: :func:`format_seg_table`)."""
    if label_metrics and all("dice" in m for m in label_metrics.values()):
        return format_seg_table(label_metrics)
    header = (
        "label", "n", "pos", "AUROC (95% CI)", "sensitivity (95% CI)", "specificity (95% CI)",
        "threshold", "ECE", "TP", "FP", "TN", "FN",
    )  # fmt: skip
    rows = [header]
    for label, m in label_metrics.items():
        rows.append(
            (
                label,
                str(m["n"]),
                str(m["positives"]),
                _with_ci(m["auroc"]),
                _with_ci(m["sensitivity"]),
                _with_ci(m["specificity"]),
                _num(m["threshold"]),
                _num(m["ece"]),
                str(m["tp"]),
                str(m["fp"]),
                str(m["tn"]),
                str(m["fn"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.append(f"mean AUROC {_num(mean_auroc)}")
    return "\n".join(lines)
