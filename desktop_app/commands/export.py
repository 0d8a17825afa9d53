"""`radassist export STUDY ... --out DIR`: the exports of a reviewed study, headless.

For every study found in the inputs (files, folders or DICOMDIRs), writes ``DIR/<h>/`` (``<h>``
= 16 hex digits of the SHA-256 of the exported Study Instance UID) with the formats asked for:
``--sr`` (DICOM SR, TID 1500), ``--sc`` (Secondary Capture images with the overlay burned in),
``--pdf`` (report.pdf), ``--json`` (findings.json); none of them means all four. See
docs/exports.md. With ``--sr``, a series with reviewed lesions (a segmentation the reader
reviewed) also gets ``seg/<h>.dcm``, a DICOM SEG of its accepted and reader-drawn lesions, and a
second SR of their measurements referencing it; the PDF lists every lesion with its verdict.

Findings come from the study's saved review (the reader's verdicts, notes and edited boxes, in
the data folder's ``reviews/``, or ``--reviews DIR``). A study without one is run through the
model first (``--model``, ``--device``), and its findings are exported as not reviewed; the
command says which it did, per study. ``--deidentify`` puts everything through the PS3.15
Basic Profile (the same secret and UID map as ``radassist deidentify``).

Exit status: 0 every study exported and every input read; 1 some input could not be read or
some study could not be exported (each named in one line); 2 usage error; 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from desktop_app.commands._common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    ProgressBar,
    add_date_options,
    device_arg,
)
from desktop_app.infra.errors import ConfigError, RadAssistError
from desktop_app.infra.safetext import escape_control

log = logging.getLogger(__name__)

PROG = "radassist export"
FORMAT_FLAGS = ("sr", "sc", "pdf", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", metavar="STUDY", help="the study's DICOM files, folders or DICOMDIR"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the exports")
    formats = parser.add_argument_group("formats (none given: all four)")
    formats.add_argument(
        "--sr",
        action="store_true",
        help="DICOM Structured Report (TID 1500); reviewed lesions also as DICOM SEG + SR",
    )
    formats.add_argument(
        "--sc", action="store_true", help="Secondary Capture images with the overlay burned in"
    )
    formats.add_argument("--pdf", action="store_true", help="PDF report")
    formats.add_argument("--json", action="store_true", help="findings and verdicts as JSON")
    deid = parser.add_argument_group("de-identification (PS3.15 Annex E)")
    deid.add_argument(
        "--deidentify",
        action="store_true",
        help="pseudonymise everything exported; new UIDs shared with `radassist deidentify`",
    )
    add_date_options(parser, deid)
    deid.add_argument(
        "--include-burned-in",
        action="store_true",
        help="export key images of sources whose pixels may show burned-in text",
    )
    parser.add_argument(
        "--model",
        metavar="FILE",
        help="model file for studies without a saved review, and for the model card "
        "(default: the bundled model)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        type=device_arg,
        metavar="{auto,cpu,cuda,mps}",
        help="where to run the model when a study has no saved review (default: auto)",
    )
    parser.add_argument(
        "--reviews",
        metavar="DIR",
        help="folder of saved reviews (default: reviews/ in the RadAssist data folder)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _say(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    formats = [f for f in FORMAT_FLAGS if getattr(args, f)] or list(FORMAT_FLAGS)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"{PROG}: error: {out}: is not a folder (choose a folder for --out)", file=sys.stderr)
        return EXIT_USAGE
    missing = [p for p in args.paths if not Path(p).exists()]
    for p in missing:
        print(f"{escape_control(p)}: no such file or folder", file=sys.stderr)
    present = [p for p in args.paths if Path(p).exists()]
    if not present:
        print(f"{PROG}: error: none of the inputs exists", file=sys.stderr)
        return EXIT_SOME_FAILED

    from desktop_app.review.store import ReviewStore
    from desktop_app.studies.index import index_paths

    index = index_paths(present)
    problems = [p.one_line() for p in index.problems]
    studies = [study for patient in index.patients for study in patient.studies]
    if not studies:
        for line in problems:
            print(escape_control(line, limit=1000), file=sys.stderr)
        print(f"{PROG}: error: no DICOM study found in the inputs", file=sys.stderr)
        return EXIT_SOME_FAILED
    store = ReviewStore(args.reviews) if args.reviews else ReviewStore()
    runner = _Runner(args)
    failures = 0
    exported = []
    for study in studies:
        try:
            result = _export_one(args, formats, index, study, store, runner, present)
        except ConfigError as err:  # a bad --model/--device: the same for every study
            print(f"{PROG}: error: {err.one_line()}", file=sys.stderr)
            return EXIT_USAGE
        except RadAssistError as err:
            failures += 1
            print(
                f"{PROG}: error: study {_h(study.study_instance_uid)}: "
                f"{escape_control(err.one_line())}",
                file=sys.stderr,
            )
            continue
        exported.append(result)
        for warning in result.warnings:
            _say(f"warning: study {_h(study.study_instance_uid)}: {escape_control(warning)}")
        if result.lesions:
            _say(
                f"study {_h(study.study_instance_uid)}: {result.lesions} reviewed lesion(s) in "
                f"{len(result.seg)} DICOM SEG(s) with their measurements in an SR"
            )
        print(f"{result.folder}")
        for path in result.files:
            print(f"  {path.relative_to(result.folder).as_posix()}")
    for line in problems:
        print(escape_control(line, limit=1000), file=sys.stderr)
    if problems or missing:
        _say(f"{len(problems) + len(missing)} input(s) could not be read")
    if failures or problems or missing:
        _say(f"{len(exported)} of {len(studies)} studies exported to {out}")
        return EXIT_SOME_FAILED
    return EXIT_OK


def _h(uid: str) -> str:
    from desktop_app.infra.hashedpaths import uid_hash

    return uid_hash(uid)


class _Runner:
    """The inference engine, built once when a study needs it."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._engine: Any = None

    def engine(self) -> Any:
        if self._engine is None:
            from desktop_app.inference.engine import InferenceEngine

            self._engine = InferenceEngine(self.args.model, device=self.args.device)
            for message in self._engine.warnings:
                _say(f"warning: {message}")
        return self._engine


