"""The local store for retrieved instances, laid out by hashed UIDs (never by tag values).

``<root>/<h(study)>/<h(series)>/<h(sop)>.dcm`` (see :mod:`desktop_app.infra.hashedpaths`):
a received dataset's tag values are attacker-controlled, so none of them ever becomes part of
a path (CVE-2026-56445). Each file is written atomically (temporary file, fsync, rename), so
an interrupted retrieve never leaves a half-written instance behind. Receiving the same
instance again replaces it.

A peer is not trusted to send what was asked for: the receiver of a retrieve stores only
instances of the requested study (and series), with valid UIDs (PS3.5 9.1) whose SOP Instance
UID agrees with the C-STORE request's Affected SOP Instance UID (PS3.7 9.1.1.1); the others
are refused and counted by reason.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from desktop_app.dicom.dicomfile import quiet_pydicom
from desktop_app.infra.atomicio import atomic_path, atomic_write_bytes
from desktop_app.infra.hashedpaths import clean_uid, instance_relpath, uid_hash
from desktop_app.pacs.requests import valid_uid

log = logging.getLogger(__name__)

# C-STORE response statuses (PS3.4 B.2.3).
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
# General status (PS3.7 C.4.7): the instance is not one this retrieve may store.
STATUS_INVALID_OBJECT = 0x0117


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


# Why a received instance was refused -> how the count of them reads (one line each).
_REFUSALS = {
    "other_study": ("instance of another study was", "instances of other studies were"),
    "other_series": ("instance of another series was", "instances of other series were"),
    "invalid_uid": (
        "instance with an invalid UID (PS3.5 9.1) was",
        "instances with an invalid UID (PS3.5 9.1) were",
    ),
    "sop_mismatch": (
        "instance whose SOP Instance UID differs from its C-STORE request was",
        "instances whose SOP Instance UID differs from their C-STORE request were",
    ),
    "missing_uid": (
        "instance without its study, series or SOP instance UID was",
        "instances without their study, series or SOP instance UID were",
    ),
    "undecodable": (
        "received dataset that can't be decoded was",
        "received datasets that can't be decoded were",
    ),
}


def refusal_text(reason: str, count: int) -> str:
    """``"6 instances of other studies were refused"`` for ``("other_study", 6)``."""
    one, many = _REFUSALS[reason]
    return f"{count} {one if count == 1 else many} refused"


class StoreReceiver:
    """The C-STORE handler of a retrieve: writes each received instance into a store.

    Bound to pynetdicom's ``EVT_C_STORE`` for C-GET (on the same association) and for the
    temporary Storage SCP of a C-MOVE. With ``study_uid`` (and ``series_uid``) it stores only
    instances of that study (series); everything else a peer sends is refused with a failure
    status, not written, and counted in :attr:`refused`. Thread-safe; ``on_stored`` is called
    after each write.
    """

    def __init__(
        self,
        store: LocalStore,
        on_stored: Callable[[Path], None] | None = None,
        *,
        study_uid: str | None = None,
        series_uid: str | None = None,
    ) -> None:
        self.store = store
        self.on_stored = on_stored
        self.study_uid = clean_uid(study_uid) if study_uid else None
        self.series_uid = clean_uid(series_uid) if series_uid else None
        self._lock = threading.Lock()
        self.stored: list[Path] = []
        self.refused: Counter[str] = Counter()
        self._write_errors: list[str] = []

    @property
    def failures(self) -> list[str]:
        """One line per kind of refusal (with its count), then each write error."""
        with self._lock:
            counted = [refusal_text(reason, n) for reason, n in self.refused.items()]
            return counted + list(self._write_errors)

    def __call__(self, event: Any) -> int:
        try:
            uids = _received_uids(event)
        except Exception:  # a dataset we can't decode: refuse it, don't crash
            return self._refuse("undecodable")
        reason = self._check(*uids)
        if reason:
            return self._refuse(reason)
        _, study_uid, series_uid, sop_uid = uids
        try:
            path = self.store.put_bytes(
                study_uid, series_uid, sop_uid, event.encoded_dataset(include_meta=True)
            )
        except OSError as err:
            message = f"can't write a received instance: {err.strerror or err}"
            with self._lock:
                if message not in self._write_errors:
                    self._write_errors.append(message)
            log.warning("%s", message)
            return STATUS_OUT_OF_RESOURCES
        with self._lock:
            self.stored.append(path)
        log.debug("stored instance %s", uid_hash(sop_uid))
        if self.on_stored is not None:
            self.on_stored(path)
        return STATUS_SUCCESS

    def _check(self, request_sop: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
        """The refusal reason for an instance, or ``""`` if it may be stored."""
        if not (request_sop and study_uid and series_uid and sop_uid):
            return "missing_uid"
        if not all(valid_uid(u) for u in (request_sop, study_uid, series_uid, sop_uid)):
            return "invalid_uid"
        if sop_uid != request_sop:
            return "sop_mismatch"
        if self.study_uid is not None and study_uid != self.study_uid:
            return "other_study"
        if self.series_uid is not None and series_uid != self.series_uid:
            return "other_series"
        return ""

    def _refuse(self, reason: str) -> int:
        with self._lock:
            self.refused[reason] += 1
        # The peer's values are never logged: only why, by a fixed key.
        log.debug("refused a received instance: %s", reason)
        return STATUS_INVALID_OBJECT if reason != "undecodable" else STATUS_CANNOT_UNDERSTAND


def _received_uids(event: Any) -> tuple[str, str, str, str]:
    """(request's Affected SOP Instance UID, study, series and SOP Instance UIDs of the
    dataset), each without its padding; ``""`` where absent."""
    request_sop = clean_uid(getattr(event.request, "AffectedSOPInstanceUID", None) or "")
    with quiet_pydicom():  # pydicom's warnings would repeat the peer's values
        ds = event.dataset
        return (
            request_sop,
            clean_uid(ds.get("StudyInstanceUID", "")),
            clean_uid(ds.get("SeriesInstanceUID", "")),
            clean_uid(ds.get("SOPInstanceUID", "")),
        )
