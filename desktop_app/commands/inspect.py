"""`radassist inspect PATH ... [--json] [--no-decode]`: index, decode every image, report.

stdout: the patient / study / series tree (or, with --json, the document of
docs/inspect-json-schema.md). stderr: one line per refused file, ``PATH: REASON``, then a
one-line summary; progress too when stderr is a terminal (or with --progress).
Exit status: 0 every input was read; 1 any file was refused (a path that does not exist
counts as a refused input); 2 usage error; 130 interrupted.

The tree shows the patient's name and ID, because this is the user's own tool over the
user's own files; --hide-patient shows a hash instead. Logs never contain them. Every value
from a file (and every path) is printed with its control characters escaped and cut to a
length, so a file can't drive the terminal or forge a line; --json escapes them as JSON does.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from desktop_app.commands._common import EXIT_OK, EXIT_SOME_FAILED, ProgressBar, positive_int
from desktop_app.infra.safetext import escape_control
from desktop_app.studies.inspection import (
    STATUS_REFUSED,
    InspectionReport,
    SeriesReport,
    inspect_paths,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="DICOM files, folders (recursive) or DICOMDIRs"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the versioned JSON report on stdout"
    )
    parser.add_argument(
        "--no-decode", action="store_true", help="read headers only; do not decode pixels"
    )
    parser.add_argument(
        "--hide-patient",
        action="store_true",
        help="show a hash instead of patient names and IDs",
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show progress on stderr even when it is not a terminal",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="read headers in N processes (default: automatic; 1 reads them here)",
    )


class _PhaseProgress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bars: dict[str, ProgressBar] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(phase)
        if bar is None:
            bar = self.bars[phase] = ProgressBar(phase)
        bar(done, total)


def run(args: argparse.Namespace) -> int:
    show_progress = bool(args.progress) or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    report = inspect_paths(
        args.paths,
        decode=not args.no_decode,
        progress=_PhaseProgress(show_progress),
        workers=args.workers,
        executor="auto" if args.workers is None else "processes",
    )
    if args.json:
        json.dump(report.to_json(include_patient=not args.hide_patient), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_tree(report, sys.stdout, hide_patient=args.hide_patient)
    sys.stdout.flush()
    print_problems(report, sys.stderr)
    return EXIT_SOME_FAILED if report.exit_code else EXIT_OK


# A value from a file is cut to this many characters in the tree (LO is 64, a UID 64).
VALUE_CHARS = 80


def _v(value: object) -> str:
    """A value from a file, safe to print on one line."""
    return escape_control(value, limit=VALUE_CHARS)


def _fmt_mm(value: float | None) -> str:
    return "?" if value is None else f"{value:.4g}"


def _series_line(s: SeriesReport) -> str:
    node = s.node
    number = f"#{node.series_number} " if node.series_number is not None else ""
    desc = f' "{_v(node.description)}"' if node.description else ""
    modality = _v(node.modality) if node.modality else "?"
    images = node.image_count
    if images == 0:
        return f"Series {number}{modality}{desc}: {node.instance_count} object(s), no images"
    return f"Series {number}{modality}{desc}: {images} image(s) in {node.instance_count} file(s)"


def _stack_line(stack: Any, parts: int) -> str:
    bits = []
    if parts > 1:
        bits.append(f"part {stack.part}/{stack.parts}")
    kind = "frame" if stack.is_multiframe else "slice"
    bits.append(f"{len(stack)} {kind}{'' if len(stack) == 1 else 's'}")
    bits.append(_v(stack.size_text))
    if stack.plane:
        bits.append(_v(stack.plane))
    if stack.pixel_spacing is not None:
        bits.append(f"pixel {_fmt_mm(stack.pixel_spacing[0])}x{_fmt_mm(stack.pixel_spacing[1])} mm")
    if stack.slice_spacing is not None:
        bits.append(f"spacing {_fmt_mm(stack.slice_spacing)} mm")
    bits.append(f"ordered by {_v(stack.ordered_by)}")
    return ", ".join(bits)


def print_tree(report: InspectionReport, out: TextIO, *, hide_patient: bool = False) -> None:
    """The patient / study / series / stack tree with warnings, for people."""
    for p in report.patients:
        node = p.node
        if hide_patient:
            who = f"Patient {node.key}"
        else:
            who = f"Patient {_v(node.name or '(no name)')} [ID {_v(node.patient_id or '-')}]"
        out.write(f"{who}\n")
        for st in p.studies:
            sn = st.node
            date = _v(sn.date or "no date")
            desc = f' "{_v(sn.description)}"' if sn.description else ""
            out.write(f"  Study {date}{desc} ({_v(sn.study_instance_uid)})\n")
            for s in st.series:
                out.write(f"    {_series_line(s)}\n")
                for w in s.assembly.warnings:
                    if not s.stacks:
                        out.write(f"      ! {escape_control(w, limit=300)}\n")
                for stack_report in s.stacks:
                    stack = stack_report.stack
                    out.write(f"      {_stack_line(stack, len(s.stacks))}\n")
                    for w in stack.warnings:
                        if w in s.assembly.warnings and stack.part > 1:
                            continue  # said once, on the first part
                        out.write(f"        ! {escape_control(w, limit=300)}\n")


def print_problems(report: InspectionReport, err: TextIO) -> None:
    """One line per refused file (``PATH: REASON``), then a one-line summary."""
    for f in report.files:
        if f.status == STATUS_REFUSED:
            err.write(f"{escape_control(f.path)}: {escape_control(f.reason, limit=500)}\n")
    s = report.summary()
    decoded = (
        f"{s['images_decoded']} of {s['images']} image(s) decoded"
        if report.decoded
        else "pixels not decoded (--no-decode)"
    )
    skipped = (
        f", {s['skipped_non_dicom']} non-DICOM file(s) skipped" if s["skipped_non_dicom"] else ""
    )
    stopped = ", stopped early" if report.stopped else ""
    err.write(
        f"inspect: {s['files']} file(s), {s['instances']} instance(s) in {s['patients']} "
        f"patient(s), {s['studies']} study(ies), {s['series']} series; {decoded}; "
        f"{s['problem_files']} problem file(s){skipped}{stopped}\n"
    )
    err.flush()
