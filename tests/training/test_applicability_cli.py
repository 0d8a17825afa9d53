"""Where a model applies, from the training side: ``fit`` writes intended input, OOD statistics
and temperatures (thresholds on calibrated scores, ECE before/after); ``refit`` re-fits
them on a model file's weights; ``convert`` takes the intended input as options."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from desktop_app.model.applicability import DEFAULT_SOURCE
from desktop_app.model.modelfile import load_model_file
from desktop_app.model.networks import build_network
from tests.helpers.tinydata import demo_dataset
from training import cli

FAST = [
    "--epochs", "2", "--image-size", "64", "--no-pretrained", "--batch-size", "8",
    "--set", "threads=1", "--set", "evaluation.bootstrap=0",
    "--set", "output.tensorboard=false", "--set", "output.plots=false",
]  # fmt: skip


def _cli(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_dataset(tmp_path_factory.mktemp("demo"), n=48, size=64)


@pytest.fixture(scope="module")
def trained(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out_dir = tmp_path_factory.mktemp("run") / "out"
    code, stdout, err = _cli("fit", "--data", demo, "--out", out_dir, "--quiet", *FAST)
    assert code == 0, err
    return out_dir, stdout


@pytest.mark.slow  # one shared tiny training run, one more for the overrides
class TestFit:
    def test_model_file_carries_intended_input_ood_and_temperatures(
        self, trained: tuple[Path, str]
    ) -> None:
        out, _ = trained
        metrics = json.loads((out / "metrics.json").read_text())
        loaded = load_model_file(out / "model.safetensors")
        m = loaded.manifest
        train_images = metrics["data"]["splits"]["train"]["images"]
        assert m.intended_input.source == f"fit: {train_images} images"
        assert m.intended_input.body_parts == ("CHEST",)
        assert m.intended_input.view_positions == ("PA",)
        assert m.intended_input.image_kind == "projection"
        assert m.intended_input.min_matrix > 0
        assert set(m.intended_input.modalities) <= {"CR", "DX"}
        assert m.temperatures is not None and set(m.temperatures) == set(m.labels)
        assert "temperature-scaled" in m.threshold_rule
        assert loaded.ood is not None and m.ood is not None
        assert m.ood.feature_dim == 1280 and "validation split" in m.ood.threshold_rule
        assert m.ood.stats["train_images"] == train_images
        assert set(metrics["ood_flag_rate"]) == {"train", "val", "test"}
        assert metrics["intended_input"] == m.intended_input.to_dict()
        for split in ("val", "test"):
            for label in m.labels:
                row = metrics["calibration"][label]
                assert {f"{split}_ece_before", f"{split}_ece_after"} <= set(row)
                assert m.metrics[split][label]["ece_before_scaling"] == row[f"{split}_ece_before"]

    def test_card_and_summary_show_ece_before_and_after(self, trained: tuple[Path, str]) -> None:
        out, stdout = trained
        card = (out / "model_card.md").read_text()
        assert "| label | temperature | val ECE before → after | test ECE before → after |" in card
        assert "calibration (temperature; ECE before -> after):" in stdout
        assert "out-of-distribution flags: train" in stdout

    def test_config_overrides_and_switches(self, demo: Path, tmp_path: Path) -> None:
        code, _, err = _cli(
            "fit", "--data", demo, "--out", tmp_path / "o", "--quiet", *FAST,
            "--set", "applicability.view_positions=[PA, AP]", "--set", "applicability.ood=false",
            "--set", "applicability.temperature_scaling=false",
        )  # fmt: skip
        assert code == 0, err
        m = load_model_file(tmp_path / "o" / "model.safetensors").manifest
        assert m.intended_input.view_positions == ("PA", "AP")
        assert m.intended_input.source.endswith("; config: view_positions")
        assert m.ood is None and m.temperatures is None
        assert "temperature" not in m.threshold_rule


@pytest.mark.slow
class TestRefit:
    def test_refits_on_the_same_weights(
        self, trained: tuple[Path, str], demo: Path, tmp_path: Path
    ) -> None:
        src = trained[0] / "model.safetensors"
        out = tmp_path / "cal.safetensors"
        code, stdout, err = _cli(
            "refit", "--model", src, "--data", demo, "--out", out, "--device", "cpu",
            "--set", "applicability.ood_percentile=99", "--set", "evaluation.bootstrap=0",
        )  # fmt: skip
        assert code == 0, err
        assert f"wrote {out} and cal.md" in stdout
        before, after = load_model_file(src), load_model_file(out)
        for name, tensor in before.network.state_dict().items():
            assert torch.equal(tensor, after.network.state_dict()[name]), name
        m = after.manifest
        assert m.format_version == 2 and not m.legacy
        assert m.ood is not None and "99th percentile" in m.ood.threshold_rule
        assert m.temperatures is not None and m.intended_input == before.manifest.intended_input
        assert m.training_data["calibration"]["manifest"] == demo.name
        assert m.training_data["images"] == before.manifest.training_data["images"]
        assert (tmp_path / "cal.md").read_text().startswith("# Model card")

    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            (["--out", "{model}"], "--out is the input model file"),
            (["--out", "{tmp}/x.pt"], "the output name must end in .safetensors"),
            (["--out", "{tmp}/y.safetensors", "--set", "applicability.ood_percentile=20"],
             "config applicability.ood_percentile 20.0 must be in [50, 100)"),
        ],
    )  # fmt: skip
    def test_errors_are_one_line(
        self,
        trained: tuple[Path, str],
        demo: Path,
        tmp_path: Path,
        extra: list[str],
        message: str,
    ) -> None:
        model = trained[0] / "model.safetensors"
        args = [a.format(model=model, tmp=tmp_path) for a in extra]
        code, _, err = _cli("refit", "--model", model, "--data", demo, *args)
        assert code != 0
        assert message in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    net = build_network("efficientnet-lite0", 2, pretrained=False, image_size=64)
    path = tmp_path_factory.mktemp("w") / "weights.pth"
    torch.save(net.state_dict(), path)
    return path


class TestConvertIntendedInput:
    def _convert(self, weights: Path, out: Path, *extra: str) -> tuple[int, str, str]:
        return _cli(
            "convert", weights, "--arch", "efficientnet-lite0", "--labels", "a,b", "--out", out,
            "--image-size", "64", *extra,
        )  # fmt: skip

    def test_options_become_the_intended_input(self, weights: Path, tmp_path: Path) -> None:
        out = tmp_path / "m.safetensors"
        code, _, err = self._convert(
            weights, out, "--modalities", "cr,DX", "--body-parts", "CHEST", "--views", "PA,AP",
            "--min-matrix", "512",
        )  # fmt: skip
        assert code == 0, err
        ii = load_model_file(out).manifest.intended_input
        assert ii.modalities == ("CR", "DX") and ii.body_parts == ("CHEST",)
        assert ii.view_positions == ("PA", "AP") and ii.min_matrix == 512
        assert ii.image_kind == "projection"
        assert ii.source.startswith("convert: --modalities, --body-parts, --views, --min-matrix")

    def test_cross_sectional_modalities_mean_slices(self, weights: Path, tmp_path: Path) -> None:
        out = tmp_path / "ct.safetensors"
        assert self._convert(weights, out, "--modalities", "CT,MR")[0] == 0
        assert load_model_file(out).manifest.intended_input.image_kind == "slice"

    def test_no_options_is_the_conservative_default(self, weights: Path, tmp_path: Path) -> None:
        out = tmp_path / "d.safetensors"
        assert self._convert(weights, out)[0] == 0
        ii = load_model_file(out).manifest.intended_input
        assert ii.modalities == ("CR", "DX") and ii.image_kind == "projection"
        assert ii.source == DEFAULT_SOURCE

    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            (["--modalities", "C-R"], "invalid code 'C-R'"),
            (["--min-matrix", "-3"], "--min-matrix '-3': give a whole number 0..65535"),
            (["--image-kind", "volume"], "invalid choice: 'volume'"),
        ],
    )
    def test_bad_options_exit_2(
        self,
        weights: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        extra: list[str],
        message: str,
    ) -> None:
        out = tmp_path / "e.safetensors"
        with pytest.raises(SystemExit) as info:
            cli.main(["convert", str(weights), "--arch", "efficientnet-lite0", "--labels", "a,b",
                      "--out", str(out), *extra])  # fmt: skip
        err = capsys.readouterr().err
        assert info.value.code == 2 and message in err and err.count("\n") == 1
        assert not out.exists()
