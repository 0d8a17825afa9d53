"""Index files, folders and DICOMDIRs into patient -> study -> series -> instance (headers only).

The DICOM information model (PS3.3 A.1.2): a Patient has Studies (Study Instance UID,
0020,000D), a Study has Series (Series Instance UID, 0020,000E), a Series has Instances
(SOP Instance UID, 0008,0018). Only headers are read (everything before Pixel Data); pixels
are decoded later and lazily (``volume``).

Rules:
- A folder is walked recursively. Symbolic links to folders are followed, but each real folder
  is visited once, so link loops end. Every real file is indexed once, however often reached.
- A file that is not DICOM is skipped quietly and counted (``skipped_non_dicom``), unless it was
  named explicitly or its name ends in ``.dcm``: then the user expected DICOM and it is refused
  as a :class:`FileProblem`.
- A DICOMDIR named explicitly is traversed (``dicomdir``): only files inside its folder are
  read. A DICOMDIR met while walking a folder is counted and not traversed; the walk reaches
  every file in that folder anyway.
- No path is ever built from a tag value (a DICOMDIR's File IDs go through
  ``dicomdir.resolve_file_id``, which refuses anything outside the file-set).
- Patient names and IDs are kept for display only; logs and reprs never show them.

Reading a header: ``dicomfile.scan_header`` walks and checks the file's structure and copies
the values of the ~30 top-level tags the index needs (``headerinfo.RAW_TAGS``);
``headerinfo.RawFields`` turns them into the same InstanceInfo and tree fields that pydicom's
parse gives (~0.08 ms a file instead of ~0.5 ms). Files it can't promise that for (big endian,
deflated, enhanced multi-frame, DICOMDIRs, text pydicom must decode...) are parsed by pydicom
as before (``headerinfo.instance_from_header``).

Parallel header reading: the work is pure Python and holds the GIL, so threads do not help.
Worker processes do only where a file's work outweighs sending its result back (~0.07 ms of
pickling a file, about as much as reading its header): ``executor="auto"`` uses them only on
4 or more CPUs, forking them from ``FORK_THRESHOLD`` files up when that is safe (Linux, no
other thread running, e.g. the CLI), else starting a forkserver from ``PROCESS_THRESHOLD`` up
(a GUI has threads; the server costs ~0.4 s). On the 2-core CI machine, 2 processes took
2.0x the serial wall time for 2000 files (benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydicom.dataset import Dataset

from desktop_app.dicom import dsvalues
from desktop_app.dicom.dicomfile import quiet_pydicom, read_scanned_header, scan_header
from desktop_app.dicom.headerinfo import (
    RAW_TAGS,
    HeaderFields,
    InstanceInfo,
    NeedsPydicom,
    Orientation,
    RawFields,
    Vec3,
    instance_from_header,
    instance_from_raw,
)
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.infra.cancel import Progress, StopFlag, stop_requested
from desktop_app.infra.cpus import available_cpus
from desktop_app.infra.errors import FATAL, DicomReadError, NotDicomError, PathLike
from desktop_app.studies.dicomdir import read_dicomdir
from desktop_app.studies.frames import check_declared_frames, check_frames
from desktop_app.studies.indexcache import IndexCache, TreeFields
from desktop_app.studies.problems import FileProblem

__all__ = [  # InstanceInfo, Orientation and Vec3 live in headerinfo; re-exported for callers
    "ExecutorKind",
    "InstanceInfo",
    "Orientation",
    "PatientNode",
    "SeriesNode",
    "StudyIndex",
    "StudyNode",
    "Vec3",
    "hashed_uid",
    "index_paths",
    "patient_key",
    "read_record",
    "read_record_with_pydicom",
]

log = logging.getLogger(__name__)

ExecutorKind = Literal["auto", "serial", "threads", "processes"]

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # PS3.4 B.5: Media Storage Directory Storage
PROCESS_THRESHOLD = 10_000
"""From this many files up, ``executor="auto"`` reads headers in worker processes..."""
FORK_THRESHOLD = 3000
"""...or from this many when they can be forked (Linux, no other thread running)."""
PROCESS_MIN_CPUS = 4
"""...and only with this many CPUs or more (see the module docstring)."""
NO_DATASET = "no dataset after the file meta"
"""The reason a file that ends after its preamble or File Meta group is refused."""


@dataclass
class SeriesNode:
    """One series (PS3.3 C.7.3.1). ``instances`` are in index order; ``series.assemble``
    orders them into slices."""

    series_instance_uid: str
    modality: str = ""
    description: str = ""
    series_number: int | None = None
    date: str = ""
    body_part: str = ""
    instances: list[InstanceInfo] = field(default_factory=list)

    @property
    def image_count(self) -> int:
        """Images (frames of all pixel-bearing instances) in this series."""
        return sum(i.frame_count for i in self.instances)

    @property
    def instance_count(self) -> int:
        return len(self.instances)


@dataclass
class StudyNode:
    """One study (PS3.3 C.7.2.1). ``date`` is Study Date as stored (YYYYMMDD) or empty."""

    study_instance_uid: str
    date: str = ""
    time: str = ""
    description: str = ""
    series: list[SeriesNode] = field(default_factory=list)

    def find_series(self, uid: str) -> SeriesNode | None:
        return next((s for s in self.series if s.series_instance_uid == uid), None)


@dataclass
class PatientNode:
    """One patient (PS3.3 C.7.1.1), grouped by Patient ID and Patient's Name.

    ``key`` is a hash of both: safe to log. ``name`` and ``patient_id`` are for display only:
    never log them (they are left out of ``repr``).
    """

    key: str
    name: str = field(default="", repr=False)
    patient_id: str = field(default="", repr=False)
    studies: list[StudyNode] = field(default_factory=list)

    def find_study(self, uid: str) -> StudyNode | None:
        return next((s for s in self.studies if s.study_instance_uid == uid), None)


@dataclass
class StudyIndex:
    """The result of indexing: the tree, the refused files, and counts of what was skipped."""

    patients: list[PatientNode] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    skipped_non_dicom: int = 0
    dicomdirs: int = 0
    files_seen: int = 0
    stopped: bool = False
    seconds: float = 0.0

    def iter_series(self) -> Iterator[tuple[PatientNode, StudyNode, SeriesNode]]:
        for patient in self.patients:
            for study in patient.studies:
                for series in study.series:
                    yield patient, study, series

    def iter_instances(self) -> Iterator[InstanceInfo]:
        for _, _, series in self.iter_series():
            yield from series.instances

    @property
    def instance_count(self) -> int:
        return sum(1 for _ in self.iter_instances())

    @property
    def series_count(self) -> int:
        return sum(1 for _ in self.iter_series())


@dataclass(frozen=True)
class _Record:
    """One file's header, reduced to what the tree needs (small and picklable)."""

    instance: InstanceInfo
    patient_id: str
    patient_name: str
    study_uid: str
    study_date: str
    study_time: str
    study_description: str
    series_uid: str
    series_number: int | None
    series_description: str
    series_date: str
    body_part: str


