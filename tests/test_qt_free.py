"""Every package below the GUI and the training module import with every Qt binding made unimportable.

import-linter checks the static imports; this proves it at run time too, the napari way.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import desktop_app
import training

ROOT = Path(__file__).resolve().parents[1]


def _modules(package: object) -> list[str]:
    names = [package.__name__]  # type: ignore[attr-defined]
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):  # type: ignore[attr-defined]
        if not info.name.startswith(("desktop_app.qt", "desktop_app.__main__")):
            names.append(info.name)
    return names


def test_packages_below_the_gui_and_training_import_without_qt() -> None:
    modules = _modules(desktop_app) + _modules(training)
    script = (
        "import sys\n"
        "for blocked in ('PySide6', 'PySide2', 'PyQt5', 'PyQt6', 'shiboken6', 'qtpy', 'superqt'):\n"
        "    sys.modules[blocked] = None\n"
        f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
        "print('ok', len(sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok")
