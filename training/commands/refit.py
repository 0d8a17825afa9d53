"""`radassist-train refit`: re-fit a model file's intended input, OOD statistics,
temperatures and thresholds on a manifest, keeping its weights (no training).

The same functions ``fit`` calls at its end (training.applicability): the manifest is split as
the model file's training recorded (its seed and fractions, or the manifest's split column);
features of the train split give the OOD Gaussian, the validation split the temperatures, the
thresholds (on calibrated probabilities) and the OOD threshold; the test split the metrics. The
model card is written beside the output (``OUT`` with ``.md``).

    radassist-train refit --model IN --data MANIFEST --out OUT [--config FILE]
        [--set applicability.key=value ...] [--device D] [--force]
        [--uncertainty ...] [--views ...] [--label-rule ...] [--missing-images ...] [--labeler ...]

A public layout is read as the model's training read it (its recorded layout options); the layout
flags change that.

A 2-D segmentation model (``unet-lite0``) has its OOD statistics re-fitted only, per slice on
its pooled encoder features (``training.applicability.fit_seg_ood``): its pixel thresholds,
metrics and intended input stay as trained. A 3-D model (``segresnet3d``) has none to re-fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from desktop_app.commands._common import EXIT_OK
from desktop_app.infra.errors import ConfigError, ModelFileError
from desktop_app.settings.schema import DEVICES
from training.commands.configflags import add_set_argument, config_from_args
from training.commands.layoutflags import add_layout_arguments, layout_flags
from training.config import TrainConfig

PROG = "radassist-train refit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="the model file to re-fit")
    parser.add_argument("--data", required=True, type=Path, help="manifest CSV (or RSNA layout)")
    parser.add_argument("--out", required=True, type=Path, help="the model file to write")
    parser.add_argument(
        "--config",
        type=Path,
        help="a training config; its applicability, thresholds and evaluation sections apply",
    )
    add_set_argument(parser, "e.g. --set applicability.ood_percentile=99")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--workers", type=int, default=0, help="decode threads (0 = up to 4)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no summary on stdout")
    add_layout_arguments(parser, "as the model file's training read it")


def _config(args: argparse.Namespace) -> TrainConfig:
    config = config_from_args(args)
    return config.validate()


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.suffix.lower() != ".safetensors":
        raise ModelFileError("the output name must end in .safetensors", out)
    if out.resolve() == args.model.resolve():
        raise ConfigError("--out is the input model file", out, "write to a new file")
    if out.exists() and not args.force:
        raise ModelFileError("exists already", out, "choose another --out, or add --force")
    config = _config(args)
    result = refit_model_file(
        args.model, args.data, out, config, args.device, args.workers, layout_flags(args)
    )
    if not args.quiet:
        _print_summary(result)
    return EXIT_OK


def refit_model_file(
    model_path: Path,
    data_path: Path,
    out: Path,
    config: TrainConfig,
    device: str = "auto",
    workers: int = 0,
    layout: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write ``out``: ``model_path``'s weights with applicability, temperatures, thresholds and
    metrics re-fitted on ``data_path`` (a public layout read as training read it, ``layout``
    keys over that); its model card beside it. Returns what was measured."""
    from desktop_app.model.modelfile import load_model_file
    from training.applicability import (
        calibrated_metrics,
        fit_applicability,
        read_as_trained,
        score_splits,
        write_refitted,
    )
    from training.evaluate import layout_for_model
    from training.runtime import select_device

    start = time.perf_counter()
    dev = select_device(device)
    loaded = load_model_file(model_path, map_location=dev)
    manifest = loaded.manifest
    if manifest.task == "segmentation":
        return _refit_segmentation(loaded, data_path, out, config, dev, workers, start)
    options = layout_for_model(manifest.training_data, layout)
    data, splits, units = read_as_trained(
        data_path, manifest, options, workers=max(1, workers), needs="re-fitting"
    )
    spec = manifest.preprocessing
    scored = score_splits(
        loaded.network,
        data,
        units,
        {"train": splits.train, "val": splits.val, "test": splits.test},
        spec,
        dev,
    )
    applicability = fit_applicability(config.applicability, data, scored)
    where = f"the validation split ({len(splits.val)} images of {data.source.name})"
    choice, final, _ = calibrated_metrics(
        data, scored, applicability, config.thresholds, config.evaluation, config.seed, where
    )
    training_data = dict(manifest.training_data)
    training_data["calibration"] = {
        "manifest": data.source.name,
        "manifest_sha256": data.sha256,
        **(
            {"layout": dataclasses.asdict(options)} if data.kind not in ("manifest", "rsna") else {}
        ),
        "splits": {name: len(getattr(splits, name)) for name in ("train", "val", "test")},
        "note": "re-fitted by radassist-train refit on these weights (no retraining)",
    }
    write_refitted(out, loaded.network, manifest, applicability, choice, final, training_data)
    return {
        "out": out,
        "calibration": applicability.calibration,
        "ood_flag_rate": applicability.ood_rates,
        "thresholds": choice.thresholds,
        "intended_input": applicability.intended_input,
        "seconds": time.perf_counter() - start,
    }


