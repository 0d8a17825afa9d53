"""`radassist-train export-onnx`: ONNX Runtime on the exported file matches PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from desktop_app.model import modelfile as MF
from desktop_app.model.modelfile import load_model_file
from desktop_app.model.networks import build_network
from tests.helpers.engine import ARCH, LABELS, SIZE, make_model_file
from training.cli import main
from training.commands.export_onnx import METADATA_KEY


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_file(tmp_path_factory.mktemp("m") / "m.safetensors")


@pytest.mark.slow
def test_exported_model_matches_torch_and_carries_the_manifest(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.onnx"
    assert main(["export-onnx", "--model", str(model), "--out", str(out)]) == 0
    assert f"wrote {out} (fp32" in capsys.readouterr().out
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).normal(size=(5, 3, SIZE, SIZE)).astype(np.float32)
    got = session.run(["logits"], {"input": x})[0]
    network = load_model_file(model).network
    with torch.no_grad():
        expected = network(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    manifest = json.loads(meta[METADATA_KEY])
    assert manifest["labels"] == list(LABELS)
    assert manifest["preprocessing"]["image_size"] == SIZE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{tmp}/model.bin"], "the output's name must end in .onnx"),
        (["--out", "{tmp}/exists.onnx"], "already exists (pass --force to overwrite it)"),
    ],
)
def test_refusals(
    model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    (tmp_path / "exists.onnx").write_bytes(b"old")
    argv = ["export-onnx", "--model", str(model)] + [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert (tmp_path / "exists.onnx").read_bytes() == b"old"


def test_a_pickle_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(1)}, bad)
    code = main(["export-onnx", "--model", str(bad), "--out", str(tmp_path / "m.onnx")])
    assert code == 1
    assert "never unpickles" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_a_network_whose_output_is_nan_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Finite weights (so the model file loads) whose last batch norm has a negative running
    variance: every logit is NaN, and NaN must not pass as "matches PyTorch"."""
    torch.manual_seed(0)
    network = build_network(ARCH, len(LABELS), pretrained=False, image_size=SIZE).eval()
    norms = [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms[-1].running_var is not None
    norms[-1].running_var.fill_(-1.0)
    model = tmp_path / "nan.safetensors"
    manifest = MF.default_manifest(name="nan", architecture=ARCH, labels=LABELS, image_size=SIZE)
    MF.save_model_file(model, network, manifest)
    out = tmp_path / "nan.onnx"
    assert main(["export-onnx", "--model", str(model), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert "PyTorch's logits on the check input are not finite (12 NaN, 0 infinite of 12" in (
        captured.err
    )
    assert not out.exists()
