"""After training: intended input, OOD statistics and temperatures for the model file, and the
calibrated probabilities that thresholds and metrics are computed on.

The one place ``fit`` (at its end), ``radassist-train refit`` (on an existing model file's
weights) and ``radassist-train prune`` (on its pruned, fine-tuned weights) go through: one
forward pass per split gives logits and penultimate features; temperatures are fitted on the
validation logits, the Gaussian on the train features with its threshold on the validation
scores, and the intended input comes from the train split's headers. The last two write their
model file with ``write_refitted``. A 2-D segmentation model gets the OOD statistics only, per
slice, of its pooled encoder features (``fit_seg_ood``, from ``fit`` and ``refit``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from desktop_app.infra.cancel import Progress, StopFlag
from desktop_app.infra.errors import DataError
from desktop_app.model.applicability import IntendedInput, OodModel
from desktop_app.model.manifest import ModelManifest
from desktop_app.model.preprocessing import PreprocessSpec
from training.batches import predict_logits_and_features
from training.calibration import calibrated_probs, calibration_report, fit_temperatures
from training.config import ApplicabilityConfig, EvaluationConfig, ThresholdConfig
from training.data import Dataset, LayoutOptions, Splits
from training.dataset import UnitImageDataset, load_units
from training.evaluate import (
    ThresholdChoice,
    _read_model_labels,
    _split_as_trained,
    choose_thresholds,
)
from training.intended import intended_input_for
from training.metrics import split_metrics
from training.ood import MIN_TRAIN_IMAGES, fit_ood
from training.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitOutputs:
    """One split's rows of the dataset, targets, logits and (when scored here) features."""

    indices: list[int]
    y: np.ndarray
    logits: np.ndarray
    features: np.ndarray | None = None


@dataclass(frozen=True)
class Applicability:
    """What goes into the model file beside the weights, and what was measured to choose it."""

    intended_input: IntendedInput
    temperatures: dict[str, float] | None
    ood: OodModel | None
    calibration: dict[str, Any]  # per label: temperature, ECE and NLL before/after per split
    ood_rates: dict[str, float]  # per split: fraction of images over the OOD threshold

    def probs(self, outputs: SplitOutputs, labels: Sequence[str]) -> np.ndarray:
        """The calibrated probabilities of a split (what the app shows)."""
        return calibrated_probs(outputs.logits, labels, self.temperatures)


def read_as_trained(
    data_path: Path,
    manifest: ModelManifest,
    options: LayoutOptions | None,
    *,
    workers: int,
    needs: str,
    progress: Progress | None = None,
    stop: StopFlag = None,
) -> tuple[Dataset, Splits, torch.Tensor]:
    """The manifest read for ``manifest``'s labels, split as its training split it (``needs``,
    e.g. "re-fitting", needs train and val rows), and the unit images of every split's rows:
    decoded once on ``workers`` threads as the model file's preprocessing says, other rows 0."""
    data = _read_model_labels(data_path, list(manifest.labels), options)
    splits = _split_as_trained(data, manifest.training_data)
    for name in ("train", "val"):
        if not getattr(splits, name):
            raise DataError(
                f"the {name} split is empty", data.source, f"{needs} needs train and val rows"
            )
    spec = manifest.preprocessing
    needed = sorted(splits.train + splits.val + splits.test)
    units = torch.zeros((len(data.records), spec.image_size, spec.image_size), dtype=torch.float32)
    units[needed] = load_units(
        [data.records[i] for i in needed], spec, workers=workers, source=data.source,
        progress=progress, stop=stop,
    )  # fmt: skip
    return data, splits, units


def score_splits(
    model: torch.nn.Module,
    data: Dataset,
    units: torch.Tensor,
    splits: Mapping[str, Sequence[int]],
    spec: PreprocessSpec,
    device: torch.device,
    *,
    batch_size: int = 32,
    workers: int = 0,
    channels_last: bool = False,
    stop: StopFlag = None,
) -> dict[str, SplitOutputs]:
    """Logits and features of each named split in one float32 forward pass (this process)."""
    runtime = Runtime(device)
    out = {}
    for name, indices in splits.items():
        idx = list(indices)
        ds = UnitImageDataset(units, data.label_matrix(), idx, spec)
        logits, feats = predict_logits_and_features(
            model, ds, runtime, batch_size=batch_size, workers=workers,
            channels_last=channels_last, stop=stop,
        )  # fmt: skip
        out[name] = SplitOutputs(idx, data.label_matrix(idx), logits, feats)
    return out


