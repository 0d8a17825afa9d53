"""Where RadAssist keeps the user's own data: audit log, PACS nodes, retrieved studies, keys.

The folder comes from platformdirs (e.g. ``~/.local/share/RadAssist`` on Linux,
``%LOCALAPPDATA%\\RadAssist`` on Windows). Setting the environment variable
``RADASSIST_DATA_DIR`` overrides it, which is how tests and portable installs keep it elsewhere.
Every folder is created with owner-only permissions where the platform has them: it holds the
de-identification secret and UID mappings, which must never leave the machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from desktop_app.infra.errors import ConfigError

ENV_VAR = "RADASSIST_DATA_DIR"
APP_NAME = "RadAssist"


def data_dir(create: bool = True) -> Path:
    """The user data folder (``$RADASSIST_DATA_DIR`` if set), created on first use."""
    override = os.environ.get(ENV_VAR, "").strip()
    root = (
        Path(override).expanduser()
        if override
        else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    )
    if create:
        _make_private_dir(root)
    return root


def subdir(name: str, create: bool = True) -> Path:
    """A named folder inside the data folder (``store``, ``deid``, ``reviews``...)."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ConfigError(f"invalid data folder name {name!r}", hint="use a plain folder name")
    folder = data_dir(create) / name
    if create:
        _make_private_dir(folder)
    return folder


def audit_log_path() -> Path:
    """The append-only audit trail (JSON lines)."""
    return data_dir() / "audit.jsonl"


def pacs_config_path() -> Path:
    """The PACS node configuration (JSON)."""
    return data_dir() / "pacs.json"


def store_dir() -> Path:
    """Where retrieved studies land, laid out by hashed UIDs."""
    return subdir("store")


def deid_dir() -> Path:
    """The de-identification secret and UID mappings (never exported)."""
    return subdir("deid")


def _make_private_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise ConfigError(
            f"can't create the data folder: {err.strerror or err}",
            folder,
            f"set {ENV_VAR} to a writable folder",
        ) from None
    if not folder.is_dir():
        raise ConfigError(
            "the data folder path is not a folder", folder, f"set {ENV_VAR} to a folder"
        )
