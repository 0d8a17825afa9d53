"""What the public-layout readers share: their options, labels tables (CSV or .csv.gz), one index
of the image files below a folder, and the rule for listed images that are not there.

Missing images: a public labels file lists every image of the release, and a partial download
(one of NIH's twelve archives, a subset of a Kaggle folder) is the usual case, so by default the
rows whose image is not below the folder are left out with a note that counts them
(``missing_images="skip"``); ``"error"`` stops at the first one instead. When none of the listed
images is there, it is always an error: ``--data`` points at the wrong folder.

Messages name row numbers, never image names: public image names carry patient numbers.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from desktop_app.infra.errors import ConfigError, DataError
from training.records import LABEL_PATTERN, MAX_MANIFEST_BYTES

log = logging.getLogger(__name__)

UNCERTAINTY_POLICIES = ("u-ones", "u-zeros", "ignore")
VIEW_FILTERS = ("frontal", "lateral", "all")
LABEL_RULES = ("majority", "any")
MISSING_POLICIES = ("skip", "error")
LABELERS = ("chexpert", "negbio")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")


@dataclass(frozen=True)
class LayoutOptions:
    """How a public layout's labels are read; the defaults are the documented ones.

    uncertainty: CheXpert/MIMIC -1 values: "u-ones" (positive), "u-zeros" (negative) or
    "ignore" (U-Ignore: unknown, NaN in ``Record.labels``; the image stays and training
    leaves that label of that image out of its loss and metrics).
    views: "frontal" (PA/AP only), "lateral" or "all".
    label_rule: VinDr-CXR: "majority" (more than half of an image's readers) or "any".
    missing_images: "skip" (leave the rows out, with a note) or "error".
    labeler: MIMIC-CXR: the labels file of "chexpert" (the CheXpert labeler) or "negbio".
    """

    uncertainty: str = "u-ones"
    views: str = "frontal"
    label_rule: str = "majority"
    missing_images: str = "skip"
    labeler: str = "chexpert"

    def __post_init__(self) -> None:
        for name, allowed in (
            ("uncertainty", UNCERTAINTY_POLICIES),
            ("views", VIEW_FILTERS),
            ("label_rule", LABEL_RULES),
            ("missing_images", MISSING_POLICIES),
            ("labeler", LABELERS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(
                    f"{name} {value!r} is not one of {', '.join(allowed)}",
                    hint=f"choose one of: {', '.join(allowed)}",
                )


@dataclass
class Table:
    """A labels file read strictly: the header, the rows with their line numbers, the hash."""

    path: Path
    header: list[str]
    rows: list[tuple[int, list[str]]]
    sha256: str

    def column(self, name: str, hint: str) -> int:
        try:
            return self.header.index(name)
        except ValueError:
            raise DataError(f"row 1: there is no {name!r} column", self.path, hint) from None


def read_text(path: Path) -> str:
    """A labels file's text (plain or gzip), refusing files over MAX_MANIFEST_BYTES."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=fh) as gz:
                    raw = gz.read(MAX_MANIFEST_BYTES + 1)
            else:
                raw = fh.read(MAX_MANIFEST_BYTES + 1) if size <= MAX_MANIFEST_BYTES else b""
    except FileNotFoundError:
        raise DataError("labels file not found", path, "check the --data path") from None
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"labels file can't be read: {err}", path, "download it again") from None
    if size > MAX_MANIFEST_BYTES or len(raw) > MAX_MANIFEST_BYTES:
        raise DataError(f"labels file is over {MAX_MANIFEST_BYTES} bytes", path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"labels file is not UTF-8 text (byte {err.start})", path, "use the file as published"
        ) from None


def first_line(path: Path) -> list[str]:
    """The header fields of a labels file (plain or gzip), stripped; [] if unreadable."""
    try:
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"
            fh.seek(0)
            stream = gzip.GzipFile(fileobj=fh) if gz else fh
            line = stream.readline(65536).decode("utf-8-sig")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError):
        return []
    return [f.strip() for f in next(csv.reader([line]), [])]


