"""What a run starts from: the network with its fine-tuning head, the AdamW parameter groups,
the warm-up + cosine schedule and the per-label loss weights."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from desktop_app.model.networks import build_network, head_name, head_parameters, unwrap
from training.config import TrainConfig

WARMUP_START = 0.01


def build_model(
    config: TrainConfig, num_labels: int, prevalence: Sequence[float] | None = None
) -> nn.Module:
    """The network for ``config`` with a fine-tuning head and BatchNorm momentum.

    With ``init: default`` the new head starts small (weights N(0, 0.01)) with each bias at
    the logit of its label's training prevalence, so the first loss is the prevalence's
    entropy: MONAI's EfficientNet initialises its classifier TensorFlow-style (uniform in
    +-1/sqrt(outputs)), which for a handful of labels gives logits of +-30 on pretrained
    features and saturated, useless first epochs. BatchNorm momentum is set to
    ``model.bn_momentum`` (MONAI's EfficientNet uses 0.01, which on a few hundred images
    leaves the running statistics near ImageNet's for the whole run).
    """
    spec = config.preprocess_spec()
    m = config.model
    model = build_network(
        m.arch,
        num_labels,
        pretrained=m.pretrained,
        weights_path=m.weights,
        dropout=m.dropout,
        init=m.init,
        in_channels=spec.channels,
        image_size=spec.image_size,
    )
    if m.init == "default":
        head = getattr(model, head_name(model))
        nn.init.normal_(head.weight, mean=0.0, std=0.01)
        bias = torch.zeros(num_labels)
        if prevalence is not None:
            p = torch.as_tensor(np.asarray(prevalence, dtype=np.float64)).clamp(0.01, 0.99)
            bias = torch.log(p / (1 - p)).float()
        with torch.no_grad():
            head.bias.copy_(bias)
    if m.bn_momentum is not None:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = m.bn_momentum
    return model


def _no_decay(name: str, param: nn.Parameter) -> bool:
    return param.ndim <= 1  # biases and norm scales/shifts


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over four groups: head/backbone x decay/no-decay (group ``name`` says which)."""
    o = config.optim
    head_ids = {id(p) for p in head_parameters(model)}
    groups: dict[str, list[nn.Parameter]] = {
        "head": [],
        "head_no_decay": [],
        "backbone": [],
        "backbone_no_decay": [],
    }
    for name, param in model.named_parameters():
        part = "head" if id(param) in head_ids else "backbone"
        key = f"{part}_no_decay" if _no_decay(name, param) else part
        groups[key].append(param)
    param_groups = []
    for key, params in groups.items():
        if not params:
            continue
        lr = o.peak_lr() if key.startswith("head") else o.peak_lr() * o.backbone_lr_factor
        decay = 0.0 if key.endswith("no_decay") else o.weight_decay
        param_groups.append({"params": params, "lr": lr, "weight_decay": decay, "name": key})
    return torch.optim.AdamW(param_groups, lr=o.peak_lr(), weight_decay=o.weight_decay)


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Linear warm-up from 1 % to 1, then cosine from 1 to ``min_ratio`` at the last step."""
    if warmup_steps > 0 and step < warmup_steps:
        return WARMUP_START + (1.0 - WARMUP_START) * step / warmup_steps
    span = max(1, total_steps - warmup_steps - 1)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    # a plain closure: LambdaLR then saves no function state, and a resumed run rebuilds it
    def factor(step: int) -> float:
        return lr_factor(step, total_steps, warmup_steps, min_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def pos_weight_from(labels: np.ndarray) -> torch.Tensor:
    """negatives / positives per label (1 where a label has no positives or no negatives);
    unknown targets (NaN) are neither."""
    y = np.asarray(labels, dtype=np.float64)
    known = ~np.isnan(y)
    pos = np.where(known, y, 0.0).sum(axis=0)
    neg = known.sum(axis=0) - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where((pos > 0) & (neg > 0), neg / np.maximum(pos, 1), 1.0)
    return torch.as_tensor(w, dtype=torch.float32)


def set_frozen_bn_eval(model: nn.Module) -> None:
    """A frozen backbone is a fixed feature extractor: its BatchNorm must not update."""
    head_ids = {id(p) for p in head_parameters(model)}
    for module in unwrap(model).modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
            id(p) in head_ids for p in module.parameters()
        ):
            module.eval()
