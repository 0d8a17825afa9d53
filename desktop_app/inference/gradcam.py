"""Heatmaps with plain hooks, for any network built by ``desktop_app.model.networks``: Grad-CAM
(Selvaraju et al., ICCV 2017) on the last feature map (:func:`grad_cam`, and its closed form
:func:`cam_from_features`), and the engine's default, :func:`fine_cam`: LayerCAM at the
stride-8 and stride-16 stages fused with that CAM (four times finer; see its docstring).

For a class score ``y_c`` and the feature map ``A`` (channels K, h, w) of the target layer
(``desktop_app.model.networks.gradcam_target_layer``: the last feature map before pooling), the map is
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
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from desktop_app.inference.ortrun import cam_from_features

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
    """The final linear layer's weight (labels, K) of a network built by ``desktop_app.model.networks``."""
    from desktop_app.model.networks import head_name

    inner = getattr(network, "module", network)
    layer = getattr(inner, head_name(inner))
    return np.asarray(layer.weight.detach().float().cpu().numpy(), dtype=np.float32)


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


# --------------------------------------------------------------------------- fine maps (LayerCAM)

# The stride-8 and stride-16 stage outputs of each family of ``desktop_app.model.networks``.
FINE_LAYERS: dict[str, tuple[str, ...]] = {
    "lite": ("_blocks.2", "_blocks.4"),
    "resnet": ("layer2", "layer3"),
    "densenet": ("features.denseblock2", "features.denseblock3"),
}

FINE_SMOOTHING = 1.0
"""Gaussian sigma, in cells of the finest layer, applied to the fused map: one stride-8 cell
(half a stride-16 cell). Measured on the demo test split: raises the pointing game and keeps
the region near the finding's size (benchmarks/README.md)."""


def fine_layers(arch: str) -> tuple[str, ...]:
    """The stride-8 and stride-16 stage outputs used by :func:`fine_cam` for ``arch``."""
    from desktop_app.model.archs import get_arch

    return FINE_LAYERS[get_arch(arch).family]


def _unit_max(cam: torch.Tensor) -> torch.Tensor:
    peak = float(cam.max()) if cam.numel() else 0.0
    return cam / peak if peak > 0 else cam


def _gaussian_blur(cam: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a (h, w) map with reflected borders (radius 3 sigma)."""
    if sigma <= 0:
        return cam
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=cam.dtype, device=cam.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = cam[None, None]
    mode = "reflect" if min(cam.shape) > radius else "replicate"
    x = F.pad(x, (radius, radius, 0, 0), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, radius, radius), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x[0, 0]


def _resize(cam: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    if tuple(cam.shape) == shape:
        return cam
    return F.interpolate(cam[None, None], size=shape, mode="bilinear", align_corners=False)[0, 0]


def fine_cam(
    network: nn.Module,
    fine: Sequence[str],
    last: str,
    x: torch.Tensor,
    class_indices: Sequence[int],
    smoothing: float = FINE_SMOOTHING,
) -> CamResult:
    """Heatmaps at the resolution of the finest of ``fine`` (stride 8: 40 x 40 at 320 px).

    For each label ``c``, with one forward pass shared by all labels and one backward pass each
    (down to the finest layer only):

    - LayerCAM (Jiang et al., IEEE TIP 2021) at every layer of ``fine``:
      ``ReLU(sum_k ReLU(dy_c / dA_k) * A_k)``, normalised by its maximum;
    - Grad-CAM at ``last`` (the last feature map: CAM for these networks), normalised;
    - their product, each resized bilinearly to the finest grid: a location lights up only
      where the coarse, class-discriminative map and the finer, sharper maps all agree;
    - a Gaussian blur of ``smoothing`` finest-grid cells, then normalised to [0, 1].

    Measured on the demo test split against CAM alone (benchmarks/README.md): the pointing game
    rises from 0.39 to 0.94 and the nodules' boxes shrink from a lung to the nodule.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"fine_cam takes one image (1, C, H, W), got {tuple(x.shape)}")
    names = [*fine, last]
    targets = [find_module(network, n) for n in names]
    captured: dict[int, torch.Tensor] = {}
    handles = [
        t.register_forward_hook(
            lambda _m, _i, out, k=k: captured.__setitem__(k, out)  # type: ignore[misc]
        )
        for k, t in enumerate(targets)
    ]
    try:
        with torch.inference_mode(False), torch.enable_grad():
            logits = network(x.detach().clone().requires_grad_(True))
            if len(captured) != len(names):
                missing = [n for k, n in enumerate(names) if k not in captured]
                raise ValueError(f"layers {missing} were not called during the forward pass")
            activations = [captured[k] for k in range(len(names))]
            maps: dict[int, np.ndarray] = {}
            indices = list(dict.fromkeys(int(c) for c in class_indices))
            for n, c in enumerate(indices):
                grads = torch.autograd.grad(
                    logits[0, c], activations, retain_graph=n < len(indices) - 1
                )
                with torch.no_grad():
                    parts = []
                    for a, g in zip(activations[:-1], grads[:-1]):
                        layer_cam = torch.relu((torch.relu(g[0]) * a[0].detach()).sum(0))
                        parts.append(_unit_max(layer_cam.float()))
                    a, g = activations[-1][0].detach(), grads[-1][0]
                    weights = g.mean(dim=(1, 2))
                    parts.append(_unit_max(torch.relu((weights[:, None, None] * a).sum(0)).float()))
                    shape = max((tuple(p.shape) for p in parts), key=lambda s: s[0] * s[1])
                    fused = parts[0].new_ones(shape)
                    for p in parts:
                        fused = fused * _resize(p, shape)  # type: ignore[arg-type]
                    fused = _unit_max(torch.relu(_gaussian_blur(fused, smoothing)))
                maps[c] = fused.cpu().numpy().astype(np.float32, copy=False)
            out_logits = logits.detach()[0].float().cpu().numpy()
    finally:
        for h in handles:
            h.remove()
    return CamResult(out_logits, maps)
