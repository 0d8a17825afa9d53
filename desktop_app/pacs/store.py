"""The local store for retrieved instances, laid out by hashed UIDs (never by tag values).

``<root>/<h(study)>/<h(series)>/<h(sop)>.dcm`` (see :mod:`desktop_app.infra.hashedpaths`):
a received dataset's tag values are attacker-controlled, so none of them ever becomes part of
a path (CVE-2026-56445). Each file is written atomically (temporary file, fsync, rename), so
an interrupted retrieve never leaves a half-written instance behind. Receiving the same
instance again replaces it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from desktop_app.infra.atomicio import atomic_path, atomic_write_bytes
from desktop_app.infra.hashedpaths import clean_uid, instance_relpath, uid_hash

log = logging.getLogger(__name__)

# C-STORE response statuses (PS3.4 B.2.3).
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000


class LocalStore:
    """A folder of received instances (default: ``store`` in the user data folder)."""

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            from desktop_app.infra.userdirs import store_dir

            root = store_dir()
        self.root = Path(root)

    def path_for(self, study_uid: object, series_uid: object, sop_uid: object) -> Path:
        return self.root.joinpath(*instance_relpath(study_uid, series_uid, sop_uid).parts)

    def study_folder(self, study_uid: object) -> Path:
        return self.root / uid_hash(study_uid)

    def series_folder(self, study_uid: object, series_uid: object) -> Path:
        return self.study_folder(study_uid) / uid_hash(series_uid)

    def put_bytes(
        self, study_uid: object, series_uid: object, sop_uid: object, data: bytes
    ) -> Path:
        """Write an encoded DICOM file (preamble, meta and dataset) atomically."""
        return atomic_write_bytes(self.path_for(study_uid, series_uid, sop_uid), data)

    def put_dataset(self, ds: Dataset) -> Path:
        """Write a dataset (which must carry its file meta) atomically."""
        target = self.path_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        with atomic_path(target) as tmp:
            ds.save_as(tmp, enforce_file_format=True)
        return target

    def instances(self, study_uid: object | None = None) -> list[Path]:
        """Stored instance files, of one study or of all, sorted."""
        base = self.root if study_uid is None else self.study_folder(study_uid)
        if not base.is_dir():
            return []
        return sorted(p for p in base.rglob("*.dcm") if p.is_file())


class StoreReceiver:
    """The C-STORE handler of a retrieve: writes each received instance into a store.

    Bound to pynetdicom's ``EVT_C_STORE`` for C-GET (on the same association) and for the
    temporary Storage SCP of a C-MOVE. Thread-safe; ``on_stored`` is called after each write.
    """

    def __init__(self, store: LocalStore, on_stored: Callable[[Path], None] | None = None):
        self.store = store
        self.on_stored = on_stored
        self._lock = threading.Lock()
        self.stored: list[Path] = []
        self.failures: list[str] = []

    def __call__(self, event: Any) -> int:
        try:
            sop_uid = clean_uid(getattr(event.request, "AffectedSOPInstanceUID", ""))
            ds = event.dataset
            study_uid = clean_uid(ds.get("StudyInstanceUID", ""))
            series_uid = clean_uid(ds.get("SeriesInstanceUID", ""))
        except Exception as err:  # a dataset we can't decode: refuse it, don't crash
            return self._fail(f"can't decode a received dataset ({type(err).__name__})")
        if not (sop_uid and study_uid and series_uid):
            return self._fail("a received dataset lacks its study, series or SOP instance UID")
        try:
            path = self.store.put_bytes(
                study_uid, series_uid, sop_uid, event.encoded_dataset(include_meta=True)
            )
        except OSError as err:
            return self._fail(
                f"can't write a received instance: {err.strerror or err}", STATUS_OUT_OF_RESOURCES
            )
        with self._lock:
            self.stored.append(path)
        log.debug("stored instance %s", uid_hash(sop_uid))
        if self.on_stored is not None:
            self.on_stored(path)
        return STATUS_SUCCESS

    def _fail(self, reason: str, status: int = STATUS_CANNOT_UNDERSTAND) -> int:
        with self._lock:
            self.failures.append(reason)
        log.warning("%s", reason)
        return status
