"""`radassist-train prune`: a smaller, faster model file: structured channel pruning of a model
file's network, a short fine-tune, then the thresholds, temperatures, OOD statistics and metrics
fitted anew (``training.prune``).

    radassist-train prune --model M --data MANIFEST --amount 0.3 --out M2
        [--epochs 3] [--lr 3e-4] [--batch-size N] [--config FILE] [--set key=value ...]
        [--device D] [--workers N] [--force] [--quiet]
        [--uncertainty ...] [--views ...] [--label-rule ...] [--missing-images ...] [--labeler ...]

``--amount`` is the fraction of each layer's channels removed (0 < amount < 1); the manifest is
split as the model's training recorded. M2 is a normal model file (version ``<M's
version>-pruned30`` for 0.3) whose manifest records M's tensor SHA-256, the amount and the
parameter counts; its model card is written beside it (M2 with ``.md``).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from desktop_app.commands._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ProgressBar,
    positive_float,
    positive_int,
)
from desktop_app.infra.errors import ConfigError, ModelFileError
from desktop_app.settings.schema import DEVICES
from training.commands.configflags import add_set_argument, config_from_args
from training.commands.layoutflags import add_layout_arguments, layout_flags
from training.config import TrainConfig

PROG = "radassist-train prune"


def _amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f"{text} should be a fraction of channels between 0 and 1, e.g. 0.3"
        )
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.prune import DEFAULT_EPOCHS, DEFAULT_LR

    parser.add_argument("--model", required=True, type=Path, help="the model file to prune")
    parser.add_argument(
        "--data", required=True, type=Path, help="its training manifest CSV (or public layout)"
    )
    parser.add_argument(
        "--amount",
        required=True,
        type=_amount,
        help="fraction of each layer's channels to remove, 0 < amount < 1 (e.g. 0.3)",
    )
    parser.add_argument("--out", required=True, type=Path, help="the model file to write")
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=DEFAULT_EPOCHS,
        help=f"fine-tuning epochs (default {DEFAULT_EPOCHS}; the best on validation is kept)",
    )
    parser.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help=f"fine-tuning peak learning rate (default: the config's, else {DEFAULT_LR:g})",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="fine-tuning batch size (default: the one the model was trained with)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="a training config: its seed, optim, augment, applicability, thresholds and "
        "evaluation sections apply",
    )
    add_set_argument(parser, "e.g. --set evaluation.bootstrap=200")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader processes and decode threads (0 = in this process, decoding on up to 4)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress or epoch lines")
    add_layout_arguments(parser, "as the model file's training read it")


def _usage(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _config(args: argparse.Namespace) -> TrainConfig:
    config = config_from_args(args)
    config = replace(config, device=args.device)
    if args.workers:
        config = replace(config, data=replace(config.data, workers=args.workers))
    return config.validate()


def run(args: argparse.Namespace) -> int:
    from training.dataset import Stopped
    from training.pipeline import epoch_line
    from training.prune import prune_model_file

    out: Path = args.out
    if not args.model.is_file():
        return _usage(f"--model {args.model}: no such model file")
    if not args.data.exists():
        return _usage(f"--data {args.data}: no such manifest or folder")
    if out.suffix.lower() != ".safetensors":
        return _usage(f"--out {out}: the output name must end in .safetensors")
    if out.resolve() == args.model.resolve():
        return _usage(f"--out {out} is the input model file: write the pruned model to a new file")
    if out.exists() and not args.force:
        raise ModelFileError("exists already", out, "choose another --out, or add --force")
    try:
        config = _config(args)
    except ConfigError as err:
        return _usage(err.one_line())
    quiet = args.quiet
    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()

    def progress_factory(label: str) -> ProgressBar | None:
        if quiet:
            return None
        return ProgressBar(label) if tty or label.startswith("decode") else None

    def on_epoch(entry: dict[str, Any], history: list[dict[str, Any]]) -> None:
        if not quiet:
            print(epoch_line(entry, args.epochs, "fine-tune "), file=sys.stderr, flush=True)

    def on_info(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    try:
        result = prune_model_file(
            args.model, args.data, out, config, args.amount,
            epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
            layout=layout_flags(args), on_epoch=on_epoch,
            progress_factory=progress_factory, on_info=on_info,
        )  # fmt: skip
    except Stopped:
        print(f"{PROG}: stopped; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not quiet:
        _print_summary(result)
    return EXIT_OK


def _print_summary(result: Any) -> None:
    from training.evaluate import format_table

    print(f"wrote {result.out} and {result.out.with_suffix('.md').name}")
    ratio = result.parameters_after / result.parameters_before
    print(
        f"parameters {result.parameters_before:,} -> {result.parameters_after:,} ({ratio:.2f}x); "
        f"best fine-tune epoch {result.best_epoch} of {len(result.history)}"
    )
    for split, metrics in result.metrics.items():
        print(f"\n{split}:")
        labels = {k: v for k, v in metrics.items() if isinstance(v, dict)}
        print(format_table(labels, metrics.get("mean_auroc")))
    if result.ood_flag_rate:
        rates = ", ".join(f"{k} {100 * v:.1f} %" for k, v in result.ood_flag_rate.items())
        print(f"out-of-distribution flags: {rates}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"{result.seconds:.0f} s", file=sys.stderr)
