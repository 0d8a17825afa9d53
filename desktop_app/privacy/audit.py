"""The audit trail: an append-only, hash-chained JSON-lines log in the user data folder.

One record per inference and per review action. Each record is one line of canonical JSON
(sorted keys, no spaces) holding a sequence number ``seq`` (1, 2, ...), the UTC time, the
``kind`` and the ``prev`` field: the SHA-256 of the previous line's bytes, or :data:`GENESIS`
for the first record. Editing, removing, inserting or reordering a line breaks the chain or the
numbering; :func:`verify` names the first bad line and why.

Removing whole records from the *end* leaves a valid chain, so every append also rewrites a
small head file (``<log>.head``, atomically) with the last ``seq`` and its hash; a log that
ends before its head says is reported as truncated. (Someone who can rewrite both files can
forge the whole chain; to guard against that, copy the head hash that ``radassist audit
verify`` prints to somewhere else.)

Appends use ``O_APPEND`` + ``fsync`` under an exclusive lock on ``<log>.lock``
(``fcntl.flock``; ``msvcrt.locking`` on Windows), so two processes never interleave or fork
the chain. Nothing identifying a patient goes in: field names that look like patient
identifiers are refused, and raw UIDs must be hashed first (:func:`record_inference`,
:func:`record_review` do it).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop_app.infra.atomicio import atomic_write_json
from desktop_app.infra.errors import RadAssistError
from desktop_app.infra.filelock import locked
from desktop_app.infra.hashedpaths import uid_hash

log = logging.getLogger(__name__)

GENESIS = "0" * 64
FORMAT_VERSION = 1
RESERVED_FIELDS = frozenset({"seq", "time", "kind", "prev", "v"})

# Normalised (lower case, letters and digits only) names that would carry patient identity.
_FORBIDDEN_NAMES = frozenset(
    {
        "patientname",
        "patientsname",
        "patientid",
        "patientsid",
        "otherpatientids",
        "otherpatientnames",
        "patientbirthdate",
        "patientsbirthdate",
        "birthdate",
        "dateofbirth",
        "dob",
        "mrn",
        "medicalrecordnumber",
        "accessionnumber",
        "patientaddress",
        "patientsaddress",
        "patienttelephonenumbers",
        "ssn",
        "socialsecuritynumber",
        "patientmothersbirthname",
        "patient",
    }
)
_FORBIDDEN_PARTS = ("birth", "patientname", "patientid", "address", "telephone", "phone")
_KIND_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_FIELD_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)+$")
_BAD_HEAD = (-1, "")


def _looks_identifying(name: str) -> bool:
    flat = re.sub(r"[^a-z0-9]", "", name.lower())
    return flat in _FORBIDDEN_NAMES or any(part in flat for part in _FORBIDDEN_PARTS)


def _check_nested_keys(field: str, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            if _looks_identifying(str(key)):
                raise AuditLogError(
                    f"field {field!r} holds a key {str(key)!r} that looks like a patient "
                    "identifier and is refused",
                    hint="the audit trail holds no patient names, IDs or birth dates",
                )
            _check_nested_keys(field, inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            _check_nested_keys(field, inner)


class AuditLogError(RadAssistError):
    """The audit log can't be appended to (unreadable, corrupt tail, refused field)."""


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`. ``first_bad_line`` is 1-based, None when ``ok``."""

    ok: bool
    n_records: int
    first_bad_line: int | None = None
    reason: str = ""
    head_hash: str = GENESIS


def record_hash(line: str | bytes) -> str:
    """SHA-256 (hex) of one record's line, without its newline."""
    data = line.encode("utf-8") if isinstance(line, str) else line
    return hashlib.sha256(data.rstrip(b"\r\n")).hexdigest()


def canonical_line(record: Mapping[str, Any]) -> str:
    """The one-line canonical JSON of a record (sorted keys, compact, UTF-8)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_fields(fields: Mapping[str, Any]) -> None:
    """Refuse field names that look like patient identifiers, reserved names and raw UIDs."""
    for name, value in fields.items():
        if not _FIELD_RE.match(name):
            raise AuditLogError(
                f"field name {name!r} is not allowed",
                hint="use lower-case letters, digits and underscores",
            )
        if name in RESERVED_FIELDS:
            raise AuditLogError(f"field name {name!r} is reserved", hint="choose another name")
        if _looks_identifying(name):
            raise AuditLogError(
                f"field {name!r} looks like a patient identifier and is refused",
                hint="the audit trail holds no patient names, IDs or birth dates",
            )
        if name.endswith("uid") and isinstance(value, str) and _UID_RE.match(value.strip()):
            raise AuditLogError(
                f"field {name!r} holds a raw UID",
                hint="store uid_hash(uid) in a *_hash field instead",
            )
        _check_nested_keys(name, value)
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise AuditLogError(
                f"field {name!r} is not plain JSON data: {err}",
                hint="use strings, numbers, booleans, lists and dicts",
            ) from None


class AuditLog:
    """An append-only audit trail at ``path`` (default: ``audit.jsonl`` in the data folder)."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            from desktop_app.infra.userdirs import audit_log_path

            path = audit_log_path()
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one record and return it (with ``seq``, ``time`` and ``prev`` filled in)."""
        if not _KIND_RE.match(kind):
            raise AuditLogError(
                f"record kind {kind!r} is not allowed",
                hint="use lower-case letters, digits, '_', '-' and '.'",
            )
        check_fields(fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.lock_path):
            seq, prev = self._tail()
            record: dict[str, Any] = dict(fields)
            record.update({"v": FORMAT_VERSION, "seq": seq + 1, "time": utc_now(), "kind": kind})
            record["prev"] = prev
            line = canonical_line(record)
            data = (line + "\n").encode("utf-8")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise AuditLogError(
                        f"short write to the audit log ({written} of {len(data)} bytes)",
                        self.path,
                        "check free disk space, then run `radassist audit verify`",
                    )
                os.fsync(fd)
            finally:
                os.close(fd)
            atomic_write_json(
                self.head_path, {"seq": record["seq"], "hash": record_hash(line)}, indent=None
            )
        log.debug("audit record %d (%s) appended", record["seq"], kind)
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        """The records in order (no verification; use :func:`verify` for that)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            for i, raw in enumerate(fh, start=1):
                record = _parse(raw) if raw.strip() else None
                if record is None:
                    raise AuditLogError(
                        f"line {i} is not a valid audit record",
                        self.path,
                        "run `radassist audit verify`",
                    )
                yield record

    def tail(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` records (all if ``n`` <= 0)."""
        items = list(self.records())
        return items if n <= 0 else items[-n:]

    def _tail(self) -> tuple[int, str]:
        """(seq, hash) of the last record, checking that the file ends cleanly."""
        last = _last_line(self.path)
        if last is None:
            head = _read_head(self.head_path)
            if head is not None and head[0] > 0:
                raise AuditLogError(
                    f"the audit log is empty or missing but its head says {head[0]} records",
                    self.path,
                    "records were removed; run `radassist audit verify` and keep the damaged log",
                )
            return 0, GENESIS
        if not last.endswith(b"\n"):
            raise AuditLogError(
                "the audit log's last line is incomplete (truncated write)",
                self.path,
                "run `radassist audit verify`; move the damaged log aside to start a new one",
            )
        record = _parse(last)
        if record is None:
            raise AuditLogError(
                "the audit log's last record is not valid",
                self.path,
                "run `radassist audit verify`; move the damaged log aside to start a new one",
            )
        seq = int(record["seq"])
        head = _read_head(self.head_path)
        if head is not None and head[0] > seq:
            raise AuditLogError(
                f"the audit log ends at record {seq} but its head says {head[0]}",
                self.path,
                "records were removed; run `radassist audit verify` and keep the damaged log",
            )
        return seq, record_hash(last)


def verify(path: str | Path | None = None) -> VerifyResult:
    """Check the whole chain; report the first bad line (1-based) and why."""
    audit = AuditLog(path)
    head = _read_head(audit.head_path)
    if head == _BAD_HEAD:
        return VerifyResult(False, 0, None, "the head file is unreadable (edited)")
    try:
        data = audit.path.read_bytes()
    except FileNotFoundError:
        if head is not None and head[0] > 0:
            return VerifyResult(
                False, 0, 1, f"the log is missing but its head says {head[0]} records (removed)"
            )
        return VerifyResult(True, 0)
    ends_cleanly = data.endswith(b"\n") or not data
    lines = data.split(b"\n")
    if ends_cleanly:
        lines = lines[:-1]
    records = [_parse(raw) for raw in lines]
    seqs = {r["seq"] for r in records if r is not None}
    prev = GENESIS
    for i, (raw, record) in enumerate(zip(lines, records, strict=True), start=1):
        if i == len(lines) and not ends_cleanly:
            return VerifyResult(False, i - 1, i, "the last line is incomplete (truncated)", prev)
        if record is None:
            why = "not a valid audit record (edited or truncated)"
            return VerifyResult(False, i - 1, i, why, prev)
        seq = record["seq"]
        if seq != i:
            if seq > i:
                if i in seqs:
                    why = f"record {seq} comes before record {i} (reordered)"
                else:
                    why = f"record {seq} follows record {i - 1} (records removed)"
            else:
                why = (
                    f"record {seq} appears again at line {i} (a record was inserted or duplicated)"
                )
            return VerifyResult(False, i - 1, i, why, prev)
        if record["prev"] != prev:
            if i == 1:
                why = "the first record does not chain from the genesis value (edited)"
                return VerifyResult(False, 0, 1, why, prev)
            why = (
                f"edited: line {i} no longer chains to it (or a record was removed, inserted "
                f"or replaced between lines {i - 1} and {i})"
            )
            return VerifyResult(False, i - 2, i - 1, why, prev)
        prev = record_hash(raw)
    n = len(lines)
    if head is None:
        if n > 0:
            return VerifyResult(
                False, n, n + 1, "the head file is missing (records may have been removed)", prev
            )
        return VerifyResult(True, 0, None, "", prev)
    head_seq, head_hash = head
    if head_seq > n:
        why = f"the log ends at record {n} but its head says {head_seq} (records removed)"
        return VerifyResult(False, n, n + 1, why, prev)
    # The head may lag the log by a record after a crash between the two writes.
    if head_seq > 0 and head_hash != record_hash(lines[head_seq - 1]):
        return VerifyResult(False, n, head_seq, "it does not match the head (edited)", prev)
    if head_seq < n - 1:
        why = f"the head says {head_seq} records but the log has {n} (appended outside RadAssist)"
        return VerifyResult(False, n, head_seq + 1, why, prev)
    return VerifyResult(True, n, None, "", prev)


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("seq"), int)
        or not isinstance(record.get("prev"), str)
    ):
        return None
    return record


def record_inference(
    audit: AuditLog,
    *,
    study_uid: str,
    series_uid: str,
    model_sha256: str,
    device: str,
    timings_ms: Mapping[str, float],
    forced: bool = False,
    in_distribution: bool | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One ``inference`` record: hashed study/series UIDs, model hash, device and timings;
    ``forced``: the series was outside the model's intended input and run anyway ("Run
    anyway", ``predict --force``); ``in_distribution``: the run's out-of-distribution verdict
    (None: the model has no OOD statistics). Both are always recorded."""
    return audit.append(
        "inference",
        study_hash=uid_hash(study_uid),
        series_hash=uid_hash(series_uid),
        model_sha256=model_sha256,
        device=device,
        timings_ms={str(k): round(float(v), 3) for k, v in timings_ms.items()},
        forced=bool(forced),
        in_distribution=in_distribution,
        **extra,
    )


def record_review(
    audit: AuditLog,
    *,
    study_uid: str,
    label: str,
    verdict: str,
    reviewer: str,
    **extra: Any,
) -> dict[str, Any]:
    """One ``review`` record: hashed study UID, finding label, verdict and reviewer (staff)."""
    return audit.append(
        "review",
        study_hash=uid_hash(study_uid),
        label=label,
        verdict=verdict,
        reviewer=reviewer,
        **extra,
    )


def _last_line(path: Path) -> bytes | None:
    """The last non-empty line of ``path`` (with its newline if it has one), or None."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return None
    with fh:
        end = fh.seek(0, os.SEEK_END)
        if end == 0:
            return None
        block = 4096
        pos = end
        buf = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            buf = fh.read(step) + buf
            body = buf[:-1] if buf.endswith(b"\n") else buf
            cut = body.rfind(b"\n")
            if cut >= 0:
                return buf[cut + 1 :]
        return buf


def _read_head(path: Path) -> tuple[int, str] | None:
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
        return int(head["seq"]), str(head["hash"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, OSError):
        return _BAD_HEAD
