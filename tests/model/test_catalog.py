"""The model catalog (bundled + installed model files, from their manifests) and the choice
of a model per series (``inference.modelchoice``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from desktop_app.inference.inputcheck import headers_of
from desktop_app.inference.modelchoice import choose_model
from desktop_app.model.catalog import MODELS_DIR_ENV, installed_models_dir, load_catalog
from desktop_app.model.modeldata import read_manifest
from desktop_app.studies.index import index_paths
from desktop_app.studies.series import assemble
from desktop_app.studies.volume import SeriesVolume
from tests.helpers.modelchoice import (
    CLASSIFIER,
    SEGMENTER,
    chest_dx,
    ct_series,
    make_ct_segmenter,
    models_folder,
    mr_series,
)


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models_folder(tmp_path_factory.mktemp("bundled"))


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SeriesVolume]:
    root = tmp_path_factory.mktemp("series")
    folders = {
        "ct": ct_series(root / "ct"),
        "dx": chest_dx(root / "dx").parent,
        "mr": mr_series(root / "mr"),
    }
    out = {}
    for kind, folder in folders.items():
        (_, _, one), *_ = list(index_paths([str(folder)]).iter_series())
        out[kind] = SeriesVolume(assemble(one).stacks[0])
    return out


class TestInstalledModelsDir:
    def test_the_environment_overrides_it(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "mine"))
        assert installed_models_dir() == tmp_path / "mine"

    def test_default_is_models_in_the_data_folder(
        self, monkeypatch: pytest.MonkeyPatch, data_dir: Path
    ) -> None:
        monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
        assert installed_models_dir() == data_dir / "models"
        assert not data_dir.exists()  # listing never creates the data folder


class TestLoadCatalog:
    def test_bundled_and_installed_entries_from_the_manifests(
        self, bundled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        installed = tmp_path / "installed"
        installed.mkdir()
        make_ct_segmenter(installed / "a-site-model.safetensors")
        (installed / "notes.txt").write_text("not a model")
        monkeypatch.setenv(MODELS_DIR_ENV, str(installed))
        catalog = load_catalog(bundled_dir=bundled)
        assert catalog.installed_dir == installed
        # radassist-demo* first, then by file name; bundled before installed
        assert [(e.file_name, e.origin) for e in catalog.entries] == [
            (CLASSIFIER, "bundled"),
            ("a-site-model.safetensors", "installed"),
            (SEGMENTER, "bundled"),
        ]
        seg = catalog.entries[2]
        manifest = read_manifest(bundled / SEGMENTER)
        assert seg.usable and seg.problem is None
        assert (seg.name, seg.task, seg.labels) == (
            "ct test segmenter",
            "segmentation",
            ("nodule",),
        )
        assert seg.tensor_sha256 == manifest.tensor_sha256
        assert seg.input_text == "CT slices"
        assert catalog.entries[0].task == "classification"
        assert catalog.entries[0].input_text == "chest CR/DX radiographs"
        doc = catalog.to_json()
        assert doc["models"][2]["intended_input"] == "CT slices"
        assert doc["models"][2]["usable"] is True

    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            (b"", "file is"),
            (b"\x80\x04\x95garbage", "pickle"),
            (b"\x10\x00\x00\x00\x00\x00\x00\x00{}              ", "without a RadAssist manifest"),
        ],
    )
    def test_an_unreadable_file_is_listed_unusable_with_its_reason(
        self, tmp_path: Path, content: bytes, reason: str
    ) -> None:
        (tmp_path / "broken.safetensors").write_bytes(content)
        catalog = load_catalog(bundled_dir=tmp_path, installed_dir=tmp_path / "none")
        (entry,) = catalog.entries
        assert not entry.usable and entry.problem is not None
        assert reason in entry.problem and "\n" not in entry.problem
        assert catalog.usable == ()
        assert entry.to_json()["problem"] == entry.problem

    def test_absent_folders_make_an_empty_catalog(self, tmp_path: Path) -> None:
        catalog = load_catalog(bundled_dir=tmp_path / "a", installed_dir=tmp_path / "b")
        assert catalog.entries == ()


class TestChooseModel:
    @pytest.mark.parametrize(("kind", "expected"), [("ct", SEGMENTER), ("dx", CLASSIFIER)])
    def test_the_first_model_whose_intended_input_fits(
        self, bundled: Path, series: dict[str, SeriesVolume], kind: str, expected: str
    ) -> None:
        catalog = load_catalog(bundled_dir=bundled, installed_dir=bundled / "none")
        choice = choose_model(headers_of(series[kind]), catalog)
        assert choice.entry is not None and choice.entry.file_name == expected
        assert choice.check is not None and choice.check.applicable
        assert choice.also_fit == ()
        assert expected in choice.describe()

    def test_a_series_no_model_fits_is_said_in_one_line(
        self, bundled: Path, series: dict[str, SeriesVolume]
    ) -> None:
        catalog = load_catalog(bundled_dir=bundled, installed_dir=bundled / "none")
        choice = choose_model(headers_of(series["mr"]), catalog)
        assert choice.entry is None and not choice.found
        assert choice.reason == (
            "no model fits this MR series (3 slices): "
            f"{CLASSIFIER} is for chest CR/DX radiographs; {SEGMENTER} is for CT slices"
        )

    def test_several_fit_the_first_runs_and_the_others_are_named(
        self, bundled: Path, series: dict[str, SeriesVolume], tmp_path: Path
    ) -> None:
        make_ct_segmenter(tmp_path / "zz-other-ct.safetensors", bias=-6.0)
        catalog = load_catalog(bundled_dir=bundled, installed_dir=tmp_path)
        choice = choose_model(headers_of(series["ct"]), catalog)
        assert choice.entry is not None and choice.entry.file_name == SEGMENTER
        assert choice.also_fit == ("zz-other-ct.safetensors",)

    def test_no_usable_model_names_the_folders(
        self, series: dict[str, SeriesVolume], tmp_path: Path
    ) -> None:
        (tmp_path / "broken.safetensors").write_bytes(b"")
        catalog = load_catalog(bundled_dir=tmp_path, installed_dir=tmp_path / "inst")
        choice = choose_model(headers_of(series["ct"]), catalog)
        assert choice.reason == (
            f"no model fits this CT series (3 slices): there is no usable model file in "
            f"{tmp_path} or {tmp_path / 'inst'} (1 unusable)"
        )
