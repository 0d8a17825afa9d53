"""`radassist-train fit`: train a model on a manifest and write a RadAssist model file.

    radassist-train fit --data DATA --out DIR [--config FILE] [--epochs N]
        [--batch-size B] [--lr LR] [--image-size S] [--arch NAME] [--no-pretrained]
        [--folds K] [--task classification|segmentation] [--device auto|cpu|cuda] [--resume] [--seed S] [--workers N]
        [--labels a,b] [--cache-dir DIR] [--set section.key=value ...] [--quiet]
        [--uncertainty u-ones|u-zeros|ignore] [--views frontal|lateral|all]
        [--label-rule majority|any] [--missing-images skip|error] [--labeler chexpert|negbio]

Defaults come from ``training/defaults.yaml`` (the same values as ``training.config``); a
``--config`` YAML overrides them, ``--set`` overrides that, and named flags override all.
With ``--resume``, DIR/config.yaml is the starting point. A config file may name the data and
the output folder itself (``data.manifest``, ``output.dir``): ``radassist-train fit --config
FILE`` then needs no other flag. Multi-process training:
``torchrun --nproc_per_node 2 -m training.cli fit ...``.

Before training, fit prints the dataset fingerprint's summary and each value it chose for a key
left open (input size, batch size, class weights, augmentation strength, learning rate), one
line each with the reason (``training.autoconfig``); an explicit value is never changed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from desktop_app.commands._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ProgressBar,
    label_list,
    non_negative_int,
    positive_float,
    positive_int,
)
from desktop_app.infra.errors import ConfigError
from desktop_app.model.archs import TASKS, is_volume
from desktop_app.model.networks import ARCHITECTURES
from desktop_app.settings.schema import DEVICES
from training.commands.configflags import add_set_argument, config_from_args
from training.commands.layoutflags import add_layout_arguments, layout_flags
from training.config import (
    DEFAULT_SEGMENTATION_ARCH,
    STATIC_BATCH_SIZE,
    STATIC_LR,
    TrainConfig,
    config_from_dict,
    load_config_file,
)

log = logging.getLogger(__name__)
PROG = "radassist-train fit"
VOLUME_BATCH_SIZE = 2  # patches per step of a 3-D network unless --batch-size says otherwise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()  # the help states the real defaults
    _add_files(parser)
    _add_recipe(parser, d)
    _add_run_options(parser, d)
    add_layout_arguments(parser, "the config's data.layout")


def _add_files(parser: argparse.ArgumentParser) -> None:
    """Where the data, the output and the config file are."""
    parser.add_argument(
        "--data",
        metavar="DATA",
        help="manifest CSV, or a public dataset's folder or labels file: RSNA, NIH, CheXpert, "
        "SIIM-ACR, VinBigData, MIMIC-CXR-JPG (classification); MSD, nnU-Net, image + mask "
        "folders (segmentation)",
    )
    parser.add_argument(
        "--out", metavar="DIR", type=Path, help="output folder (or output.dir in --config)"
    )
    parser.add_argument(
        "--config", metavar="FILE", type=Path, help="YAML config (see training/defaults.yaml)"
    )


def _add_recipe(parser: argparse.ArgumentParser, d: TrainConfig) -> None:
    """The training recipe's most used knobs (every other one is ``--set``)."""
    parser.add_argument(
        "--epochs", metavar="N", type=positive_int, help=f"epochs (default {d.optim.epochs})"
    )
    parser.add_argument(
        "--batch-size",
        metavar="B",
        type=positive_int,
        help="images per batch and process (default: chosen from memory, 16 where it fits; "
        f"segmentation {STATIC_BATCH_SIZE}, 3-D {VOLUME_BATCH_SIZE})",
    )
    parser.add_argument(
        "--lr",
        metavar="LR",
        type=positive_float,
        help="peak learning rate of the head (default: an LR range test; the backbone gets "
        f"x{d.optim.backbone_lr_factor:g}; segmentation {STATIC_LR:g})",
    )
    parser.add_argument(
        "--image-size",
        metavar="S",
        type=positive_int,
        help="network input side (default: classification chooses it so the smallest "
        f"annotated findings keep {d.recipe.min_finding_pixels} px, at least the "
        "architecture's 224 for Lite0; segmentation uses the architecture's, 224 for "
        f"{DEFAULT_SEGMENTATION_ARCH})",
    )
    parser.add_argument(
        "--arch", choices=list(ARCHITECTURES), help=f"architecture (default {d.model.arch})"
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        help="classification (default: 0/1 label columns) or segmentation (trains "
        f"{DEFAULT_SEGMENTATION_ARCH} on masks: a manifest's 'mask' column of PNG, NIfTI, DICOM "
        "SEG or RTSTRUCT files, SIIM-ACR's RLE, or MSD / nnU-Net / image + mask folders)",
    )
    parser.add_argument(
        "--no-pretrained", action="store_true", help="random init instead of ImageNet weights"
    )
    parser.add_argument(
        "--folds",
        metavar="K",
        type=positive_int,
        help="k-fold cross-validation by patient over train+val (default 1: off)",
    )


