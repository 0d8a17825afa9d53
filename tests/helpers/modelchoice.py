"""Model files and series for the model-choice tests (catalog, predict, GUI): a tiny CT
segmenter and a tiny chest-radiograph classifier (seeded, random init, 64 px), and small
synthetic CT, chest DX and MR series. Imported by tests/model, tests/commands and tests/qt."""

from __future__ import annotations

from pathlib import Path

import pydicom
import torch
from pydicom.uid import MRImageStorage

from desktop_app.model import modelfile as MF
from desktop_app.model.applicability import IntendedInput
from desktop_app.model.networks import build_network
from desktop_app.phantoms.studies import write_chest_xr, write_ct_series
from tests.helpers.applicability import make_applicability_model

SIZE = 64
CT_SLICES = IntendedInput(("CT",), (), (), "slice", 0, "test: CT slices")
CHEST_RADIOGRAPHS = IntendedInput(("CR", "DX"), ("CHEST",), (), "projection", 0, "test")
CLASSIFIER = "radassist-demo-test.safetensors"
SEGMENTER = "radassist-ct-test.safetensors"


def make_ct_segmenter(path: Path, bias: float = 6.0) -> Path:
    """A unet-lite0 for CT slices whose head outputs ``bias`` everywhere (zero weights): every
    pixel foreground for bias > 0. Deterministic, no training."""
    torch.manual_seed(0)
    network = build_network("unet-lite0", 1, pretrained=False, image_size=SIZE).eval()
    convs = [m for m in network.segmentation_head.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        convs[-1].weight.zero_()
        assert convs[-1].bias is not None
        convs[-1].bias.fill_(bias)
    manifest = MF.default_manifest(
        name="ct test segmenter", architecture="unet-lite0", labels=("nodule",),
        image_size=SIZE, task="segmentation", intended_input=CT_SLICES,
    )  # fmt: skip
    MF.save_model_file(path, network, manifest)
    return path


def make_chest_classifier(path: Path) -> Path:
    """A seeded EfficientNet-Lite0 classifier for chest CR/DX radiographs."""
    return make_applicability_model(path, intended_input=CHEST_RADIOGRAPHS)


def models_folder(folder: Path) -> Path:
    """``folder`` holding the classifier (named radassist-demo-*) and the CT segmenter."""
    folder.mkdir(parents=True, exist_ok=True)
    make_chest_classifier(folder / CLASSIFIER)
    make_ct_segmenter(folder / SEGMENTER)
    return folder


def ct_series(folder: Path, slices: int = 3, rows: int = 32) -> Path:
    write_ct_series(folder, 7, slices=slices, rows=rows, lesions=0)
    return folder


def chest_dx(folder: Path, rows: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path, _truth = write_chest_xr(folder / "chest.dcm", 3, rows=rows)
    return path


def mr_series(folder: Path, slices: int = 3, rows: int = 32) -> Path:
    """A CT phantom series relabelled MR (Modality and SOP Class): what no test model fits."""
    write_ct_series(folder, 11, slices=slices, rows=rows, lesions=0)
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.Modality = "MR"
        ds.SOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.save_as(path)
    return folder
