"""Model files for the input-check, out-of-distribution and temperature tests: a seeded small
network with an intended input, an OOD Gaussian (identity precision around a mean of ones, so
the score is the features' Euclidean distance to it, about sqrt(d) for a random-init network) whose threshold flags every image or none, temperatures; and
a format-1 (legacy) copy. Imported by tests/inference, tests/exports and tests/e2e."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from desktop_app.model import modelfile as MF
from desktop_app.model.applicability import IntendedInput, OodModel, OodSpec
from desktop_app.model.networks import build_network, feature_dim
from desktop_app.model.tensorfile import tensor_sha256
from tests.helpers.engine import ARCH, LABELS, SIZE

FLAG_ALL = 1.0
"""A threshold every image's score is over (a random-init network's features are near zero,
far from the mean of ones)."""
FLAG_NONE = 1e9
"""A threshold no image's score reaches."""

CHEST_RADIOGRAPHS = IntendedInput(["CR", "DX"], ["CHEST"], [], "projection", 0, "test")


def network(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_network(ARCH, len(LABELS), pretrained=False, image_size=SIZE).eval()


def identity_ood(d: int, threshold: float) -> OodModel:
    spec = OodSpec("mahalanobis", d, threshold, "test threshold", {})
    return OodModel(spec, np.ones(d, np.float32), np.eye(d, dtype=np.float32))


def make_applicability_model(
    path: Path,
    *,
    intended_input: IntendedInput = CHEST_RADIOGRAPHS,
    ood_threshold: float | None = None,
    temperatures: dict[str, float] | None = None,
    seed: int = 0,
) -> Path:
    """A format-2 model file; with ``ood_threshold`` it has OOD statistics."""
    net = network(seed)
    manifest = MF.default_manifest(
        name="applicability test model",
        architecture=ARCH,
        labels=LABELS,
        image_size=SIZE,
        intended_input=intended_input,
        temperatures=temperatures,
    )
    ood = None if ood_threshold is None else identity_ood(feature_dim(net), ood_threshold)
    MF.save_model_file(path, net, manifest, ood=ood)
    return path


def make_legacy_model(path: Path, seed: int = 0) -> Path:
    """A format-1 model file (no intended input, OOD statistics or temperatures)."""
    modern = make_applicability_model(path.with_name(path.stem + "-v2.safetensors"), seed=seed)
    manifest: dict[str, Any] = json.loads(MF.read_manifest(modern).to_json())
    for key in ("intended_input", "ood", "temperatures"):
        del manifest[key]
    manifest["format_version"] = 1
    state = dict(load_file(str(modern)))
    manifest["tensor_sha256"] = tensor_sha256(state)
    save_file(state, str(path), metadata={MF.MANIFEST_KEY: json.dumps(manifest)})
    return path
