"""Where the bundled model lives: ``resources/models/`` beside the packages (a source checkout
or an installed tree), or inside a PyInstaller bundle. No torch, so the GUI can show the path
before any model is loaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

from desktop_app.infra.errors import ModelFileError

MODEL_SUFFIX = ".safetensors"
PREFERRED_PREFIX = "radassist-demo"


def resources_dir() -> Path:
    """``resources/``: in a PyInstaller bundle under ``sys._MEIPASS``, else beside the
    ``desktop_app`` package."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def bundled_models_dir() -> Path:
    return resources_dir() / "models"


def bundled_model_files(folder: Path | None = None) -> list[Path]:
    """The ``.safetensors`` files in the bundled models folder, sorted by name."""
    folder = bundled_models_dir() if folder is None else folder
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == MODEL_SUFFIX and p.is_file())


def default_model_path(folder: Path | None = None) -> Path:
    """The bundled default model: the only model file there, else the first whose name starts
    with ``radassist-demo``. ModelFileError (naming the folder and what is in it) otherwise."""
    folder = bundled_models_dir() if folder is None else folder
    files = bundled_model_files(folder)
    if len(files) == 1:
        return files[0]
    preferred = [p for p in files if p.name.startswith(PREFERRED_PREFIX)]
    if preferred:
        return preferred[0]
    if not files:
        raise ModelFileError(
            "no bundled model: the folder has no .safetensors file",
            folder,
            "train the demo model with `make model`, or pass --model FILE",
        )
    raise ModelFileError(
        f"several models and none named {PREFERRED_PREFIX}*: " + ", ".join(p.name for p in files),
        folder,
        "pass --model FILE",
    )