def _refit_segmentation(
    loaded: Any,
    data_path: Path,
    out: Path,
    config: TrainConfig,
    dev: Any,
    workers: int,
    start: float,
) -> dict[str, Any]:
    """``refit_model_file`` for a 2-D segmentation model: its OOD statistics fitted anew on the
    train and validation slices of ``data_path`` (split as its training split them), all else
    kept; the model card with its segmentation section beside ``out``."""
    from desktop_app.infra.atomicio import atomic_write_text
    from desktop_app.model.archs import is_volume
    from desktop_app.model.manifest import FORMAT_VERSION, RADASSIST_VERSION, utc_now_iso
    from desktop_app.model.modelfile import save_model_file
    from training.applicability import fit_seg_ood
    from training.evaluate import _split_as_trained
    from training.segdata import load_pairs, read_segmentation_data
    from training.segmasks import DEFAULT_CLASS, SegDataset
    from training.segmentation import segmentation_card

    manifest = loaded.manifest
    if is_volume(manifest.architecture):
        raise ConfigError(
            f"a 3-D {manifest.architecture} model has no OOD statistics to re-fit",
            loaded.path,
            "refit re-fits 2-D models (unet-lite0 and the classifiers)",
        )
    if not config.applicability.ood:
        raise ConfigError(
            "applicability.ood is off: a segmentation refit fits only the OOD statistics",
            hint="leave applicability.ood on",
        )
    labels = list(manifest.labels)
    picked = None if labels in ([DEFAULT_CLASS], ["foreground"]) else labels
    seg = read_segmentation_data(data_path, picked)
    data = seg.data
    splits = _split_as_trained(data, manifest.training_data)
    for name in ("train", "val"):
        if not getattr(splits, name):
            raise ConfigError(
                f"the {name} split is empty", data.source, "re-fitting needs train and val rows"
            )
    needed = sorted(splits.train + splits.val)
    subset = SegDataset(
        dataclasses.replace(data, records=[data.records[i] for i in needed]),
        [seg.masks[i] for i in needed],
        [seg.images[i] for i in needed] if seg.images else [],
    )
    units, _, _ = load_pairs(subset, manifest.preprocessing, workers=max(1, workers))
    where = {k: i for i, k in enumerate(needed)}
    ood, rates = fit_seg_ood(
        config.applicability, loaded.network, units, [where[i] for i in splits.train],
        [where[i] for i in splits.val], manifest.preprocessing, dev,
    )  # fmt: skip
    if ood is None:
        raise ConfigError(
            f"the train split has {len(splits.train)} slices: the OOD statistics need at least 10",
            data.source,
            "re-fit on a manifest with more training slices",
        )
    training_data = dict(manifest.training_data)
    training_data["ood_refit"] = {
        "manifest": data.source.name,
        "manifest_sha256": data.sha256,
        "splits": {name: len(getattr(splits, name)) for name in ("train", "val")},
        "note": "OOD statistics re-fitted by radassist-train refit on these weights (no retraining)",
    }
    new = dataclasses.replace(
        manifest, training_data=training_data, ood=None, tensor_sha256="", model_card=None,
        format_version=FORMAT_VERSION, created=utc_now_iso(), radassist_version=RADASSIST_VERSION,
    )  # fmt: skip
    save_model_file(out, loaded.network, new, ood=ood)
    atomic_write_text(out.with_suffix(".md"), segmentation_card(out))
    return {
        "out": out,
        "calibration": {},
        "ood_flag_rate": rates,
        "ood_threshold": None if ood is None else ood.threshold,
        "thresholds": dict(manifest.thresholds),
        "intended_input": manifest.intended_input,
        "seconds": time.perf_counter() - start,
    }


def _print_summary(result: dict[str, Any]) -> None:
    print(f"wrote {result['out']} and {result['out'].with_suffix('.md').name}")
    print(f"intended input: {result['intended_input'].describe()}")
    for label, row in result["calibration"].items():
        eces = [
            f"{split} ECE {row[f'{split}_ece_before']:.3f} -> {row[f'{split}_ece_after']:.3f}"
            for split in ("val", "test")
            if f"{split}_ece_before" in row
        ]
        print(
            f"  {label}: T {row['temperature']:.3f}, threshold {result['thresholds'][label]:.3f}; "
            + "; ".join(eces)
        )
    if result.get("ood_threshold") is not None:
        print(f"out-of-distribution threshold: {result['ood_threshold']:.3f}")
    if result["ood_flag_rate"]:
        rates = ", ".join(f"{k} {100 * v:.1f} %" for k, v in result["ood_flag_rate"].items())
        print(f"out-of-distribution flags: {rates}")
    print(f"{result['seconds']:.0f} s", file=sys.stderr)
