"""`radassist-train tune`: search fit's recipe with Optuna, then fit the best config.

    radassist-train tune --data MANIFEST --out DIR --budget MINUTES [--seed S] [--trials N]
        [--epochs E] [--image-sizes 224,256,...] [--config FILE] [--set section.key=value ...]
        [--device auto|cpu|cuda|mps] [--labels a,b] [--resume] [--quiet]
        [--uncertainty ...] [--views ...] [--label-rule ...] [--missing-images ...] [--labeler ...]

The base config is built as fit's: defaults < ``--config`` < ``--set`` < flags; the searched keys
(``training.tune.SEARCHED``) are then set per trial. One line per trial on stdout, epoch lines
on stderr, and a summary; everything goes into DIR (``training.tune``'s docstring).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from desktop_app.settings.schema import DEVICES
from training.commands.configflags import add_set_argument, config_from_args
from training.commands.layoutflags import add_layout_arguments, layout_flags
from training.config import TrainConfig, apply_overrides

if TYPE_CHECKING:
    from training.tune import TrialSummary, TuneHooks, TuneOutcome

PROG = "radassist-train tune"


def _sizes(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated image sizes."""
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give sizes like 224,256,320") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give sizes like 224,256,320")
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.tune import DEFAULT_IMAGE_SIZES

    d = TrainConfig()
    parser.add_argument(
        "--data",
        metavar="MANIFEST",
        help="manifest CSV, or a dataset layout's labels file or folder (as fit)",
    )
    parser.add_argument("--out", metavar="DIR", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--budget",
        metavar="MINUTES",
        type=positive_float,
        required=True,
        help="no new trial starts after this many minutes (a running one finishes; then the "
        "best config's fit)",
    )
    parser.add_argument(
        "--trials",
        metavar="N",
        type=positive_int,
        help="stop once the study has N finished trials (default: only the budget)",
    )
    parser.add_argument(
        "--seed",
        metavar="S",
        type=non_negative_int,
        help=f"seeds the sampler and every fit, split included (default {d.seed})",
    )
    parser.add_argument(
        "--epochs",
        metavar="E",
        type=positive_int,
        help=f"epochs per trial (default {d.optim.epochs})",
    )
    parser.add_argument(
        "--image-sizes",
        metavar="S,S",
        type=_sizes,
        default=None,
        help="input sizes to try (default: those of "
        + ",".join(map(str, DEFAULT_IMAGE_SIZES))
        + " not above the images' median longer side)",
    )
    parser.add_argument("--config", metavar="FILE", type=Path, help="YAML base config")
    add_set_argument(parser, "override a base config key, e.g. --set optim.weight_decay=0.05")
    parser.add_argument("--device", choices=DEVICES, help="auto (default), cpu, cuda or mps")
    parser.add_argument(
        "--labels", metavar="A,B", type=label_list, help="label columns (default: every one)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the study in DIR (budget counted anew)"
    )
    parser.add_argument("--quiet", action="store_true", help="no epoch lines or progress bars")
    add_layout_arguments(parser, "the base config's data.layout")


def resolve_base(args: argparse.Namespace) -> TrainConfig:
    """The base config: defaults < --config < --set < flags (as fit)."""
    config = config_from_args(args)
    flags: list[tuple[list[str], Any]] = []
    if args.data is not None:
        flags.append((["data", "manifest"], str(args.data)))
    if args.labels is not None:
        flags.append((["data", "labels"], args.labels))
    if args.epochs is not None:
        flags.append((["optim", "epochs"], args.epochs))
    if args.seed is not None:
        flags.append((["seed"], args.seed))
    if args.device is not None:
        flags.append((["device"], args.device))
    if layout_flags(args):
        flags.append((["data", "layout"], layout_flags(args)))
    config = apply_overrides(config, flags)
    if not config.data.manifest:
        raise ConfigError("no training data given", hint="pass --data MANIFEST")
    return config.validate()


def run(args: argparse.Namespace) -> int:
    from training.tune import TuneOptions, run_tune

    try:
        base = resolve_base(args)
        options = TuneOptions(
            budget_minutes=args.budget,
            trials=args.trials,
            image_sizes=None if args.image_sizes is None else tuple(args.image_sizes),
            resume=args.resume,
        ).validate()
    except ConfigError as err:
        print(f"{PROG}: error: {err.one_line()}", file=sys.stderr)
        return EXIT_USAGE
    hooks = _hooks(args.quiet)
    print(
        f"tuning for {args.budget:g} min"
        + (f" or {args.trials} trials" if args.trials else "")
        + f" (seed {base.seed}); the study is {args.out / 'tune.db'}",
        flush=True,
    )
    try:
        outcome = run_tune(base, args.out, options, hooks)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return _report(outcome)


def _hooks(quiet: bool) -> TuneHooks:
    from training.pipeline import epoch_line
    from training.tune import TuneHooks

    tty = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()

    def on_trial(t: TrialSummary) -> None:
        print(_trial_line(t), flush=True)

    def on_epoch(number: int | None, entry: dict[str, Any], epochs: int) -> None:
        if not quiet:
            tag = "best fit " if number is None else f"trial {number} "
            print(epoch_line(entry, epochs, tag), file=sys.stderr, flush=True)

    def on_best_fit(best: TrialSummary, folder: Path) -> None:
        print(f"fitting the best config (trial {best.number}) into {folder}", flush=True)

    def progress_factory(label: str) -> ProgressBar | None:
        return ProgressBar(label) if tty and not quiet else None

    return TuneHooks(
        on_trial=on_trial,
        on_epoch=on_epoch,
        on_best_fit=on_best_fit,
        progress_factory=progress_factory,
    )


def _trial_line(t: TrialSummary) -> str:
    from training.tune import short_params

    if t.state == "complete":
        result = f"val AUROC {t.value:.4f}"
    elif t.state == "pruned":
        reached = "" if t.value is None else f" (val AUROC {t.value:.4f})"
        result = f"pruned after epoch {t.epochs}{reached}"
    else:
        result = "failed" if t.state == "fail" else t.state
    seconds = "" if t.seconds is None else f"  {t.seconds:.0f} s"
    return f"trial {t.number}  {short_params(t.params)}  -> {result}{seconds}"


def _report(outcome: TuneOutcome) -> int:
    from training.commands.fit import print_summary
    from training.tune import BEST_CONFIG, HISTORY_PNG, TRIALS_CSV, short_params, trial_counts

    counts = trial_counts(outcome.trials)
    states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    ended = {"trials": "the trial cap", "budget": "the budget", "stopped": "a stop"}[
        outcome.ended_by
    ]
    print(
        f"\n{len(outcome.trials)} trials in the study ({states}); this search ran "
        f"{outcome.search_seconds / 60:.1f} min and ended by {ended}"
    )
    out = outcome.out_dir
    print(f"wrote {out / TRIALS_CSV} and {out / HISTORY_PNG}")
    if outcome.best is not None:
        print(
            f"best: trial {outcome.best.number}, val AUROC {outcome.best.value:.4f}: "
            f"{short_params(outcome.best.params)}"
        )
        print(f"wrote {out / BEST_CONFIG}")
    for note in outcome.notes:
        print(f"note: {note}")
    if outcome.ended_by == "stopped":
        print(f"{PROG}: stopped; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.fit is not None:
        print(f"\nthe best config's fit ({out / 'best'}):")
        print_summary(outcome.fit)
    elif outcome.model_path is not None:
        print(f"model file: {outcome.model_path}")
    return EXIT_OK
