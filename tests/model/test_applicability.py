"""desktop_app.model.applicability and the model file's format-2 blocks: intended input,
out-of-distribution statistics, temperatures; legacy (format 1) files; non-finite weights."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from desktop_app.infra.errors import ModelFileError
from desktop_app.model import modelfile as MF
from desktop_app.model.applicability import (
    OOD_MEAN,
    IntendedInput,
    OodModel,
    OodSpec,
    apply_temperatures,
)
from desktop_app.model.networks import PenultimateFeatures, build_network, feature_dim
from desktop_app.model.tensorfile import tensor_sha256

ARCH = "resnet18"
SIZE = 64
LABELS = ("nodule", "effusion")


def _network() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network(ARCH, len(LABELS), pretrained=False, image_size=SIZE).eval()


def _ood(d: int, seed: int = 0) -> OodModel:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    precision = (a @ a.T + np.eye(d)).astype(np.float32)
    spec = OodSpec("mahalanobis", d, 3.5, "95th percentile of validation", {"val_flagged": 0.05})
    return OodModel(spec, rng.normal(size=d).astype(np.float32), precision)


def _manifest(**overrides: Any) -> MF.ModelManifest:
    return MF.default_manifest(
        name="test", architecture=ARCH, labels=LABELS, image_size=SIZE, **overrides
    )


class TestIntendedInput:
    def test_codes_are_normalised_and_described(self) -> None:
        ii = IntendedInput(["cr", "DX"], ["chest"], ["PA", "AP"], "projection", 256, "fit")
        assert ii.modalities == ("CR", "DX") and ii.body_parts == ("CHEST",)
        assert ii.describe() == "chest CR/DX radiographs"
        assert IntendedInput.from_dict(ii.to_dict()) == ii

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"image_kind": "volume"}, "image_kind 'volume' is not one of"),
            ({"modalities": ["C\x1bT"]}, "modalities has an invalid code"),
            ({"min_matrix": -1}, "min_matrix -1 is not 0..65535"),
            ({"extra": 1}, "unknown key 'extra'"),
        ],
    )
    def test_refusals(self, data: dict[str, Any], message: str) -> None:
        base = IntendedInput.radiographs().to_dict()
        base.update(data)
        with pytest.raises(ModelFileError, match=message):
            IntendedInput.from_dict(base)


class TestOodModel:
    def test_score_is_the_mahalanobis_distance(self) -> None:
        ood = _ood(4)
        x = np.random.default_rng(1).normal(size=(3, 4))
        centred = x - ood.mean
        expected = np.sqrt(np.einsum("ij,jk,ik->i", centred, ood.precision, centred))
        np.testing.assert_allclose(ood.score(x), expected, rtol=1e-5)
        assert ood.score(ood.mean[None])[0] == pytest.approx(0.0, abs=1e-6)

    def test_flags_over_threshold_and_non_finite(self) -> None:
        ood = _ood(4)
        assert ood.flags(np.array([1.0, 3.5, 3.6, np.nan])).tolist() == [
            False,
            False,
            True,
            True,
        ]

    def test_non_finite_statistics_refused(self) -> None:
        ood = _ood(3)
        mean = ood.mean.copy()
        mean[0] = np.inf
        with pytest.raises(ModelFileError, match=r"radassist\.ood\.mean holds NaN or infinite"):
            OodModel(ood.spec, mean, ood.precision)


class TestTemperatures:
    def test_apply(self) -> None:
        logits = np.array([[2.0, -4.0]])
        out = apply_temperatures(logits, LABELS, {"nodule": 2.0, "effusion": 0.5})
        np.testing.assert_allclose(out, [[1.0, -8.0]])
        assert apply_temperatures(logits, LABELS, None) is logits

    @pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), 1000.0, True])
    def test_refused(self, bad: float) -> None:
        with pytest.raises(ModelFileError, match="temperature for 'nodule'"):
            _manifest(temperatures={"nodule": bad, "effusion": 1.0})


class TestModelFile:
    def test_round_trip_with_ood_and_temperatures(self, tmp_path: Path) -> None:
        net = _network()
        d = feature_dim(net)
        ood = _ood(d)
        ii = IntendedInput(["DX"], ["CHEST"], ["PA"], "projection", 128, "fit: 80 images")
        manifest = _manifest(intended_input=ii, temperatures={"nodule": 1.5, "effusion": 0.8})
        path = tmp_path / "m.safetensors"
        MF.save_model_file(path, net, manifest, ood=ood)
        loaded = MF.load_model_file(path)
        assert loaded.manifest.intended_input == ii
        assert loaded.manifest.temperatures == {"nodule": 1.5, "effusion": 0.8}
        assert loaded.manifest.ood == ood.spec and loaded.ood is not None
        x = torch.randn(2, 3, SIZE, SIZE)
        with torch.no_grad(), PenultimateFeatures(loaded.network) as feats:
            loaded.network(x)
        assert feats.value is not None
        np.testing.assert_allclose(
            loaded.ood.score(feats.value.numpy()), ood.score(feats.value.numpy()), rtol=1e-5
        )
        card = loaded.model_card
        assert "Modalities: DX" in card and "flagged above 3.500" in card
        assert "| nodule | 1.500 |" in card

    def test_ood_tensors_without_the_block_are_refused(self, tmp_path: Path) -> None:
        net = _network()
        path = tmp_path / "m.safetensors"
        MF.save_model_file(path, net, _manifest(), ood=_ood(feature_dim(net)))
        header_len = int.from_bytes(path.read_bytes()[:8], "little")
        header = json.loads(path.read_bytes()[8 : 8 + header_len])
        manifest = json.loads(header["__metadata__"][MF.MANIFEST_KEY])
        manifest["ood"] = None
        state = _state(path)
        _write(tmp_path / "bad.safetensors", state, manifest)
        with pytest.raises(ModelFileError, match=f"tensor {OOD_MEAN} is not part of the manifest"):
            MF.load_model_file(tmp_path / "bad.safetensors")

    def test_legacy_file_loads_with_the_conservative_default(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        net = _network()
        path = tmp_path / "m.safetensors"
        MF.save_model_file(path, net, _manifest())
        manifest = json.loads(MF.read_manifest(path).to_json())
        for key in ("intended_input", "ood", "temperatures"):
            del manifest[key]
        manifest["format_version"] = 1
        _write(tmp_path / "old.safetensors", _state(path), manifest)
        with caplog.at_level(logging.WARNING, logger="desktop_app.model.modelfile"):
            loaded = MF.load_model_file(tmp_path / "old.safetensors")
        assert loaded.manifest.legacy and loaded.ood is None
        assert loaded.manifest.intended_input == IntendedInput.legacy()
        assert "predates intended-input checks" in caplog.text

    def test_format_2_requires_the_blocks(self, tmp_path: Path) -> None:
        net = _network()
        path = tmp_path / "m.safetensors"
        MF.save_model_file(path, net, _manifest())
        manifest = json.loads(MF.read_manifest(path).to_json())
        del manifest["intended_input"]
        _write(tmp_path / "bad.safetensors", _state(path), manifest)
        with pytest.raises(ModelFileError, match="manifest key 'intended_input' is missing"):
            MF.load_model_file(tmp_path / "bad.safetensors")

    @pytest.mark.parametrize("value", [float("nan"), float("inf")])
    def test_non_finite_weights_refused_at_load(self, tmp_path: Path, value: float) -> None:
        net = _network()
        path = tmp_path / "m.safetensors"
        MF.save_model_file(path, net, _manifest())
        state = _state(path)
        state["fc.bias"][0] = value  # a correct hash over broken weights
        manifest = json.loads(MF.read_manifest(path).to_json())
        _write(tmp_path / "bad.safetensors", state, manifest)
        with pytest.raises(ModelFileError, match=r"tensor fc.bias holds 1 NaN or infinite"):
            MF.load_model_file(tmp_path / "bad.safetensors")

    def test_non_finite_weights_never_written(self, tmp_path: Path) -> None:
        net = _network()
        with torch.no_grad():
            net.fc.weight[0, 0] = float("nan")
        with pytest.raises(ModelFileError, match=r"fc\.weight holds 1 NaN"):
            MF.save_model_file(tmp_path / "m.safetensors", net, _manifest())
        assert not (tmp_path / "m.safetensors").exists()


def _state(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return dict(load_file(str(path)))


def _write(path: Path, state: dict[str, torch.Tensor], manifest: dict[str, Any]) -> None:
    manifest["tensor_sha256"] = tensor_sha256(state)
    save_file(state, str(path), metadata={MF.MANIFEST_KEY: json.dumps(manifest)})


class TestSiteCalibration:
    BLOCK: dict[str, Any] = {
        "source_sha256": "0" * 64,
        "date": "2026-12-06",
        "rule": "youden",
        "n_cases": 143,
        "labels": {"nodule": {"n": 143, "positives": 20, "sensitivity": {"value": 0.82}}},
    }

    def test_round_trip_and_optional(self, tmp_path: Path) -> None:
        net = _network()
        path = tmp_path / "m.safetensors"
        MF.save_model_file(path, net, _manifest(site_calibration=self.BLOCK))
        assert MF.read_manifest(path).site_calibration == self.BLOCK
        manifest = json.loads(MF.read_manifest(path).to_json())
        del manifest["site_calibration"]  # a format-2 file written before the key existed
        _write(tmp_path / "older.safetensors", _state(path), manifest)
        assert MF.load_model_file(tmp_path / "older.safetensors").manifest.site_calibration is None

    def test_unknown_label_refused(self) -> None:
        block = {**self.BLOCK, "labels": {"pneumothorax": {}}}
        with pytest.raises(ModelFileError, match="site_calibration has unknown label"):
            _manifest(site_calibration=block)
