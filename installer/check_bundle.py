"""Check a built bundle folder against installer/bundle_plan.py, without running it.

    python installer/check_bundle.py dist/radassist [--cpu-only]

Fails (exit 1, one line per problem) when an executable of the flavour, a required Qt plugin,
a decoder's entry points, torchvision's operators (full flavour), a sample study, the icon or
a model file that the repository ships in resources/models is missing, when a bundled model
does not carry its ONNX graphs or differs in its weights (tensor_sha256) from the repository's,
or (--cpu-only) when radassist-train, PyTorch, MONAI, CUDA libraries, Triton or the training
package got in. Prints the size of each top-level folder of the bundle, largest first.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bundle_plan as plan

ROOT = Path(__file__).resolve().parents[1]


def dist_info_dirs(internal: Path, distribution: str) -> list[Path]:
    """The bundle's ``<name>-<version>.dist-info`` folders of ``distribution`` (PEP 503
    normalised: pylibjpeg-libjpeg -> pylibjpeg_libjpeg)."""
    norm = distribution.lower().replace("-", "_")
    return [
        p
        for p in internal.glob("*.dist-info")
        if p.name.lower().replace("-", "_").startswith(norm + "_")
        and p.name[len(norm) + 1 : len(norm) + 2].isdigit()
    ]


def problems(bundle: Path, cpu_only: bool) -> list[str]:
    out: list[str] = []
    internal = bundle / "_internal"
    flavour = plan.flavour(cpu_only)
    for name in flavour.executables:
        exe = bundle / name
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            out.append(f"{exe}: executable missing")
    qt_plugins = internal / "PySide6" / "Qt" / "plugins"
    for rel in plan.REQUIRED_QT_PLUGINS:
        if not (qt_plugins / rel).is_file():
            out.append(f"{qt_plugins / rel}: Qt plugin missing")
    for dist in plan.DECODER_DISTRIBUTIONS:
        found = dist_info_dirs(internal, dist)
        if not found:
            out.append(f"{internal}: no {dist} metadata (its decoders would not be found)")
        elif dist != "pylibjpeg" and not any((d / "entry_points.txt").is_file() for d in found):
            out.append(f"{found[0]}: entry_points.txt missing (pylibjpeg can't find the plugin)")
    if not cpu_only and not list((internal / "torchvision").glob("_C*.so")):
        out.append(f"{internal / 'torchvision'}: torchvision's operators (_C*.so) missing")
    for study in ("chest_xr", "ct_phantom"):
        if not list((internal / "resources" / "sample" / study).glob("*.dcm")):
            out.append(f"{internal / 'resources' / 'sample' / study}: sample study missing")
    for model in plan.bundled_model_names(ROOT):
        path = internal / "resources" / "models" / model
        if not path.is_file():
            out.append(f"{path}: bundled model missing")
        else:
            out += model_problems(path, ROOT / "resources" / "models" / model)
    if not (internal / "bundle-info.json").is_file():
        out.append(f"{internal}: bundle-info.json missing")
    for rel in ("share/applications/radassist.desktop", "install-desktop-entry.sh"):
        if sys.platform.startswith("linux") and not (bundle / rel).is_file():
            out.append(f"{bundle / rel}: missing")
    dangling = [p for p in bundle.rglob("*") if p.is_symlink() and not p.exists()]
    if dangling:
        out.append(f"{dangling[0]}: dangling symbolic link ({len(dangling)} in all)")
    if cpu_only:
        out += cpu_only_problems(bundle)
    return out


def cpu_only_problems(bundle: Path) -> list[str]:
    """What must not be in the CPU flavour: radassist-train, the folders of PyTorch, MONAI,
    CUDA and Triton, and (read from the executable's module archive) their modules and the
    training package."""
    out: list[str] = []
    internal = bundle / "_internal"
    for name in set(plan.EXECUTABLES) - set(plan.flavour(True).executables):
        if (bundle / name).exists():
            out.append(f"{bundle / name}: the CPU flavour has no {name} (it needs PyTorch)")
    for folder in plan.CPU_ONLY_ABSENT_FOLDERS:
        if (internal / folder).exists():
            out.append(f"{internal / folder}: {folder} is in the CPU flavour")
    modules = archive_modules(bundle / "radassist")
    if modules is not None:
        banned = sorted({m.split(".")[0] for m in modules} & set(plan.CPU_ONLY_ABSENT_MODULES))
        if banned:
            out.append(f"{bundle / 'radassist'}: its archive holds {', '.join(banned)}")
    return out


def archive_modules(exe: Path) -> set[str] | None:
    """The module names in an executable's embedded PYZ archive, or None where PyInstaller's
    reader is not installed or the file holds no such archive."""
    try:
        from PyInstaller.archive.readers import CArchiveReader
    except ImportError:
        return None
    try:
        pyz = CArchiveReader(str(exe)).open_embedded_archive("PYZ.pyz")
    except (OSError, KeyError, TypeError, ValueError, RuntimeError):  # ArchiveReadError
        return None
    return set(pyz.toc)


def model_problems(bundled: Path, original: Path) -> list[str]:
    """A bundled model must be the repository's (same tensor_sha256) with its ONNX graphs
    stored (each kind the engine runs, made for those weights), as the app itself reads it."""
    sys.path.insert(0, str(ROOT))
    from desktop_app.infra.errors import RadAssistError
    from desktop_app.model.modeldata import GRAPH_KINDS, read_manifest, read_model_data

    try:
        data = read_model_data(bundled)
        want = read_manifest(original).tensor_sha256
    except RadAssistError as err:
        return [str(err)]
    out: list[str] = []
    if data.manifest.tensor_sha256 != want:
        out.append(
            f"{bundled}: tensor_sha256 {data.sha256[:12]} is not the repository's {want[:12]}"
        )
    # A segmentation model has only its forward graph (per-pixel logits, no heatmaps).
    kinds = ("forward",) if data.manifest.task == "segmentation" else GRAPH_KINDS
    missing = [kind for kind in kinds if kind not in data.graphs]
    if missing:
        out.append(
            f"{bundled}: no stored {', '.join(missing)} graph (build.sh stores them with "
            "radassist-train export-onnx --embed)"
        )
    return out


def sizes(bundle: Path) -> list[tuple[int, str]]:
    """(bytes, name) of each top-level entry of the bundle and of _internal/, largest first."""
    rows: list[tuple[int, str]] = []
    for parent in (bundle, bundle / "_internal"):
        for entry in parent.iterdir():
            if entry.name == "_internal" and parent == bundle:
                continue
            rows.append((_du(entry), str(entry.relative_to(bundle))))
    return sorted(rows, reverse=True)


def _du(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())


def main() -> int:
    parser = argparse.ArgumentParser(description="check a built RadAssist bundle")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--top", type=int, default=15, help="size rows to print")
    args = parser.parse_args()
    found = problems(args.bundle, args.cpu_only)
    rows = sizes(args.bundle)
    total = sum(size for size, _ in rows)
    print(f"bundle {args.bundle}: {total / 1e9:.2f} GB")
    for size, name in rows[: args.top]:
        print(f"  {size / 1e6:9.1f} MB  {name}")
    for line in found:
        print(f"check_bundle: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