def _export_one(
    args: argparse.Namespace,
    formats: list[str],
    index: Any,
    study: Any,
    store: Any,
    runner: _Runner,
    paths: list[str],
) -> Any:
    from desktop_app.exports import ExportRequest, export_study
    from desktop_app.privacy.audit import AuditLog
    from desktop_app.privacy.deid import DeidOptions

    uid = study.study_instance_uid
    name = _h(uid)
    review = store.load(uid)
    results: list[Any] = []
    manifest = None
    device = ""
    audit = AuditLog()
    if review is not None and review.findings:
        counts = review.counts()
        added = sum(1 for f in review.findings if f.added and f.truth == "present")
        _say(
            f"study {name}: using the saved review ({len(review.findings)} findings: "
            f"{counts['present']} present, {counts['absent']} absent, "
            f"{counts['uncertain']} uncertain, {counts['pending']} not reviewed"
            + (f"; {added} drawn by the reader" if added else "")
            + ")"
        )
        manifest = _manifest_for(args.model, review.model.sha256 if review.model else "")
        device = _device_from_audit(audit, uid, review.model.sha256 if review.model else "")
    else:
        review = None
        _say(f"study {name}: no saved review; running the model (findings not reviewed)")
        engine = runner.engine()
        manifest = engine.manifest
        results = _run_model(engine, study, args.quiet, audit)
    request = ExportRequest(
        study_paths=paths,
        out_dir=args.out,
        results=results,
        review=review,
        formats=formats,
        deidentify=args.deidentify,
        deid_options=DeidOptions(dates=args.dates, allow_burned_in=args.include_burned_in)
        if args.deidentify
        else None,
        model_manifest=manifest,
        study_uid=uid,
        device=device,
        index=index,
        audit=audit,
    )
    bar = ProgressBar(f"export {name}", enabled=not args.quiet)
    return export_study(request, progress=bar)


def _run_model(engine: Any, study: Any, quiet: bool, audit: Any) -> list[Any]:
    from desktop_app.inference.inputcheck import InputNotApplicable
    from desktop_app.privacy.audit import AuditLogError, record_inference
    from desktop_app.studies.series import assemble
    from desktop_app.studies.volume import SeriesVolume

    results = []
    for series in study.series:
        if not any(i.has_pixels for i in series.instances):
            continue
        for stack in assemble(series).stacks:
            label = f"model {_h(series.series_instance_uid)}"
            if stack.parts > 1:
                label += f"-p{stack.part}"
            try:
                result = engine.run(
                    SeriesVolume(stack, keep=False),
                    progress=ProgressBar(label, enabled=not quiet),
                    study_instance_uid=study.study_instance_uid,
                )
            except InputNotApplicable as err:
                _say(f"warning: series {_h(series.series_instance_uid)} {err.reason}")
                continue
            for path, reason in result.unreadable:
                _say(f"warning: {reason if reason.startswith(path) else f'{path}: {reason}'}")
            try:
                record_inference(
                    audit,
                    study_uid=study.study_instance_uid,
                    series_uid=series.series_instance_uid,
                    model_sha256=result.model.tensor_sha256,
                    device=result.device,
                    timings_ms={k: v * 1000.0 for k, v in result.timings.to_json().items()},
                    source="export",
                )
            except AuditLogError as err:
                _say(f"warning: the audit record was not written: {err.one_line()}")
            results.append(result)
    return results


def _manifest_for(model: str | None, sha: str) -> Any:
    """The manifest of ``--model`` (or the bundled model) when it is the reviewed model."""
    from desktop_app.infra.errors import ModelFileError
    from desktop_app.model.paths import default_model_path

    try:
        from desktop_app.model.catalog import load_catalog
        from desktop_app.model.modeldata import read_manifest

        entry = None if model else load_catalog().by_sha(sha)  # the model chosen per series
        path = Path(model) if model else entry.path if entry is not None else default_model_path()

        manifest = read_manifest(path)
    except ModelFileError as err:
        if model:
            raise
        log.info("no model card for the export: %s", err.one_line())
        return None
    if sha and manifest.tensor_sha256 != sha:
        _say(
            f"warning: {path.name} is not the model the review was made with "
            f"({manifest.tensor_sha256[:12]} vs {sha[:12]}); its model card is not used"
        )
        return None
    return manifest


def _device_from_audit(audit: Any, study_uid: str, sha: str) -> str:
    """The device of the latest inference on this study with this model, from the audit
    trail (a review does not record it); '' when there is none."""
    from desktop_app.infra.hashedpaths import uid_hash
    from desktop_app.privacy.audit import AuditLogError

    target = uid_hash(study_uid)
    device = ""
    try:
        for record in audit.records():
            if (
                record.get("kind") == "inference"
                and record.get("study_hash") == target
                and (not sha or record.get("model_sha256") == sha)
            ):
                device = str(record.get("device", ""))
    except (AuditLogError, OSError) as err:
        log.info("device not read from the audit trail: %s", err)
    return device
