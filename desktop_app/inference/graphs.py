"""A model's ONNX graphs, made with PyTorch once per model and then run without it: the forward
pass (logits, the last feature map, the head's input) and the LayerCAM heatmap graph.

The heatmap graph computes exactly what ``gradcam.fine_cam`` computes with autograd, with no
autograd: the network is traced with ``torch.fx`` and its backward pass, from the logits down
to the finest LayerCAM layer, is written out with the vector-Jacobian product of each layer
(a convolution's is a transposed convolution with the same weights, or a convolution with the
flipped kernel where the stride is 1; batch norm in eval mode scales; ReLU and ReLU6 mask;
padding crops; average pooling spreads; a residual sum passes the gradient to both sides).
The result is an ordinary forward graph that ONNX exports and ONNX Runtime runs: one image and
a one-hot row per label wanted in, the fused maps out. Layers outside that set (DenseNet's
concatenations and pools, for one) make :class:`Unsupported`; the engine then uses PyTorch for
that model's heatmaps.

Every graph is checked against eager PyTorch on a seeded probe before it is used or stored:
the forward outputs within ``ortrun.EXACT_ATOL + EXACT_RTOL |value|``, the maps within
``MAPS_ATOL``.
"""

from __future__ import annotations

import copy
import io
import logging
import math
import operator
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import fx, nn
from torch.nn import functional as F

from desktop_app.inference.fastpath import export_onnx
from desktop_app.inference.gradcam import FINE_SMOOTHING, fine_cam, fine_layers
from desktop_app.inference.ortrun import (
    FEATURES_NAME,
    INPUT_NAME,
    MAPS_NAME,
    ONNX_OPSET,
    OUTPUT_NAME,
    PENULTIMATE_NAME,
    SELECT_NAME,
    CamRunner,
    OrtRunner,
    UnsupportedLayers,
    max_difference,
    probe_input,
)
from desktop_app.infra.errors import InferenceError
from desktop_app.model.archs import gradcam_target_layer

log = logging.getLogger(__name__)

MAPS_ATOL = 2e-3
"""Largest difference allowed between the graph's maps and ``fine_cam``'s (maps are in [0, 1];
measured: 2e-6 typical, 5e-4 where a map's peak is tiny and the normalisation magnifies)."""


Unsupported = UnsupportedLayers


def exporter_version() -> str:
    return f"torch {torch.__version__.split('+')[0]}"


# --------------------------------------------------------------------------- the heatmap graph


def _unit_max_rows(m: torch.Tensor) -> torch.Tensor:
    """Each (h, w) map of (L, h, w) divided by its maximum; an all-zero map stays zero."""
    peak = m.amax(dim=(1, 2), keepdim=True)
    safe = torch.where(peak > 0, peak, torch.ones_like(peak))
    return torch.where(peak > 0, m / safe, m)


def _blur_rows(cam: torch.Tensor, sigma: float) -> torch.Tensor:
    """``gradcam._gaussian_blur`` on every map of (L, h, w)."""
    if sigma <= 0:
        return cam
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=cam.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    mode = "reflect" if min(cam.shape[1:]) > radius else "replicate"
    x = F.pad(cam[:, None], (radius, radius, 0, 0), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, radius, radius), mode=mode)
    return F.conv2d(x, kernel.view(1, 1, -1, 1))[:, 0]


def _module_path(entry: Any) -> str:
    return str(entry[0] if isinstance(entry, tuple) else entry)


def _output_node(gm: fx.GraphModule, name: str) -> fx.Node:
    """The last node computed inside module ``name``: that module's output."""
    last = None
    for node in gm.graph.nodes:
        paths = [_module_path(v) for v in node.meta.get("nn_module_stack", {}).values()]
        if node.op == "call_module":
            paths.append(str(node.target))
        if any(p == name or p.startswith(name + ".") for p in paths):
            last = node
    if last is None:
        raise Unsupported(f"the traced network has no layer {name!r}")
    return last


