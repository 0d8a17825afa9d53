"""The persisted header index: each file's InstanceInfo kept on disk and reused while the file
is unchanged (same size, mtime, ctime, inode and device), so reopening a series reads no header.

One cache file per folder of DICOM files, ``<data folder>/index-cache/<keyed hash>.json``
(owner-only, written atomically), named by a keyed hash of the folder's path, the read limits
and the software versions: a cache made under other limits or by other code is never used.

What it holds, and what it doesn't:
- per file: a keyed hash of its name, its ``stat`` identity and its InstanceInfo (geometry,
  pixel layout, SOP Instance/Class UIDs, where the pixel data is);
- per file also the keyed hash of its *tree fields* (Patient's Name and ID, study and series
  UIDs, dates, descriptions, Series Number, Body Part): never the fields themselves. No
  patient name, ID, birth date, description, folder or file name is stored in plain text.
  The hash key (``key``, 32 random bytes, owner-only) lives beside the caches, so the hashes
  can't be matched against guessed names elsewhere.
- On reuse, the first file of each group of equal tree fields is read again in full
  (structure walk and all); the other files of the group take their fields from it. That read
  is also a spot check: if its InstanceInfo or tree-field hash differs from the cache, the
  folder's whole cache is dropped and every file is read.

Trust (a file is read, never taken from the cache, unless all of these hold):
- size, mtime_ns, ctime_ns, inode and device equal those stored. A file replaced by another
  (a new inode) or rewritten in place (a new ctime, which no user can set) misses.
- "Racy" entries are not stored: a file changed less than ``RACY_SECONDS`` before it was
  looked at could change again within the same timestamp tick (git's racy-index problem).
- The cache file is checked field by field when read; anything unexpected (corrupt JSON,
  a wrong type, an unknown version) drops it, and it is rebuilt on the next save.
- Every InstanceInfo taken from it goes through ``frames.check_frames`` again, and display
  and decoding re-check the slice's own file as always (``dicomfile.read_header``).

Bounded: ``MAX_CACHE_FILES`` folders (least recently used dropped), ``MAX_ENTRIES`` files per
folder, ``MAX_CACHE_BYTES`` per cache file (a bigger one is neither written nor read).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom

from desktop_app import __version__
from desktop_app.dicom.headerinfo import InstanceInfo, PixelDataInfo
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.infra import userdirs
from desktop_app.infra.atomicio import atomic_write_bytes, temp_target_name
from desktop_app.infra.errors import ConfigError
from desktop_app.studies.frames import check_frames

__all__ = [
    "CACHE_FOLDER",
    "FORMAT_VERSION",
    "IndexCache",
    "TreeFields",
    "default_index_cache",
]

log = logging.getLogger(__name__)

CACHE_FOLDER = "index-cache"
FORMAT_VERSION = 1
RACY_SECONDS = 2.0
"""A file changed this recently is not cached (FAT's mtime ticks are 2 s)."""
MAX_CACHE_FILES = 512
MAX_ENTRIES = 50_000
MAX_CACHE_BYTES = 64 * 1024 * 1024
_KEY_FILE = "key"
_KEY_BYTES = 32

TreeFields = tuple[str, str, str, str, str, str, str, int | None, str, str, str]
"""The index's tree fields of one file, in ``index._Record``'s order: patient_id,
patient_name, study_uid, study_date, study_time, study_description, series_uid,
series_number, series_description, series_date, body_part."""

_Identity = tuple[int, int, int, int, int]  # size, mtime_ns, ctime_ns, inode, device


def _identity(st: os.stat_result) -> _Identity:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


# --------------------------------------------------------------------------- (de)serializing

_PIXEL_FIELDS = (
    "keyword",
    "vr",
    "value_offset",
    "length",
    "transfer_syntax",
    "implicit_vr",
    "little_endian",
    "deflated",
    "fragments",
    "fragments_bytes",
    "bot_entries",
    "bot_valid",
    "delimiter_found",
    "fragment_items",
)


def _pixel_to_json(info: PixelDataInfo | None) -> list[Any] | None:
    if info is None:
        return None
    out = [getattr(info, name) for name in _PIXEL_FIELDS]
    out[10] = list(info.bot_entries)
    out[13] = [list(item) for item in info.fragment_items]
    return out


def _list(v: tuple[Any, ...] | None) -> list[Any] | None:
    return None if v is None else list(v)


def _per_frame_list(v: tuple[tuple[float, ...] | None, ...] | None) -> list[Any] | None:
    return None if v is None else [_list(x) for x in v]


def _own_to_json(inst: InstanceInfo) -> list[Any]:
    """What differs from slice to slice, as JSON values (lists, not tuples: equal to what
    the file gives back)."""
    return [
        inst.sop_instance_uid,
        inst.instance_number,
        _list(inst.image_position),
        inst.acquisition_number,
    ]


_LAYOUT_FIELDS = (
    "sop_class_uid", "modality", "has_pixels", "rows", "columns", "number_of_frames",
    "samples_per_pixel", "bits_allocated", "bits_stored", "pixel_representation",
    "planar_configuration", "photometric", "transfer_syntax_uid", "image_orientation",
    "pixel_spacing", "slice_thickness", "frame_positions", "frame_orientations", "pixel_data",
)  # fmt: skip
"""The InstanceInfo fields the files of a series share (a layout), in the cache file's order."""

_TO_JSON: dict[str, Any] = {
    "image_orientation": _list,
    "pixel_spacing": _list,
    "frame_positions": _per_frame_list,
    "frame_orientations": _per_frame_list,
    "pixel_data": _pixel_to_json,
}


def _layout_to_json(inst: InstanceInfo) -> list[Any]:
    """The rest of the InstanceInfo, which the files of a series share, less the path and
    the file size (they come from the file itself)."""
    out = []
    for name in _LAYOUT_FIELDS:
        value = getattr(inst, name)
        convert = _TO_JSON.get(name)
        out.append(value if convert is None else convert(value))
    return out


class _Corrupt(Exception):
    """The cache file holds something this code did not write."""


def _int(v: Any) -> int:
    if type(v) is not int:
        raise _Corrupt
    return v


def _opt_int(v: Any) -> int | None:
    return None if v is None else _int(v)


def _str(v: Any) -> str:
    if type(v) is not str:
        raise _Corrupt
    return v


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise _Corrupt
    return v


def _opt_float(v: Any) -> float | None:
    if v is None:
        return None
    if type(v) is not float and type(v) is not int:
        raise _Corrupt
    if not math.isfinite(v):
        raise _Corrupt
    return float(v)


def _floats(v: Any, n: int) -> tuple[float, ...] | None:
    if v is None:
        return None
    if type(v) is not list or len(v) != n:
        raise _Corrupt
    return tuple([_opt_float(x) for x in v])  # type: ignore[misc]


def _per_frame(v: Any, n: int) -> tuple[Any, ...] | None:
    if v is None:
        return None
    if type(v) is not list:
        raise _Corrupt
    return tuple([_floats(x, n) for x in v])


def _pixel_from_json(v: Any, file_size: int) -> PixelDataInfo | None:
    if v is None:
        return None
    if type(v) is not list or len(v) != len(_PIXEL_FIELDS):
        raise _Corrupt
    bot = v[10]
    items = v[13]
    if type(bot) is not list or type(items) is not list:
        raise _Corrupt
    fragment_items = []
    for item in items:
        if type(item) is not list or len(item) != 3:
            raise _Corrupt
        fragment_items.append((_int(item[0]), _int(item[1]), _int(item[2])))
    info = PixelDataInfo(
        keyword=_str(v[0]),
        vr=None if v[1] is None else _str(v[1]),
        value_offset=_int(v[2]),
        length=_opt_int(v[3]),
        transfer_syntax=_str(v[4]),
        implicit_vr=_bool(v[5]),
        little_endian=_bool(v[6]),
        deflated=_bool(v[7]),
        file_size=file_size,
        fragments=_int(v[8]),
        fragments_bytes=_int(v[9]),
        bot_entries=tuple([_int(x) for x in bot]),
        bot_valid=_bool(v[11]),
        delimiter_found=_bool(v[12]),
        fragment_items=tuple(fragment_items),
    )
    end = info.value_offset + (info.length or 0)
    if info.value_offset < 0 or (info.length is not None and info.length < 0) or end > file_size:
        raise _Corrupt
    return info


def _layout_from_json(v: Any, file_size: int, limits: ReadLimits) -> dict[str, Any]:
    """A layout's InstanceInfo fields, every one type-checked and the frames bounded as a
    fresh read bounds them; _Corrupt if not."""
    if type(v) is not list or len(v) != len(_LAYOUT_FIELDS):
        raise _Corrupt
    fields: dict[str, Any] = {
        "sop_class_uid": _str(v[0]),
        "modality": _str(v[1]),
        "has_pixels": _bool(v[2]),
        "rows": _int(v[3]),
        "columns": _int(v[4]),
        "number_of_frames": _int(v[5]),
        "samples_per_pixel": _int(v[6]),
        "bits_allocated": _int(v[7]),
        "bits_stored": _int(v[8]),
        "pixel_representation": _int(v[9]),
        "planar_configuration": _int(v[10]),
        "photometric": _str(v[11]),
        "transfer_syntax_uid": _str(v[12]),
        "image_orientation": _floats(v[13], 6),
        "pixel_spacing": _floats(v[14], 2),
        "slice_thickness": _opt_float(v[15]),
        "frame_positions": _per_frame(v[16], 3),
        "frame_orientations": _per_frame(v[17], 6),
        "file_size": file_size,
        "pixel_data": _pixel_from_json(v[18], file_size),
    }
    if min(fields["rows"], fields["columns"], fields["number_of_frames"]) < 0:
        raise _Corrupt
    probe = InstanceInfo(
        path=Path(),
        sop_instance_uid="",
        instance_number=None,
        image_position=None,
        acquisition_number=None,
        **fields,
    )
    try:
        check_frames(probe, limits)  # the same bound a fresh read of the header applies
    except Exception:
        raise _Corrupt from None
    return fields


def _position_ok(v: Any) -> bool:
    if v is None:
        return True
    if type(v) is not list or len(v) != 3:
        return False
    return all(type(x) in (float, int) and math.isfinite(x) for x in v)


def _instance(own: Any, layout: dict[str, Any], path: Path) -> InstanceInfo:
    """An InstanceInfo from a file's own values (type-checked here) and its layout's (checked
    once per layout).

    Built without ``InstanceInfo.__init__``: the frozen dataclass's 25-argument constructor
    costs ~8 us, most of the per-file cost of a warm reopen (bench_load.py); filling its
    ``__dict__`` costs ~1 us and gives an equal object (InstanceInfo has no __post_init__ and
    no slots; tests/studies/test_indexcache.py compares the two)."""
    if type(own) is not list or len(own) != 4:
        raise _Corrupt
    sop, number, position, acquisition = own
    if (
        type(sop) is not str
        or (number is not None and type(number) is not int)
        or (acquisition is not None and type(acquisition) is not int)
        or not _position_ok(position)
    ):
        raise _Corrupt
    values = dict(layout)
    values["path"] = path
    values["sop_instance_uid"] = sop
    values["instance_number"] = number
    values["image_position"] = None if position is None else tuple(map(float, position))
    values["acquisition_number"] = acquisition
    inst = object.__new__(InstanceInfo)
    object.__setattr__(inst, "__dict__", values)
    return inst


# --------------------------------------------------------------------------- the cache


@dataclass
class _Layout:
    """A layout as stored (shared by the entries of a series) and, once checked, decoded
    (per file size: the pixel data must lie inside the file)."""

    raw: list[Any]
    decoded: dict[int, dict[str, Any]] = field(default_factory=dict)

    def fields(self, file_size: int, limits: ReadLimits) -> dict[str, Any]:
        found = self.decoded.get(file_size)
        if found is None:
            found = _layout_from_json(self.raw, file_size, limits)
            if len(self.decoded) < 64:
                self.decoded[file_size] = found
        return found


@dataclass
class _Entry:
    identity: _Identity
    group: str
    own: list[Any]  # the file's own InstanceInfo values, as stored
    layout: _Layout


@dataclass
class _Folder:
    """One folder's cache file, as loaded, and what this run learned about its files."""

    file: Path
    entries: dict[str, _Entry] = field(default_factory=dict)
    groups: dict[str, TreeFields] = field(default_factory=dict)  # resolved this run
    layouts: dict[tuple[Any, ...], _Layout] = field(default_factory=dict)  # made this run
    seen: set[str] = field(default_factory=set)  # names met this run
    dirty: bool = False


class IndexCache:
    """A persisted index of InstanceInfo per file (see the module docstring).

    ``index.index_paths(..., cache=...)`` asks :meth:`hit` before reading a header and calls
    :meth:`remember` / :meth:`forget` after; :meth:`save` writes the folders that changed. Not
    thread-safe: one index run at a time.
    """

    def __init__(
        self,
        folder: Path,
        limits: ReadLimits = DEFAULT_LIMITS,
        *,
        racy_seconds: float = RACY_SECONDS,
    ) -> None:
        self.folder = folder
        self.limits = limits
        self.racy_ns = int(racy_seconds * 1e9)
        self._key = _load_key(folder)
        self._salt = f"{FORMAT_VERSION}|{__version__}|pydicom {pydicom.__version__}|{limits!r}"
        self._folders: dict[str, _Folder] = {}  # by absolute folder path
        self._by_parent: dict[str, _Folder] = {}  # by the folder as the paths spell it
        self.hits = 0
        self.misses = 0
        self.dropped = 0
        self._group_hashes: dict[TreeFields, str] = {}
        self._last: tuple[Path, _Folder, str] | None = None

    # -- hashing (keyed: the hashes can't be matched against names guessed elsewhere)
    def _hash(self, text: str, size: int = 16) -> str:
        data = text.encode("utf-8", "surrogateescape")
        return hashlib.blake2b(data, digest_size=size, key=self._key).hexdigest()

    def group_hash(self, fields: TreeFields) -> str:
        found = self._group_hashes.get(fields)
        if found is None:
            found = self._hash("\x00".join("" if v is None else str(v) for v in fields))
            if len(self._group_hashes) < 4096:
                self._group_hashes[fields] = found
        return found

    def _folder_of(self, path: Path) -> tuple[_Folder, str]:
        last = self._last
        if last is not None and last[0] is path:
            return last[1], last[2]  # hit() then remember() for the same file
        folder, name = self._find_folder(path)
        self._last = (path, folder, name)
        return folder, name

    def _find_folder(self, path: Path) -> tuple[_Folder, str]:
        parent, name = os.path.split(os.fspath(path))
        folder = self._by_parent.get(parent)
        if folder is None:
            absolute = os.path.abspath(parent)
            folder = self._folders.get(absolute)
            if folder is None:
                file = self.folder / f"{self._hash(absolute + '|' + self._salt)}.json"
                folder = _Folder(file, _read_cache_file(file, self._salt))
                self._folders[absolute] = folder
            self._by_parent[parent] = folder
        return folder, self._hash(name, 12)

    # -- lookups
    def hit(self, path: Path, st: os.stat_result) -> tuple[InstanceInfo, TreeFields] | None:
        """The cached InstanceInfo and tree fields of ``path`` when they can be trusted and
        its group is resolved in this run; None: read the file, then :meth:`remember`."""
        folder, name = self._folder_of(path)
        folder.seen.add(name)
        entry = folder.entries.get(name)
        if entry is None or entry.identity != _identity(st):
            self.misses += 1
            return None
        fields = folder.groups.get(entry.group)
        if fields is None:
            return None  # the group's first file: read in full, checked in remember()
        try:
            inst = _instance(entry.own, entry.layout.fields(st.st_size, self.limits), path)
        except _Corrupt:
            self._drop(folder, "an entry is corrupt")
            return None
        self.hits += 1
        return inst, fields

    def known(self, path: Path, st: os.stat_result) -> bool:
        """Whether the cache holds ``path`` as ``st`` says it is (:meth:`hit` then returned
        None only because its group awaits the full read that checks it)."""
        folder, name = self._folder_of(path)
        entry = folder.entries.get(name)
        return entry is not None and entry.identity == _identity(st)

    def remember(
        self, path: Path, st: os.stat_result, inst: InstanceInfo, fields: TreeFields
    ) -> None:
        """Record a header just read in full (``st``: its stat from before the read)."""
        folder, name = self._folder_of(path)
        group = self.group_hash(fields)
        identity = _identity(st)
        old = folder.entries.get(name)
        if old is not None and old.identity == identity:
            # The spot check: a file the cache says is unchanged must read as cached.
            own, layout = _own_to_json(inst), _layout_to_json(inst)
            if old.group != group or old.own != own or old.layout.raw != layout:
                self._drop(folder, "a file reads differently than cached")
            else:
                folder.groups.setdefault(group, fields)
                return
        folder.groups.setdefault(group, fields)
        now = time.time_ns()
        racy = max(st.st_mtime_ns, st.st_ctime_ns) > now - self.racy_ns
        if racy or inst.file_size != st.st_size:
            if old is not None:
                del folder.entries[name]
                folder.dirty = True
            return
        key = _layout_key(inst)
        shared = folder.layouts.get(key)
        if shared is None:
            shared = folder.layouts[key] = _Layout(_layout_to_json(inst))
        folder.entries[name] = _Entry(identity, group, _own_to_json(inst), shared)
        folder.dirty = True

    def forget(self, path: Path) -> None:
        """``path`` did not give an instance this time (not DICOM, refused, gone)."""
        folder, name = self._folder_of(path)
        if folder.entries.pop(name, None) is not None:
            folder.dirty = True

    def _drop(self, folder: _Folder, why: str) -> None:
        log.warning("index cache %s dropped: %s; its files are read again", folder.file.name, why)
        folder.entries.clear()
        folder.groups.clear()
        folder.dirty = True
        self.dropped += 1

    # -- saving
    def save(self) -> int:
        """Write the folders whose entries changed (atomically); returns how many. Never
        raises for an unwritable cache: it is logged and the index works without it."""
        written = 0
        for folder in self._folders.values():
            if not folder.dirty:
                continue
            try:
                written += _write_cache_file(folder, self._salt)
            except OSError as err:
                log.warning("index cache not written: %s", err.strerror or type(err).__name__)
                return written
            folder.dirty = False
        if written:
            _evict(self.folder)
        return written


def _layout_key(inst: InstanceInfo) -> tuple[Any, ...]:
    """What a layout holds, hashable: the files of a series share one _Layout."""
    return tuple(getattr(inst, name) for name in _LAYOUT_FIELDS)


def _read_cache_file(file: Path, salt: str) -> dict[str, _Entry]:
    """The entries of one cache file; {} when it is missing, too big or not as written."""
    try:
        with open(file, "rb") as fh:
            if os.fstat(fh.fileno()).st_size > MAX_CACHE_BYTES:
                raise _Corrupt
            doc = json.loads(fh.read())
        if type(doc) is not dict or doc.get("version") != FORMAT_VERSION:
            raise _Corrupt
        if doc.get("salt") != salt:
            raise _Corrupt
        raw = doc.get("entries")
        stored = doc.get("layouts")
        if type(raw) is not dict or len(raw) > MAX_ENTRIES or type(stored) is not list:
            raise _Corrupt
        layouts = [_Layout(item) for item in stored]
        entries: dict[str, _Entry] = {}
        for name, item in raw.items():
            if type(item) is not list or len(item) != 8 or type(item[7]) is not int:
                raise _Corrupt
            if not 0 <= item[7] < len(layouts):
                raise _Corrupt
            identity = (
                _int(item[0]),
                _int(item[1]),
                _int(item[2]),
                _int(item[3]),
                _int(item[4]),
            )
            entries[name] = _Entry(identity, _str(item[5]), item[6], layouts[item[7]])
        with contextlib.suppress(OSError):
            os.utime(file)  # least recently used goes first (_evict)
        return entries
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError, _Corrupt):
        log.warning("index cache %s is unreadable or corrupt; it will be rebuilt", file.name)
        return {}


