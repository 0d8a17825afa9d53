"""The model file: one ``.safetensors`` file whose ``__metadata__`` holds the RadAssist manifest.

This is the one module that writes model files (training, ``radassist-train convert``) and
reads them (the app). Nothing on the read path unpickles: the header is parsed by
``desktop_app.model.tensorfile`` (8-byte little-endian length + JSON, with size limits) and
tensors come from ``safetensors.torch.load``. The manifest lives in ``manifest`` and the model
card in ``modelcard``; their public names are importable from here too.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from desktop_app.infra.atomicio import atomic_path
from desktop_app.infra.errors import ConfigError, ModelFileError
from desktop_app.model.applicability import OOD_MEAN, OOD_PRECISION, OOD_TENSOR_PREFIX, OodModel
from desktop_app.model.manifest import (
    DEFAULT_INTENDED_USE,
    FORMAT_VERSION,
    LABEL_PATTERN,
    MANIFEST_KEY,
    ModelManifest,
    default_manifest,
)
from desktop_app.model.modelcard import model_card_markdown
from desktop_app.model.modeldata import (
    MAX_MODEL_BYTES,
    is_graph_tensor,
    manifest_of,
    read_bytes,
    read_manifest,
    without_graphs,
)
from desktop_app.model.networks import build_from_arch_args, unwrap
from desktop_app.model.tensorfile import (
    CONVERT_HINT,
    MAX_HEADER_BYTES,
    Header,
    hash_entries,
    header_length,
    key_mismatch,
    parse_header,
    tensor_sha256,
    torch_dtype_names,
)

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A verified model file: its manifest, the network (eval mode) and where it came from."""

    manifest: ModelManifest
    network: nn.Module
    path: Path
    sha256: str
    load_seconds: float = 0.0
    ood: OodModel | None = None

    @property
    def model_card(self) -> str:
        return self.manifest.model_card or model_card_markdown(self.manifest)


# --------------------------------------------------------------------------- reading


# --------------------------------------------------------------------------- loading


def _expected_tensors(network: nn.Module, manifest: ModelManifest) -> dict[str, Any]:
    """name -> (dtype name, shape) of every tensor the file must hold: the network's, and the
    out-of-distribution statistics when the manifest has an ``ood`` block."""
    names = torch_dtype_names()
    expected = {
        name: (names.get(t.dtype, str(t.dtype)), tuple(t.shape))
        for name, t in network.state_dict().items()
    }
    if manifest.ood is not None:
        for name, shape in manifest.ood.tensor_shapes().items():
            expected[name] = ("F32", shape)
    return expected


def _check_tensors_match(
    path: Path, header: Header, expected: Mapping[str, Any], arch: str
) -> None:
    for name in sorted(expected):
        if name not in header.tensors:
            raise ModelFileError(f"tensor {name} that {arch} needs is missing", path)
    for name in sorted(header.tensors):
        if name not in expected:
            where = "the manifest's ood block" if name.startswith(OOD_TENSOR_PREFIX) else arch
            raise ModelFileError(f"tensor {name} is not part of {where}", path)
    for name in sorted(expected):
        entry = header.tensors[name]
        dtype, shape = expected[name]
        if entry.shape != shape:
            raise ModelFileError(
                f"tensor {name} has shape {entry.shape}, {arch} with these arguments needs {shape}",
                path,
            )
        if entry.dtype != dtype:
            raise ModelFileError(f"tensor {name} is {entry.dtype}, {arch} needs {dtype}", path)


def load_model_file(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    max_bytes: int = MAX_MODEL_BYTES,
) -> LoadedModel:
    """Load and verify a model file; refuse (ModelFileError, one line) anything not exactly right.

    Checks, in order: not a pickle/zip, size and header limits, the header's tensor layout
    (no holes, overlaps, truncation), the manifest (strict), every tensor's name, shape and
    dtype against the rebuilt architecture, and the tensor hash. Only then are the tensors
    materialised (``safetensors.torch.load``; no pickle) into a network in eval mode.
    """
    start = time.perf_counter()
    p = Path(path)
    data = read_bytes(p, max_bytes)
    size = len(data)
    # from here on, only these bytes are checked, hashed and loaded
    length = header_length(p, data[:9], size)
    # stored ONNX graphs (modeldata) are not the network's and not in the tensor hash
    header = without_graphs(parse_header(p, data[8 : 8 + length], length, size))
    manifest = manifest_of(p, header)
    try:
        network = build_from_arch_args(
            manifest.architecture,
            manifest.arch_args,
            shapes={name: entry.shape for name, entry in header.tensors.items()},
        )
    except ConfigError as err:
        raise ModelFileError(f"architecture can't be built: {err.reason}", p) from None
    _check_tensors_match(p, header, _expected_tensors(network, manifest), manifest.architecture)
    view = memoryview(data)
    digest = hash_entries(
        (
            name,
            e.dtype,
            e.shape,
            view[header.data_start + e.begin : header.data_start + e.end],
        )
        for name, e in header.tensors.items()
    )
    if digest != manifest.tensor_sha256:
        raise ModelFileError(
            "tensor data do not match the manifest's tensor_sha256; the file was altered or "
            "damaged",
            p,
        )
    import safetensors.torch

    try:
        state = safetensors.torch.load(data)
    except Exception as err:  # the checks above make this unexpected
        raise ModelFileError(f"tensors can't be loaded: {type(err).__name__}: {err}", p) from None
    state = {k: v for k, v in state.items() if not is_graph_tensor(k)}
    _refuse_non_finite(p, state)
    ood = _ood_model(p, manifest, state)
    try:
        network.load_state_dict(state, strict=True)
    except Exception as err:  # the checks above make this unexpected
        raise ModelFileError(f"tensors can't be loaded: {type(err).__name__}: {err}", p) from None
    network.to(map_location)
    network.eval()
    elapsed = time.perf_counter() - start
    log.info("loaded model %s %s in %.2f s", manifest.name, manifest.version, elapsed)
    if manifest.legacy:
        log.warning(
            "model file %s predates intended-input checks (format 1): it is checked as %s "
            "and has no out-of-distribution score or calibration",
            p.name,
            manifest.intended_input.describe(),
        )
    return LoadedModel(manifest, network, p, digest, elapsed, ood)