def fit_applicability(
    config: ApplicabilityConfig,
    data: Dataset,
    outputs: Mapping[str, SplitOutputs],
) -> Applicability:
    """Fit temperatures on ``outputs["val"]``, the OOD Gaussian on ``outputs["train"]``'s
    features (threshold on the validation features, or the train ones when val has none), and
    read the intended input from the train split's headers."""
    labels = data.labels
    train, val = outputs["train"], outputs["val"]
    temperatures = (
        fit_temperatures(val.logits, val.y, labels) if config.temperature_scaling else None
    )
    report = calibration_report(
        {name: (o.y, o.logits) for name, o in outputs.items() if name != "train"},
        labels,
        temperatures,
    )
    ood: OodModel | None = None
    rates: dict[str, float] = {}
    if config.ood:
        assert train.features is not None
        held = val.features if val.features is not None else np.zeros((0, train.features.shape[1]))
        ood = fit_ood(train.features, held, config.ood_percentile)
        for name, o in outputs.items():
            if o.features is not None and len(o.features):
                rates[name] = round(float(ood.flags(ood.score(o.features)).mean()), 4)
        stats = dict(ood.spec.stats)
        stats.update({f"{name}_flag_rate": rate for name, rate in rates.items()})
        ood = replace(ood, spec=replace(ood.spec, stats=stats))
    intended = intended_input_for([data.records[i] for i in train.indices], config)
    for label, row in report.items():
        log.info(
            "calibration %s: T %.3f, %s", label, row["temperature"],
            ", ".join(f"{k} {v:.4f}" for k, v in row.items() if "ece" in k),
        )  # fmt: skip
    return Applicability(intended, temperatures, ood, report, rates)


def calibrated_metrics(
    data: Dataset,
    scored: Mapping[str, SplitOutputs],
    applicability: Applicability,
    thresholds: ThresholdConfig,
    evaluation: EvaluationConfig,
    seed: int,
    where: str,
    key: str = "val",
) -> tuple[ThresholdChoice, dict[str, Any], dict[str, tuple[Sequence[int], np.ndarray]]]:
    """Thresholds chosen on the calibrated validation probabilities; metrics of ``key`` (the
    validation split, or the pooled out-of-fold predictions) and test on calibrated
    probabilities too (what the app shows), each label with its ECE before scaling beside."""
    labels = data.labels
    val = scored["val"]
    p_val = applicability.probs(val, labels)
    choice = choose_thresholds(
        val.y, p_val, labels, thresholds.rule, thresholds.target_sensitivity, where=where
    )
    if applicability.temperatures is not None:
        choice = replace(choice, rule=choice.rule + "; on temperature-scaled probabilities")

    def metrics(y: np.ndarray, p: np.ndarray, split_seed: int) -> dict[str, Any]:
        return split_metrics(
            y, p, list(labels), choice.thresholds, n_boot=evaluation.bootstrap,
            level=evaluation.ci_level, seed=split_seed,
        )  # fmt: skip

    final: dict[str, Any] = {key: metrics(val.y, p_val, seed)}
    probs: dict[str, tuple[Sequence[int], np.ndarray]] = {
        key.replace("_", "-"): (val.indices, p_val)
    }
    test = scored.get("test")
    if test is not None and test.indices:
        p_test = applicability.probs(test, labels)
        final["test"] = metrics(test.y, p_test, seed + 101)
        probs["test"] = (test.indices, p_test)
    for split, name in ((key, "val"), ("test", "test")):
        for label in labels if split in final else ():
            before = applicability.calibration[label].get(f"{name}_ece_before")
            final[split][label]["ece_before_scaling"] = before
    return choice, final, probs


