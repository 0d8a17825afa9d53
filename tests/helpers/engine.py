"""Helpers for the inference-engine tests: small model files made here (random init, seeded),
and the bundled demo model when it exists. Imported by tests/inference/test_engine.py and
tests/e2e/test_predict_cli.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from desktop_app.model import modelfile as MF
from desktop_app.model.networks import build_network
from desktop_app.model.paths import bundled_model_files, bundled_models_dir, default_model_path

ARCH = "efficientnet-lite0"
SIZE = 64
LABELS = ("nodule", "effusion", "cardiomegaly")


def make_model_file(
    path: Path, *, labels: tuple[str, ...] = LABELS, size: int = SIZE, seed: int = 0, **kw: Any
) -> Path:
    """A valid model file with a seeded random-init EfficientNet-Lite0 (fast at 64 px)."""
    torch.manual_seed(seed)
    network = build_network(ARCH, len(labels), pretrained=False, image_size=size).eval()
    manifest = MF.default_manifest(
        name="engine test model", architecture=ARCH, labels=labels, image_size=size, **kw
    )
    MF.save_model_file(path, network, manifest)
    return path


def bundled_model_or_skip() -> Path:
    """The bundled demo model. Skips (saying so) only while resources/models/ holds no model
    file at all; once it holds one, a missing or ambiguous default is a failure."""
    if not bundled_model_files():
        pytest.skip(
            f"the bundled demo model is not in {bundled_models_dir()} yet "
            "(train it with `make model`); this test runs once it is there"
        )
    return default_model_path()