def _refuse_non_finite(path: Path, state: Mapping[str, torch.Tensor]) -> None:
    """NaN or infinite weights load fine and then give NaN or p = 1.0 everywhere: refuse them."""
    for name in sorted(state):
        t = state[name]
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ModelFileError(
                f"tensor {name} holds {bad} NaN or infinite value(s); the training diverged or "
                "the file was altered",
                path,
                "retrain, or use another model file",
            )


def _ood_model(
    path: Path, manifest: ModelManifest, state: dict[str, torch.Tensor]
) -> OodModel | None:
    """Takes the OOD tensors out of ``state`` (they are not the network's) into an OodModel."""
    extras = {name: state.pop(name) for name in list(state) if name.startswith(OOD_TENSOR_PREFIX)}
    if manifest.ood is None:
        return None
    try:
        return OodModel(
            manifest.ood,
            extras[OOD_MEAN].numpy(),
            extras[OOD_PRECISION].numpy(),
        )
    except ModelFileError as err:
        raise ModelFileError(err.reason, path) from None


# --------------------------------------------------------------------------- saving


def _state_dict_of(model_or_state_dict: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, Any]:
    if isinstance(model_or_state_dict, nn.Module):
        state = unwrap(model_or_state_dict).state_dict()  # DDP keeps the network in .module
    else:
        state = dict(model_or_state_dict)
    out = {}
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise ModelFileError(f"state dict entry {name} is not a tensor")
        # own, contiguous CPU storage: safetensors refuses shared or strided tensors
        out[name] = t.detach().to("cpu", copy=True).contiguous()
    return out


def save_model_file(
    path: str | os.PathLike[str],
    model_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    manifest: ModelManifest,
    ood: OodModel | None = None,
) -> str:
    """Write a model file atomically; return the tensor sha256 (also stored in the manifest).

    The tensors must match ``manifest``'s architecture exactly (names, shapes, dtypes), and
    hold no NaN or infinity: a file that the app would refuse is never written. ``ood``: the
    out-of-distribution statistics; its spec replaces the manifest's ``ood`` block.
    """
    import safetensors.torch

    p = Path(path)
    if p.suffix.lower() != ".safetensors":
        raise ModelFileError("a model file's name must end in .safetensors", p)
    state = _state_dict_of(model_or_state_dict)
    try:
        network = build_from_arch_args(
            manifest.architecture,
            manifest.arch_args,
            shapes={name: tuple(t.shape) for name, t in state.items()},
        )
    except ConfigError as err:
        raise ModelFileError(f"architecture can't be built: {err.reason}", p) from None
    expected = network.state_dict()
    mismatch = key_mismatch(expected, state)
    if mismatch:
        raise ModelFileError(f"the weights don't match {manifest.architecture} ({mismatch})", p)
    for name in sorted(expected):
        if tuple(state[name].shape) != tuple(expected[name].shape):
            raise ModelFileError(
                f"tensor {name} has shape {tuple(state[name].shape)}, the manifest's "
                f"{manifest.architecture} needs {tuple(expected[name].shape)}",
                p,
            )
        if state[name].dtype != expected[name].dtype:
            state[name] = state[name].to(expected[name].dtype)
    _refuse_non_finite(p, state)
    if ood is not None:
        state.update({k: torch.from_numpy(v.copy()) for k, v in ood.tensors().items()})
    digest = tensor_sha256(state)
    final = replace(manifest, tensor_sha256=digest, ood=None if ood is None else ood.spec)
    metadata = {MANIFEST_KEY: final.to_json()}
    if len(json.dumps(metadata)) > MAX_HEADER_BYTES // 2:
        raise ModelFileError("manifest is too large for a model file header", p)
    with atomic_path(p) as tmp:
        safetensors.torch.save_file(state, str(tmp), metadata=metadata)
    log.info("wrote model file %s (%d tensors, sha256 %s)", p, len(state), digest[:12])
    return digest


__all__ = [
    "CONVERT_HINT",
    "DEFAULT_INTENDED_USE",
    "FORMAT_VERSION",
    "LABEL_PATTERN",
    "MANIFEST_KEY",
    "LoadedModel",
    "ModelManifest",
    "default_manifest",
    "load_model_file",
    "model_card_markdown",
    "read_manifest",
    "save_model_file",
    "tensor_sha256",
]
