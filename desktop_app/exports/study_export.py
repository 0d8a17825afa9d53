"""Export a reviewed study: DICOM SR, secondary captures, PDF report and JSON, in one step.

    result = export_study(ExportRequest(study_paths=[folder], out_dir=out, review=state,
                                        results=results), progress=cb, stop=event)

This is the one entry point the GUI's "Export…" action and ``radassist export`` share. It
reads the source study (``sources``), merges findings and verdicts (``content``), and writes
every requested format into ``OUT/<h>/`` where ``<h>`` is the first 16 hex digits of the
SHA-256 of the exported Study Instance UID (the de-identified one when de-identifying):

- ``sr/<h(SOP Instance UID)>.dcm``: the TID 1500 Comprehensive SR (``sr``);
- ``sc/<h(SOP Instance UID)>.dcm``: one Secondary Capture per key image (``secondary_capture``);
- ``report.pdf``: the PDF report (``report_model`` + ``report_pdf``);
- ``findings.json``: findings and verdicts (``json_export``);
- with the SR, for each stack with reviewed lesions (the review's ``lesions_for``, or
  ``ExportRequest.lesions``) that kept any (accepted or drawn by the reader):
  ``seg/<h(SOP Instance UID)>.dcm``, the DICOM SEG of the kept lesions (one segment each), and a
  second ``sr/<h>.dcm``, the Comprehensive 3D SR of their measurements referencing the SEG
  (``lesion_sr``); the PDF has a lesion table (every lesion, with the reader's verdict).

No name comes from a tag value. Atomic: everything is written into a hidden temporary folder
beside the target, which is renamed into place only when every file is written; an earlier
export of the same study is replaced in the same way. A failure or a stop removes the
temporary folder and leaves the earlier export untouched.

De-identification (``deidentify=True``): every output is built from headers that went through
the PS3.15 Annex E Basic Profile (``deid.Deidentifier``, the same secret and UID map as
``radassist deidentify``), so the SR, the secondary captures, the PDF header and the JSON share
the same new UIDs, pseudonym and shifted dates. Reader notes and reader names (free text that
may identify someone) are left out. Source images whose pixels may carry burned-in text are
refused unless ``deid_options.allow_burned_in`` (key images copy their pixels).

Progress: ``progress(done, total)`` per unit of work (reading headers, the SR, each key
image, the PDF, the JSON, the final rename); ``stop`` (an Event or a callable) is checked
between units and raises :class:`~desktop_app.infra.errors.Cancelled`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from desktop_app.exports.content import (
    ExportFinding,
    ModelSummary,
    collect_findings,
    model_summary,
    reviewers,
)
from desktop_app.infra.atomicio import atomic_path, atomic_write_bytes, atomic_write_json
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.errors import Cancelled, ExportError
from desktop_app.infra.hashedpaths import uid_hash

if TYPE_CHECKING:
    from desktop_app.exports.lesion_sr import ReviewedLesions
    from desktop_app.exports.secondary_capture import KeyImage
    from desktop_app.exports.sources import StudySources
    from desktop_app.inference.findings import SeriesResult
    from desktop_app.privacy.audit import AuditLog
    from desktop_app.privacy.deid import DeidOptions
    from desktop_app.privacy.deid_keys import DeidKeyStore
    from desktop_app.review.annotations import Annotation
    from desktop_app.review.state import ReviewState
    from desktop_app.studies.index import StudyIndex

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("sr", "sc", "pdf", "json")

SR_FOLDER = "sr"
SEG_FOLDER = "seg"
SC_FOLDER = "sc"
PDF_NAME = "report.pdf"
JSON_NAME = "findings.json"


@dataclass
class ExportRequest:
    """What to export and how.

    ``study_paths``: the study's files or folders (or ``index``, an index the caller already
    has). ``results``: the engine's results for the study's stacks (heatmaps, device);
    ``review``: the reader's saved state; at least one of the two. ``formats``: a subset of
    :data:`FORMATS` (default: all four). ``model_manifest``: the model file's manifest
    (``desktop_app.model.modelfile.ModelManifest``) for the model card summary; used only when its
    tensor hash matches the findings'. ``heatmaps``: heatmaps by finding id that the caller
    holds (a saved review has none). ``device``/``backend``: where the model ran, when the
    results are not given (a review does not record it). ``audit``: where to record the export.
    """

    study_paths: Sequence[str | Path]
    out_dir: str | Path
    results: Sequence[SeriesResult] = ()
    review: ReviewState | None = None
    formats: Collection[str] = FORMATS
    deidentify: bool = False
    deid_options: DeidOptions | None = None
    deid_keys: DeidKeyStore | None = None
    model_manifest: Any | None = None
    heatmaps: Mapping[str, np.ndarray] | None = None
    study_uid: str | None = None
    device: str = ""
    backend: str = ""
    index: StudyIndex | None = None
    audit: AuditLog | None = None
    lesions: Sequence[ReviewedLesions] = ()  # reviewed lesions besides the review's own


@dataclass
class ExportResult:
    """What was written. ``folder`` holds everything; ``study_uid`` is the exported Study
    Instance UID; ``problems``: input files that could not be read (one line each);
    ``uid_replacements``: how many invalid source UIDs were replaced (PS3.5 9.1; the line
    that says which is in ``warnings``)."""

    folder: Path
    study_uid: str
    sr: Path | None = None
    sc: list[Path] = field(default_factory=list)
    pdf: Path | None = None
    json: Path | None = None
    findings: int = 0
    key_images: int = 0
    deidentified: bool = False
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    uid_replacements: int = 0
    seg: list[Path] = field(default_factory=list)  # the reviewed lesions' SEGs, one per stack
    lesion_sr: list[Path] = field(default_factory=list)  # their measurement SRs (same order)
    lesions: int = 0  # lesions written (accepted or drawn by the reader)

    @property
    def files(self) -> list[Path]:
        out = [p for p in (self.sr, *self.sc, self.pdf, self.json) if p is not None]
        return [*out, *self.seg, *self.lesion_sr]

    @property
    def dicom(self) -> list[Path]:
        """The DICOM objects written (what a PACS can store): SRs, SEGs, secondary captures."""
        return [p for p in (self.sr, *self.lesion_sr, *self.seg, *self.sc) if p is not None]


def check_formats(formats: Collection[str]) -> tuple[str, ...]:
    chosen = tuple(f for f in FORMATS if f in set(formats))
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ExportError(
            f"unknown export format {unknown[0]!r}", hint=f"choose from: {', '.join(FORMATS)}"
        )
    if not chosen:
        raise ExportError("no export format chosen", hint=f"choose from: {', '.join(FORMATS)}")
    return chosen


class _Steps:
    def __init__(self, total: int, progress: Progress | None, stop: StopFlag) -> None:
        self.total, self.done, self.progress, self.stop = total, 0, progress, stop

    def check(self) -> None:
        if stop_requested(self.stop):
            raise Cancelled()

    def advance(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)


def export_study(
    request: ExportRequest, progress: Progress | None = None, stop: StopFlag = None
) -> ExportResult:
    """Write the requested exports of one study (see the module docstring); returns what was
    written. Raises ExportError (one line) when nothing could be exported, Cancelled on stop."""
    from desktop_app.exports.sources import StudySources

    started = time.perf_counter()
    formats = check_formats(request.formats)
    out_dir = Path(request.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError("is not a folder", out_dir, "choose a folder for the export")
    if request.review is None and not request.results:
        raise ExportError(
            "there are no findings to export",
            hint="run the model on the study (or open its review) first",
        )
    deidentifier = None
    if request.deidentify:
        from desktop_app.privacy.deid import Deidentifier, check_output_folder

        deidentifier = Deidentifier(request.deid_options, request.deid_keys)
        check_output_folder(out_dir, deidentifier.keys)
    try:
        sources = StudySources(
            request.study_paths,
            study_uid=request.study_uid
            or (request.review.study_uid if request.review is not None else None)
            or next((r.study_instance_uid for r in request.results if r.study_instance_uid), None),
            deidentifier=deidentifier,
            index=request.index,
            stop=stop,
        )
        result = _export(request, formats, sources, out_dir, progress, stop)
    finally:
        if deidentifier is not None:
            deidentifier.flush()
    result.seconds = time.perf_counter() - started
    if request.audit is not None:
        try:
            request.audit.append(
                "export",
                study_hash=uid_hash(sources.study_uid),
                formats=list(formats),
                deidentified=bool(request.deidentify),
                model_sha256=_model_sha(request),
                findings=result.findings,
                key_images=result.key_images,
            )
        except Exception as err:  # the export is written; a failed record is reported
            result.warnings.append(f"the audit record was not written: {err}")
    log.info(
        "exported study %s (%s) in %.2f s: %d findings, %d key images",
        uid_hash(result.study_uid),
        ", ".join(formats),
        result.seconds,
        result.findings,
        result.key_images,
    )
    return result


def _model_sha(request: ExportRequest) -> str:
    if request.review is not None and request.review.model is not None:
        return request.review.model.sha256
    return request.results[0].model.tensor_sha256 if request.results else ""


@dataclass
class _Plan:
    """What one export writes, decided (and checked) before anything is written."""

    formats: tuple[str, ...]
    findings: list[ExportFinding]
    model: ModelSummary
    keys: list[KeyImage]
    warnings: list[str]
    reviewers: tuple[str, ...]
    annotations: list[Annotation] = field(default_factory=list)  # the reader's, located
    lesions: list[ReviewedLesions] = field(default_factory=list)  # every stack's, for the PDF
    lesion_stacks: list[tuple[ReviewedLesions, list[str]]] = field(default_factory=list)

    @property
    def renders_keys(self) -> bool:
        return "sc" in self.formats or "pdf" in self.formats

    @property
    def units(self) -> int:
        """Units of progress: the headers, each format, each key image, each lesion SEG + SR,
        the final rename."""
        return 2 + len(self.formats) + len(self.keys) + len(self.lesion_stacks)


@dataclass(frozen=True)
class _Folders:
    """The hidden temporary folder being written and the folder it becomes."""

    tmp: Path
    final: Path

    def save_dicom(self, folder: str, ds: Dataset) -> Path:
        """Write ``ds`` as ``<folder>/<h(SOP Instance UID)>.dcm``; returns its final path."""
        path = self.tmp / folder / f"{uid_hash(ds.SOPInstanceUID)}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as target:
            ds.save_as(target, enforce_file_format=True)
        return self.final / path.relative_to(self.tmp)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.final).as_posix()


def _export(
    request: ExportRequest,
    formats: tuple[str, ...],
    sources: StudySources,
    out_dir: Path,
    progress: Progress | None,
    stop: StopFlag,
) -> ExportResult:
    plan = _plan(request, formats, sources)
    steps = _Steps(plan.units, progress, stop)
    exported_study = sources.exported_study_uid
    name = uid_hash(exported_study)
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = _Folders(out_dir / f".{name}.partial-{secrets.token_hex(4)}", out_dir / name)
    folders.tmp.mkdir()
    result = ExportResult(
        folder=folders.final,
        study_uid=exported_study,
        findings=len(plan.findings),
        deidentified=sources.deidentified,
        warnings=plan.warnings,
        problems=list(sources.problems),
    )
    try:
        _write(plan, request.review, sources, folders, steps, result)
        _note_uid_repairs(sources, result)
        steps.check()
        _commit(folders.tmp, folders.final)
        steps.advance()
    except OSError as err:
        raise ExportError(
            f"can't be written: {err.strerror or err}",
            Path(err.filename) if getattr(err, "filename", None) else out_dir,
            "check the output folder's free space and permissions",
        ) from None
    finally:
        if folders.tmp.exists():
            shutil.rmtree(folders.tmp, ignore_errors=True)
    return result


def _note_uid_repairs(sources: StudySources, result: ExportResult) -> None:
    """Say (in the result and the log, by hash) which invalid source UIDs were replaced."""
    line = sources.uid_repairs.summary()
    if line:
        result.uid_replacements = len(sources.uid_repairs)
        result.warnings.append(line)
        log.warning("study %s: %s", uid_hash(result.study_uid), line)


def _plan(request: ExportRequest, formats: tuple[str, ...], sources: StudySources) -> _Plan:
    """The findings (located in the sources), the model, the key images and the warnings;
    raises ExportError when there is nothing to export or a source may not be copied."""
    from desktop_app.exports.secondary_capture import key_images

    review = request.review
    if review is not None and review.study_uid != sources.study_uid:
        raise ExportError(
            "the review belongs to another study than the files given",
            hint="pass the reviewed study's files",
        )
    results = [
        r
        for r in request.results
        if not r.study_instance_uid or r.study_instance_uid == sources.study_uid
    ]
    findings = collect_findings(results, review, request.heatmaps)
    if not findings:
        raise ExportError(
            "there are no findings to export for this study",
            hint="run the model on the study first",
        )
    findings = [_locate(f, sources) for f in findings]
    model = model_summary(
        results, review, request.model_manifest, device=request.device, backend=request.backend
    )
    renders_keys = "sc" in formats or "pdf" in formats
    keys = key_images(findings) if renders_keys else []
    allow = bool(request.deid_options.allow_burned_in) if request.deid_options else False
    warnings = list(sources.check_burned_in((k.sop_instance_uid for k in keys), allow))
    if renders_keys and not keys:
        warnings.append(
            "no positive finding that the reader did not mark absent: no key image"
            + (" and no secondary capture" if "sc" in formats else "")
        )
    names = () if sources.deidentified else reviewers(findings, review.reviewer if review else "")
    annotations = _locate_annotations(review, sources, warnings)
    plan = _Plan(formats, findings, model, keys, warnings, names, annotations)
    _plan_lesions(plan, request, results, sources)
    return plan


def _plan_lesions(
    plan: _Plan, request: ExportRequest, results: Sequence[SeriesResult], sources: StudySources
) -> None:
    """The reviewed lesions (the request's, then the review's), and the stacks whose SEG and
    SR will be written with each one's SOP Instance UIDs in stack order; a stack that can't
    be segmented (not in the inputs, other slice count, multi-frame) is left out with a
    warning."""
    from desktop_app.exports.lesion_sr import review_lesions
    from desktop_app.studies.series import assemble

    given = list(request.lesions)
    keys = {s.series_key for s in given}
    given += [s for s in review_lesions(request.review, results) if s.series_key not in keys]
    plan.lesions = given
    if not sources.deidentified:
        extra = [r.reviewer for s in given for r in s.kept if r.reviewer]
        plan.reviewers = tuple(dict.fromkeys([*plan.reviewers, *extra]))
    if "sr" not in plan.formats:
        return
    for item in given:
        if not item.kept:
            continue
        node = sources.study.find_series(item.series_uid)
        stacks = assemble(node).stacks if node is not None else []
        stack = stacks[item.part - 1] if 1 <= item.part <= len(stacks) else None
        problem = ""
        if stack is None:
            problem = "its series is not in the inputs"
        elif len(stack.slices) != item.labels.shape[0]:
            problem = f"{item.labels.shape[0]} mask slices for {len(stack.slices)} images"
        elif any(ref.instance.number_of_frames > 1 for ref in stack.slices):
            problem = "multi-frame series are not supported for SEG export yet"
        if problem or stack is None:
            plan.warnings.append(f"reviewed lesions of a series left out of the SEG: {problem}")
            continue
        plan.lesion_stacks.append((item, [ref.instance.sop_instance_uid for ref in stack.slices]))


def _locate_annotations(
    review: ReviewState | None, sources: StudySources, warnings: list[str]
) -> list[Annotation]:
    """The reader's annotations whose image is in the inputs (one drawn on an image without a
    SOP Instance UID is placed by its slice); the others are left out with a warning."""
    if review is None:
        return []
    out = []
    missing = 0
    for a in review.annotations:
        if not a.sop_instance_uid:
            part = int(a.series_key.rpartition("#")[2] or 1) if "#" in a.series_key else 1
            found = sources.slice_image(a.series_uid, part, a.slice_index)
            if found is not None:
                a = replace(a, sop_instance_uid=found[0], frame=found[1])
        try:
            sources.instance(a.sop_instance_uid, "an annotation")
        except ExportError:
            missing += 1
            continue
        out.append(a)
    if missing:
        warnings.append(
            f"{missing} reader annotation(s) left out: their images are not in the inputs"
        )
    return out


def _write(
    plan: _Plan,
    review: ReviewState | None,
    sources: StudySources,
    folders: _Folders,
    steps: _Steps,
    result: ExportResult,
) -> None:
    """Write every format of ``plan`` into ``folders.tmp``, recording them in ``result``."""
    steps.check()
    sops = _evidence_sops(plan.findings, sources)
    sops += [
        s for s in dict.fromkeys(a.sop_instance_uid for a in plan.annotations) if s not in sops
    ]
    evidence = sources.headers(sops, steps.stop)
    steps.advance()
    written: dict[str, Any] = {}
    if "sr" in plan.formats:
        steps.check()
        result.sr = _write_sr(folders, plan, sources, evidence)
        written["sr"] = [folders.relative(result.sr)]
        steps.advance()
        for item, sops in plan.lesion_stacks:
            steps.check()
            _write_lesions(folders, plan, sources, item, sops, result)
            steps.advance()
        if result.seg:
            written["seg"] = [folders.relative(p) for p in result.seg]
            written["lesion_sr"] = [folders.relative(p) for p in result.lesion_sr]
    rendered = _write_key_images(plan, sources, folders, steps, result)
    if "sc" in plan.formats:
        written["sc"] = [folders.relative(p) for p in result.sc]
    result.key_images = len(plan.keys)
    if "pdf" in plan.formats:
        steps.check()
        _write_pdf(folders.tmp / PDF_NAME, plan, sources, rendered)
        result.pdf = folders.final / PDF_NAME
        written["pdf"] = PDF_NAME
        steps.advance()
    if "json" in plan.formats:
        steps.check()
        _write_json(folders.tmp / JSON_NAME, plan, review, sources, written)
        result.json = folders.final / JSON_NAME
        steps.advance()


def _evidence_sops(findings: Sequence[ExportFinding], sources: StudySources) -> list[str]:
    """The SR's evidence: every image of the analysed series, then any finding's image that
    is not among them."""
    analysed = list(dict.fromkeys(f.series_instance_uid for f in findings))
    sops = [inst.sop_instance_uid for uid in analysed for inst in sources.series_instances(uid)]
    in_series = set(sops)
    finding_sops = dict.fromkeys(
        s for f in findings for s in (f.sop_instance_uid, f.region_sop_instance_uid)
    )
    return sops + [s for s in finding_sops if s not in in_series]


def _locate(f: ExportFinding, sources: StudySources) -> ExportFinding:
    """Check that the finding's image (and the image of the reader's box, when it is on
    another one) is in the inputs; an image named by no SOP Instance UID (made by an older or
    another runner) is placed by its slice of the series."""
    if not f.sop_instance_uid:
        found = sources.slice_image(f.series_instance_uid, f.part, f.slice_index)
        if found is not None:
            f = replace(f, sop_instance_uid=found[0], frame=found[1])
    sources.instance(f.sop_instance_uid, f"the {f.label!r} finding")
    if f.reader_slice_index is not None and not f.reader_sop_instance_uid:
        found = sources.slice_image(f.series_instance_uid, f.part, f.reader_slice_index)
        if found is not None:
            f = replace(f, reader_sop_instance_uid=found[0], reader_frame=found[1])
    if f.reader_sop_instance_uid:
        sources.instance(f.reader_sop_instance_uid, f"the reader's box of the {f.label!r} finding")
    return f


def _frame_number(sources: StudySources, sop: str, frame: int) -> int | None:
    """The 1-based Referenced Frame Number for a multi-frame source, None for single-frame
    (PS3.3 C.10.5.1.1: frame numbers count from 1)."""
    inst = sources.instance(sop)
    return frame + 1 if inst.number_of_frames > 1 else None


def _write_sr(
    folders: _Folders, plan: _Plan, sources: StudySources, evidence: Sequence[Dataset]
) -> Path:
    from desktop_app.exports.sr import SrInputs, build_sr

    image_of: dict[str, tuple[str, str, int | None]] = {}
    region_of: dict[str, tuple[str, str, int | None]] = {}
    library: dict[str, Dataset] = {}

    def reference(sop: str, frame: int) -> tuple[str, str, int | None]:
        header = sources.header(sop)
        library.setdefault(sop, header)
        number = _frame_number(sources, sop, frame)
        return str(header.SOPClassUID), str(header.SOPInstanceUID), number

    for f in plan.findings:
        image_of[f.finding_id] = reference(f.sop_instance_uid, f.frame)
        if f.reader_sop_instance_uid:
            region_of[f.finding_id] = reference(f.reader_sop_instance_uid, f.reader_frame)
    annotation_image_of = {a.id: reference(a.sop_instance_uid, a.frame) for a in plan.annotations}
    modality_of = {a.series_uid: sources.series_modality(a.series_uid) for a in plan.annotations}
    modality = sources.series_modality(plan.findings[0].series_instance_uid)
    sr = build_sr(
        plan.findings,
        plan.model,
        SrInputs(
            evidence=evidence,
            image_of=image_of,
            library=list(library.values()),
            modality=modality,
            reviewers=plan.reviewers,
            region_of=region_of,
            include_notes=not sources.deidentified,
            annotations=plan.annotations,
            annotation_image_of=annotation_image_of,
            modality_of=modality_of,
        ),
    )
    return folders.save_dicom(SR_FOLDER, sr)


def _write_lesions(
    folders: _Folders,
    plan: _Plan,
    sources: StudySources,
    item: ReviewedLesions,
    sops: Sequence[str],
    result: ExportResult,
) -> None:
    """The SEG of one stack's kept lesions and the SR of their measurements."""
    from desktop_app.exports.lesion_sr import build_lesion_seg, build_lesion_sr

    headers = [sources.header(sop) for sop in sops]
    seg = build_lesion_seg(headers, item.labels, item.lesions, plan.model)
    if seg.empty:
        result.warnings.append(
            f"{len(seg.empty)} kept lesion(s) have no voxel left and are not in the SEG"
        )
    sr = build_lesion_sr(
        headers,
        seg,
        plan.model,
        modality=sources.series_modality(item.series_uid),
        reviewers=plan.reviewers,
    )
    result.seg.append(folders.save_dicom(SEG_FOLDER, seg.dataset))
    result.lesion_sr.append(folders.save_dicom(SR_FOLDER, sr))
    result.lesions += len(seg.lesions)


