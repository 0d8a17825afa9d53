"""The model catalog: the bundled and the installed model files, listed from their manifests.

Two folders hold models: the bundled one (``paths.bundled_models_dir()``, ``resources/models``)
and the user's installed one (:func:`installed_models_dir`: ``$RADASSIST_MODELS_DIR`` if set,
else ``models`` in the user data folder, e.g. ``~/.local/share/RadAssist/models``). Listing reads
each file's header only (``modeldata.read_manifest``: size-limited, strict, no weights, no
torch), so the GUI and ``radassist info`` can show it at once. A file that can't be read is an
entry too, marked unusable with its one-line reason: a broken download never hides the others.

Order (:attr:`ModelCatalog.entries`, also the preference when several models fit a series):
bundled ``radassist-demo*`` files first, then every other file by name, bundled before
installed on a tie. Deterministic, whatever the folders' listing order.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from desktop_app.infra.errors import RadAssistError
from desktop_app.infra.userdirs import data_dir
from desktop_app.model import paths
from desktop_app.model.applicability import IntendedInput
from desktop_app.model.archs import refuse_volume_model
from desktop_app.model.modeldata import read_manifest

log = logging.getLogger(__name__)

MODELS_DIR_ENV = "RADASSIST_MODELS_DIR"
INSTALLED_SUBDIR = "models"
MAX_FILES = 256  # per folder: a catalog is a handful of models, not a dump of files

Origin = Literal["bundled", "installed"]


def installed_models_dir() -> Path:
    """The user's models folder: ``$RADASSIST_MODELS_DIR``, else ``models`` in the data folder
    (``userdirs.data_dir``). Not created here: an absent folder holds no models."""
    override = os.environ.get(MODELS_DIR_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return data_dir(create=False) / INSTALLED_SUBDIR


@dataclass(frozen=True)
class CatalogEntry:
    """One model file of the catalog. ``problem`` is None for a usable file, else the one-line
    reason it can't be used (then only ``path`` and ``origin`` are meaningful)."""

    path: Path
    origin: Origin
    name: str = ""
    version: str = ""
    task: str = ""
    labels: tuple[str, ...] = ()
    intended_input: IntendedInput | None = None
    tensor_sha256: str = ""
    problem: str | None = None

    @property
    def usable(self) -> bool:
        return self.problem is None

    @property
    def file_name(self) -> str:
        return self.path.name

    @property
    def input_text(self) -> str:
        """The intended input in a phrase ("CT slices", "chest CR/DX radiographs"), "" when the
        file is unusable."""
        return self.intended_input.describe() if self.intended_input is not None else ""

    def title(self) -> str:
        """``radassist-ct-nodule-lite0 (CT nodule 1.0, segmentation)``: the file and what it is,
        for messages."""
        if not self.usable:
            return self.file_name
        return f"{self.file_name} ({self.name} {self.version}, {self.task})"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "origin": self.origin,
            "file_name": self.file_name,
            "name": self.name or None,
            "version": self.version or None,
            "task": self.task or None,
            "labels": list(self.labels),
            "intended_input": self.input_text or None,
            "tensor_sha256": self.tensor_sha256 or None,
            "usable": self.usable,
            "problem": self.problem,
        }


def _preference(entry: CatalogEntry) -> tuple[int, str, int]:
    demo = entry.origin == "bundled" and entry.file_name.startswith(paths.PREFERRED_PREFIX)
    return (0 if demo else 1, entry.file_name, 0 if entry.origin == "bundled" else 1)


@dataclass(frozen=True)
class ModelCatalog:
    """Every model file of both folders, in preference order (see the module docstring)."""

    entries: tuple[CatalogEntry, ...]
    bundled_dir: Path
    installed_dir: Path

    @property
    def usable(self) -> tuple[CatalogEntry, ...]:
        return tuple(e for e in self.entries if e.usable)

    def installed(self) -> tuple[CatalogEntry, ...]:
        return tuple(e for e in self.entries if e.origin == "installed")

    def bundled(self) -> tuple[CatalogEntry, ...]:
        return tuple(e for e in self.entries if e.origin == "bundled")

    def by_sha(self, tensor_sha256: str) -> CatalogEntry | None:
        """The usable entry whose weights have this hash (the model a review was made with),
        or None."""
        if not tensor_sha256:
            return None
        return next((e for e in self.usable if e.tensor_sha256 == tensor_sha256), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "bundled_dir": str(self.bundled_dir),
            "installed_dir": str(self.installed_dir),
            "models": [e.to_json() for e in self.entries],
        }


def read_entry(path: Path, origin: Origin) -> CatalogEntry:
    """The entry of one file: its manifest's name, task, labels, intended input and tensor
    hash, or (any refusal or OS error) an unusable entry with the one-line reason."""
    try:
        manifest = read_manifest(path)
        refuse_volume_model(manifest.architecture, path)
    except RadAssistError as err:
        return CatalogEntry(path, origin, problem=err.reason)
    except (OSError, ValueError) as err:  # e.g. a folder vanished while listed
        return CatalogEntry(path, origin, problem=f"can't be read: {err}")
    return CatalogEntry(
        path=path,
        origin=origin,
        name=manifest.name,
        version=manifest.version,
        task=manifest.task,
        labels=tuple(manifest.labels),
        intended_input=manifest.intended_input,
        tensor_sha256=manifest.tensor_sha256,
    )


def _model_files(folder: Path) -> list[Path]:
    """The ``.safetensors`` files directly in ``folder`` (none when it is absent or can't be
    listed: said in the log), at most MAX_FILES by name."""
    try:
        files = sorted(
            p for p in folder.iterdir() if p.suffix.lower() == paths.MODEL_SUFFIX and p.is_file()
        )
    except OSError as err:
        if folder.exists():
            log.warning("models folder can't be listed: %s", err.strerror or err)
        return []
    if len(files) > MAX_FILES:
        log.warning("models folder has %d model files; listing the first %d", len(files), MAX_FILES)
    return files[:MAX_FILES]


def load_catalog(
    bundled_dir: Path | None = None, installed_dir: Path | None = None
) -> ModelCatalog:
    """The catalog of ``bundled_dir`` (default ``paths.bundled_models_dir()``) and
    ``installed_dir`` (default :func:`installed_models_dir`). Reads headers only."""
    bundled = paths.bundled_models_dir() if bundled_dir is None else bundled_dir
    installed = installed_models_dir() if installed_dir is None else installed_dir
    entries = [read_entry(p, "bundled") for p in _model_files(bundled)]
    if installed.resolve() != bundled.resolve():
        entries += [read_entry(p, "installed") for p in _model_files(installed)]
    return ModelCatalog(tuple(sorted(entries, key=_preference)), bundled, installed)


__all__ = [
    "MODELS_DIR_ENV",
    "CatalogEntry",
    "ModelCatalog",
    "installed_models_dir",
    "load_catalog",
    "read_entry",
]
