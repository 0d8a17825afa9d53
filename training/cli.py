"""`radassist-train`: headless training, evaluation and model-file tools.

Each subcommand lives in ``training.commands.<name>`` with ``add_arguments(parser)`` and
``run(args) -> int``, imported only when used.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. On a machine whose
# cores are shared, spinning threads made a Lite0 training step 3-20x slower (measured here);
# on an idle machine it only adds a short wake-up per parallel region. A user's setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from desktop_app import __version__
from desktop_app.commands._common import (
    EXIT_USAGE,
    Command,
    OneLineParser,
    load_command,
    run_command,
    top_parser,
)

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": (
        "training.commands.convert",
        "package a plain state dict (.pth, weights only) as a RadAssist model file",
    ),
    "make-demo-data": (
        "training.commands.make_demo_data",
        "write a synthetic annotated dataset and its manifest: chest radiographs, or CT series "
        "with nodule masks (--ct)",
    ),
    "fit": (
        "training.commands.fit",
        "train a classifier or a segmentation model on a manifest or a public dataset's layout; "
        "write a model file",
    ),
    "tune": (
        "training.commands.tune",
        "search the recipe (Optuna, within a time budget), then fit the best config",
    ),
    "evaluate": (
        "training.commands.evaluate",
        "score a model file on its test split or an external set: AUROC with CIs, sensitivity, "
        "specificity, ECE; segmentation: Dice, HD95, lesion sensitivity, FP/image",
    ),
    "refit": (
        "training.commands.refit",
        "re-fit a model file's intended input, OOD score, temperatures and thresholds (no training)",
    ),
    "prune": (
        "training.commands.prune",
        "prune a model file's channels (structured), fine-tune briefly, write a smaller model file",
    ),
    "calibrate": (
        "training.commands.calibrate",
        "measure a model on a site's reviewed cases; re-set its thresholds and temperatures",
    ),
    "manifest-from-reviews": (
        "training.commands.manifest_from_reviews",
        "turn accepted and rejected findings of saved reviews into a training manifest",
    ),
    "export-onnx": (
        "training.commands.export_onnx",
        "export a model file as ONNX for edge deployment (checked against PyTorch)",
    ),
}


def build_parser(command: str | None = None) -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    """The top-level parser; only ``command``'s module is imported (torch takes seconds)."""
    parser = top_parser(
        "radassist-train",
        "Train, evaluate and package RadAssist models (headless).",
        COMMANDS,
        "commands (radassist-train COMMAND --help)",
        22,
    )
    parser.add_argument("--version", action="version", version=f"radassist-train {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    modules: dict[str, Command] = {}
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            modules[name] = load_command(p, module_name)
    return parser, modules


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    parser, modules = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(args_list)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return run_command(modules[args.command], args, f"radassist-train {args.command}")


if __name__ == "__main__":
    sys.exit(main())