def _write_key_images(
    plan: _Plan, sources: StudySources, folders: _Folders, steps: _Steps, result: ExportResult
) -> list[np.ndarray]:
    """Render each key image (for the secondary captures and the PDF) and write its
    secondary capture when asked for; returns the rendered images."""
    if not plan.renders_keys:
        return []
    from desktop_app.exports.secondary_capture import render_key_image

    sc_series = generate_uid()
    rendered: list[np.ndarray] = []
    for n, key in enumerate(plan.keys, start=1):
        steps.check()
        image = sources.render(key.sop_instance_uid, key.frame)
        rgb = render_key_image(image, key, plan.model)
        rendered.append(rgb)
        if "sc" in plan.formats:
            result.sc.append(_write_sc(folders, rgb, key, sources, sc_series, n, plan.model))
        steps.advance()
    if "sc" in plan.formats:
        steps.advance()
    return rendered


def _write_sc(
    folders: _Folders,
    rgb: np.ndarray,
    key: KeyImage,
    sources: StudySources,
    series_uid: str,
    number: int,
    model: ModelSummary,
) -> Path:
    from desktop_app.exports.secondary_capture import build_sc

    header = sources.header(key.sop_instance_uid)
    sc = build_sc(
        rgb,
        header,
        source_sop_class=str(header.SOPClassUID),
        source_sop_uid=str(header.SOPInstanceUID),
        source_frame=_frame_number(sources, key.sop_instance_uid, key.frame),
        series_instance_uid=series_uid,
        instance_number=number,
        model=model,
    )
    return folders.save_dicom(SC_FOLDER, sc)


