"""File names derived from hashed UIDs, never from tag values.

A DICOM tag value is attacker-controlled text; building a path from it invites path traversal
(``../``), device names and overlong names (CVE-2026-56445). Every file the app writes for an
instance (retrieved from a PACS, de-identified copies) is therefore placed at
``<h(study)>/<h(series)>/<h(sop)>.dcm`` where ``h`` is the first 16 hex digits of the SHA-256
of the UID (PS3.5 9.1: a UID is at most 64 characters of digits and dots; trailing NUL/space
padding is removed before hashing so that padded and unpadded copies agree).
"""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath

HASH_HEX_DIGITS = 16


def clean_uid(uid: object) -> str:
    """The UID as text without the NUL or space padding of PS3.5 6.2 (UI)."""
    return str(uid if uid is not None else "").strip("\x00 ")


def uid_hash(uid: object, digits: int = HASH_HEX_DIGITS) -> str:
    """First ``digits`` hex digits of SHA-256 of the cleaned UID; safe to log and to use as a name."""
    return hashlib.sha256(clean_uid(uid).encode("utf-8", "replace")).hexdigest()[:digits]


def instance_relpath(study_uid: object, series_uid: object, sop_uid: object) -> PurePosixPath:
    """``<h(study)>/<h(series)>/<h(sop)>.dcm``, relative to a store's root."""
    return PurePosixPath(uid_hash(study_uid), uid_hash(series_uid), uid_hash(sop_uid) + ".dcm")
