"""`radassist deidentify PATH ... --out DIR`: "Export study for sharing" (PS3.15 Annex E).

Writes a de-identified copy of every DICOM file under the given paths to
``DIR/<h(study)>/<h(series)>/<h(sop)>.dcm``. Files whose pixels may show burned-in text are
withheld unless ``--include-burned-in`` is given. Exits 0 when every DICOM input was written,
1 when any was withheld or failed, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from desktop_app.commands._common import EXIT_OK, EXIT_SOME_FAILED, ProgressBar, add_date_options
from desktop_app.infra.safetext import escape_control


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or folders")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    add_date_options(parser, parser)
    parser.add_argument(
        "--retain-safe-private",
        action="store_true",
        help="keep the private attributes PS3.15 Table E.3.10-1 lists as safe",
    )
    parser.add_argument(
        "--include-burned-in",
        action="store_true",
        help="also write files whose pixels may show burned-in text (check them yourself)",
    )


def run(args: argparse.Namespace) -> int:
    from desktop_app.privacy.deid import DeidOptions, deidentify_paths

    missing = [p for p in args.paths if not Path(p).exists()]
    for p in missing:
        print(f"{escape_control(p)}: no such file or folder", file=sys.stderr)
    options = DeidOptions(
        dates=args.dates,
        retain_safe_private=args.retain_safe_private,
        allow_burned_in=args.include_burned_in,
    )
    bar = ProgressBar("de-identifying", enabled=sys.stderr.isatty())
    report = deidentify_paths(
        [p for p in args.paths if Path(p).exists()], args.out, options, progress=bar
    )
    for result in report.results:
        if result.status == "withheld":
            print(
                f"{escape_control(result.source)}: withheld: burned-in annotation risk ({result.risk.summary()}) "
                "(check the pixels, then use --include-burned-in)",
                file=sys.stderr,
            )
        elif result.status == "failed":
            print(
                f"{escape_control(result.source)}: {escape_control(result.problem, limit=1000)}",
                file=sys.stderr,
            )
        elif result.status == "written" and result.risk.flagged:
            print(
                f"{escape_control(result.source)}: written despite burned-in annotation risk "
                f"({result.risk.summary()})",
                file=sys.stderr,
            )
    duplicates = len(report.with_status("duplicate"))
    print(
        f"wrote {len(report.written)} de-identified files to {args.out}"
        f" ({len(report.not_written)} withheld or failed, {duplicates} duplicates,"
        f" {report.skipped_not_dicom} not DICOM)"
    )
    if not report.results:
        print("no DICOM files found in the given paths", file=sys.stderr)
        return EXIT_SOME_FAILED
    return EXIT_SOME_FAILED if (report.not_written or missing) else EXIT_OK