def read_table(path: Path, *, min_fields: int = 1) -> Table:
    """Read a labels CSV; every row must have at least ``min_fields`` fields (the row number
    and the fix in the error otherwise). Blank lines are skipped."""
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError("labels file is empty", path, "use the file as published") from None
    except csv.Error as err:
        raise DataError(f"row 1: {err}", path) from None
    rows: list[tuple[int, list[str]]] = []
    try:
        for values in reader:
            if not values or not any(values):
                continue
            if len(values) < min_fields:
                raise DataError(
                    f"row {reader.line_num}: has {len(values)} fields, expected {min_fields}",
                    path,
                    "use the file as published (it may be cut short)",
                )
            rows.append((reader.line_num, values))
    except csv.Error as err:
        raise DataError(f"row {reader.line_num}: {err}", path) from None
    if not rows:
        raise DataError("labels file has a header but no rows", path, "use the file as published")
    return Table(path, header, rows, hashlib.sha256(text.encode("utf-8")).hexdigest())


def combined_sha256(tables: Iterable[Table]) -> str:
    """One hash over several labels files (in the given order)."""
    h = hashlib.sha256()
    for table in tables:
        h.update(table.sha256.encode("ascii"))
    return h.hexdigest()


class FileIndex:
    """Every image file below ``root`` by file name, from one walk (os.scandir), so that a
    labels file of 100k rows costs one directory walk, not 100k stats. Hidden folders are
    skipped. A name found twice keeps the first in sorted walk order and is counted."""

    def __init__(self, root: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> None:
        self.root = root
        # name -> index of its folder: a Path per folder, not per file, keeps 100k names cheap
        self.by_name: dict[str, int] = {}
        self.folders: list[Path] = []
        self.duplicates = 0
        wanted = tuple(s.lower() for s in suffixes)
        stack = [root]
        while stack:
            folder = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as err:
                log.warning("can't list a folder below %s: %s", root, err.strerror or err)
                continue
            subfolders = []
            number = len(self.folders)
            self.folders.append(folder)
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    subfolders.append(folder / entry.name)
                elif entry.name.lower().endswith(wanted):
                    if entry.name in self.by_name:
                        self.duplicates += 1
                    else:
                        self.by_name[entry.name] = number
            stack.extend(reversed(subfolders))

    def find(self, name: str) -> Path | None:
        number = self.by_name.get(name)
        return None if number is None else self.folders[number] / name

    def __len__(self) -> int:
        return len(self.by_name)


def keep_found(
    found: Sequence[Path | None],
    rows: Sequence[int],
    table: Path,
    root: Path,
    policy: str,
    notes: list[str],
) -> list[int]:
    """Indices of the entries whose image was found; applies the missing-image policy."""
    missing = [i for i, f in enumerate(found) if f is None]
    if not missing:
        return list(range(len(found)))
    if len(missing) == len(found):
        raise DataError(
            f"none of the {len(found)} images it lists is below {root}",
            table,
            "point --data at the dataset folder that holds the image folders",
        )
    if policy == "error":
        raise DataError(
            f"row {rows[missing[0]]}: its image is not below {root} "
            f"({len(missing)} of {len(found)} images are missing)",
            table,
            "copy the images in, or leave those rows out (missing images: skip)",
        )
    note = (
        f"{len(missing)} of {len(found)} images listed in {table.name} are not below {root}: "
        f"their rows are left out (the first is row {rows[missing[0]]})"
    )
    log.warning("%s", note)
    notes.append(note)
    missing_set = set(missing)
    return [i for i in range(len(found)) if i not in missing_set]


def choose_labels(available: Sequence[str], wanted: Sequence[str] | None, table: Path) -> list[int]:
    """Column positions in ``available`` of the labels to read (all when ``wanted`` is None)."""
    if wanted is None:
        chosen = list(available)
    else:
        chosen = list(wanted)
        for lab in chosen:
            if lab not in available:
                raise DataError(
                    f"unknown label {lab!r}",
                    table,
                    f"this layout's labels are: {', '.join(available)}",
                )
    for lab in chosen:
        if not LABEL_PATTERN.match(lab):
            raise DataError(f"label {lab!r} is not a usable label name", table)
    return [list(available).index(lab) for lab in chosen]
