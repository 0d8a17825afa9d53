"""The public-layout reading flags that fit, tune, evaluate, calibrate and refit share
(``--uncertainty``, ``--views``, ``--label-rule``, ``--missing-images``, ``--labeler``): one
helper adds them to a parser, one collects the flags given (``data.layout`` keys)."""

from __future__ import annotations

import argparse
from dataclasses import fields

from training.layouts.common import (
    LABEL_RULES,
    LABELERS,
    MISSING_POLICIES,
    UNCERTAINTY_POLICIES,
    VIEW_FILTERS,
    LayoutOptions,
)

# (flag, LayoutOptions field, choices, help)
FLAGS = (
    (
        "--uncertainty",
        "uncertainty",
        UNCERTAINTY_POLICIES,
        "CheXpert/MIMIC uncertain (-1) labels: u-ones (positive), u-zeros (negative) or "
        "ignore (unknown: left out of that label's loss and metrics)",
    ),
    ("--views", "views", VIEW_FILTERS, "CheXpert/MIMIC views: frontal (PA/AP), lateral or all"),
    (
        "--label-rule",
        "label_rule",
        LABEL_RULES,
        "VinDr-CXR: a finding is present for the majority of an image's readers, or any",
    ),
    (
        "--missing-images",
        "missing_images",
        MISSING_POLICIES,
        "listed images that are not on disk: skip their rows (with a note) or error",
    ),
    ("--labeler", "labeler", LABELERS, "MIMIC-CXR labels file: chexpert or negbio"),
)
assert {f[1] for f in FLAGS} == {f.name for f in fields(LayoutOptions)}


def add_layout_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    """Add the five flags (default None: ``default`` says what is used then, e.g. "the
    config's data.layout" or "what the model file's training recorded")."""
    group = parser.add_argument_group(
        "public dataset layouts", f"how a public layout's labels are read (default: {default})"
    )
    base = LayoutOptions()
    for flag, name, choices, text in FLAGS:
        group.add_argument(
            flag,
            dest=f"layout_{name}",
            choices=choices,
            default=None,
            help=f"{text} (documented default {getattr(base, name)})",
        )


def layout_flags(args: argparse.Namespace) -> dict[str, str]:
    """The layout flags given on the command line, as ``data.layout`` keys."""
    given = {name: getattr(args, f"layout_{name}", None) for _, name, _, _ in FLAGS}
    return {k: v for k, v in given.items() if v is not None}