def _add_run_options(parser: argparse.ArgumentParser, d: TrainConfig) -> None:
    """How this run goes: device, resume, seed, workers, labels, cache, overrides, output."""
    parser.add_argument("--device", choices=DEVICES, help="auto (default), cpu, cuda or mps")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in DIR from its last checkpoint"
    )
    parser.add_argument(
        "--seed",
        metavar="S",
        type=non_negative_int,
        help=f"seed for init, splits, augmentation and order (default {d.seed})",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        type=non_negative_int,
        help="DataLoader processes, and decode threads (default 0: in-process; decoding uses "
        "up to 4 threads)",
    )
    parser.add_argument(
        "--labels",
        metavar="A,B",
        type=label_list,
        help="label columns to train on (default: every 0/1 column); segmentation: the one "
        "class (dataset.json label, SEG segment, RTSTRUCT ROI or mask folder) to train",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="also keep decoded images here as .npy (a private folder, reused by later runs)",
    )
    add_set_argument(parser, "override any config key, e.g. --set optim.weight_decay=0.05")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """defaults < DIR/config.yaml (with --resume) < --config < --set < flags."""
    return _given_config(args).resolved().validate()


def open_recipe_keys(args: argparse.Namespace) -> tuple[str, ...]:
    """The recipe keys (``training.segmentation.RECIPE_FLAGS``) that neither a flag, the
    --config / --set nor a resumed config.yaml set: a segmentation fit names their defaults."""
    given = _given_config(args)
    open_keys = [key for key, value in (
        ("image_size", given.preprocessing.image_size), ("batch_size", given.optim.batch_size),
        ("lr", given.optim.lr)) if value is None]  # fmt: skip
    if args.epochs is None and given.optim.epochs == TrainConfig().optim.epochs:
        open_keys.append("epochs")
    return tuple(open_keys)


def _given_config(args: argparse.Namespace) -> TrainConfig:
    """The config as given, before ``TrainConfig.resolved`` fills the open keys."""
    stored = args.out / "config.yaml" if args.out is not None else None
    resumed = None
    if args.resume and stored is not None and stored.is_file() and args.config is None:
        resumed = load_config_file(stored)
    config = config_from_args(args, resumed)
    flags: dict[str, Any] = {}
    optim: dict[str, Any] = {}
    data: dict[str, Any] = {}
    model: dict[str, Any] = {}
    if args.epochs is not None:
        optim["epochs"] = args.epochs
    if args.batch_size is not None:
        optim["batch_size"] = args.batch_size
    if args.lr is not None:
        optim["lr"] = args.lr
    if args.arch is not None:
        model["arch"] = args.arch
    if args.arch is not None and is_volume(args.arch):  # no 3-D weights exist; CPU-sized batches
        model["pretrained"] = False
        model["weights"] = None
        if args.batch_size is None and args.config is None:
            optim["batch_size"] = VOLUME_BATCH_SIZE
    if args.no_pretrained:
        model["pretrained"] = False
        model["weights"] = None
    if args.folds is not None:
        data["folds"] = args.folds
    if args.task is not None:
        data["task"] = args.task
    if args.workers is not None:
        data["workers"] = args.workers
    if args.labels is not None:
        data["labels"] = args.labels
    if args.cache_dir is not None:
        data["cache"] = "disk"
        data["cache_dir"] = args.cache_dir
    if args.data is not None:
        data["manifest"] = str(args.data)
    if layout_flags(args):
        data["layout"] = layout_flags(args)
    if args.device is not None:
        flags["device"] = args.device
    if args.out is not None:
        flags["output"] = {"dir": str(args.out)}
    if args.seed is not None:
        flags["seed"] = args.seed
    if optim:
        flags["optim"] = optim
    if data:
        flags["data"] = data
    if model:
        flags["model"] = model
    if args.image_size is not None:
        flags["preprocessing"] = {"image_size": args.image_size}
    config = config_from_dict(flags, config)
    if args.arch is not None and args.image_size is None and args.config is None:
        # a new architecture brings its own native size unless one was asked for
        config = replace(config, preprocessing=replace(config.preprocessing, image_size=None))
    if not config.data.manifest:
        raise ConfigError("no training data given", hint="pass --data MANIFEST")
    if not config.output.dir:
        raise ConfigError("no output folder given", hint="pass --out DIR")
    return config


