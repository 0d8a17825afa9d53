"""The logic of ``radassist inspect``: index, assemble, decode every image, report.

Every image goes through the same path the viewer uses (``volume.SeriesVolume.frame`` and
``display.render``), so a file the app would fail on is reported here first; a multi-frame
object has every frame decoded (native data a block at a time) and ``RENDERED_FRAMES`` of them
rendered, spread over it. Each file ends as "ok", "no pixels" (a valid object without images,
e.g. a Structured Report) or "refused" with a one-line reason; nothing one file does (an
exception of any kind) stops the run.

The report converts to the versioned JSON of docs/inspect-json-schema.md (``to_json``).
Patient names and IDs appear in the report (the user's own files, shown on request) but are
never logged.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from desktop_app.dicom.display import render
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.infra.cancel import StopFlag, stop_requested
from desktop_app.infra.errors import FATAL, DicomReadError
from desktop_app.studies.frames import spread
from desktop_app.studies.index import (
    ExecutorKind,
    InstanceInfo,
    PatientNode,
    SeriesNode,
    StudyIndex,
    StudyNode,
    index_paths,
)
from desktop_app.studies.problems import FileProblem
from desktop_app.studies.series import SeriesAssembly, SliceStack, assemble, instance_stack
from desktop_app.studies.volume import SeriesVolume, native_layout, read_native_frames

log = logging.getLogger(__name__)

SCHEMA_NAME = "radassist-inspect"
SCHEMA_VERSION = "1.0"

#: ``progress(phase, done, total)``: the phase ("index", "decode") and its own counts.
PhaseProgress = Callable[[str, int, int], None]

STATUS_OK = "ok"
STATUS_NO_PIXELS = "no pixels"
STATUS_REFUSED = "refused"

RENDERED_FRAMES = 16
"""Frames of one multi-frame object that go through the display path, spread over it; every
frame is decoded (its frames share one header, so rendering 100,000 of them proves nothing
more and took ~0.3 ms each)."""
BLOCK_BYTES = 16 * 1024 * 1024
"""Native pixel data of a multi-frame object is read this many bytes of frames at a time."""


@dataclass
class FileResult:
    """One file's outcome. ``shape`` is one rendered frame's (rows, cols[, 3])."""

    path: Path
    status: str
    frames: int = 0
    frames_decoded: int = 0
    shape: tuple[int, ...] | None = None
    stored_dtype: str | None = None
    reason: str | None = None
    kind: str | None = None


@dataclass
class StackReport:
    stack: SliceStack = field(repr=False)
    images_decoded: int = 0


@dataclass
class SeriesReport:
    node: SeriesNode = field(repr=False)
    assembly: SeriesAssembly = field(repr=False)
    stacks: list[StackReport] = field(default_factory=list)


@dataclass
class StudyReport:
    node: StudyNode = field(repr=False)
    series: list[SeriesReport] = field(default_factory=list)


@dataclass
class PatientReport:
    node: PatientNode = field(repr=False)
    studies: list[StudyReport] = field(default_factory=list)


@dataclass
class InspectionReport:
    """What ``radassist inspect`` found. ``problems`` has one line per refused file."""

    inputs: list[str]
    decoded: bool
    index: StudyIndex = field(repr=False)
    patients: list[PatientReport] = field(default_factory=list)
    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False

    @property
    def problems(self) -> list[FileProblem]:
        return [
            FileProblem(f.path, f.reason or "refused", f.kind or "DicomReadError")
            for f in self.files
            if f.status == STATUS_REFUSED
        ]

    @property
    def exit_code(self) -> int:
        """0 when every input was read, 1 when any file was refused (or the run stopped)."""
        return 1 if self.stopped or any(f.status == STATUS_REFUSED for f in self.files) else 0

    @property
    def images_decoded(self) -> int:
        return sum(f.frames_decoded for f in self.files)

    @property
    def image_count(self) -> int:
        return sum(s.node.image_count for p in self.patients for st in p.studies for s in st.series)

    def file_result(self, path: str | os.PathLike[str]) -> FileResult | None:
        target = os.path.realpath(path)
        return next((f for f in self.files if os.path.realpath(f.path) == target), None)

    def summary(self) -> dict[str, int]:
        idx = self.index
        return {
            "files": idx.files_seen,
            "instances": idx.instance_count,
            "patients": len(idx.patients),
            "studies": sum(len(p.studies) for p in idx.patients),
            "series": idx.series_count,
            "stacks": sum(
                len(s.stacks) for p in self.patients for st in p.studies for s in st.series
            ),
            "images": self.image_count,
            "images_decoded": self.images_decoded,
            "problem_files": sum(1 for f in self.files if f.status == STATUS_REFUSED),
            "skipped_non_dicom": idx.skipped_non_dicom,
            "dicomdirs": idx.dicomdirs,
        }

    def to_json(self, *, include_patient: bool = True) -> dict[str, Any]:
        """The report as the JSON of docs/inspect-json-schema.md (schema_version 1.0)."""
        from desktop_app import __version__

        return {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "radassist_version": __version__,
            "inputs": list(self.inputs),
            "decoded": self.decoded,
            "stopped": self.stopped,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "summary": self.summary(),
            "patients": [_patient_json(p, include_patient) for p in self.patients],
            "files": [_file_json(f) for f in self.files],
            "problems": [
                {"path": str(p.path), "reason": p.reason, "kind": p.kind} for p in self.problems
            ],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _stack_json(report: StackReport) -> dict[str, Any]:
    s = report.stack
    return {
        "part": s.part,
        "parts": s.parts,
        "plane": s.plane or None,
        "rows": s.rows,
        "columns": s.columns,
        "samples_per_pixel": s.samples_per_pixel,
        "images": len(s),
        "images_decoded": report.images_decoded,
        "multiframe": s.is_multiframe,
        "ordered_by": s.ordered_by,
        "slice_spacing_mm": _round(s.slice_spacing),
        "pixel_spacing_mm": None
        if s.pixel_spacing is None
        else [_round(s.pixel_spacing[0]), _round(s.pixel_spacing[1])],
        "warnings": list(s.warnings),
    }


def _series_json(report: SeriesReport) -> dict[str, Any]:
    n = report.node
    return {
        "series_instance_uid": n.series_instance_uid,
        "number": n.series_number,
        "modality": n.modality or None,
        "description": n.description,
        "date": n.date or None,
        "body_part": n.body_part or None,
        "instances": n.instance_count,
        "images": n.image_count,
        "non_image_instances": report.assembly.non_image_instances,
        "warnings": list(report.assembly.warnings),
        "stacks": [_stack_json(s) for s in report.stacks],
    }


def _patient_json(report: PatientReport, include_patient: bool) -> dict[str, Any]:
    n = report.node
    return {
        "key": n.key,
        "name": n.name if include_patient else None,
        "patient_id": n.patient_id if include_patient else None,
        "studies": [
            {
                "study_instance_uid": st.node.study_instance_uid,
                "date": st.node.date or None,
                "description": st.node.description,
                "series": [_series_json(s) for s in st.series],
            }
            for st in report.studies
        ],
    }


def _file_json(f: FileResult) -> dict[str, Any]:
    return {
        "path": str(f.path),
        "status": f.status,
        "frames": f.frames,
        "frames_decoded": f.frames_decoded,
        "shape": None if f.shape is None else list(f.shape),
        "stored_dtype": f.stored_dtype,
        "reason": f.reason,
    }


def _one_line(err: BaseException) -> tuple[str, str]:
    """(reason, kind) of a refused file, worded as FileProblem words it."""
    problem = FileProblem.from_error("", err)
    return problem.reason, problem.kind


def _expected_shape(stack: SliceStack) -> tuple[int, ...]:
    """Rendered shape: grey (rows, cols); RGB, YBR and PALETTE COLOR (rows, cols, 3)."""
    first = stack.slices[0].instance
    colour = stack.samples_per_pixel == 3 or first.photometric == "PALETTE COLOR"
    return (stack.rows, stack.columns, 3) if colour else (stack.rows, stack.columns)


class _Decoder:
    """Decodes every image of every stack; one FileResult per instance."""

    def __init__(self, limits: ReadLimits, progress: PhaseProgress | None, stop: StopFlag) -> None:
        self.limits = limits
        self.progress = progress
        self.stop = stop
        self.results: dict[Path, FileResult] = {}
        self.done = 0
        self.total = 0
        self.stopped = False

    def result_for(self, inst: InstanceInfo) -> FileResult:
        res = self.results.get(inst.path)
        if res is None:
            res = FileResult(inst.path, STATUS_OK, frames=inst.number_of_frames)
            self.results[inst.path] = res
        return res

    def _tick(self, n: int = 1) -> None:
        self.done += n
        if self.progress is not None:
            self.progress("decoding", self.done, self.total)

    def _stopping(self) -> bool:
        if self.stopped or stop_requested(self.stop):
            self.stopped = True
        return self.stopped

    def decode_stack(self, stack: SliceStack) -> int:
        try:
            volume = SeriesVolume(stack, limits=self.limits, keep=False)
        except Exception as err:  # pragma: no cover - a stack always has slices
            reason, kind = _one_line(err)
            for ref in stack.slices:
                self._refuse(self.result_for(ref.instance), reason, kind)
            return 0
        expected = _expected_shape(stack)
        if stack.is_multiframe:
            return self._decode_object(volume, expected)
        decoded = 0
        for i, ref in enumerate(stack.slices):
            if self._stopping():
                break
            res = self.result_for(ref.instance)
            if res.status != STATUS_REFUSED and self._check(volume, i, expected, res, show=True):
                decoded += 1  # (a refused file's other frames are skipped: one failure is enough)
            self._tick()
        return decoded

    def _check(
        self,
        volume: SeriesVolume,
        i: int,
        expected: tuple[int, ...],
        res: FileResult,
        *,
        show: bool,
        count: bool = True,
    ) -> bool:
        """Decode slice ``i`` (and with ``show`` render it as the viewer does); whether it
        went well. A failure refuses the file with one line."""
        ref = volume.stack.slices[i]
        try:
            stored = volume.stored(i)
            if show:
                image = render(volume.to_frame(i, stored))
                if image.shape != expected or image.dtype != np.uint8:
                    raise ValueError(
                        f"frame {ref.frame} rendered as {image.shape} {image.dtype}, "
                        f"expected {expected} uint8"
                    )
                res.shape = tuple(int(d) for d in image.shape)
        except BaseException as err:
            if isinstance(err, FATAL):
                raise
            reason, kind = _one_line(err)
            if ref.instance.number_of_frames > 1:
                reason = f"frame {ref.frame}: {reason}"
            self._refuse(res, reason, kind)
            return False
        if count:
            res.frames_decoded += 1
        res.stored_dtype = str(stored.dtype)
        return True

    def _decode_object(self, volume: SeriesVolume, expected: tuple[int, ...]) -> int:
        """Every frame of one multi-frame object decoded; the display path on
        :data:`RENDERED_FRAMES` of them spread over it (its frames share one header). Native
        data is read a block of frames at a time, not one open-seek-read per frame."""
        stack = volume.stack
        inst = stack.slices[0].instance
        res = self.result_for(inst)
        n = len(stack)
        shown = spread(n, RENDERED_FRAMES)
        if res.status == STATUS_REFUSED:
            self._tick(n)
            return 0
        if native_layout(inst) is not None:
            for i in shown:
                if self._stopping():
                    return 0
                if not self._check(volume, i, expected, res, show=True, count=False):
                    self._tick(n)
                    return 0
            return self._read_native(inst, res)
        decoded = 0
        rendered = set(shown)
        for i in range(n):
            if self._stopping():
                break
            if not self._check(volume, i, expected, res, show=i in rendered):
                self._tick(n - i)
                break
            decoded += 1
            self._tick()
        return decoded

    def _read_native(self, inst: InstanceInfo, res: FileResult) -> int:
        """Read every frame of a native object, :data:`BLOCK_BYTES` at a time; frames read."""
        frames = max(inst.number_of_frames, 1)
        layout = native_layout(inst)
        assert layout is not None
        block = max(1, BLOCK_BYTES // max(layout[1], 1))
        for first in range(0, frames, block):
            if self._stopping():
                break
            count = min(block, frames - first)
            try:
                if read_native_frames(inst, first, count) is None:
                    raise DicomReadError(
                        "the file changed while it was being inspected",
                        inst.path,
                        "inspect it again",
                    )
            except BaseException as err:
                if isinstance(err, FATAL):
                    raise
                self._refuse(res, *_one_line(err))
                self._tick(frames - first)
                break
            res.frames_decoded += count
            self._tick(count)
        return res.frames_decoded

    @staticmethod
    def _refuse(res: FileResult, reason: str, kind: str) -> None:
        res.status = STATUS_REFUSED
        res.reason = reason
        res.kind = kind


def _inspect_series(decoder: _Decoder, series: SeriesNode, decode: bool) -> SeriesReport:
    """Assemble one series into stacks and (with ``decode``) decode every image in them."""
    try:
        assembly = assemble(series)
    except BaseException as err:  # never expected; still one line per file
        if isinstance(err, FATAL):
            raise
        reason, kind = _one_line(err)
        for inst in series.instances:
            decoder._refuse(decoder.result_for(inst), reason, kind)
        assembly = SeriesAssembly(series=series)
    s_report = SeriesReport(series, assembly)
    for inst in series.instances:
        res = decoder.result_for(inst)
        if not inst.has_pixels and res.status != STATUS_REFUSED:
            res.status = STATUS_NO_PIXELS
    for stack in assembly.stacks:
        stack_report = StackReport(stack)
        s_report.stacks.append(stack_report)
        if decode:
            stack_report.images_decoded = decoder.decode_stack(stack)
    if decode:
        # Left out of the stacks as copies, but still files the user gave us.
        for inst in assembly.duplicates:
            decoder.decode_stack(instance_stack(inst))
    return s_report


def inspect_paths(
    paths: Sequence[str | os.PathLike[str]],
    *,
    decode: bool = True,
    limits: ReadLimits = DEFAULT_LIMITS,
    progress: PhaseProgress | None = None,
    stop: StopFlag = None,
    workers: int | None = None,
    executor: ExecutorKind = "auto",
) -> InspectionReport:
    """Index ``paths``, assemble every series and (with ``decode``) decode every image.

    ``progress(phase, done, total)`` reports "indexing" then "decoding". Never raises for a
    file's problem: each lands in the report's ``files`` with a one-line reason.
    ``executor`` and ``workers`` choose how headers are read (``index.index_paths``).
    """
    started = time.perf_counter()

    def index_progress(done: int, total: int) -> None:
        if progress is not None:
            progress("indexing", done, total)

    index = index_paths(
        list(paths),
        limits=limits,
        progress=index_progress,
        stop=stop,
        workers=workers,
        executor=executor,
    )
    report = InspectionReport(inputs=[str(p) for p in paths], decoded=decode, index=index)
    decoder = _Decoder(limits, progress, stop)
    decoder.total = sum(s.image_count for _, _, s in index.iter_series()) if decode else 0
    # (the total counts every file's frames, left-out duplicates included)

    for patient in index.patients:
        p_report = PatientReport(patient)
        report.patients.append(p_report)
        for study in patient.studies:
            st_report = StudyReport(study)
            p_report.studies.append(st_report)
            for series in study.series:
                st_report.series.append(_inspect_series(decoder, series, decode))

    files = list(decoder.results.values())
    files.extend(
        FileResult(p.path, STATUS_REFUSED, reason=p.reason, kind=p.kind) for p in index.problems
    )
    files.sort(key=lambda f: str(f.path))
    report.files = files
    report.stopped = index.stopped or decoder.stopped
    report.seconds = time.perf_counter() - started
    log.info(
        "inspected %d files in %.2fs: %d images decoded, %d refused",
        len(files),
        report.seconds,
        report.images_decoded,
        sum(1 for f in files if f.status == STATUS_REFUSED),
    )
    return report
