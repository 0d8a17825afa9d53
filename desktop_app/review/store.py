"""Review files: one JSON file per study in the user data folder (Qt-free).

:class:`ReviewStore` names each file by a hash of the Study Instance UID (never by tag
values) and writes it atomically with owner-only permissions (0o600) on every change, so a
crash or a kill loses nothing that was on screen. A file that can't be read is never
overwritten: it is moved aside and reported.

Crash safety: every save runs under the store's lock file (``.reviews.lock``, shared with
other RadAssist processes) and, when the model changed, first writes the previous model's
review beside the study's file (``<hash>.<old model sha[:12]>[.<n>].json``, ``n`` counting up
from 2 over the study's kept files; at most :data:`MAX_KEPT_PER_STUDY` per study, the oldest
dropped), then replaces the study's file by an atomic rename.
A kill at any point leaves the study's file holding the new review or the previous one,
never neither. Opening a store removes the temporary files that killed saves left behind,
under the same lock, so a live writer's file is never among them.

A segmentation's edited lesion masks are saved beside the study's file, one ``.npz`` per series
named by its content (``<hash>.<sha256[:16]>.labels.npz``, no pickle), written before the JSON
that names them (with their SHA-256); files no review of the study names any more are removed
after the JSON is written. A mask that can't be read back (damaged, wrong shape, unknown ids)
loses only that series' lesions, reported in one line (``ReviewState.lesion_problems``); the
entry is kept so that the next save does not drop it.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from desktop_app.infra.atomicio import atomic_write_bytes, atomic_write_json, remove_temp_files
from desktop_app.infra.errors import ReviewStateError
from desktop_app.infra.filelock import locked
from desktop_app.infra.hashedpaths import uid_hash
from desktop_app.review.lesionfiles import labels_digest
from desktop_app.review.state import LABELS_NPZ, ReviewState

log = logging.getLogger(__name__)

FILE_MODE = 0o600
MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_KEPT_PER_STUDY = 20
LOCK_NAME = ".reviews.lock"
# A study's file, or one kept aside for an earlier model (``<hash>.<sha[:12]>[.<n>].json``).
_REVIEW_NAME = re.compile(r"(?P<stem>[0-9a-f]{16})(?:\.[0-9a-z]{1,12}(?:\.(?P<n>\d+))?)?\.json")
# A series' lesion mask (``<hash>.<sha256 of the file, 16 hex>.labels.npz``).
_LABELS_NAME = re.compile(r"(?P<stem>[0-9a-f]{16})\.(?P<sha>[0-9a-f]{16})\.labels\.npz")
MAX_LABELS_BYTES = 256 * 1024 * 1024


def _owned(name: str) -> bool:
    return bool(_REVIEW_NAME.fullmatch(name) or _LABELS_NAME.fullmatch(name))


class ReviewStore:
    """Review files in ``root`` (default: ``reviews/`` in the user data folder), one per study."""

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            from desktop_app.infra.userdirs import subdir

            root = subdir("reviews")
        self.root = Path(root)
        self.lock_path = self.root / LOCK_NAME
        self.removed_temp_files = self._remove_temp_files()

    def _remove_temp_files(self) -> int:
        """Delete the temporary files of saves that were killed (only review files' own)."""
        if not self.root.is_dir():
            return 0
        try:
            with locked(self.lock_path):
                removed = remove_temp_files(self.root, _owned)
        except OSError as err:
            log.warning("couldn't clean the review folder: %s", err.strerror or type(err).__name__)
            return 0
        if removed:
            log.info("removed %d temporary file(s) left by interrupted saves", len(removed))
        return len(removed)

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
            state = ReviewState.from_dict(data, self._labels_reader(path))
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
        previous file is first kept beside it as ``<hash>.<old model sha[:12]>.json``."""
        return self.save_data(state.to_dict())

    def save_data(self, data: dict[str, Any]) -> Path:
        """:meth:`save` for a state already turned into its dict (``ReviewState.to_dict``)."""
        path = self.path_for(str(data["study_uid"]))
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with locked(self.lock_path):
                wrote_masks = self._write_masks(path, data)
                self._keep_previous_model(path, (data.get("model") or {}).get("sha256"))
                atomic_write_json(path, data, mode=FILE_MODE)
                if wrote_masks:
                    self._drop_unused_masks(path)
        except OSError as err:
            raise ReviewStateError(
                f"can't be saved: {err.strerror or err}",
                path,
                "check free disk space and the data folder's permissions",
            ) from None
        return path

    # ------------------------------------------------------------------ lesion masks
    def _write_masks(self, path: Path, data: dict[str, Any]) -> bool:
        """Move each series' packed label volume out of ``data`` into its own file (lock
        held); True when a new file was written."""
        wrote = False
        for entry in (data.get("lesions") or {}).values():
            packed = entry.pop(LABELS_NPZ, None)
            if packed is None:
                continue
            digest = labels_digest(packed)
            target = path.with_name(f"{path.stem}.{digest[:16]}.labels.npz")
            if not _same_bytes(target, packed):
                atomic_write_bytes(target, packed, mode=FILE_MODE)
                wrote = True
            entry["labels_file"], entry["labels_sha256"] = target.name, digest
        return wrote

    def _labels_reader(self, path: Path) -> Any:
        def read(series_key: str, entry: dict[str, Any]) -> bytes:
            name = str(entry.get("labels_file", ""))
            match = _LABELS_NAME.fullmatch(name)
            if match is None or match["stem"] != path.stem:
                raise ReviewStateError(f"names no lesion mask file ({name!r})", path)
            target = path.with_name(name)
            try:
                if target.stat().st_size > MAX_LABELS_BYTES:
                    raise ReviewStateError(f"is over {MAX_LABELS_BYTES} bytes", target)
                packed = target.read_bytes()
            except OSError as err:
                raise ReviewStateError(
                    f"lesion mask can't be read: {err.strerror or type(err).__name__}",
                    target,
                    "the lesions of that series start over",
                ) from None
            if labels_digest(packed) != entry.get("labels_sha256"):
                raise ReviewStateError(
                    "lesion mask does not match its checksum (damaged or replaced)",
                    target,
                    "the lesions of that series start over",
                )
            return packed

        return read

    def _drop_unused_masks(self, path: Path) -> None:
        """Remove the study's mask files that neither its file nor a kept one names."""
        named: set[str] = set()
        for review in [path, *(k for _, k in self._kept(path.stem))]:
            try:
                saved = json.loads(review.read_bytes()).get("lesions") or {}
                named.update(str(e.get("labels_file", "")) for e in saved.values())
            except (OSError, ValueError, AttributeError):
                return  # unsure what is still named: keep every file
        for mask in self.root.glob(f"{path.stem}.*.labels.npz"):
            if _LABELS_NAME.fullmatch(mask.name) and mask.name not in named:
                mask.unlink(missing_ok=True)

    def history(self, study_uid: str) -> list[Path]:
        """The files kept aside for ``study_uid`` when the model changed, oldest first."""
        return [path for _, path in self._kept(uid_hash(study_uid))]

    def _kept(self, stem: str) -> list[tuple[int, Path]]:
        """(sequence number, path) of each kept file, oldest first: the number in the name
        (none is 1) orders them, the time written only breaks ties between un-numbered ones."""
        kept = []
        for path in self.root.glob(f"{stem}.*.json"):
            match = _REVIEW_NAME.fullmatch(path.name)
            if match and path.stem != stem:
                try:
                    kept.append((int(match["n"] or 1), path.stat().st_mtime_ns, path.name, path))
                except FileNotFoundError:
                    continue
        return [(n, path) for n, *_, path in sorted(kept)]

    def _keep_previous_model(self, path: Path, new_sha: object) -> None:
        """Copy the study's file aside when it holds another model's review (lock held).

        The copy is written (atomically) before the study's file is replaced, so a kill
        between the two leaves the old review in both places, never in neither.
        """
        if not new_sha:
            return
        try:
            old_bytes = path.read_bytes()
            old_sha = (json.loads(old_bytes).get("model") or {}).get("sha256")
        except FileNotFoundError:
            return
        except (ValueError, AttributeError):  # never overwritten unseen: kept as quarantine does
            target = _corrupt_name(path)
            atomic_write_bytes(target, old_bytes, mode=FILE_MODE)
            log.warning("kept an unreadable review file aside: %s", target.name)
            return
        if not old_sha or old_sha == new_sha:
            return
        kept = self._kept(path.stem)
        keep = next((k for _, k in kept if _same_bytes(k, old_bytes)), None)
        others = [k for _, k in kept if k != keep]  # oldest first: the limit holds at a kill
        for dropped in others[: max(0, len(others) + 1 - MAX_KEPT_PER_STUDY)]:
            dropped.unlink(missing_ok=True)
            log.info("dropped %s (over %d kept reviews)", dropped.name, MAX_KEPT_PER_STUDY)
        if keep is not None:
            return  # already kept, by a save that was killed before its rename
        tag = re.sub(r"[^0-9a-z]", "", str(old_sha).lower())[:12] or "unknown"
        n = max((k for k, _ in kept), default=0) + 1  # after every kept name: a new one
        keep = path.with_name(
            f"{path.stem}.{tag}.json" if n == 1 else f"{path.stem}.{tag}.{n}.json"
        )
        atomic_write_bytes(keep, old_bytes, mode=FILE_MODE)
        log.info("kept the previous model's review as %s", keep.name)

    def quarantine(self, study_uid: str) -> Path | None:
        """Move an unreadable review file aside (``.corrupt-<time>``) so that nothing
        overwrites it; returns where it went."""
        path = self.path_for(study_uid)
        if not path.exists():
            return None
        target = _corrupt_name(path)
        with locked(self.lock_path):
            os.replace(path, target)
        log.warning("moved an unreadable review file aside: %s", target.name)
        return target

    def iter_states(self) -> Iterator[ReviewState]:
        """Every readable review in the store (unreadable files are skipped and logged)."""
        for path in sorted(self.root.glob("*.json")):
            if path.stem.count(".") or len(path.stem) != 16:
                continue  # kept-aside files of earlier models
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                yield ReviewState.from_dict(data, self._labels_reader(path))
            except (OSError, ValueError, KeyError, TypeError) as err:
                log.warning("skipping unreadable review file %s: %s", path.name, type(err).__name__)


def _corrupt_name(path: Path) -> Path:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
    return path.with_name(f"{path.name}.corrupt-{stamp}")


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False
