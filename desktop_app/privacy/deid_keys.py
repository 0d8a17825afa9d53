"""The local secret and UID mapping behind de-identification; both stay on this machine.

New UIDs are derived from the original UID and a 256-bit secret created on first use
(HMAC-SHA256 -> ``2.25.<integer>``, PS3.5 B.2: a UID from a 128-bit number under the 2.25
root). The same secret gives the same new UIDs in every run, so a study exported twice stays
one study. Every mapping made is also remembered in ``uid_map.json`` (written atomically under
a lock), so mappings stay stable even if the secret is replaced, and an authorised local user
can trace a shared UID back. Neither file is ever written next to exported data.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from desktop_app.infra.atomicio import atomic_write_json, atomic_write_text
from desktop_app.infra.errors import ExportError
from desktop_app.infra.filelock import locked

log = logging.getLogger(__name__)

SECRET_FILE = "secret.key"
MAP_FILE = "uid_map.json"
LOCK_FILE = ".lock"
MAP_VERSION = 1


class DeidKeyStore:
    """The secret and the original -> new UID map in ``root`` (default: ``<data>/deid``)."""

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            from desktop_app.infra.userdirs import deid_dir

            root = deid_dir()
        self.root = Path(root)
        self._secret: bytes | None = None

    @property
    def map_path(self) -> Path:
        return self.root / MAP_FILE

    def secret(self) -> bytes:
        """The 32-byte secret, created (owner-only) on first use."""
        if self._secret is None:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.root / SECRET_FILE
            with self._locked():
                if not path.exists():
                    atomic_write_text(path, secrets.token_hex(32) + "\n")
                    _owner_only(path)
                    log.info("created a new de-identification secret")
                text = path.read_text(encoding="ascii").strip()
            try:
                value = bytes.fromhex(text)
            except ValueError:
                value = b""
            if len(value) < 16:
                raise ExportError(
                    "the de-identification secret is damaged",
                    path,
                    "restore it from a backup; deleting it changes every new UID from now on",
                )
            self._secret = value
        return self._secret

    def derive(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA256 of ``purpose|value`` under the secret."""
        return hmac.new(self.secret(), f"{purpose}|{value}".encode(), hashlib.sha256).digest()

    def load_map(self) -> dict[str, str]:
        """original UID -> new UID, as remembered so far."""
        try:
            data = json.loads(self.map_path.read_text(encoding="utf-8"))
            uids = data["uids"]
            if not isinstance(uids, dict):
                raise TypeError
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError) as err:
            raise ExportError(
                f"the UID mapping store can't be read ({type(err).__name__})",
                self.map_path,
                "restore it from a backup or move it aside",
            ) from None
        return {str(k): str(v) for k, v in uids.items()}

    def remember(self, new_entries: Mapping[str, str]) -> None:
        """Merge ``new_entries`` into the store; an existing mapping always wins."""
        if not new_entries:
            return
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            current = self.load_map()
            added = {k: v for k, v in new_entries.items() if k not in current}
            if not added:
                return
            current.update(added)
            atomic_write_json(self.map_path, {"version": MAP_VERSION, "uids": current}, indent=0)
            _owner_only(self.map_path)
        log.debug("remembered %d new UID mappings", len(added))

    def original_of(self, new_uid: str) -> str | None:
        """The original UID behind a new one, if it was made here."""
        for original, new in self.load_map().items():
            if new == new_uid:
                return original
        return None

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.root / LOCK_FILE)


def _owner_only(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.chmod(path, 0o600)
