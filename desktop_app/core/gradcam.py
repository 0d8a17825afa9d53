"""Grad-CAM (Selvaraju et al., ICCV 2017) with plain hooks, for any network built by
``training.networks``.

For a class score ``y_c`` and the feature map ``A`` (channels K, h, w) of the target layer
(``training.networks.gradcam_target_layer``: the last feature map before pooling), the map is
``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of ``dy_c / dA_k``. It is
normalised by its maximum to [0, 1] (an all-zero map stays zero: nothing pushed the score up).

One forward pass serves every requested label: the gradients come from
``torch.autograd.grad`` per label with the graph retained, so no ``.grad`` is ever written on
the network's parameters and the network is left exactly as it was (eval mode, no hooks).
Hooks are registered per call and removed in ``finally``; a network must not be shared by two
threads calling this at once (the engine holds a lock per engine, and each engine has its own
network).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CamResult:
    """``logits``: (labels,) from the Grad-CAM forward pass; ``maps``: label index → float32
    (h, w) in [0, 1] on the target layer's grid (7 x 7 for EfficientNet-Lite0 at 224)."""

    logits: np.ndarray
    maps: dict[int, np.ndarray]


def find_module(network: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (dotted path); ValueError naming a few that exist."""
    modules = dict(network.named_modules())
    if name not in modules:
        some = ", ".join(list(modules)[-5:])
        raise ValueError(f"the network has no layer {name!r} (last layers: {some})")
    return modules[name]


def grad_cam(
    network: nn.Module,
    layer: str | nn.Module,
    x: torch.Tensor,
    class_indices: Sequence[int],
) -> CamResult:
    """Grad-CAM maps of one image ``x`` (1, C, S, S) for each of ``class_indices``.

    Runs with gradients enabled whatever the caller's mode, on ``x``'s device; the network
    should be in eval mode (dropout and batch norm as at inference).
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"grad_cam takes one image (1, C, H, W), got {tuple(x.shape)}")
    target = find_module(network, layer) if isinstance(layer, str) else layer
    captured: list[torch.Tensor] = []

    def keep_output(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        captured.append(output)

    handle = target.register_forward_hook(keep_output)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            inp = x.detach().clone().requires_grad_(True)
            logits = network(inp)
            if not captured:
                raise ValueError("the Grad-CAM layer was not called during the forward pass")
            activation = captured[-1]
            maps: dict[int, np.ndarray] = {}
            indices = list(dict.fromkeys(int(c) for c in class_indices))
            for n, c in enumerate(indices):
                (grad,) = torch.autograd.grad(
                    logits[0, c], activation, retain_graph=n < len(indices) - 1
                )
                with torch.no_grad():
                    weights = grad[0].mean(dim=(1, 2))
                    cam = torch.relu((weights[:, None, None] * activation[0].detach()).sum(0))
                    peak = float(cam.max())
                    if peak > 0:
                        cam = cam / peak
                maps[c] = cam.float().cpu().numpy()
            out_logits = logits.detach()[0].float().cpu().numpy()
    finally:
        handle.remove()
    return CamResult(out_logits, maps)


# --------------------------------------------------------------------------- from features


def head_weight(network: nn.Module) -> np.ndarray:
    """The final linear layer's weight (labels, K) of a network built by ``training.networks``."""
    from training.networks import head_name

    inner = getattr(network, "module", network)
    layer = getattr(inner, head_name(inner))
    return np.asarray(layer.weight.detach().float().cpu().numpy(), dtype=np.float32)


def cam_from_features(
    features: np.ndarray, weight: np.ndarray, class_indices: Sequence[int]
) -> dict[int, np.ndarray]:
    """Grad-CAM maps from the target layer's output alone, for networks whose target layer
    feeds global average pooling and one linear layer (every network of ``training.networks``:
    EfficientNet-Lite, ResNet, DenseNet; dropout is the identity in eval mode).

    Then ``dy_c / dA_k(i, j) = w_ck / (h w)`` everywhere, so Grad-CAM's weights are the head's
    weights up to a constant that the normalisation removes: the map is
    ``ReLU(sum_k w_ck A_k) / max`` (Zhou et al.'s CAM, which Grad-CAM generalises). No backward
    pass, and the features come with the forward pass that computed the probabilities.
    ``features``: (K, h, w) of one image; ``weight``: (labels, K).
    """
    a = np.asarray(features, dtype=np.float32)
    w = np.asarray(weight, dtype=np.float32)
    if a.ndim != 3 or w.ndim != 2 or w.shape[1] != a.shape[0]:
        raise ValueError(f"features {a.shape} and head weight {w.shape} do not fit")
    maps: dict[int, np.ndarray] = {}
    for c in dict.fromkeys(int(c) for c in class_indices):
        cam = np.maximum(np.tensordot(w[c], a, axes=(0, 0)), np.float32(0.0))
        peak = float(cam.max()) if cam.size else 0.0
        maps[c] = (cam / np.float32(peak) if peak > 0 else cam).astype(np.float32, copy=False)
    return maps


def features_cam_difference(
    network: nn.Module, layer: str, x: torch.Tensor, weight: np.ndarray
) -> float:
    """Largest difference between :func:`grad_cam` and :func:`cam_from_features` on ``x``
    (1, C, S, S), over every label: ~1e-6 when the shortcut is exact for this network."""
    labels = list(range(weight.shape[0]))
    captured: list[torch.Tensor] = []
    handle = find_module(network, layer).register_forward_hook(
        lambda _m, _i, out: captured.append(out)
    )
    try:
        with torch.inference_mode():
            network(x)
    finally:
        handle.remove()
    fast = cam_from_features(captured[-1][0].float().cpu().numpy(), weight, labels)
    slow = grad_cam(network, layer, x, labels).maps
    return max(float(np.max(np.abs(fast[c] - slow[c]))) for c in labels)
