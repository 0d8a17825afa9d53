"""Review files: one JSON file per study in the user data folder (Qt-free).

:class:`ReviewStore` names each file by a hash of the Study Instance UID (never by tag
values) and writes it atomically with owner-only permissions (0o600) on every change, so a
crash or a kill loses nothing that was on screen. A file that can't be read is never
overwritten: it is moved aside and reported.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from desktop_app.infra.atomicio import atomic_write_json
from desktop_app.infra.errors import ReviewStateError
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.review.state import ReviewState

log = logging.getLogger(__name__)

FILE_MODE = 0o600
MAX_FILE_BYTES = 32 * 1024 * 1024


class ReviewStore:
    """Review files in ``root`` (default: ``reviews/`` in the user data folder), one per study."""

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            from desktop_app.infra.userdirs import subdir

            root = subdir("reviews")
        self.root = Path(root)

    def path_for(self, study_uid: str) -> Path:
        """``<root>/<sha256(study UID)[:16]>.json``: never a tag value in a path."""
        return self.root / f"{uid_hash(study_uid)}.json"

    def load(self, study_uid: str) -> ReviewState | None:
        """The saved state of a study, or None when there is none.

        Raises ReviewStateError (with the path) when the file exists but can't be used.
        """
        path = self.path_for(study_uid)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ReviewStateError(
                f"can't be read: {err.strerror or err}", path, "check the folder's permissions"
            ) from None
        if size > MAX_FILE_BYTES:
            raise ReviewStateError(f"is {size} bytes, over {MAX_FILE_BYTES}", path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = ReviewState.from_dict(data)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ReviewStateError(
                f"is not readable JSON ({type(err).__name__})",
                path,
                "it was moved aside; the review starts over",
            ) from None
        except (ValueError, KeyError, TypeError) as err:
            raise ReviewStateError(
                f"is not a valid review file: {err}", path, "it was moved aside"
            ) from None
        if state.study_uid != study_uid:
            raise ReviewStateError("belongs to another study (hash collision?)", path)
        return state

    def save(self, state: ReviewState) -> Path:
        """Write the state atomically (0o600). When the model changed since the last save, the
        previous file is kept beside it as ``<hash>.<old model sha[:12]>.json``."""
        return self.save_data(state.to_dict())

    def save_data(self, data: dict[str, Any]) -> Path:
        """:meth:`save` for a state already turned into its dict (``ReviewState.to_dict``)."""
        path = self.path_for(str(data["study_uid"]))
        new_sha = (data.get("model") or {}).get("sha256")
        if new_sha and path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
                old_sha = (old.get("model") or {}).get("sha256")
            except (OSError, ValueError, AttributeError):
                old_sha = None
            if old_sha and old_sha != new_sha:
                aside = path.with_name(f"{path.stem}.{str(old_sha)[:12]}.json")
                os.replace(path, aside)
                log.info("kept the previous model's review as %s", aside.name)
        try:
            atomic_write_json(path, data, mode=FILE_MODE)
        except OSError as err:
            raise ReviewStateError(
                f"can't be saved: {err.strerror or err}",
                path,
                "check free disk space and the data folder's permissions",
            ) from None
        return path

    def quarantine(self, study_uid: str) -> Path | None:
        """Move an unreadable review file aside (``.corrupt-<time>``) so that nothing
        overwrites it; returns where it went."""
        path = self.path_for(study_uid)
        if not path.exists():
            return None
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        os.replace(path, target)
        log.warning("moved an unreadable review file aside: %s", target.name)
        return target

    def iter_states(self) -> Iterator[ReviewState]:
        """Every readable review in the store (unreadable files are skipped and logged)."""
        for path in sorted(self.root.glob("*.json")):
            if path.stem.count(".") or len(path.stem) != 16:
                continue  # kept-aside files of earlier models
            try:
                yield ReviewState.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as err:
                log.warning("skipping unreadable review file %s: %s", path.name, type(err).__name__)