def _write_cache_file(folder: _Folder, salt: str) -> int:
    if len(folder.entries) > MAX_ENTRIES:  # files gone since: keep those met this run
        folder.entries = {k: e for k, e in folder.entries.items() if k in folder.seen}
        if len(folder.entries) > MAX_ENTRIES:
            return 0
    if not folder.entries:
        with contextlib.suppress(FileNotFoundError):
            folder.file.unlink()
        return 0
    numbers: dict[int, int] = {}  # id(_Layout) -> its index in "layouts"
    layouts: list[list[Any]] = []
    entries: dict[str, list[Any]] = {}
    for name, e in folder.entries.items():
        number = numbers.get(id(e.layout))
        if number is None:
            number = numbers[id(e.layout)] = len(layouts)
            layouts.append(e.layout.raw)
        entries[name] = [*e.identity, e.group, e.own, number]
    doc = {
        "format": "radassist-index-cache",
        "version": FORMAT_VERSION,
        "salt": salt,
        "layouts": layouts,
        "entries": entries,
    }
    data = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    if len(data) > MAX_CACHE_BYTES:
        return 0
    atomic_write_bytes(folder.file, data, mode=0o600, durable=False)  # a cache: torn = rebuilt
    return 1


def _evict(folder: Path) -> None:
    """Keep the ``MAX_CACHE_FILES`` most recently used cache files, and remove temporary
    files that writers killed mid-write left (an hour old: no live writer takes that long)."""
    files: list[tuple[int, str]] = []
    stale = time.time_ns() - 3600 * 10**9
    try:
        with os.scandir(folder) as it:
            for e in it:
                mtime = e.stat(follow_symlinks=False).st_mtime_ns
                if e.name.endswith(".json"):
                    files.append((mtime, e.path))
                elif temp_target_name(e.name) is not None and mtime < stale:
                    with contextlib.suppress(OSError):
                        os.unlink(e.path)
    except OSError:
        return
    if len(files) <= MAX_CACHE_FILES:
        return
    files.sort()
    for _, path in files[: len(files) - MAX_CACHE_FILES]:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _load_key(folder: Path) -> bytes:
    """The hash key beside the caches, made on first use (owner-only). A key that is not
    ``_KEY_BYTES`` long is replaced: the caches made with the old one then simply miss."""
    path = folder / _KEY_FILE
    with contextlib.suppress(OSError):
        key = path.read_bytes()
        if len(key) == _KEY_BYTES:
            return key
    key = secrets.token_bytes(_KEY_BYTES)
    atomic_write_bytes(path, key, mode=0o600)
    return key


def default_index_cache(limits: ReadLimits = DEFAULT_LIMITS) -> IndexCache | None:
    """The cache in the user data folder (``<data>/index-cache``), or None (logged) when that
    folder can't be made: the index then reads every header."""
    try:
        folder = userdirs.subdir(CACHE_FOLDER)
        return IndexCache(folder, limits)
    except (ConfigError, OSError) as err:
        log.warning("index cache unavailable: %s", err)
        return None