def _write_pdf(
    path: Path, plan: _Plan, sources: StudySources, rendered: Sequence[np.ndarray]
) -> None:
    from desktop_app.exports.report_model import ReportImage, ReportLesion, build_report
    from desktop_app.exports.report_pdf import render_pdf

    content = build_report(
        sources.study_header(),
        plan.findings,
        plan.model,
        [ReportImage(rgb, key.caption) for rgb, key in zip(rendered, plan.keys, strict=True)],
        deidentified=sources.deidentified,
        include_notes=not sources.deidentified,
        reviewers=plan.reviewers,
        warnings=[w for w in plan.warnings if not w.startswith("no positive finding")]
        + ([sources.uid_repairs.summary()] if len(sources.uid_repairs) else []),
        annotations=plan.annotations,
        lesions=[
            ReportLesion(item.series_uid, r, item.unit or ("HU" if modality == "CT" else ""))
            for item in plan.lesions
            for modality in [sources.series_modality(item.series_uid).upper()]
            for r in item.lesions
        ],
    )
    atomic_write_bytes(path, render_pdf(content))


def _write_json(
    path: Path,
    plan: _Plan,
    review: ReviewState | None,
    sources: StudySources,
    written: Mapping[str, Any],
) -> None:
    from desktop_app.exports.json_export import build_json

    modalities = {s.series_instance_uid: s.modality for s in sources.study.series}
    doc = build_json(
        plan.findings,
        plan.model,
        study_uid=sources.study_uid,
        uid=sources.uid,
        modalities=modalities,
        review=review,
        deidentified=sources.deidentified,
        include_notes=not sources.deidentified,
        files=written,
        uid_replacements=sources.uid_repairs.records,
    )
    atomic_write_json(path, doc)


def _commit(tmp: Path, final: Path) -> None:
    """Rename the finished temporary folder into place, replacing an earlier export (moved
    aside first, removed after), so ``final`` is never half-written."""
    old: Path | None = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{secrets.token_hex(4)}")
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except OSError:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    if os.name == "posix":
        with contextlib.suppress(OSError):
            fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