def run(args: argparse.Namespace) -> int:
    from training.pipeline import epoch_line, run_fit
    from training.segmentation import run_segmentation_fit

    try:
        config = resolve_config(args)
    except ConfigError as err:
        print(f"{PROG}: error: {err.one_line()}", file=sys.stderr)
        return EXIT_USAGE
    quiet = args.quiet
    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()

    def progress_factory(label: str) -> ProgressBar | None:
        if quiet:
            return None
        if label.startswith("decode"):
            return ProgressBar(label)
        return ProgressBar(label) if tty else None  # per-batch bars only on a terminal

    def on_epoch(tag: str, entry: dict[str, Any], epochs: int) -> None:
        if not quiet:
            print(epoch_line(entry, epochs, tag), file=sys.stderr, flush=True)

    def on_info(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    fit: Any = run_fit
    extra: dict[str, Any] = {}
    if config.data.task == "segmentation" and is_volume(config.model.arch):
        from training.seg3d import run_volume_fit

        fit = run_volume_fit
    elif config.data.task == "segmentation":
        fit, extra = run_segmentation_fit, {"recipe_defaults": open_recipe_keys(args)}
    outcome = fit(
        config,
        Path(str(config.output.dir)),
        resume=args.resume,
        on_epoch=on_epoch,
        progress_factory=progress_factory,
        on_info=on_info,
        **extra,
    )
    if outcome.stopped:
        print(f"{PROG}: stopped; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.model_path is None:  # a non-zero rank under torchrun
        return EXIT_OK
    print_summary(outcome)
    return EXIT_OK


def print_summary(outcome: Any) -> None:
    """What fit prints on stdout at the end: the model file, best epoch, tables, notes."""
    from training.evaluate import format_table

    m = outcome.metrics
    print(f"wrote {outcome.model_path}")
    if m.get("task") == "segmentation":
        from training.segmentation import summary_lines

        training = m.get("training", {})
        print(f"best epoch {training.get('best_epoch')} of {training.get('epochs_run')}")
        for line in summary_lines(m):
            print(line)
        for note in outcome.notes:
            print(f"note: {note}")
        return
    training = m.get("training", {})
    if "best_epoch" in training:
        print(
            f"best epoch {training['best_epoch']} of {training['epochs_run']}"
            + (" (early stopping)" if training.get("early_stopped") else "")
            + f"; {m.get('seconds', 0):.0f} s"
        )
    elif "final_model" in training:
        cv = m.get("cross_validation", {}).get("summary", {})
        print(
            f"cross-validation over {cv.get('folds')} folds; final model {training['final_model']}"
        )
        for label in m["labels"]:
            entry = cv.get(label, {})
            mean, sd = entry.get("auroc_mean"), entry.get("auroc_sd")
            if mean is not None:
                print(
                    f"  {label}: fold AUROC {mean:.3f} ± {sd if sd is not None else float('nan'):.3f}"
                )
    print(f"thresholds: {m['threshold_rule']}")
    calibration, flag_rates = m.get("calibration", {}), m.get("ood_flag_rate", {})
    for split, metrics in m.get("final", {}).items():
        print(f"\n{split}:")
        labels = {k: v for k, v in metrics.items() if isinstance(v, dict)}
        print(format_table(labels, metrics.get("mean_auroc")))
    if calibration:
        print("\ncalibration (temperature; ECE before -> after):")
        for label, row in calibration.items():
            eces = [
                f"{split} {row[f'{split}_ece_before']:.3f} -> {row[f'{split}_ece_after']:.3f}"
                for split in ("val", "cross_validated", "test")
                if f"{split}_ece_before" in row
            ]
            print(f"  {label}: T {row['temperature']:.3f}; " + "; ".join(eces))
    if flag_rates:
        rates = ", ".join(f"{split} {100 * rate:.1f} %" for split, rate in flag_rates.items())
        print(f"out-of-distribution flags: {rates}")
    for note in outcome.notes:
        print(f"note: {note}")