def write_refitted(
    out: Path,
    network: torch.nn.Module,
    manifest: ModelManifest,
    applicability: Applicability,
    choice: ThresholdChoice,
    metrics: dict[str, Any],
    training_data: dict[str, Any],
    **changes: Any,
) -> None:
    """Write ``out``: ``network`` under ``manifest`` with what was fitted anew (intended input,
    temperatures, OOD statistics, thresholds, metrics, ``training_data``; ``changes`` over
    that), stamped with this format and version; its model card beside it (``out`` with .md)."""
    from desktop_app.infra.atomicio import atomic_write_text
    from desktop_app.model.manifest import FORMAT_VERSION, RADASSIST_VERSION, utc_now_iso
    from desktop_app.model.modelfile import model_card_markdown, read_manifest, save_model_file

    new = replace(
        manifest,
        thresholds=choice.thresholds,
        threshold_rule=choice.rule,
        metrics=metrics,
        training_data=training_data,
        intended_input=applicability.intended_input,
        temperatures=applicability.temperatures,
        ood=None,
        tensor_sha256="",
        model_card=None,
        format_version=FORMAT_VERSION,
        created=utc_now_iso(),
        radassist_version=RADASSIST_VERSION,
        **changes,
    )
    save_model_file(out, network, new, ood=applicability.ood)
    atomic_write_text(out.with_suffix(".md"), model_card_markdown(read_manifest(out)))


# --------------------------------------------------------------------------- segmentation


def seg_features(
    model: torch.nn.Module,
    units: torch.Tensor,
    indices: Sequence[int],
    spec: PreprocessSpec,
    device: torch.device,
    batch_size: int = 32,
    stop: StopFlag = None,
) -> np.ndarray:
    """(n, C) pooled encoder features of a segmentation UNet for the unit images ``indices``
    (``fastpath.EncoderFeatures.pool``: what the engine scores per slice), float32, in order.
    The encoder alone runs, unaugmented: the decoder does not change them."""
    from desktop_app.inference.fastpath import EncoderFeatures
    from desktop_app.infra.cancel import stop_requested
    from desktop_app.model.networks import unwrap
    from training.dataset import Stopped, network_input

    encoder = unwrap(model).encoder
    assert isinstance(encoder, torch.nn.Module)
    was_training = model.training
    model.eval()
    rows: list[np.ndarray] = []
    idx = list(indices)
    try:
        with torch.inference_mode():
            for start in range(0, len(idx), batch_size):
                if stop_requested(stop):
                    raise Stopped
                x = torch.stack(
                    [
                        network_input(units[k].to(torch.float32), spec)
                        for k in idx[start : start + batch_size]
                    ]
                ).to(device)
                rows.append(EncoderFeatures.pool(encoder(x)).float().cpu().numpy())
    finally:
        model.train(was_training)
    width = rows[0].shape[1] if rows else 0
    return np.concatenate(rows) if rows else np.zeros((0, width), dtype=np.float32)


def fit_seg_ood(
    config: ApplicabilityConfig,
    model: torch.nn.Module,
    units: torch.Tensor,
    train: Sequence[int],
    val: Sequence[int],
    spec: PreprocessSpec,
    device: torch.device,
    stop: StopFlag = None,
) -> tuple[OodModel | None, dict[str, float]]:
    """A 2-D segmentation model's OOD statistics, per slice (the engine scores each slice): the
    Gaussian of the train slices' pooled encoder features, thresholded on the validation
    slices' scores (``fit_ood``), with each split's flag rate in its stats; (None, {}) when
    ``applicability.ood`` is off or the train split has fewer than ``MIN_TRAIN_IMAGES`` slices
    (a segmentation set can be that small; the fit says so in its notes)."""
    if not config.ood or len(train) < MIN_TRAIN_IMAGES:
        return None, {}
    feats = {
        name: seg_features(model, units, idx, spec, device, stop=stop)
        for name, idx in (("train", train), ("val", val))
    }
    ood = fit_ood(feats["train"], feats["val"], config.ood_percentile)
    rates = {
        name: round(float(ood.flags(ood.score(f)).mean()), 4) for name, f in feats.items() if len(f)
    }
    stats = dict(ood.spec.stats)
    stats["features"] = "the encoder's deepest feature map, global-average-pooled"
    stats.update({f"{name}_flag_rate": rate for name, rate in rates.items()})
    return replace(ood, spec=replace(ood.spec, stats=stats)), rates