@dataclass(frozen=True)
class _NonDicom:
    reason: str


@dataclass(frozen=True)
class _Dicomdir:
    path: Path


_Outcome = _Record | _NonDicom | _Dicomdir | FileProblem


@dataclass(frozen=True)
class _Candidate:
    path: Path
    explicit: bool  # named by the user or a DICOMDIR, or *.dcm: a non-DICOM file is a problem
    named: bool = False  # named by the user: a DICOMDIR is traversed


def patient_key(patient_id: str, patient_name: str) -> str:
    """A stable, non-reversible key for a patient (safe to log): sha256, 16 hex digits."""
    digest = hashlib.sha256(f"{patient_id}\x00{patient_name}".encode()).hexdigest()
    return digest[:16]


def hashed_uid(uid: str) -> str:
    """A short hash of a UID for logs (PS3.15 E: UIDs can identify a patient's study)."""
    return hashlib.sha256(uid.encode()).hexdigest()[:12]


def _is_dicomdir(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    sop_class = dsvalues.text(meta, "MediaStorageSOPClassUID") if meta is not None else ""
    return sop_class == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds


def read_record(path: PathLike, limits: ReadLimits = DEFAULT_LIMITS) -> _Outcome:
    """Read one file's header; never raises (runs in worker threads and processes)."""
    return _read_record(path if isinstance(path, Path) else Path(path), limits)


def read_record_with_pydicom(path: PathLike, limits: ReadLimits = DEFAULT_LIMITS) -> _Outcome:
    """:func:`read_record` always through pydicom's parse (the reference the fast path is
    tested against; see tests/dicom/test_headerinfo_raw.py)."""
    return _read_record(Path(path), limits, raw=False)


def _record(instance: InstanceInfo, f: HeaderFields | RawFields) -> _Record:
    return _Record(
        instance=instance,
        patient_id=f.text(0x00100020),
        patient_name=f.person_name(),
        study_uid=f.ascii(0x0020000D),
        study_date=f.ascii(0x00080020),
        study_time=f.ascii(0x00080030),
        study_description=f.text(0x00081030),
        series_uid=f.ascii(0x0020000E),
        series_number=f.integer(0x00200011),
        series_description=f.text(0x0008103E),
        series_date=f.ascii(0x00080021),
        body_part=f.ascii(0x00180015),
    )


def _tree_fields(rec: _Record) -> TreeFields:
    """A record's tree fields, in ``indexcache.TreeFields``' order (``_Record`` after the
    instance)."""
    return (
        rec.patient_id,
        rec.patient_name,
        rec.study_uid,
        rec.study_date,
        rec.study_time,
        rec.study_description,
        rec.series_uid,
        rec.series_number,
        rec.series_description,
        rec.series_date,
        rec.body_part,
    )


def _read_record(p: Path, limits: ReadLimits, raw: bool = True) -> _Outcome:
    try:
        st = os.stat(p)
        if not stat.S_ISREG(st.st_mode):
            return FileProblem(p, "not a regular file (a device, pipe or socket)", "NotDicomError")
        scan, top = scan_header(p, limits=limits, wanted=RAW_TAGS)
        if scan.elements <= len(top.meta) and not top.command_group:
            # A preamble and "DICM", or a File Meta group alone: nothing to index.
            raise DicomReadError(NO_DATASET, p, "the file is cut off; re-export or re-transfer it")
        check_declared_frames(scan, top, limits)  # before any per-frame geometry is read
        if raw:
            # The common header: its values straight from the bytes the walk checked.
            with contextlib.suppress(NeedsPydicom):  # else pydicom's parse, below
                f = RawFields(scan, top)
                instance = instance_from_raw(p, f, st.st_size)
                check_frames(instance, limits)
                return _record(instance, f)
        with quiet_pydicom():
            ds = read_scanned_header(scan)
            if _is_dicomdir(ds):
                return _Dicomdir(p)
            instance = instance_from_header(p, ds, st.st_size)
            check_frames(instance, limits)
            return _record(instance, HeaderFields(ds))
    except NotDicomError as err:
        return _NonDicom(err.reason)
    except BaseException as err:
        if isinstance(err, FATAL):
            raise
        if isinstance(err, OSError):
            reason = f"can't be read: {err.strerror or type(err).__name__}"
            return FileProblem(p, reason, "OSError")
        return FileProblem.from_error(p, err)


def _read_records_worker(paths: list[str], limits: ReadLimits) -> list[_Outcome]:
    """One chunk of files (chunks keep the inter-process traffic small)."""
    return [read_record(path, limits) for path in paths]


class _FolderWalker:
    """Expands the user's paths into candidate files, once per real file."""

    def __init__(self, limits: ReadLimits, stop: StopFlag) -> None:
        self.limits = limits
        self.stop = stop
        self.seen_files: set[str] = set()
        self.seen_dirs: set[tuple[int, int]] = set()
        self.problems: list[FileProblem] = []
        self.dicomdir_problems: list[FileProblem] = []
        self.skipped_other = 0

    def claim(self, path: Path, real: str | None = None) -> bool:
        """Whether ``path`` (whose real path is ``real``, when known) is met the first time."""
        if real is None:
            real = os.path.realpath(path)
        if real in self.seen_files:
            return False
        self.seen_files.add(real)
        return True

    def expand(self, paths: Iterable[PathLike]) -> Iterator[_Candidate]:
        for raw in paths:
            path = Path(raw)
            try:
                st = os.stat(path)
            except OSError as err:
                reason = (
                    "no such file or folder"
                    if isinstance(err, FileNotFoundError)
                    else (f"can't be read: {err.strerror or type(err).__name__}")
                )
                self.problems.append(FileProblem(path, reason, "OSError"))
                continue
            if stat.S_ISDIR(st.st_mode):
                yield from self._walk(path)
            elif self.claim(path):
                yield _Candidate(path, explicit=True, named=True)

    def _walk(self, top: Path) -> Iterator[_Candidate]:
        stack = [top]
        while stack:
            if stop_requested(self.stop):
                return
            folder = stack.pop()
            try:
                st = os.stat(folder)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in self.seen_dirs:
                continue  # a link loop, or the same folder reached twice
            self.seen_dirs.add(key)
            try:
                with os.scandir(folder) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as err:
                self.problems.append(
                    FileProblem(
                        folder, f"folder can't be listed: {err.strerror or type(err).__name__}"
                    )
                )
                continue
            subfolders: list[Path] = []
            real_folder = os.path.realpath(folder)
            for entry in entries:
                path = Path(entry.path)
                try:
                    is_dir = entry.is_dir(follow_symlinks=True)
                    is_file = entry.is_file(follow_symlinks=True)
                    # Not a link: its real path is the real folder's plus its name (saves a
                    # realpath, i.e. an lstat per path component, per file).
                    real = None if entry.is_symlink() else os.path.join(real_folder, entry.name)
                except OSError:
                    is_dir = is_file = False
                if is_dir:
                    subfolders.append(path)
                elif is_file:
                    if self.claim(path, real):
                        name = entry.name.lower()
                        yield _Candidate(path, explicit=len(name) > 4 and name.endswith(".dcm"))
                else:
                    self.skipped_other += 1  # broken links, pipes, sockets, devices
            stack.extend(reversed(subfolders))


def _make_executor(kind: ExecutorKind, n_files: int, workers: int | None) -> Executor | None:
    """The pool that reads headers, or None to read them in the calling thread.

    Processes start with ``fork`` when this process runs no other thread (the CLI; a new
    worker costs ~10 ms), else with ``forkserver`` (a GUI's threads make fork unsafe; the
    server costs ~0.4 s to start), else ``spawn``.
    """
    cpus = available_cpus()
    n_workers = workers if workers is not None else min(cpus, 8)
    can_fork = sys.platform == "linux" and threading.active_count() == 1
    if kind == "auto":
        threshold = FORK_THRESHOLD if can_fork else PROCESS_THRESHOLD
        if n_workers <= 1 or cpus < PROCESS_MIN_CPUS or n_files < threshold:
            return None
        kind = "processes"
    if kind == "serial" or n_workers <= 1:
        return None
    if kind == "threads":
        return ThreadPoolExecutor(n_workers, thread_name_prefix="radassist-index")
    methods = multiprocessing.get_all_start_methods()
    if can_fork and "fork" in methods:
        method = "fork"
    elif "forkserver" in methods:
        method = "forkserver"
    else:
        method = "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload([__name__])
    return ProcessPoolExecutor(n_workers, mp_context=context)


class _TreeBuilder:
    def __init__(self) -> None:
        self.patients: dict[str, PatientNode] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.count = 0
        # The files of a series mostly come one after another: the last one's series node.
        self._last: tuple[tuple[str, str, str, str], SeriesNode] | None = None

    def add(self, rec: _Record) -> None:
        ids = (rec.patient_id, rec.patient_name, rec.study_uid, rec.series_uid)
        last = self._last
        if last is not None and last[0] == ids:
            last[1].instances.append(rec.instance)
            self.count += 1
            return
        key = self.keys.get((rec.patient_id, rec.patient_name))
        if key is None:
            key = patient_key(rec.patient_id, rec.patient_name)
            self.keys[rec.patient_id, rec.patient_name] = key
        patient = self.patients.get(key)
        if patient is None:
            patient = PatientNode(key=key, name=rec.patient_name, patient_id=rec.patient_id)
            self.patients[key] = patient
        # Missing UIDs: the file can't be grouped with others, so it stands alone.
        study_uid = rec.study_uid or f"(no Study Instance UID: {rec.instance.path.name})"
        study = patient.find_study(study_uid)
        if study is None:
            study = StudyNode(
                study_instance_uid=study_uid,
                date=rec.study_date,
                time=rec.study_time,
                description=rec.study_description,
            )
            patient.studies.append(study)
        series_uid = rec.series_uid or f"(no Series Instance UID: {rec.instance.path.name})"
        series = study.find_series(series_uid)
        if series is None:
            series = SeriesNode(
                series_instance_uid=series_uid,
                modality=rec.instance.modality,
                description=rec.series_description,
                series_number=rec.series_number,
                date=rec.series_date,
                body_part=rec.body_part,
            )
            study.series.append(series)
        series.instances.append(rec.instance)
        self.count += 1
        if rec.study_uid and rec.series_uid:
            self._last = (ids, series)

    def build(self) -> list[PatientNode]:
        patients = sorted(self.patients.values(), key=lambda p: (p.name, p.patient_id, p.key))
        for patient in patients:
            patient.studies.sort(key=lambda s: (s.date, s.time, s.study_instance_uid))
            for study in patient.studies:
                study.series.sort(
                    key=lambda s: (
                        s.series_number if s.series_number is not None else 1 << 62,
                        s.series_instance_uid,
                    )
                )
                for series in study.series:
                    series.instances.sort(key=lambda i: str(i.path))
        return patients


def index_paths(
    paths: Sequence[PathLike] | PathLike,
    *,
    limits: ReadLimits = DEFAULT_LIMITS,
    progress: Progress | None = None,
    stop: StopFlag = None,
    workers: int | None = None,
    executor: ExecutorKind = "auto",
    on_instance: Callable[[InstanceInfo], None] | None = None,
    cache: IndexCache | None = None,
) -> StudyIndex:
    """Index files, folders and DICOMDIRs into a :class:`StudyIndex` (headers only).

    ``progress(done, total)`` is called as headers are read (``total`` is known once the
    folders are listed); ``stop`` (an Event or a callable) is checked between files and ends
    the run early with ``stopped=True``. ``on_instance`` is called, in the calling thread, with
    each instance as soon as its header is read, so a viewer can show the first image before
    the index is complete. ``executor`` picks how headers are read (see the module docstring);
    ``workers`` caps the threads or processes. ``cache`` (``indexcache.default_index_cache()``)
    gives the InstanceInfo of files unchanged since an earlier run without reading them, and
    is saved with this run's headers at the end (see :mod:`desktop_app.studies.indexcache`).
    """
    started = time.perf_counter()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if cache is not None and cache.limits != limits:
        raise ValueError(f"the cache's limits {cache.limits!r} should be the run's: {limits!r}")
    run = _IndexRun(limits, progress, stop, on_instance, cache)
    queue = list(run.walker.expand(paths))
    run.total = len(queue)
    pool = _make_executor(executor, run.total, workers)
    try:
        stopped = False
        while queue and not stopped:
            if pool is None:
                stopped = run.read_serial(queue)
            else:
                stopped = run.read_pooled(pool, queue, workers or available_cpus())
            # DICOMDIRs named by the user add the files they reference: another round.
            queue, run.pending = run.pending, []
            run.total += len(queue)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if cache is not None:
        cache.save()
    return run.finish(stopped, time.perf_counter() - started)


class _IndexRun:
    """One :func:`index_paths` call: outcomes go into the tree, problems and counts."""

    def __init__(
        self,
        limits: ReadLimits,
        progress: Progress | None,
        stop: StopFlag,
        on_instance: Callable[[InstanceInfo], None] | None,
        cache: IndexCache | None = None,
    ) -> None:
        self.limits = limits
        self.cache = cache
        self.progress = progress
        self.stop = stop
        self.on_instance = on_instance
        self.walker = _FolderWalker(limits, stop)
        self.result = StudyIndex()
        self.builder = _TreeBuilder()
        self.pending: list[_Candidate] = []
        self.done = 0
        self.total = 0

    def read_serial(self, queue: list[_Candidate]) -> bool:
        """Read ``queue`` in this thread; whether the run was stopped."""
        for cand in queue:
            if stop_requested(self.stop):
                return True
            self.handle(cand, self._read(cand.path))
            self._advance(1)
        return False

    def _read(self, path: Path) -> _Outcome:
        """One file's outcome: from the cache when it holds the unchanged file, else read."""
        if self.cache is None:
            return read_record(path, self.limits)
        try:
            st = os.stat(path)
        except OSError:
            return read_record(path, self.limits)  # which says why
        found = self.cache.hit(path, st)
        if found is not None:
            return _Record(found[0], *found[1])
        outcome = read_record(path, self.limits)
        self._learn(path, st, outcome)
        return outcome

    def _learn(self, path: Path, st: os.stat_result | None, outcome: _Outcome) -> None:
        """Tell the cache what a full read of ``path`` (stat'ed as ``st`` before) gave."""
        if self.cache is None:
            return
        if isinstance(outcome, _Record) and st is not None:
            self.cache.remember(path, st, outcome.instance, _tree_fields(outcome))
        else:
            self.cache.forget(path)

    def _cache_hits(
        self, queue: list[_Candidate]
    ) -> tuple[list[_Candidate], dict[Path, os.stat_result]]:
        """Handle the files the cache holds; return the others, and their stats."""
        assert self.cache is not None
        misses: list[_Candidate] = []
        stats: dict[Path, os.stat_result] = {}
        for cand in queue:
            try:
                st = os.stat(cand.path)
            except OSError:
                misses.append(cand)
                continue
            found = self.cache.hit(cand.path, st)
            if found is not None:
                self.handle(cand, _Record(found[0], *found[1]))
            elif self.cache.known(cand.path, st):
                # The first file of its group: read here, so the rest of the group hits.
                outcome = read_record(cand.path, self.limits)
                self._learn(cand.path, st, outcome)
                self.handle(cand, outcome)
            else:
                misses.append(cand)
                stats[cand.path] = st
                continue
            self._advance(1)
        return misses, stats

    def read_pooled(self, pool: Executor, queue: list[_Candidate], workers: int) -> bool:
        """Read ``queue`` in chunks on ``pool``, handling them in order; whether stopped."""
        stats: dict[Path, os.stat_result] = {}
        if self.cache is not None:
            queue, stats = self._cache_hits(queue)
        size = max(1, min(64, len(queue) // (8 * max(workers, 1))))
        chunks = [queue[i : i + size] for i in range(0, len(queue), size)]
        futures: list[tuple[list[_Candidate], Future[list[_Outcome]]]] = [
            (chunk, pool.submit(_read_records_worker, [str(c.path) for c in chunk], self.limits))
            for chunk in chunks
        ]
        for chunk, fut in futures:
            if stop_requested(self.stop):
                for _, f in futures:
                    f.cancel()
                return True
            try:
                outcomes = fut.result()
            except Exception:  # a worker died (killed): read the rest here
                log.warning("a header-reading process died; reading on in this one")
                outcomes = [read_record(c.path, self.limits) for c in chunk]
            for cand, outcome in zip(chunk, outcomes):
                self._learn(cand.path, stats.get(cand.path), outcome)
                self.handle(cand, outcome)
            self._advance(len(chunk))
        return False

    def _advance(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)

    def handle(self, cand: _Candidate, outcome: _Outcome) -> None:
        result = self.result
        if isinstance(outcome, _Record):
            self.builder.add(outcome)
            if self.on_instance is not None:
                self.on_instance(outcome.instance)
        elif isinstance(outcome, FileProblem):
            result.problems.append(outcome)
        elif isinstance(outcome, _NonDicom):
            if cand.explicit:
                reason = f"{outcome.reason} (check that this is a DICOM file)"
                result.problems.append(FileProblem(cand.path, reason, "NotDicomError"))
            else:
                result.skipped_non_dicom += 1
        elif isinstance(outcome, _Dicomdir):
            result.dicomdirs += 1
            # Only a DICOMDIR the user named is followed: one met while walking a folder is
            # counted, and the walk reaches its files anyway.
            if cand.named:
                self._traverse(cand.path)

    def _traverse(self, path: Path) -> None:
        """Queue the files a DICOMDIR named by the user references (PS3.10 8)."""
        contents = read_dicomdir(path, limits=self.limits)
        self.result.problems.extend(contents.problems)
        for ref in contents.files:
            if self.walker.claim(ref):
                self.pending.append(_Candidate(ref, explicit=True))

    def finish(self, stopped: bool, seconds: float) -> StudyIndex:
        result = self.result
        result.problems[:0] = self.walker.problems
        result.skipped_non_dicom += self.walker.skipped_other
        result.patients = self.builder.build()
        result.files_seen = self.done
        result.stopped = stopped or stop_requested(self.stop)
        result.seconds = seconds
        log.info(
            "indexed %d files in %.2fs: %d instances, %d series, %d problems, %d non-DICOM skipped",
            self.done,
            seconds,
            self.builder.count,
            result.series_count,
            len(result.problems),
            result.skipped_non_dicom,
        )
        return result
