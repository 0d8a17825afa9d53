"""``fit --task segmentation`` writes per-slice OOD statistics (the pooled encoder features of
the train split, threshold on the validation split) into the model file, and ``refit`` fits the
same statistics again on a segmentation model's unchanged weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from desktop_app.model.modelfile import load_model_file
from desktop_app.model.tensorfile import tensor_sha256
from tests.training.test_segmentation_fit import write_discs
from training.applicability import seg_features
from training.cli import main as cli_main
from training.commands.refit import refit_model_file
from training.config import TrainConfig
from training.dataset import Stopped
from training.segdata import load_pairs, read_segmentation_data

FIT = [
    "--epochs", "1", "--image-size", "64", "--batch-size", "8", "--device", "cpu", "--quiet",
    "--set", "evaluation.bootstrap=0", "--set", "output.tensorboard=false",
    "--set", "augment.enabled=false",
]  # fmt: skip


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("seg-ood-fit")
    manifest = write_discs(root / "data", 28)
    out = root / "run"
    code = cli_main(
        ["fit", "--task", "segmentation", "--data", str(manifest), "--out", str(out), *FIT]
    )
    assert code == 0
    return manifest, out


@pytest.mark.slow
class TestFit:
    def test_the_model_file_carries_per_slice_ood_statistics(
        self, fitted: tuple[Path, Path]
    ) -> None:
        _, out = fitted
        loaded = load_model_file(out / "model.safetensors")
        assert loaded.ood is not None and loaded.manifest.ood is not None
        spec = loaded.ood.spec
        assert spec.feature_dim == 320  # Lite0's deepest encoder stage, pooled
        assert spec.stats["train_images"] >= 10 and spec.stats["val_images"] >= 1
        assert spec.stats["train_flag_rate"] <= 0.2  # the Gaussian is of these very slices
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["ood"]["threshold"] == spec.threshold
        card = (out / "model_card.md").read_text()
        assert "Out-of-distribution score: per slice" in card
        assert f"flagged above {spec.threshold:.3f}" in card

    def test_refit_fits_the_same_statistics_on_the_same_weights(
        self, fitted: tuple[Path, Path], tmp_path: Path
    ) -> None:
        manifest, out = fitted
        before = load_model_file(out / "model.safetensors")
        config = TrainConfig().validate()
        result = refit_model_file(
            out / "model.safetensors", manifest, tmp_path / "r.safetensors", config, "cpu"
        )
        after = load_model_file(tmp_path / "r.safetensors")
        same = tensor_sha256(before.network.state_dict())
        assert tensor_sha256(after.network.state_dict()) == same  # no retraining
        assert after.manifest.thresholds == before.manifest.thresholds
        assert after.manifest.metrics == before.manifest.metrics
        assert before.ood is not None and after.ood is not None
        assert after.ood.threshold == pytest.approx(before.ood.threshold, rel=1e-4)
        np.testing.assert_allclose(after.ood.mean, before.ood.mean, rtol=1e-4, atol=1e-5)
        assert result["ood_threshold"] == after.ood.threshold
        assert "ood_refit" in after.manifest.training_data
        assert "What it segments" in (tmp_path / "r.md").read_text()


class TestSegFeatures:
    def test_pooled_encoder_features_in_order_and_stoppable(self, tmp_path: Path) -> None:
        from desktop_app.model.networks import build_network
        from training.config import config_from_dict

        manifest = write_discs(tmp_path / "data", 4)
        seg = read_segmentation_data(manifest)
        spec = config_from_dict({"preprocessing": {"image_size": 64}}).preprocess_spec()
        units, _, _ = load_pairs(seg, spec)
        torch.manual_seed(0)
        network = build_network("unet-lite0", 1, pretrained=False, image_size=64).eval()
        both = seg_features(network, units, [0, 1, 2, 3], spec, torch.device("cpu"), batch_size=3)
        assert both.shape == (4, 320) and both.dtype == np.float32
        reversed_ = seg_features(network, units, [3, 2, 1, 0], spec, torch.device("cpu"))
        np.testing.assert_allclose(reversed_[::-1], both, rtol=1e-5, atol=1e-6)
        with pytest.raises(Stopped):
            seg_features(network, units, [0], spec, torch.device("cpu"), stop=lambda: True)
