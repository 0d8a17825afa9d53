"""Pruning: ``radassist-train prune`` end to end on a tiny demo set (a real prune and fine-tune;
the output is a normal model file the app's engine runs), its one-line usage errors, and the
model-file side: a pruned network rebuilt from its tensors' shapes, and refused when they don't
fit together."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import torch

from desktop_app.infra.errors import ConfigError, ModelFileError
from desktop_app.model import modelfile as MF
from desktop_app.model.archs import validate_arch_args
from desktop_app.model.networks import (
    arch_args,
    build_from_arch_args,
    build_network,
    feature_dim,
    resize_to_shapes,
)
from tests.helpers.tinydata import demo_dataset
from training import cli
from training.prune import check_amount, parameter_count, prune_network

FAST = [
    "--epochs", "2", "--image-size", "64", "--no-pretrained", "--batch-size", "8",
    "--set", "threads=1", "--set", "evaluation.bootstrap=0",
    "--set", "output.tensorboard=false", "--set", "output.plots=false",
]  # fmt: skip
SIZE = 64


def _cli(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exit_:  # argparse's usage errors
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_dataset(tmp_path_factory.mktemp("demo"), n=48, size=SIZE)


@pytest.fixture(scope="module")
def trained(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("run") / "out"
    code, _, err = _cli("fit", "--data", demo, "--out", out_dir, *FAST, "--quiet")
    assert code == 0, err
    return out_dir / "model.safetensors"


def _pruned_lite0(amount: float = 0.5) -> torch.nn.Module:
    torch.manual_seed(0)
    net = build_network("efficientnet-lite0", 3, pretrained=False, image_size=SIZE).eval()
    return prune_network(net, amount, torch.zeros(1, 3, SIZE, SIZE))


@pytest.fixture(scope="module")
def pruned(
    trained: Path, demo: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, str]:
    """A real prune + 1-epoch fine-tune of a model fit on 48 phantoms at 64 px."""
    out = tmp_path_factory.mktemp("pruned") / "p50.safetensors"
    code, stdout, err = _cli(
        "prune", "--model", trained, "--data", demo, "--amount", "0.5", "--out", out,
        "--epochs", "1", "--device", "cpu", "--set", "threads=1",
        "--set", "evaluation.bootstrap=0",
    )  # fmt: skip
    assert code == 0, err
    return out, stdout, err


def _pruned_manifest() -> MF.ModelManifest:
    manifest = MF.default_manifest(
        name="pruned", architecture="efficientnet-lite0", labels=("a", "b", "c"), image_size=SIZE
    )
    return replace(manifest, arch_args={**manifest.arch_args, "pruned": True})


@pytest.mark.slow
class TestPruneCommand:
    def test_writes_a_smaller_complete_model_file(
        self, pruned: tuple[Path, str, str], trained: Path
    ) -> None:
        out, stdout, err = pruned
        assert f"wrote {out} and p50.md" in stdout
        assert "fine-tune epoch 1/1" in err
        source, loaded = MF.load_model_file(trained), MF.load_model_file(out)
        before, after = parameter_count(source.network), parameter_count(loaded.network)
        assert after < 0.5 * before  # half the channels: about a quarter of the weights
        m = loaded.manifest
        assert m.arch_args == {**source.manifest.arch_args, "pruned": True}
        assert m.version == f"{source.manifest.version}-pruned50"
        assert m.labels == source.manifest.labels
        assert m.preprocessing == source.manifest.preprocessing
        record = m.training_data["pruning"]
        assert record["from"] == {
            "name": source.manifest.name,
            "version": source.manifest.version,
            "tensor_sha256": source.manifest.tensor_sha256,
        }
        assert record["amount"] == 0.5
        assert (record["parameters_before"], record["parameters_after"]) == (before, after)
        assert record["fine_tune"]["epochs_run"] == 1
        # the post-fit steps ran on the pruned network: OOD statistics at its new width,
        # temperatures, thresholds and test metrics
        assert m.ood is not None and loaded.ood is not None
        assert m.ood.feature_dim == feature_dim(loaded.network) < feature_dim(source.network)
        assert m.temperatures is not None and set(m.thresholds) == set(m.labels)
        assert set(m.metrics) == {"val", "test"}
        card = out.with_suffix(".md").read_text(encoding="utf-8")
        assert card.startswith("# Model card") and "pruned=True" in card

    def test_the_app_engine_runs_it(self, pruned: tuple[Path, str, str], demo: Path) -> None:
        from desktop_app.inference.engine import InferenceEngine

        engine = InferenceEngine(pruned[0], device="cpu", heatmaps="all")
        image = next((demo.parent / "images").glob("*.dcm"))
        result = engine.run(image, force=True)
        assert [f.label for f in result.findings] == list(engine.labels)
        assert np.isfinite(result.probabilities).all()
        assert all(f.heatmap is not None for f in result.findings)

    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            (["--out", "{model}"], "is the input model file"),
            (["--out", "{tmp}/x.pt"], "the output name must end in .safetensors"),
            (["--out", "{tmp}/y.safetensors", "--set", "evaluation.bootstrap=-1"], "bootstrap"),
        ],
    )  # fmt: skip
    def test_usage_errors_are_one_line(
        self, trained: Path, demo: Path, tmp_path: Path, extra: list[str], message: str
    ) -> None:
        args = [a.format(model=trained, tmp=tmp_path) for a in extra]
        code, _, err = _cli("prune", "--model", trained, "--data", demo, "--amount", "0.3", *args)
        assert code == 2, err
        assert message in err and len(err.strip().splitlines()) == 1


class TestPruneArguments:
    @pytest.mark.parametrize("amount", ["0", "1", "-0.2", "1.5", "nan", "inf", "abc"])
    def test_bad_amount_is_one_line_exit_2(self, amount: str, tmp_path: Path) -> None:
        code, _, err = _cli(
            "prune", "--model", tmp_path / "m.safetensors", "--data", tmp_path / "d.csv",
            "--amount", amount, "--out", tmp_path / "o.safetensors",
        )  # fmt: skip
        assert code == 2
        assert "argument --amount" in err and len(err.strip().splitlines()) == 1

    def test_missing_model_is_one_line_exit_2(self, tmp_path: Path) -> None:
        (tmp_path / "d.csv").write_text("path,a\n", encoding="utf-8")
        code, _, err = _cli(
            "prune", "--model", tmp_path / "nope.safetensors", "--data", tmp_path / "d.csv",
            "--amount", "0.3", "--out", tmp_path / "o.safetensors",
        )  # fmt: skip
        assert code == 2
        assert err.strip() == (
            f"radassist-train prune: error: --model {tmp_path / 'nope.safetensors'}: "
            "no such model file"
        )

    @pytest.mark.parametrize("amount", [0.0, 1.0, -0.1, float("nan")])
    def test_check_amount(self, amount: float) -> None:
        with pytest.raises(ConfigError, match="between 0 and 1"):
            check_amount(amount)


class TestPrunedNetworks:
    """desktop_app.model: arch args ``pruned: true`` and networks sized by their tensors."""

    def test_depthwise_groups_follow_the_pruned_channels(self) -> None:
        net: Any = _pruned_lite0()
        depthwise = net._blocks[1][0]._depthwise_conv
        assert depthwise.groups == depthwise.in_channels == depthwise.out_channels
        assert depthwise.out_channels < 96 and depthwise.out_channels % 8 == 0
        assert net._fc.out_features == 3

    @pytest.mark.parametrize("arch", ["efficientnet-lite0", "resnet18"])
    def test_rebuilt_from_shapes_gives_the_same_outputs(self, arch: str) -> None:
        torch.manual_seed(1)
        net = build_network(arch, 2, pretrained=False, image_size=SIZE).eval()
        prune_network(net, 0.3, torch.zeros(1, 3, SIZE, SIZE))
        state = net.state_dict()
        args = {**arch_args(arch, 2, image_size=SIZE), "pruned": True}
        rebuilt = build_from_arch_args(arch, args, {k: tuple(v.shape) for k, v in state.items()})
        rebuilt.load_state_dict(state, strict=True)
        x = torch.randn(2, 3, SIZE, SIZE)
        with torch.no_grad():
            assert torch.allclose(rebuilt.eval()(x), net(x), atol=1e-5)

    def test_unpruned_args_ignore_shapes(self) -> None:
        args = arch_args("resnet18", 2, image_size=SIZE)
        net: Any = build_from_arch_args("resnet18", args, {"fc.weight": (2, 8)})
        assert net.fc.in_features == 512

    def test_pruned_without_shapes_is_refused(self) -> None:
        args = {**arch_args("resnet18", 2, image_size=SIZE), "pruned": True}
        with pytest.raises(ConfigError, match="only be rebuilt from its tensors' shapes"):
            build_from_arch_args("resnet18", args)

    @pytest.mark.parametrize("value", ["yes", 1, None])
    def test_pruned_must_be_a_bool(self, value: Any) -> None:
        args = {**arch_args("resnet18", 2), "pruned": value}
        with pytest.raises(ConfigError, match="pruned must be true or false"):
            validate_arch_args("resnet18", args)

    def test_a_missing_tensor_is_named(self) -> None:
        net = build_network("resnet18", 2, pretrained=False)
        shapes = {k: tuple(v.shape) for k, v in net.state_dict().items() if k != "conv1.weight"}
        with pytest.raises(ConfigError, match=r"tensor conv1\.weight is missing"):
            resize_to_shapes(net, shapes)

    def test_a_pruned_model_file_round_trips(self, tmp_path: Path) -> None:
        net = _pruned_lite0()
        path = tmp_path / "p.safetensors"
        MF.save_model_file(path, net, _pruned_manifest())
        loaded = MF.load_model_file(path)
        assert parameter_count(loaded.network) == parameter_count(net)
        x = torch.randn(1, 3, SIZE, SIZE)
        with torch.no_grad():
            assert torch.allclose(loaded.network(x), net(x), atol=1e-5)

    def test_shapes_that_do_not_fit_together_are_refused(self, tmp_path: Path) -> None:
        net = _pruned_lite0()
        manifest = _pruned_manifest()
        state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
        # the head reads 8 features fewer than the last convolution gives
        state["_fc.weight"] = state["_fc.weight"][:, :-8].contiguous()
        with pytest.raises(ModelFileError, match="don't fit together"):
            MF.save_model_file(tmp_path / "s.safetensors", state, manifest)
        as_dict = {**manifest.to_dict(), "tensor_sha256": MF.tensor_sha256(state)}
        path = tmp_path / "bad.safetensors"
        safetensors.torch.save_file(
            state, str(path), metadata={MF.MANIFEST_KEY: json.dumps(as_dict)}
        )
        with pytest.raises(ModelFileError, match="architecture can't be built: the pruned") as err:
            MF.load_model_file(path)
        assert len(err.value.one_line().splitlines()) == 1
