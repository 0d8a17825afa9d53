"""The CPU path without PyTorch: the ONNX graphs (forward, LayerCAM) and where they come from
(the model file, the cache, made once), the cache's refusals, the torch-free import, and the
device decision without torch."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from desktop_app.inference import accel, onnxcache
from desktop_app.inference.engine import InferenceEngine
from desktop_app.inference.gradcam import fine_cam, fine_layers
from desktop_app.inference.graphs import LayerCamGraph, Unsupported, build_graph
from desktop_app.inference.ortrun import CamRunner
from desktop_app.infra.errors import ConfigError, ModelFileError
from desktop_app.model.archs import gradcam_target_layer
from desktop_app.model.modeldata import (
    GRAPH_TENSOR_PREFIX,
    GRAPHS_KEY,
    embed_graphs,
    read_model_data,
)
from desktop_app.model.modelfile import load_model_file
from desktop_app.model.networks import build_network
from tests.helpers.engine import ARCH, LABELS, SIZE, make_model_file

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "sample" / "chest_xr" / "chest_pa.dcm"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_file(tmp_path_factory.mktemp("lean") / "m.safetensors", seed=3)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("RADASSIST_CACHE_DIR", str(folder))
    return folder / "graphs"


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.random((70, 52)).astype(np.float32) * 100 for _ in range(n)]


# --------------------------------------------------------------------------- the graphs


class TestLayerCamGraph:
    @pytest.mark.parametrize("arch", ["efficientnet-lite0", "resnet18"])
    def test_equals_autograd_layercam(self, arch: str) -> None:
        """The backward pass written out as forward ops gives fine_cam's maps, in PyTorch and
        after the ONNX export, for every label at once."""
        torch.manual_seed(0)
        net = build_network(arch, 3, pretrained=False, image_size=64).eval()
        last, fine = gradcam_target_layer(arch), fine_layers(arch)
        x = torch.randn(1, 3, 64, 64)
        ref = fine_cam(net, fine, last, x, [0, 1, 2]).maps
        with torch.no_grad():
            ours = LayerCamGraph(net, fine, last)(x, torch.eye(3))
        for c in range(3):
            np.testing.assert_allclose(ours[c].numpy(), ref[c], atol=1e-5)
        graph = build_graph("layercam", net, arch, 64, 3, 3)  # checked inside too
        got = CamRunner(graph, 1, 3).maps(x[0].numpy(), [2, 0])
        assert list(got) == [2, 0]
        for c in (0, 2):
            np.testing.assert_allclose(got[c], ref[c], atol=2e-3)

    def test_a_layer_without_a_written_backward_is_refused(self) -> None:
        net = build_network("densenet121", 2, pretrained=False).eval()
        with pytest.raises(Unsupported):
            LayerCamGraph(net, fine_layers("densenet121"), gradcam_target_layer("densenet121"))

    def test_the_network_is_left_as_it_was(self) -> None:
        torch.manual_seed(1)
        net = build_network("resnet18", 2, pretrained=False, image_size=64).eval()
        before = {k: v.clone() for k, v in net.state_dict().items()}
        LayerCamGraph(net, fine_layers("resnet18"), gradcam_target_layer("resnet18"))
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
        assert net.relu.inplace is True  # the graph's copy is changed, not the network


# --------------------------------------------------------------------------- where graphs come from


class TestCache:
    def test_made_once_then_read_from_the_cache(self, model: Path, cache: Path) -> None:
        data = read_model_data(model)
        first = onnxcache.obtain(data, "forward")
        assert first.source == "made"
        assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".onnx"]
        again = onnxcache.obtain(data, "forward")
        assert again.source == "cache" and again.data == first.data
        meta = json.loads(next(cache.glob("*.json")).read_text())
        assert meta["made_for"] == data.graph_id and meta["exporter"].startswith("torch ")

    def test_a_stale_entry_is_made_again(self, model: Path, cache: Path) -> None:
        data = read_model_data(model)
        onnxcache.obtain(data, "forward")
        sidecar = next(cache.glob("*.json"))
        meta = json.loads(sidecar.read_text())
        meta["exporter"] = "torch 1.0.0"  # made by another PyTorch
        sidecar.write_text(json.dumps(meta))
        assert onnxcache.obtain(data, "forward").source == "made"
        assert json.loads(sidecar.read_text())["exporter"] != "torch 1.0.0"

    @pytest.mark.parametrize("damage", ["graph bytes", "sidecar", "missing graph"])
    def test_a_damaged_entry_is_refused_and_made_again(
        self, model: Path, cache: Path, damage: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        data = read_model_data(model)
        good = onnxcache.obtain(data, "forward").data
        graph = next(cache.glob("*.onnx"))
        if damage == "graph bytes":
            raw = bytearray(graph.read_bytes())
            raw[len(raw) // 2] ^= 0xFF
            graph.write_bytes(bytes(raw))
        elif damage == "sidecar":
            next(cache.glob("*.json")).write_text("{not json")
        else:
            graph.unlink()
        with caplog.at_level(logging.WARNING, logger="desktop_app.inference.onnxcache"):
            again = onnxcache.obtain(data, "forward")
        assert again.source == "made" and again.data == good
        assert "refused" in caplog.text
        assert onnxcache.obtain(data, "forward").source == "cache"

    def test_the_cache_is_bounded(self, cache: Path) -> None:
        for i in range(onnxcache.MAX_ENTRIES + 5):
            onnxcache.store(f"{i:02x}" + "0" * 62, "forward", b"graph %d" % i, "torch x")
        assert len(list(cache.glob("*.onnx"))) == onnxcache.MAX_ENTRIES
        assert len(list(cache.glob("*.json"))) == onnxcache.MAX_ENTRIES

    def test_no_torch_and_no_graph_is_one_line(
        self, model: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(onnxcache, "torch_installed", lambda: False)
        with pytest.raises(onnxcache.GraphUnavailable) as err:
            InferenceEngine(model, device="cpu")
        line = err.value.one_line()
        assert "\n" not in line and "export-onnx --model FILE --embed" in line


class TestStoredGraphs:
    def test_embedded_graphs_run_and_keep_the_identity(
        self, model: Path, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        loaded = load_model_file(model)
        spec = loaded.manifest.preprocessing
        graphs = {
            k: build_graph(k, loaded.network, ARCH, spec.image_size, 3, len(LABELS))
            for k in ("forward", "layercam")
        }
        copy = embed_graphs(
            model, graphs, exporter="torch test", opset=17, out=tmp_path / "e.safetensors"
        )
        data = read_model_data(copy)
        assert set(data.graphs) == {"forward", "layercam"}
        assert data.sha256 == loaded.manifest.tensor_sha256 == read_model_data(model).sha256
        assert load_model_file(copy).manifest.tensor_sha256 == data.sha256  # torch loads it too
        monkeypatch.setattr(onnxcache, "torch_installed", lambda: False)  # nothing to make with
        engine = InferenceEngine(copy, device="cpu", heatmaps="all")
        result = engine.run(_images(2))
        assert all(f.heatmap is not None for f in result.findings)
        assert "graph from the model file" in " ".join(engine.notes)
        assert not cache.exists()  # nothing was cached

    def test_a_damaged_stored_graph_is_not_used(
        self, model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        loaded = load_model_file(model)
        graph = build_graph("forward", loaded.network, ARCH, SIZE, 3, len(LABELS))
        copy = embed_graphs(
            model, {"forward": graph}, exporter="t", opset=17, out=tmp_path / "d.safetensors"
        )
        raw = bytearray(copy.read_bytes())
        start = raw.rfind(graph[-64:])  # the graph tensor's last bytes
        raw[start + 10] ^= 0xFF
        copy.write_bytes(bytes(raw))
        with caplog.at_level(logging.WARNING, logger="desktop_app.model.modeldata"):
            data = read_model_data(copy)
        assert data.graphs == {} and "damaged" in caplog.text
        assert data.sha256 == loaded.manifest.tensor_sha256  # the weights are still fine

    def test_a_graph_made_for_other_weights_is_not_used(
        self, model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        loaded = load_model_file(model)
        graph = build_graph("forward", loaded.network, ARCH, SIZE, 3, len(LABELS))
        copy = embed_graphs(
            model, {"forward": graph}, exporter="t", opset=17, out=tmp_path / "o.safetensors"
        )
        arrays = load_file(str(copy))
        with safe_open(str(copy), "numpy") as fh:
            metadata = dict(fh.metadata())
        listed = json.loads(metadata[GRAPHS_KEY])
        listed["forward"]["made_for"] = "0" * 64  # as if exported from other weights
        metadata[GRAPHS_KEY] = json.dumps(listed)
        save_file(arrays, str(copy), metadata=metadata)
        with caplog.at_level(logging.WARNING, logger="desktop_app.model.modeldata"):
            data = read_model_data(copy)
        assert data.graphs == {} and "other weights" in caplog.text

    def test_a_hostile_stored_graph_is_one_line(
        self, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A stored graph whose initializer points at a file outside (external data): ONNX
        Runtime refuses it; the engine says so in one line."""
        from onnx import TensorProto, helper

        weight = TensorProto(name="w", data_type=TensorProto.UINT8, dims=[16])
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "/etc/passwd"), ("offset", "0"), ("length", "16")):
            weight.external_data.add(key=key, value=value)
        graph = helper.make_graph(
            [helper.make_node("Identity", ["w"], ["logits"])],
            "hostile",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
            [helper.make_tensor_value_info("logits", TensorProto.UINT8, [16])],
            initializer=[weight],
        )
        hostile = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        copy = embed_graphs(
            model,
            {"forward": hostile.SerializeToString()},
            exporter="t",
            opset=17,
            out=tmp_path / "h.safetensors",
        )
        monkeypatch.setattr(onnxcache, "torch_installed", lambda: False)
        with pytest.raises(ModelFileError) as err:
            InferenceEngine(copy, device="cpu")
        line = err.value.one_line()
        assert "\n" not in line and "can't be opened by ONNX Runtime" in line

    def test_an_unlisted_graph_tensor_is_refused(self, model: Path, tmp_path: Path) -> None:
        arrays = load_file(str(model))
        arrays[GRAPH_TENSOR_PREFIX + "forward"] = np.zeros(8, np.uint8)
        with safe_open(str(model), "numpy") as fh:
            metadata = fh.metadata()
        save_file(arrays, str(tmp_path / "u.safetensors"), metadata=metadata)
        with pytest.raises(ModelFileError, match="not listed"):
            read_model_data(tmp_path / "u.safetensors")


