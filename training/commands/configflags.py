"""The ``--set KEY=VALUE`` flag that fit, tune, prune and refit share, and the config it makes
with ``--config`` (defaults < ``--config`` < ``--set``)."""

from __future__ import annotations

import argparse

from training.config import TrainConfig, apply_overrides, load_config_file, parse_set_option


def add_set_argument(parser: argparse.ArgumentParser, text: str) -> None:
    """``--set KEY=VALUE``, repeatable (``args.overrides``); ``text`` says what it overrides,
    with an example."""
    parser.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help=f"{text} (repeatable)",
    )


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """``--config`` (else ``base``, else the defaults) with each ``--set`` over it; the caller
    applies its own flags and validates."""
    if args.config is not None:
        config = load_config_file(args.config)
    else:
        config = base if base is not None else TrainConfig()
    return apply_overrides(config, [parse_set_option(text) for text in args.overrides])
