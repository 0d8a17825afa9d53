"""`radassist-train make-demo-data OUTDIR [--ct]`: a synthetic annotated dataset.

Chest radiographs: OUTDIR/images/*.dcm (or .png), OUTDIR/manifest.csv, OUTDIR/boxes.csv and
OUTDIR/dataset.json (see ``training.demo_data``). With ``--ct``: chest CT series with per-slice
nodule masks (see ``training.demo_ct``). Synthetic phantoms, for demonstration.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from desktop_app.commands._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ProgressBar,
    fraction,
    non_negative_int,
    positive_int,
)
from desktop_app.infra.errors import ConfigError, DataError
from desktop_app.phantoms.studies import available_findings
from training.demo_ct import LABEL, CtDemoOptions, make_ct_dataset
from training.demo_data import (
    DemoDataOptions,
    check_output_dir,
    default_workers,
    make_demo_dataset,
    summary_text,
)

log = logging.getLogger(__name__)
PROG = "radassist-train make-demo-data"


def _size(text: str) -> int:
    value = positive_int(text)
    if not 64 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"{value} should be between 64 and 4096 pixels")
    return value


def _findings(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(","))
    if not names or any(not n for n in names):
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated finding names")
    for name in names:
        if name not in available_findings():
            raise argparse.ArgumentTypeError(
                f"unknown finding {name!r} (available: {', '.join(available_findings())})"
            )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r}: a finding appears twice")
    return names


def _slice_range(text: str) -> tuple[int, int]:
    parts = text.split("-")
    try:
        low, high = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, -1)
    except ValueError:
        low, high = 0, -1
    if not 8 <= low <= high <= 1000:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give MIN-MAX slices with 8 <= MIN <= MAX <= 1000"
        )
    return low, high


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoDataOptions()
    ct = CtDemoOptions()
    parser.add_argument("outdir", metavar="OUTDIR", type=Path, help="folder to create (empty)")
    parser.add_argument(
        "--n",
        type=positive_int,
        default=None,
        help=f"number of images (default {defaults.n}); with --ct, of series (default {ct.n})",
    )
    parser.add_argument("--seed", type=non_negative_int, default=defaults.seed, help="seed")
    parser.add_argument(
        "--size",
        type=_size,
        default=None,
        help=f"image rows in pixels (default {defaults.size}; with --ct {ct.size})",
    )
    parser.add_argument(
        "--ct",
        action="store_true",
        help="chest CT series with per-slice nodule masks instead of radiographs",
    )
    parser.add_argument(
        "--slices",
        type=_slice_range,
        default=None,
        help=f"with --ct: slices per series, MIN-MAX (default {ct.min_slices}-{ct.max_slices})",
    )
    parser.add_argument(
        "--max-nodules",
        type=positive_int,
        default=ct.max_nodules,
        help=f"with --ct: most nodules in a series (default {ct.max_nodules})",
    )
    parser.add_argument(
        "--max-empty-slices",
        type=positive_int,
        default=None,
        help="with --ct: list only this many nodule-free slices per series in the manifest "
        "(evenly spread; every slice with a nodule is listed; default all)",
    )
    parser.add_argument(
        "--empty-fraction",
        type=fraction,
        default=ct.empty_fraction,
        help=f"with --ct: fraction of series without nodules (default {ct.empty_fraction})",
    )
    parser.add_argument(
        "--format",
        dest="image_format",
        choices=("dicom", "png"),
        default="dicom",
        help="DICOM DX files (default) or 16-bit PNG",
    )
    parser.add_argument(
        "--findings",
        type=_findings,
        default=defaults.findings,
        help=f"comma-separated labels (default {','.join(defaults.findings)}; "
        f"available: {', '.join(available_findings())})",
    )
    parser.add_argument(
        "--prevalence", type=fraction, default=defaults.prevalence, help="per finding, per patient"
    )
    parser.add_argument(
        "--repeat-fraction",
        type=fraction,
        default=defaults.repeat_fraction,
        help="fraction of patients with a second image",
    )
    parser.add_argument(
        "--monochrome1-fraction",
        type=fraction,
        default=0.0,
        help="fraction of DICOM images stored inverted (MONOCHROME1)",
    )
    parser.add_argument(
        "--rle-fraction",
        type=fraction,
        default=0.0,
        help="fraction of DICOM images RLE-compressed",
    )
    parser.add_argument(
        "--nonsquare-fraction",
        type=fraction,
        default=0.0,
        help="fraction of images with a non-square shape",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="processes (default: 1 below 64 images, else up to 4 by CPU count)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="reuse a non-empty OUTDIR (replaces our files)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        check_output_dir(args.outdir, args.overwrite)
    except DataError as err:
        print(f"{PROG}: error: {err.one_line()}", file=sys.stderr)
        return EXIT_USAGE
    if args.ct:
        return _run_ct(args)
    if args.slices is not None:
        print(f"{PROG}: error: --slices applies to --ct only", file=sys.stderr)
        return EXIT_USAGE
    args.n = args.n or DemoDataOptions().n
    args.size = args.size or DemoDataOptions().size
    workers = args.workers or (1 if args.n < 64 else default_workers())
    options = DemoDataOptions(
        n=args.n,
        seed=args.seed,
        size=args.size,
        image_format=args.image_format,
        findings=tuple(args.findings),
        prevalence=args.prevalence,
        repeat_fraction=args.repeat_fraction,
        monochrome1_fraction=args.monochrome1_fraction,
        rle_fraction=args.rle_fraction,
        nonsquare_fraction=args.nonsquare_fraction,
        workers=workers,
    )
    try:
        options.validate()
    except ConfigError as err:
        print(f"{PROG}: error: {err.one_line()}", file=sys.stderr)
        return EXIT_USAGE
    bar = ProgressBar("make-demo-data", enabled=not args.quiet)
    start = time.perf_counter()
    dataset = make_demo_dataset(args.outdir, options, overwrite=args.overwrite, progress=bar)
    if dataset.stopped:
        return EXIT_INTERRUPTED
    seconds = time.perf_counter() - start
    log.info("wrote %d images in %.1f s (%d workers)", options.n, seconds, workers)
    print(f"wrote {dataset.manifest}")
    print(summary_text(dataset.summary))
    return EXIT_OK


def _run_ct(args: argparse.Namespace) -> int:
    defaults = CtDemoOptions()
    low, high = args.slices or (defaults.min_slices, defaults.max_slices)
    options = CtDemoOptions(
        n=args.n or defaults.n,
        seed=args.seed,
        size=args.size or defaults.size,
        min_slices=low,
        max_slices=high,
        max_nodules=args.max_nodules,
        empty_fraction=args.empty_fraction,
        max_empty_slices=args.max_empty_slices,
    )
    try:
        options.validate()
    except ConfigError as err:
        print(f"{PROG}: error: {err.one_line()}", file=sys.stderr)
        return EXIT_USAGE
    bar = ProgressBar("make-demo-data --ct", enabled=not args.quiet)
    start = time.perf_counter()
    dataset = make_ct_dataset(args.outdir, options, overwrite=args.overwrite, progress=bar)
    if dataset.stopped:
        return EXIT_INTERRUPTED
    log.info("wrote %d series in %.1f s", options.n, time.perf_counter() - start)
    print(f"wrote {dataset.manifest}")
    print(summary_text(dataset.summary))
    print(ct_next_step(dataset.manifest))
    return EXIT_OK


def ct_next_step(manifest: Path) -> str:
    """The fit command for a CT demo set: ``--labels`` names the class after the manifest's
    0/1 column (``nodule``); without it a segmentation class is called ``lesion``."""
    return (
        f"train it: radassist-train fit --task segmentation --data {manifest} --labels {LABEL} "
        "--out DIR"
    )
