"""`radassist-train evaluate`: score a model file on a manifest's split, or on every row of an
external set.

    radassist-train evaluate --model FILE --data DATA [--split SPLIT] [--json OUT]
        [--device auto|cpu|cuda] [--bootstrap N] [--batch-size B] [--workers N]
        [--uncertainty ...] [--views ...] [--label-rule ...] [--missing-images ...] [--labeler ...]

Per label: AUROC with a bootstrap 95 % CI, sensitivity and specificity at the model file's
operating threshold (Wilson 95 % CIs), expected calibration error and the confusion matrix.
Without ``--split``, a manifest or layout without a split column is external validation: every
row is scored ("external evaluation: all N images"); a manifest with a split column, or the one
the model was trained on, gives its test split. ``--split`` narrows to train, val or test (made
as training made them when there is no split column) or ``all``. A table goes to stdout; ``--json OUT`` writes the same as JSON (``-`` for stdout, and then the
table is left out). A public layout is read as the model's training read it (the layout options
its model file records); the layout flags change that.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from desktop_app.commands._common import EXIT_OK, ProgressBar, positive_int, whole_number
from desktop_app.infra.atomicio import atomic_write_json
from desktop_app.settings.schema import DEVICES
from training.commands.layoutflags import add_layout_arguments, layout_flags
from training.evaluate import EVAL_SPLITS, evaluate_model_file, format_table

PROG = "radassist-train evaluate"


def plural(n: int, noun: str) -> str:
    """``1 patient``, ``8 patients``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _count(text: str) -> int:
    value = whole_number(text)
    if value != 0 and not 100 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"{value} should be 0 (no CIs) or 100..100000")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", metavar="FILE", type=Path, required=True, help="model file (.safetensors)"
    )
    parser.add_argument(
        "--data",
        metavar="DATA",
        type=Path,
        required=True,
        help="manifest CSV, or a public dataset's folder or labels file (the layouts fit "
        "reads); the model's own training data gives its test split",
    )
    parser.add_argument(
        "--split",
        choices=EVAL_SPLITS,
        default=None,
        help="which split to score (default: every row of a set without a split column, else test)",
    )
    parser.add_argument(
        "--json", metavar="OUT", help="write the results as JSON to OUT ('-': stdout)"
    )
    parser.add_argument(
        "--device", choices=DEVICES, default="auto", help="auto (default), cpu, cuda or mps"
    )
    parser.add_argument(
        "--bootstrap",
        type=_count,
        default=1000,
        help="bootstrap resamples for the AUROC CI (default 1000)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=32, help="images per batch (default 32)"
    )
    parser.add_argument("--workers", type=int, default=2, help="decode threads (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_layout_arguments(parser, "as the model file's training read it")


def run(args: argparse.Namespace) -> int:
    progress = None if args.quiet else ProgressBar("decode + preprocess")
    result = evaluate_model_file(
        args.model,
        args.data,
        split=args.split,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        n_boot=args.bootstrap,
        layout=layout_flags(args),
        progress=progress,
    )
    if args.json == "-":
        if result["data"].get("external"):  # stdout holds the JSON only
            print(f"external evaluation: all {result['data']['images']} images", file=sys.stderr)
        if result["data"].get("note"):  # the model's own training data: its test split
            print(result["data"]["note"], file=sys.stderr)
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    if args.json:
        atomic_write_json(args.json, result)
    data = result["data"]
    if data.get("external"):
        print(f"external evaluation: all {data['images']} images")
    if data.get("note"):  # the model's own training data: its test split
        print(data["note"])
    where = "every row" if data.get("external") else f"the {data['split']} split"
    print(
        f"{result['model']['name']} (version {result['model']['version']}) on {where}: "
        f"{plural(data['images'], 'image')} of {plural(data['patients'], 'patient')}; "
        f"device {result['device']}"
    )
    print(format_table(result["labels"], result["mean_auroc"]))
    print(f"thresholds: {result['model']['threshold_rule']}")
    ood = result.get("ood")
    if ood is not None:
        print(
            f"out of distribution: {ood['flagged']} of {data['images']} images over the "
            f"threshold {ood['threshold']:.3f}"
        )
    return EXIT_OK
