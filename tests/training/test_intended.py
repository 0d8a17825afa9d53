"""training.intended: the model file's intended input from the train split's headers, the
config's ``applicability`` overrides, and their validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from desktop_app.infra.errors import ConfigError
from desktop_app.phantoms.studies import write_chest_xr, write_ct_series
from tests.helpers.dicomfiles import image_dataset, save
from training.config import ApplicabilityConfig, config_from_dict
from training.data import Record
from training.intended import intended_from_headers, intended_input_for, summarise_headers


def _records(paths: list[Path]) -> list[Record]:
    return [Record(i + 2, p, (0.0,), f"p{i}", None) for i, p in enumerate(paths)]


@pytest.fixture(scope="module")
def chest(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("chest")
    return [
        write_chest_xr(root / "a.dcm", 1, rows=96, modality="DX")[0],
        write_chest_xr(root / "b.dcm", 2, rows=128, cols=80, modality="CR")[0],
    ]


class TestFromHeaders:
    def test_chest_radiographs(self, chest: list[Path]) -> None:
        ii = intended_input_for(_records(chest), ApplicabilityConfig())
        assert ii.modalities == ("CR", "DX")
        assert ii.body_parts == ("CHEST",) and ii.view_positions == ("PA",)
        assert ii.image_kind == "projection"
        assert ii.min_matrix == 40  # half of the smallest side (80)
        assert ii.source == "fit: 2 images"

    def test_ct_slices_are_slices(self, tmp_path: Path) -> None:
        files = list(write_ct_series(tmp_path / "ct", 3, slices=3, rows=64).paths)
        ii = intended_input_for(_records(files), ApplicabilityConfig())
        assert ii.modalities == ("CT",) and ii.image_kind == "slice"

    def test_mixed_projection_and_slices_is_any(self, chest: list[Path], tmp_path: Path) -> None:
        ct = save(image_dataset(rows=64, columns=64, modality="CT"), tmp_path / "ct.dcm")
        assert intended_input_for(_records([*chest, ct]), ApplicabilityConfig()).image_kind == "any"

    def test_png_has_no_codes_but_a_size(self, tmp_path: Path) -> None:
        png = tmp_path / "x.png"
        Image.fromarray(np.zeros((70, 90), np.uint8)).save(png)
        ii = intended_input_for(_records([png]), ApplicabilityConfig())
        assert (ii.modalities, ii.body_parts, ii.view_positions) == ((), (), ())
        assert ii.image_kind == "projection" and ii.min_matrix == 35
        assert ii.source == "fit: 1 images (1 without DICOM headers)"

    def test_missing_tags_are_left_out(self, tmp_path: Path) -> None:
        ds = image_dataset(rows=32, columns=32, modality="DX")
        ii = intended_input_for(_records([save(ds, tmp_path / "a.dcm")]), ApplicabilityConfig())
        assert ii.modalities == ("DX",) and ii.body_parts == () and ii.view_positions == ()


class TestOverride:
    def test_config_replaces_what_it_names(self, chest: list[Path]) -> None:
        override = ApplicabilityConfig(view_positions=["PA", "AP"], body_parts=[], min_matrix=256)
        ii = intended_from_headers(summarise_headers(_records(chest)), override)
        assert ii.view_positions == ("PA", "AP") and ii.body_parts == ()
        assert ii.modalities == ("CR", "DX") and ii.min_matrix == 256
        assert ii.source == "fit: 2 images; config: body_parts, view_positions, min_matrix"

    def test_yaml_section(self) -> None:
        config = config_from_dict(
            {"applicability": {"modalities": "CR,DX", "image_kind": "projection"}}
        ).validate()
        assert config.applicability.modalities == ["CR", "DX"]

    @pytest.mark.parametrize(
        ("section", "match"),
        [
            ({"image_kind": "volume"}, r"config applicability.image_kind 'volume' is unknown"),
            ({"min_matrix": -1}, r"config applicability.min_matrix -1 must be in 0..65535"),
            ({"ood_percentile": 100.0}, r"config applicability.ood_percentile 100.0 must be"),
            ({"modalities": ["C R!"]}, r"config applicability.modalities: .*invalid code 'C R!'"),
            ({"view": ["PA"]}, r"unknown config key applicability.view"),
        ],
    )
    def test_bad_values_are_refused(self, section: dict[str, object], match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            config_from_dict({"applicability": section}).validate()
