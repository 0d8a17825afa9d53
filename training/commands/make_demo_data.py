"""`radassist-train make-demo-data OUTDIR`: a synthetic annotated chest-radiograph dataset.

Writes OUTDIR/images/*.dcm (or .png), OUTDIR/manifest.csv, OUTDIR/boxes.csv and
OUTDIR/dataset.json (see ``training.demo_data``). Synthetic phantoms, for demonstration.
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = DemoDataOptions()
    parser.add_argument("outdir", metavar="OUTDIR", type=Path, help="folder to create (empty)")
    parser.add_argument("--n", type=positive_int, default=defaults.n, help="number of images")
    parser.add_argument("--seed", type=non_negative_int, default=defaults.seed, help="seed")
    parser.add_argument(
        "--size", type=_size, default=defaults.size, help="image rows in pixels (default 512)"
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
