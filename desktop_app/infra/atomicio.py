"""Whole-file writes that are atomic: write a temporary file beside the target, fsync, rename.

A reader (or a crash) never sees a half-written file: either the old content or the new.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success rename it over ``target``.

    For writers that insist on a path of their own (``safetensors.torch.save_file``,
    ``torch.save``, ``pydicom.Dataset.save_as``). On an exception the temporary file is
    removed and ``target`` is untouched. The file gets ``mode``; by default the existing
    target's mode, else 0o644 (mkstemp's 0o600 would surprise whoever shares an export).
    Pass ``mode=0o600`` for private files (review state, UID maps).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = target.stat().st_mode & 0o7777
        except OSError:
            mode = 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(target: str | Path, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``target`` atomically and return the target path."""
    target = Path(target)
    with atomic_path(target, mode) as tmp, open(tmp, "wb") as fh:
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


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; Windows has no directory fds.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
