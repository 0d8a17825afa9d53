"""Whole-file writes that are atomic: write a temporary file beside the target, fsync, rename.

A reader (or a crash) never sees a half-written file: either the old content or the new. A
writer killed mid-write leaves its temporary file (``.<target name>.<8 random>.tmp``) behind;
:func:`remove_temp_files` deletes them where the caller knows no writer is live.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"
# mkstemp's names: prefix + 8 characters of tempfile's alphabet + suffix.
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX))


@contextlib.contextmanager
def atomic_path(
    target: str | Path, mode: int | None = None, *, durable: bool = True
) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success rename it over ``target``.

    For writers that insist on a path of their own (``safetensors.torch.save_file``,
    ``torch.save``, ``pydicom.Dataset.save_as``). On an exception the temporary file is
    removed and ``target`` is untouched. The file gets ``mode``; by default the existing
    target's mode, else 0o644 (mkstemp's 0o600 would surprise whoever shares an export).
    Pass ``mode=0o600`` for private files (review state, UID maps). ``durable=False`` skips
    the fsyncs (still atomic: old or new file, never a mix): for caches, which a crash may lose
    but whose readers refuse and rebuild anything torn.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = target.stat().st_mode & 0o7777
        except OSError:
            mode = 0o644
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        if durable:
            _fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(
    target: str | Path, data: bytes, mode: int | None = None, *, durable: bool = True
) -> Path:
    """Write ``data`` to ``target`` atomically and return the target path."""
    target = Path(target)
    with atomic_path(target, mode, durable=durable) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return target


def atomic_write_text(
    target: str | Path, text: str, encoding: str = "utf-8", mode: int | None = None
) -> Path:
    return atomic_write_bytes(target, text.encode(encoding), mode)


def atomic_write_json(
    target: str | Path, obj: Any, indent: int | None = 2, mode: int | None = None
) -> Path:
    text = json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False)
    return atomic_write_text(target, text + "\n", mode=mode)


def temp_target_name(name: str) -> str | None:
    """The target's file name when ``name`` is one of :func:`atomic_path`'s temporary files
    (``.<target>.<8 random>.tmp``), else None."""
    match = _TEMP_NAME.fullmatch(name)
    return match.group("target") if match else None


def remove_temp_files(
    folder: str | Path, owned: Callable[[str], object] = lambda _target: True
) -> list[Path]:
    """Delete the temporary files that killed writers left in ``folder`` (not recursive) and
    return them. Only files named as :func:`atomic_path` names them, and only those whose
    target name ``owned`` accepts, are touched.

    The caller must know that no writer in ``folder`` is live, e.g. by holding the lock that
    every writer there holds while it writes (``infra.filelock.locked``): a live writer's
    temporary file looks exactly like an orphan.
    """
    removed: list[Path] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            target = temp_target_name(entry.name)
            if target is None or not owned(target) or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; Windows has no directory fds.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