# --------------------------------------------------------------------------- without torch


def test_the_cpu_path_imports_neither_torch_nor_monai(model: Path) -> None:
    """A child process runs predict's engine on the CPU (graphs from the session's cache,
    made here first) and says which heavy packages it imported."""
    engine = InferenceEngine(model, device="cpu", heatmaps="all")  # makes and caches the graphs
    engine.run(_images(1))
    code = (
        "import sys\n"
        "from desktop_app.commands import predict, info\n"
        "from desktop_app.inference.engine import InferenceEngine\n"
        "import numpy as np\n"
        f"e = InferenceEngine({str(model)!r}, device='auto', heatmaps='all')\n"
        "r = e.run([np.random.default_rng(11).random((70, 52)).astype(np.float32) * 100])\n"
        "assert all(f.heatmap is not None for f in r.findings)\n"
        "print(e.backend, sorted(m for m in ('torch', 'monai', 'torchvision') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    assert out.strip() == "onnxruntime []"


class TestDeviceWithoutTorch:
    def test_cpu_and_auto_need_no_torch_without_a_gpu(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(accel, "nvidia_driver_present", lambda: False)
        monkeypatch.setattr(accel, "apple_silicon", lambda: False)
        assert accel.decide_without_torch("cpu") == accel.CpuDecision(True)
        assert accel.decide_without_torch("auto") == accel.CpuDecision(True)
        cuda = accel.decide_without_torch("cuda:1")
        assert cuda.cpu and cuda.warning == accel.APP_WORDS.cuda_missing

    def test_a_gpu_driver_hands_the_choice_to_torch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(accel, "nvidia_driver_present", lambda: True)
        assert accel.decide_without_torch("auto").cpu is (not accel.torch_installed())

    def test_no_torch_installed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(accel, "torch_installed", lambda: False)
        decision = accel.decide_without_torch("cuda")
        assert decision.cpu and "no PyTorch" in (decision.warning or "")

    @pytest.mark.parametrize("name", ["gpu", "cuda:x", "mps:0", "cpu:1"])
    def test_unknown_names(self, name: str) -> None:
        with pytest.raises(ConfigError):
            accel.decide_without_torch(name)
