"""DICOMDIR traversal with safe resolution of Referenced File IDs (PS3.3 F.3, PS3.10 8).

A DICOMDIR (Media Storage Directory, PS3.3 F.3.2.2) lists directory records (PATIENT, STUDY,
SERIES, IMAGE, ...) linked by byte offsets; a record's Referenced File ID (0004,1500) names a
file as path components relative to the folder that holds the DICOMDIR, the file-set root
(PS3.10 8.2, 8.5). A hostile DICOMDIR can name ``..``, an absolute path, a drive letter, or a
component that is a symbolic link leading out of the root (CVE-2026-32711). Every reference is
therefore resolved (links followed) and refused with :class:`UnsafePathError`, naming the
record, unless the real path stays inside the real root. One bad record never stops the others.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from desktop_app.dicom import dsvalues
from desktop_app.dicom.dicomfile import read_header
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.infra.errors import (
    FATAL,
    DicomReadError,
    PathLike,
    RadAssistError,
    UnsafePathError,
)
from desktop_app.studies.problems import FileProblem

log = logging.getLogger(__name__)


MAX_FILE_ID_COMPONENTS = 16  # PS3.10 8.5 allows 8; some writers go deeper, none this deep
_DRIVE = re.compile(r"^[A-Za-z]:")
_FORBIDDEN = ("/", "\\", "\x00", ":")


@dataclass(frozen=True)
class DirectoryRecord:
    """One directory record: its type, where it sits, and the file it references (if any)."""

    record_type: str
    offset: int | None
    number: int  # 1-based position in the Directory Record Sequence
    depth: int
    file_id: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        where = f" at offset {self.offset}" if self.offset is not None else ""
        return f"{self.record_type or 'untyped'} record #{self.number}{where}"


@dataclass
class DicomdirContents:
    """The files a DICOMDIR references (resolved, inside its root) and the refused records."""

    dicomdir: Path
    root: Path
    records: list[DirectoryRecord] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)


def _component_problem(component: str) -> str | None:
    if component in ("", ".", ".."):
        return f"component {component!r} is not allowed"
    if any(ch in component for ch in _FORBIDDEN) or _DRIVE.match(component):
        return f"component {component!r} holds a path separator or drive"
    if any(ord(ch) < 0x20 for ch in component):
        return "component holds control characters"
    return None


def _case_insensitive_child(folder: str, name: str) -> str:
    """``name`` as it exists in ``folder``, matching case-insensitively when the exact name is
    absent (File IDs are upper case, PS3.10 8.5, but copies from CDs are often lower case).
    The returned name comes from the folder listing, never from the tag."""
    if os.path.lexists(os.path.join(folder, name)):
        return name
    try:
        matches = [entry for entry in os.listdir(folder) if entry.upper() == name.upper()]
    except OSError:
        return name
    return matches[0] if len(matches) == 1 else name


def resolve_file_id(
    root: PathLike, file_id: tuple[str, ...] | list[str], *, record: str = "record"
) -> Path:
    """Resolve a Referenced File ID inside ``root``, or raise :class:`UnsafePathError`.

    The components are checked one by one (no ``..``, ``.``, separators, drive letters, or
    absolute paths), then the joined path is resolved with every symbolic link followed, and
    the real path must lie inside the real root.
    """
    root_path = Path(root)
    root_real = os.path.realpath(root_path)
    shown = "\\".join(file_id)
    hint = "the DICOMDIR may be hostile; open the folder instead"
    if not file_id:
        raise DicomReadError(f"{record} has an empty Referenced File ID", root_path)
    if len(file_id) > MAX_FILE_ID_COMPONENTS:
        raise UnsafePathError(
            f"{record}: Referenced File ID has {len(file_id)} components, over "
            f"{MAX_FILE_ID_COMPONENTS}",
            root_path,
            hint,
        )
    for component in file_id:
        problem = _component_problem(component)
        if problem is not None:
            raise UnsafePathError(
                f"{record}: Referenced File ID {shown!r} is refused: {problem}", root_path, hint
            )
    current = root_real
    for component in file_id:
        current = os.path.join(current, _case_insensitive_child(current, component))
    real = os.path.realpath(current)
    if os.path.commonpath([root_real, real]) != root_real or real == root_real:
        raise UnsafePathError(
            f"{record}: Referenced File ID {shown!r} resolves outside the file-set root",
            root_path,
            hint,
        )
    if not os.path.isfile(real):
        raise DicomReadError(
            f"{record}: referenced file {shown!r} is missing",
            root_path,
            "the file-set is incomplete; copy the whole medium",
        )
    return Path(real)


def _file_id(item: Dataset) -> tuple[str, ...]:
    # Multi-valued CS (PS3.5 6.2): pydicom splits on backslash already.
    return tuple(part.strip() for part in dsvalues.texts(item, "ReferencedFileID"))


def _walk_records(ds: Dataset, limits: ReadLimits) -> list[DirectoryRecord]:
    """Records in hierarchy order, following the offsets (PS3.3 F.3.2.2), then any orphans.

    Offsets can be broken or circular in a hostile file: each record is visited once and the
    depth is bounded by the sequence-depth limit.
    """
    value = dsvalues.raw_value(ds, "DirectoryRecordSequence")
    items: list[Dataset] = (
        [it for it in value if isinstance(it, Dataset)]
        if value is not None and not isinstance(value, (str, bytes))
        else []
    )
    by_offset: dict[int, int] = {}
    for n, item in enumerate(items):
        offset = getattr(item, "seq_item_tell", None)
        if isinstance(offset, int):
            by_offset[offset] = n
    visited: set[int] = set()
    ordered: list[DirectoryRecord] = []

    def record(n: int, depth: int) -> DirectoryRecord:
        item = items[n]
        offset = getattr(item, "seq_item_tell", None)
        return DirectoryRecord(
            record_type=dsvalues.text(item, "DirectoryRecordType").upper(),
            offset=offset if isinstance(offset, int) else None,
            number=n + 1,
            depth=depth,
            file_id=_file_id(item),
        )

    def visit_chain(offset: int | None, depth: int) -> None:
        # Iterative along the sibling chain, recursive (bounded) into children.
        while offset and offset in by_offset:
            n = by_offset[offset]
            if n in visited or depth > limits.max_sequence_depth:
                return
            visited.add(n)
            ordered.append(record(n, depth))
            visit_chain(
                dsvalues.first_int(items[n], "OffsetOfReferencedLowerLevelDirectoryEntity"),
                depth + 1,
            )
            offset = dsvalues.first_int(items[n], "OffsetOfTheNextDirectoryRecord")

    visit_chain(
        dsvalues.first_int(ds, "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity"), 0
    )
    # Records the offsets do not reach (no offsets, broken links): still listed, flat.
    for n in range(len(items)):
        if n not in visited:
            visited.add(n)
            ordered.append(record(n, 0))
    return ordered


def read_dicomdir(path: PathLike, *, limits: ReadLimits = DEFAULT_LIMITS) -> DicomdirContents:
    """Read a DICOMDIR and resolve every referenced file safely.

    Never raises for a bad record: each refused record becomes a :class:`FileProblem` (the
    DICOMDIR's path and a reason naming the record). A DICOMDIR that can't be read at all is
    one problem.
    """
    p = Path(path)
    root = Path(os.path.realpath(p.parent if str(p.parent) else "."))
    contents = DicomdirContents(dicomdir=p, root=root)
    try:
        ds = read_header(p, limits=limits)
        contents.records = _walk_records(ds, limits)
    except BaseException as err:  # a hostile DICOMDIR must not end the run
        if isinstance(err, FATAL):
            raise
        contents.problems.append(FileProblem.from_error(p, err))
        return contents
    seen: set[Path] = set()
    for rec in contents.records:
        if not rec.file_id:
            continue
        try:
            resolved = resolve_file_id(root, rec.file_id, record=f"DICOMDIR {rec.label}")
        except RadAssistError as err:
            contents.problems.append(FileProblem.from_error(p, err))
            continue
        if resolved not in seen:
            seen.add(resolved)
            contents.files.append(resolved)
    log.info(
        "DICOMDIR: %d records, %d files, %d refused",
        len(contents.records),
        len(contents.files),
        len(contents.problems),
    )
    return contents
