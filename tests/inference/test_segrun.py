"""A segmentation model file run by the engine (ONNX Runtime, slice by slice): masks on the
original grid, the lesion table, findings.json, and `radassist predict`'s DICOM SEG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from desktop_app.cli import main as cli_main
from desktop_app.inference.engine import InferenceEngine
from desktop_app.model import modelfile as MF
from desktop_app.model.applicability import IntendedInput
from desktop_app.model.imageio import image_from_frame
from desktop_app.model.networks import build_network
from desktop_app.phantoms.studies import write_ct_series
from desktop_app.studies.index import index_paths
from desktop_app.studies.series import assemble
from desktop_app.studies.volume import SeriesVolume

ARCH = "unet-lite0"
SIZE = 64
SLICES, ROWS = 5, 48


def make_seg_model(path: Path, bias: float = 6.0) -> Path:
    """A random-init unet-lite0 whose head outputs ``bias`` everywhere (zero weights): every
    pixel foreground for bias > 0, none for bias < 0. Deterministic, no training."""
    torch.manual_seed(0)
    network = build_network(ARCH, 1, pretrained=False, image_size=SIZE).eval()
    convs = [m for m in network.segmentation_head.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[-1].weight.zero_()
        assert convs[-1].bias is not None
        convs[-1].bias.fill_(bias)
    manifest = MF.default_manifest(
        name="seg test model", architecture=ARCH, labels=("nodule",), image_size=SIZE,
        task="segmentation", intended_input=IntendedInput(modalities=("CT",)),
    )  # fmt: skip
    MF.save_model_file(path, network, manifest)
    return path


@pytest.fixture(scope="module")
def seg_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_seg_model(tmp_path_factory.mktemp("segmodel") / "seg.safetensors")


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(folder, 3, slices=SLICES, rows=ROWS, lesions=1)
    return folder


def _volume(folder: Path) -> SeriesVolume:
    index = index_paths([str(folder)])
    (_, _, series), *_ = list(index.iter_series())
    return SeriesVolume(assemble(series).stacks[0], keep=True)


class TestEngineSegmentation:
    def test_mask_on_the_original_grid_and_a_lesion_table(
        self, seg_model: Path, ct_folder: Path
    ) -> None:
        engine = InferenceEngine(seg_model, device="cpu")
        assert engine.backend.startswith("onnxruntime")
        volume = _volume(ct_folder)
        result = engine.run(volume)
        assert result.mask is not None
        assert result.mask.shape == (SLICES, ROWS, ROWS)
        assert result.lesions is not None and len(result.lesions) == 1
        lesion = result.lesions.lesions[0]
        assert lesion.voxels == SLICES * ROWS * ROWS  # the whole volume is foreground
        assert lesion.first_slice == 0 and lesion.last_slice == SLICES - 1
        assert lesion.volume_mm3 is not None and lesion.volume_mm3 > 0
        assert result.lesions.value_unit == "HU"
        hu = np.stack([image_from_frame(volume.frame(i)).values for i in range(SLICES)])
        assert lesion.mean_value == pytest.approx(float(hu.astype(np.float64).mean()), abs=0.01)
        assert lesion.max_value == pytest.approx(float(hu.max()))
        assert lesion.max_probability is not None and lesion.max_probability > 0.99
        assert result.findings[0].positive and result.findings[0].heatmap is None
        doc = result.to_json()
        assert doc["lesions"]["lesions"][0]["voxels"] == SLICES * ROWS * ROWS
        json.dumps(doc)

    def test_an_empty_mask_gives_no_lesion(self, tmp_path: Path, ct_folder: Path) -> None:
        model = make_seg_model(tmp_path / "none.safetensors", bias=-6.0)
        result = InferenceEngine(model, device="cpu").run(_volume(ct_folder))
        assert result.lesions is not None and len(result.lesions) == 0
        assert result.mask is not None and not result.mask.any()
        assert not result.findings[0].positive


class TestPredictSegmentation:
    def test_predict_writes_a_seg_that_references_the_series(
        self, seg_model: Path, ct_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        import highdicom as hd
        import pydicom

        InferenceEngine(seg_model, device="cpu")  # the graph is cached: no torch needed below
        out = tmp_path / "out"
        code = cli_main(
            ["predict", str(ct_folder), "--out", str(out), "--model", str(seg_model), "--quiet"]
        )
        captured = capsys.readouterr()
        assert code == 0, captured.err
        (folder,) = [p for p in out.iterdir() if p.is_dir()]
        doc = json.loads((folder / "findings.json").read_text())
        assert len(doc["lesions"]["lesions"]) == 1
        assert not list(folder.glob("heatmap_*.png"))
        seg = hd.seg.segread(folder / "segmentation.dcm")
        sources = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                   for p in ct_folder.glob("*.dcm")}  # fmt: skip
        referenced = {
            str(item.ReferencedSOPInstanceUID)
            for series in seg.ReferencedSeriesSequence
            for item in series.ReferencedInstanceSequence
        }
        assert referenced == sources
        assert seg.number_of_segments == 1
        assert "lesion 1" in captured.out and "mm" in captured.out