def _transposed_conv_input_grad(m: nn.Conv2d, g: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """d(conv(x))/dx applied to ``g``: x's spatial ``size``."""
    if isinstance(m.padding, str) or m.padding_mode != "zeros":
        raise Unsupported(f"convolution padding {m.padding!r} ({m.padding_mode})")
    out_pad = [
        int(s) - ((int(o) - 1) * st - 2 * p + d * (k - 1) + 1)
        for s, o, st, p, d, k in zip(
            size, g.shape[-2:], m.stride, m.padding, m.dilation, m.kernel_size, strict=True
        )
    ]
    w = m.weight
    unit = all(st == 1 for st in m.stride) and all(d == 1 for d in m.dilation)
    if unit and not any(out_pad):
        flipped = None
        if m.groups == 1:
            flipped = w.transpose(0, 1).flip(-1, -2)
        elif m.groups == w.shape[0] and w.shape[1] == 1:  # depthwise
            flipped = w.flip(-1, -2)
        pad = tuple(k - 1 - p for k, p in zip(m.kernel_size, m.padding, strict=True))
        if flipped is not None and min(pad) >= 0:  # a plain convolution runs faster in ORT
            return F.conv2d(g, flipped, None, 1, pad, 1, m.groups)
    return F.conv_transpose2d(g, w, None, m.stride, m.padding, tuple(out_pad), m.groups, m.dilation)


class LayerCamGraph(nn.Module):
    """``gradcam.fine_cam`` for many labels at once, written as a forward computation.

    ``forward(x, select)``: ``x`` one image (1, C, S, S); ``select`` (L, labels), a one-hot row
    per label wanted → (L, h, w) maps on the finest layer's grid.
    """

    def __init__(
        self,
        network: nn.Module,
        fine: Sequence[str],
        last: str,
        smoothing: float = FINE_SMOOTHING,
    ) -> None:
        super().__init__()
        net = copy.deepcopy(network).cpu().eval()
        for module in net.modules():  # in-place activations would overwrite saved values
            if hasattr(module, "inplace"):
                setattr(module, "inplace", False)  # noqa: B010
        try:
            self.gm = fx.symbolic_trace(net)
        except Exception as err:
            raise Unsupported(f"the network can't be traced ({type(err).__name__})") from None
        self.nodes = list(self.gm.graph.nodes)
        self.targets = [_output_node(self.gm, n) for n in [*fine, last]]
        self.smoothing = smoothing
        self.mods = dict(self.gm.named_modules())
        self._check_supported()

    def _check_supported(self) -> None:
        first = min(self.nodes.index(t) for t in self.targets)
        for node in self.nodes[first + 1 :]:
            if node.op in ("call_module", "call_function", "call_method"):
                self._rule_exists(node)

    def _rule_exists(self, node: fx.Node) -> None:
        if node.op == "call_module":
            m = self.mods[str(node.target)]
            known = (
                nn.Conv2d, nn.BatchNorm2d, nn.Hardtanh, nn.ReLU, nn.ConstantPad2d, nn.ZeroPad2d,
                nn.Identity, nn.Dropout, nn.AdaptiveAvgPool2d, nn.Linear,
            )  # fmt: skip
            if not isinstance(m, known):
                raise Unsupported(f"layer {type(m).__name__} ({node.target})")
        elif node.op == "call_function":
            if node.target not in (operator.add, operator.iadd, torch.add, torch.flatten, F.linear):
                raise Unsupported(f"function {getattr(node.target, '__name__', node.target)}")
        elif node.target not in ("flatten", "view", "reshape"):
            raise Unsupported(f"method {node.target}")

    def _run(self, x: torch.Tensor) -> tuple[dict[fx.Node, Any], fx.Node]:
        env: dict[fx.Node, Any] = {}
        out: Any = None

        def load(a: Any) -> Any:
            return fx.node.map_arg(a, lambda n: env[n])

        for node in self.nodes:
            if node.op == "placeholder":
                env[node] = x
            elif node.op == "get_attr":
                env[node] = self.gm.get_parameter(str(node.target))
            elif node.op == "call_module":
                env[node] = self.mods[str(node.target)](*load(node.args), **load(node.kwargs))
            elif node.op == "call_function":
                fn: Any = node.target
                env[node] = fn(*load(node.args), **load(node.kwargs))
            elif node.op == "call_method":
                args = load(node.args)
                env[node] = getattr(args[0], str(node.target))(*args[1:], **load(node.kwargs))
            else:
                out = node.args[0]
        return env, out

    def forward(self, x: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
        env, out = self._run(x)
        grads: dict[fx.Node, torch.Tensor] = {out: select}
        at: dict[fx.Node, torch.Tensor] = {}
        first = min(self.nodes.index(t) for t in self.targets)
        for i in range(len(self.nodes) - 1, first - 1, -1):
            node = self.nodes[i]
            if node not in grads:
                continue
            g = grads.pop(node)
            if node in self.targets:
                at[node] = g
            if i == first:
                break
            for source, contribution in self._vjp(node, g, env):
                grads[source] = grads[source] + contribution if source in grads else contribution
        return self._fuse(env, at)

    def _fuse(self, env: dict[fx.Node, Any], at: dict[fx.Node, torch.Tensor]) -> torch.Tensor:
        parts = []
        for t in self.targets[:-1]:  # LayerCAM: ReLU(sum_k ReLU(dy/dA_k) A_k)
            cam = torch.relu((torch.relu(at[t]) * env[t]).sum(1))
            parts.append(_unit_max_rows(cam))
        last = self.targets[-1]  # Grad-CAM on the last feature map
        weights = at[last].mean(dim=(2, 3), keepdim=True)
        parts.append(_unit_max_rows(torch.relu((weights * env[last]).sum(1))))
        shape = max((tuple(p.shape[1:]) for p in parts), key=lambda s: s[0] * s[1])
        fused: torch.Tensor | None = None
        for p in parts:
            if tuple(p.shape[1:]) != shape:
                p = F.interpolate(p[:, None], size=shape, mode="bilinear", align_corners=False)
                p = p[:, 0]
            fused = p if fused is None else fused * p
        assert fused is not None
        return _unit_max_rows(torch.relu(_blur_rows(fused, self.smoothing)))

    def _vjp(
        self, node: fx.Node, g: torch.Tensor, env: dict[fx.Node, Any]
    ) -> list[tuple[fx.Node, torch.Tensor]]:
        """(input node, gradient contribution) pairs of ``node`` for its output gradient ``g``
        (batch axis: the labels; the saved values have batch 1 and broadcast)."""
        if node.op == "call_module":
            return [(node.args[0], self._module_vjp(node, g, env))]  # type: ignore[list-item]
        src: Any = node.args[0]
        if node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add):
            return [(a, g) for a in node.args[:2] if isinstance(a, fx.Node)]
        if node.op == "call_function" and node.target is F.linear:
            return [(src, g @ env[node.args[1]])]  # type: ignore[index]
        # flatten / view / reshape: back to the input's shape
        return [(src, g.reshape((g.shape[0], *env[src].shape[1:])))]

    def _module_vjp(self, node: fx.Node, g: torch.Tensor, env: dict[fx.Node, Any]) -> torch.Tensor:
        m = self.mods[str(node.target)]
        src: Any = node.args[0]
        if isinstance(m, nn.Conv2d):
            return _transposed_conv_input_grad(m, g, env[src].shape[-2:])
        if isinstance(m, nn.BatchNorm2d):
            if not m.track_running_stats or m.running_var is None:
                raise Unsupported("batch norm without running statistics")
            scale = torch.rsqrt(m.running_var + m.eps)
            if m.weight is not None:
                scale = scale * m.weight
            return g * scale[None, :, None, None]
        if isinstance(m, nn.Hardtanh):  # ReLU6; the output is strictly inside iff the input is
            y = env[node]
            return g * ((y > m.min_val) & (y < m.max_val)).to(g.dtype)
        if isinstance(m, nn.ReLU):
            return g * (env[node] > 0).to(g.dtype)
        if isinstance(m, nn.ConstantPad2d | nn.ZeroPad2d):
            left, right, top, bottom = (int(v) for v in m.padding)
            h, w = g.shape[-2:]
            return g[..., top : h - bottom, left : w - right]
        if isinstance(m, nn.AdaptiveAvgPool2d):
            h, w = env[src].shape[-2:]
            if tuple(g.shape[-2:]) != (1, 1):
                raise Unsupported("adaptive pooling to more than one cell")
            return g.expand(g.shape[0], g.shape[1], h, w) / float(h * w)
        if isinstance(m, nn.Linear):
            return g @ m.weight
        return g  # Identity, Dropout (eval)


# --------------------------------------------------------------------------- export and check


def _export(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            buffer,  # type: ignore[arg-type]
            dynamo=False,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
        )
    return buffer.getvalue()


def forward_graph(network: nn.Module, arch: str, image_size: int, channels: int) -> bytes:
    """The forward graph (logits, features, penultimate), checked against eager PyTorch."""
    from desktop_app.inference.fastpath import TorchRunner

    layer = gradcam_target_layer(arch)
    graph = export_onnx(network, image_size, channels, features_layer=layer, penultimate=True)
    probe = probe_input(image_size, channels)
    got = OrtRunner(graph, 1).outputs(probe)
    ref = TorchRunner(network, "cpu", layer, True).outputs(probe)
    diff = max(
        max_difference(got.logits, ref.logits),
        max_difference(got.features, ref.features)
        if got.features is not None and ref.features is not None
        else math.inf,
        max_difference(got.penultimate, ref.penultimate)
        if got.penultimate is not None and ref.penultimate is not None
        else math.inf,
    )
    if not diff <= 1.0:
        raise InferenceError(
            f"the ONNX forward graph differs from PyTorch ({diff:.1f}x the tolerance)"
        )
    return graph


def segmentation_graph(network: nn.Module, image_size: int, channels: int) -> bytes:
    """A segmentation network's forward graph: per-pixel logits (N, labels, S, S) under the
    output name ``logits`` (so ``ortrun.OrtRunner`` runs it as it is) and its pooled encoder
    features (N, C) as ``penultimate`` (the OOD score; ``fastpath.EncoderFeatures``), dynamic
    batch; both checked against eager PyTorch on the probe."""
    from desktop_app.inference.fastpath import TorchRunner

    graph = export_onnx(network, image_size, channels, penultimate=True)
    probe = probe_input(image_size, channels)
    got = OrtRunner(graph, 1).outputs(probe)
    ref = TorchRunner(network.cpu().eval(), "cpu", None, True).outputs(probe)
    diff = max_difference(got.logits, ref.logits)
    if got.penultimate is not None and ref.penultimate is not None:
        diff = max(diff, max_difference(got.penultimate, ref.penultimate))
    else:
        diff = math.inf
    if not diff <= 1.0:
        raise InferenceError(
            f"the ONNX segmentation graph differs from PyTorch ({diff:.1f}x the tolerance)"
        )
    return graph


def layercam_graph(
    network: nn.Module, arch: str, image_size: int, channels: int, labels: int
) -> bytes:
    """The LayerCAM graph, checked against ``fine_cam`` on a probe for every label."""
    last = gradcam_target_layer(arch)
    fine = fine_layers(arch)
    module = LayerCamGraph(network, fine, last)
    x = torch.from_numpy(probe_input(image_size, channels, n=1))
    select = torch.eye(labels)
    graph = _export(
        module,
        (x, select),
        [INPUT_NAME, SELECT_NAME],
        [MAPS_NAME],
        {SELECT_NAME: {0: "labels"}, MAPS_NAME: {0: "labels"}},
    )
    got = CamRunner(graph, 1, labels).maps(x[0].numpy(), range(labels))
    ref = fine_cam(network.cpu().eval(), fine, last, x, list(range(labels))).maps
    worst = max(float(np.abs(got[c] - ref[c]).max()) for c in range(labels))
    if not worst <= MAPS_ATOL:
        raise InferenceError(
            f"the ONNX heatmap graph differs from PyTorch's LayerCAM by {worst:.2g}"
        )
    return graph


def build_graph(
    kind: str,
    network: nn.Module,
    arch: str,
    image_size: int,
    channels: int,
    labels: int,
    task: str = "classification",
) -> bytes:
    """One graph of ``kind`` ("forward" or "layercam") for ``network``; a segmentation
    network has only its forward graph (per-pixel logits: no heatmaps)."""
    network.eval()
    if task == "segmentation":
        if kind == "forward":
            return segmentation_graph(network, image_size, channels)
        raise Unsupported(f"a segmentation model has no {kind} graph")
    if kind == "forward":
        return forward_graph(network, arch, image_size, channels)
    if kind == "layercam":
        return layercam_graph(network, arch, image_size, channels, labels)
    raise ValueError(f"unknown graph kind {kind!r}")


def build_for_file(kind: str, path: Any) -> bytes:
    """``kind``'s graph for the model file at ``path`` (loaded and verified with PyTorch)."""
    from desktop_app.model.modelfile import load_model_file

    loaded = load_model_file(path)
    spec = loaded.manifest.preprocessing
    return build_graph(
        kind,
        loaded.network,
        loaded.manifest.architecture,
        spec.image_size,
        spec.channels,
        len(loaded.manifest.labels),
        loaded.manifest.task,
    )


__all__ = [
    "FEATURES_NAME",
    "OUTPUT_NAME",
    "PENULTIMATE_NAME",
    "LayerCamGraph",
    "Unsupported",
    "build_for_file",
    "build_graph",
    "exporter_version",
    "segmentation_graph",
]
