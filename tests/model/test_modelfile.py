"""desktop_app.model.modelfile: writing, reading and refusing model files."""

from __future__ import annotations

import hashlib
import json
import pickle
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from desktop_app.infra.errors import ModelFileError
from desktop_app.model import modelfile as MF
from desktop_app.model.networks import build_network
from desktop_app.model.preprocessing import PreprocessSpec

ARCH = "efficientnet-lite0"
SIZE = 64
LABELS = ("nodule", "effusion")


def _manifest(**overrides: Any) -> MF.ModelManifest:
    return MF.default_manifest(
        name="test model", architecture=ARCH, labels=LABELS, image_size=SIZE, **overrides
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module, str]:
    torch.manual_seed(0)
    model = build_network(ARCH, len(LABELS), pretrained=False, image_size=SIZE).eval()
    path = tmp_path_factory.mktemp("models") / "model.safetensors"
    digest = MF.save_model_file(
        path,
        model,
        _manifest(
            metrics={"test": {"nodule": {"auroc": {"value": 0.91, "ci95": [0.85, 0.95]}}}},
            training_data={"synthetic": True, "counts": {"train": 80, "val": 10, "test": 10}},
        ),
    )
    return path, model, digest


def _split(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(header: dict[str, Any], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


def _with_manifest(src: Path, dst: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    header, body = _split(src)
    manifest = json.loads(header["__metadata__"][MF.MANIFEST_KEY])
    edit(manifest)
    header["__metadata__"][MF.MANIFEST_KEY] = json.dumps(manifest)
    dst.write_bytes(_join(header, body))
    return dst


class TestRoundTrip:
    def test_same_outputs(self, saved: tuple[Path, torch.nn.Module, str]) -> None:
        path, model, digest = saved
        loaded = MF.load_model_file(path)
        assert loaded.sha256 == digest == loaded.manifest.tensor_sha256
        assert not loaded.network.training
        x = torch.randn(3, 3, SIZE, SIZE)
        with torch.no_grad():
            assert torch.equal(loaded.network(x), model(x))

    def test_manifest_read_cheaply_equals_what_was_written(
        self, saved: tuple[Path, torch.nn.Module, str]
    ) -> None:
        path, _, digest = saved
        manifest = MF.read_manifest(path)
        assert manifest.labels == LABELS
        assert manifest.tensor_sha256 == digest
        assert manifest.preprocessing == PreprocessSpec(image_size=SIZE)
        assert manifest.thresholds == {"nodule": 0.5, "effusion": 0.5}
        assert manifest.input_size == SIZE and manifest.input_channels == 3
        assert MF.ModelManifest.from_dict(json.loads(manifest.to_json())) == manifest

    def test_tensor_hash_follows_the_documented_definition(
        self, saved: tuple[Path, torch.nn.Module, str]
    ) -> None:
        path, _, digest = saved
        header, body = _split(path)
        header.pop("__metadata__")
        h = hashlib.sha256(b"radassist-tensors-v1\n")
        for name in sorted(header):
            entry = header[name]
            begin, end = entry["data_offsets"]
            shape = ",".join(str(s) for s in entry["shape"])
            h.update(f"{name}\0{entry['dtype']}\0{shape}\0{end - begin}\n".encode())
            h.update(body[begin:end])
        assert h.hexdigest() == digest

    def test_overwrite_is_atomic_and_refusal_keeps_the_old_file(
        self, saved: tuple[Path, torch.nn.Module, str], tmp_path: Path
    ) -> None:
        path, model, _ = saved
        target = tmp_path / "keep.safetensors"
        target.write_bytes(path.read_bytes())
        wrong = MF.default_manifest(
            name="x", architecture=ARCH, labels=("a", "b", "c"), image_size=SIZE
        )
        with pytest.raises(
            ModelFileError, match=r"tensor _fc.bias has shape \(2,\), the manifest's"
        ):
            MF.save_model_file(target, model, wrong)
        assert target.read_bytes() == path.read_bytes()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.safetensors"]

    def test_save_accepts_a_state_dict_and_a_non_finite_metric(self, tmp_path: Path) -> None:
        model = build_network("resnet18", 1, pretrained=False, image_size=SIZE)
        manifest = MF.default_manifest(
            name="r", architecture="resnet18", labels=["x"], image_size=SIZE,
            metrics={"test": {"x": {"auroc": float("nan")}}},
        )  # fmt: skip
        path = tmp_path / "r.safetensors"
        MF.save_model_file(path, model.state_dict(), manifest)
        assert MF.read_manifest(path).metrics == {"test": {"x": {"auroc": None}}}


class TestRefusals:
    def test_tampered_tensor_bytes(
        self, saved: tuple[Path, torch.nn.Module, str], tmp_path: Path
    ) -> None:
        path, _, _ = saved
        data = bytearray(path.read_bytes())
        data[-100] ^= 0x01
        bad = tmp_path / "tampered.safetensors"
        bad.write_bytes(bytes(data))
        MF.read_manifest(bad)  # the header alone is intact
        with pytest.raises(
            ModelFileError,
            match=r"tampered.safetensors: tensor data do not match the manifest's tensor_sha256",
        ):
            MF.load_model_file(bad)

    def test_labels_that_do_not_match_the_head(
        self, saved: tuple[Path, torch.nn.Module, str], tmp_path: Path
    ) -> None:
        path, _, _ = saved

        def three_labels(m: dict[str, Any]) -> None:
            m["labels"].append("cardiomegaly")
            m["thresholds"]["cardiomegaly"] = 0.5
            m["arch_args"]["num_classes"] = 3

        bad = _with_manifest(path, tmp_path / "labels.safetensors", three_labels)
        with pytest.raises(
            ModelFileError,
            match=r"tensor _fc.bias has shape \(2,\), efficientnet-lite0 with these arguments "
            r"needs \(3,\)",
        ):
            MF.load_model_file(bad)

        def labels_only(m: dict[str, Any]) -> None:
            m["labels"].append("cardiomegaly")
            m["thresholds"]["cardiomegaly"] = 0.5

        bad = _with_manifest(path, tmp_path / "labels2.safetensors", labels_only)
        with pytest.raises(
            ModelFileError, match=r"manifest has 3 labels but the network has 2 outputs"
        ):
            MF.read_manifest(bad)

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (
                lambda m: m.update(architecture="efficientnet-lite1"),
                r"tensor _blocks.1.3._bn0.bias that efficientnet-lite1 needs is missing",
            ),
            (
                lambda m: (
                    m["arch_args"].update(in_channels=1),
                    m["preprocessing"].update(channels=1),
                    m.update(input_channels=1),
                ),
                r"tensor _conv_stem.weight has shape \(32, 3, 3, 3\), efficientnet-lite0 with these "
                r"arguments needs \(32, 1, 3, 3\)",
            ),
            (lambda m: m.update(architecture="vgg16"), r"manifest architecture 'vgg16' is unknown"),
            (
                lambda m: m["arch_args"].update(depth=2),
                r"manifest arch_args: unknown architecture argument 'depth'",
            ),
            (
                lambda m: m["arch_args"].update(image_size=96),
                r"network image_size 96 differs from the preprocessing image_size 64",
            ),
        ],
    )
    def test_wrong_architecture_arguments(
        self,
        saved: tuple[Path, torch.nn.Module, str],
        tmp_path: Path,
        edit: Callable[[dict[str, Any]], None],
        message: str,
    ) -> None:
        bad = _with_manifest(saved[0], tmp_path / "arch.safetensors", edit)
        with pytest.raises(ModelFileError, match=message):
            MF.load_model_file(bad)

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (
                lambda m: m.update(format_version=3),
                r"format version 3 is newer than this RadAssist reads \(2\) \(upgrade RadAssist\)",
            ),
            (lambda m: m.update(extra="x"), r"manifest has an unknown key 'extra'"),
            (lambda m: m.pop("intended_use"), r"manifest key 'intended_use' is missing"),
            (
                lambda m: m["thresholds"].update(nodule=1.5),
                r"threshold for 'nodule' is 1.5, not a number in \[0, 1\]",
            ),
            (
                lambda m: m["thresholds"].pop("effusion"),
                r"manifest has no threshold for label 'effusion'",
            ),
            (
                lambda m: m.update(labels=["nodule", "nodule"]),
                r"manifest label 'nodule' appears twice",
            ),
            (
                lambda m: m.update(labels=["../../x", "b"]),
                r"manifest label '../../x' is not allowed",
            ),
            (lambda m: m.update(labels=[]), r"manifest labels are empty"),
            (
                lambda m: m["preprocessing"].update(normalization="zscore"),
                r"manifest preprocessing normalization 'zscore' is unknown",
            ),
            (
                lambda m: m["preprocessing"].pop("pad_value"),
                r"manifest preprocessing key 'pad_value' is missing",
            ),
            (
                lambda m: m.update(tensor_sha256="abc"),
                r"manifest tensor_sha256 'abc' is not 64 hex digits",
            ),
            (
                lambda m: m.update(created="yesterday"),
                r"manifest created 'yesterday' is not an ISO date",
            ),
            (
                lambda m: m.update(input_size=128),
                r"manifest input 128x3 differs from its preprocessing",
            ),
        ],
    )
    def test_invalid_manifest(
        self,
        saved: tuple[Path, torch.nn.Module, str],
        tmp_path: Path,
        edit: Callable[[dict[str, Any]], None],
        message: str,
    ) -> None:
        bad = _with_manifest(saved[0], tmp_path / "manifest.safetensors", edit)
        with pytest.raises(ModelFileError, match=message):
            MF.read_manifest(bad)
        with pytest.raises(ModelFileError, match=message):
            MF.load_model_file(bad)

    @pytest.mark.parametrize("cut", [1, 1000, 40_000])
    def test_truncated(
        self, saved: tuple[Path, torch.nn.Module, str], tmp_path: Path, cut: int
    ) -> None:
        data = saved[0].read_bytes()
        bad = tmp_path / "cut.safetensors"
        bad.write_bytes(data[: len(data) - cut] if cut < 40_000 else data[:cut])
        with pytest.raises(ModelFileError, match=r"cut.safetensors: .*truncated"):
            MF.load_model_file(bad)

    def test_trailing_bytes(self, saved: tuple[Path, torch.nn.Module, str], tmp_path: Path) -> None:
        bad = tmp_path / "long.safetensors"
        bad.write_bytes(saved[0].read_bytes() + b"\0" * 16)
        with pytest.raises(ModelFileError, match=r"file has 16 bytes after the last tensor"):
            MF.load_model_file(bad)

    @pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt"])
    def test_pickle_by_name_says_how_to_convert(self, tmp_path: Path, suffix: str) -> None:
        path = tmp_path / f"model{suffix}"
        torch.save({"w": torch.zeros(2)}, path)
        with pytest.raises(
            ModelFileError,
            match=rf"model\{suffix}: is a PyTorch \{suffix} file \(a pickle\).*\(convert a state "
            r"dict with: radassist-train convert IN.pth --arch NAME --labels a,b,c --out "
            r"model.safetensors\)",
        ):
            MF.load_model_file(path)

    def test_pickle_disguised_as_safetensors(self, tmp_path: Path) -> None:
        path = tmp_path / "model.safetensors"
        path.write_bytes(pickle.dumps({"w": [1.0] * 100}, protocol=4))
        with pytest.raises(ModelFileError, match=r"is a Python pickle .*radassist-train convert"):
            MF.read_manifest(path)
        legacy = tmp_path / "legacy.safetensors"
        torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
        with pytest.raises(ModelFileError, match=r"is a Python pickle"):
            MF.load_model_file(legacy)

    def test_zip_torch_save_disguised_as_safetensors(self, tmp_path: Path) -> None:
        path = tmp_path / "model.safetensors"
        torch.save({"w": torch.zeros(2)}, path)
        with pytest.raises(ModelFileError, match=r"is a zip archive .*radassist-train convert"):
            MF.load_model_file(path)

    @pytest.mark.parametrize("content", [b"", b"\x01", b"12345678"])
    def test_tiny_files(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / "tiny.safetensors"
        path.write_bytes(content)
        with pytest.raises(ModelFileError, match=rf"file is only {len(content)} bytes, too short"):
            MF.load_model_file(path)

    def test_enormous_declared_header_is_refused_without_allocating(self, tmp_path: Path) -> None:
        path = tmp_path / "huge.safetensors"
        path.write_bytes((2**62).to_bytes(8, "little") + b'{"a": 1}')
        tracemalloc.start()
        try:
            with pytest.raises(
                ModelFileError, match=r"declares a 4611686018427387904-byte header, over the limit"
            ):
                MF.read_manifest(path)
            with pytest.raises(ModelFileError, match=r"over the limit"):
                MF.load_model_file(path)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 1_000_000

    def test_header_longer_than_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "short.safetensors"
        path.write_bytes((5000).to_bytes(8, "little") + b"{" + b" " * 100)
        with pytest.raises(
            ModelFileError, match=r"declares a 5000-byte header but the file has 101 bytes"
        ):
            MF.read_manifest(path)

    def test_not_safetensors(self, tmp_path: Path) -> None:
        path = tmp_path / "x.safetensors"
        path.write_bytes(b"GIF89a" + b"\0" * 100)
        with pytest.raises(
            ModelFileError, match=r"x.safetensors: is not a safetensors model file$"
        ):
            MF.read_manifest(path)

    def test_plain_safetensors_without_manifest(self, tmp_path: Path) -> None:
        path = tmp_path / "plain.safetensors"
        save_file({"w": torch.zeros(3)}, str(path))
        with pytest.raises(
            ModelFileError, match=r"is a safetensors file without a RadAssist manifest \(package"
        ):
            MF.load_model_file(path)

    def test_duplicate_header_keys(
        self, saved: tuple[Path, torch.nn.Module, str], tmp_path: Path
    ) -> None:
        header, body = _split(saved[0])
        raw = json.dumps(header)
        doubled = raw[:-1] + ', "_fc.bias": ' + json.dumps(header["_fc.bias"]) + "}"
        bad = tmp_path / "dup.safetensors"
        bad.write_bytes(len(doubled).to_bytes(8, "little") + doubled.encode() + body)
        with pytest.raises(ModelFileError, match=r"header names '_fc.bias' twice"):
            MF.read_manifest(bad)

    def test_overlapping_offsets(
        self, saved: tuple[Path, torch.nn.Module, str], tmp_path: Path
    ) -> None:
        header, body = _split(saved[0])
        header["_fc.bias"]["data_offsets"] = [
            0,
            header["_fc.bias"]["data_offsets"][1] - header["_fc.bias"]["data_offsets"][0],
        ]
        bad = tmp_path / "overlap.safetensors"
        bad.write_bytes(_join(header, body))
        with pytest.raises(ModelFileError, match=r"starts at byte .* expected .*damaged file"):
            MF.read_manifest(bad)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ModelFileError, match=r"nope.safetensors: model file not found"):
            MF.read_manifest(tmp_path / "nope.safetensors")


class TestModelCard:
    def test_card_from_the_manifest(self, saved: tuple[Path, torch.nn.Module, str]) -> None:
        loaded = MF.load_model_file(saved[0])
        card = loaded.model_card
        assert card == MF.model_card_markdown(loaded.manifest)
        assert "Trained on synthetic phantoms, for demonstration only — not for diagnosis" in card
        assert "| nodule | 0.500 |" in card
        assert "0.910 (95% CI 0.850–0.950)" in card
        assert loaded.sha256 in card
        assert "## Limitations" in card and "## Intended use" in card

    def test_card_for_real_data_does_not_claim_phantoms(self) -> None:
        card = MF.model_card_markdown(_manifest())
        assert "synthetic" not in card and "No metrics recorded" in card
