"""Structured channel pruning of a model file's network (torch-pruning), a short fine-tune on its
training manifest, and fit's post-fit steps, written as a new, complete model file.

- Pruning: ``torch_pruning.pruner.MetaPruner`` with group L2-magnitude importance removes the
  same fraction (``amount``) of channels from every prunable layer group. Coupled layers
  (residual additions, a depthwise convolution and the convolutions around it, BatchNorm) are
  pruned together by torch-pruning's dependency graph; the classifier head keeps its outputs
  (the labels), only its input width shrinks. Channel counts are rounded to multiples of 8.
- Fine-tune: the training loop (``training.loop.Trainer``) on the manifest split as the model's
  training recorded, with the model's own preprocessing, a short warm-up + cosine schedule at a
  fine-tuning learning rate, and validation every epoch (the best epoch's weights are kept).
- Post-fit, as ``fit`` and ``refit`` do (``training.applicability``): intended input, OOD
  statistics (the penultimate width changed, so they are fitted anew), temperatures, thresholds
  on the validation split, metrics with CIs on validation and test.

The output's arch args carry ``pruned: true`` (its layers are sized by its tensors' shapes,
``desktop_app.model.networks.resize_to_shapes``) and ``training_data["pruning"]`` records the
source model (name, version, tensor SHA-256), the amount, the method and the parameter counts.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from desktop_app.infra.cancel import StopFlag
from desktop_app.infra.cpus import available_cpus
from desktop_app.infra.errors import ConfigError
from desktop_app.model.preprocessing import PreprocessSpec
from training.config import TrainConfig
from training.loop import EpochCallback, ProgressFactory, Trainer, TrainHooks

log = logging.getLogger(__name__)

DEFAULT_EPOCHS = 3
DEFAULT_LR = 3e-4  # the head's and backbone's peak learning rate of the fine-tune
ROUND_TO = 8  # channel counts stay multiples of 8 (vector widths of CPU kernels)
METHOD = (
    "structured channel pruning (torch-pruning MetaPruner, group L2-magnitude importance, "
    f"uniform per layer group, channels rounded to multiples of {ROUND_TO}; classifier outputs kept)"
)


def check_amount(amount: float) -> float:
    """The fraction of channels to remove: a number strictly between 0 and 1."""
    if isinstance(amount, bool) or not math.isfinite(amount) or not 0.0 < amount < 1.0:
        raise ConfigError(
            f"pruning amount {amount!r} must be a fraction of channels between 0 and 1 (exclusive)",
            hint="e.g. --amount 0.3 removes 30 % of each layer's channels",
        )
    return float(amount)


def parameter_count(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def prune_network(
    network: nn.Module, amount: float, example: torch.Tensor, round_to: int = ROUND_TO
) -> nn.Module:
    """Remove ``amount`` of the channels of every prunable layer group of ``network`` in place
    (the module docstring says how); returns it. ``example``: one input batch for tracing."""
    import torch_pruning as tp

    from desktop_app.model.networks import head_name, unwrap

    check_amount(amount)
    net = unwrap(network)
    head = getattr(net, head_name(net))
    was_training = net.training
    net.eval()
    pruner = tp.pruner.MetaPruner(
        net,
        example,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=amount,
        ignored_layers=[head],
        round_to=round_to,
    )
    pruner.step()
    net.train(was_training)
    return network


class _FineTuner(Trainer):
    """The training loop started from a given network (the pruned one) instead of a new one."""

    def __init__(self, network: nn.Module, *args: Any, **kwargs: Any) -> None:
        self._start = network
        super().__init__(*args, **kwargs)

    def _setup(self) -> None:
        from training.optim import make_optimizer, make_scheduler

        super()._setup()
        model = self._start.to(self.runtime.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        momentum = self.config.model.bn_momentum
        if momentum is not None:
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.momentum = momentum
        self.model = model
        self.optimizer = make_optimizer(model, self.config)
        self.scheduler = make_scheduler(
            self.optimizer, self.total_steps, self.warmup_steps, self.config.optim.min_lr_ratio
        )


def finetune_config(
    base: TrainConfig,
    architecture: str,
    arch_args: dict[str, Any],
    spec: PreprocessSpec,
    recorded: dict[str, Any],
    *,
    epochs: int,
    lr: float | None,
    batch_size: int | None,
) -> TrainConfig:
    """``base`` (the user's config: applicability, thresholds, evaluation, seed, device, threads)
    with the model file's architecture and preprocessing, and the fine-tune's schedule: ``lr``
    (else the config's, else DEFAULT_LR), ``batch_size`` (else the config's, else the one the
    model was trained with), one learning rate for the whole network, no LR range test."""
    o = base.optim
    trained_batch = recorded.get("batch_size")
    batch = batch_size or o.batch_size or (trained_batch if isinstance(trained_batch, int) else 8)
    strength = base.augment.strength
    if strength is None:
        recorded_strength = recorded.get("augment_strength")
        strength = float(recorded_strength) if isinstance(recorded_strength, int | float) else 1.0
    config = replace(
        base,
        model=replace(
            base.model,
            arch=architecture,
            pretrained=False,
            weights=None,
            dropout=arch_args["dropout"],
        ),
        preprocessing=replace(
            base.preprocessing,
            image_size=spec.image_size,
            normalization=spec.normalization,
            percentiles=[float(spec.percentiles[0]), float(spec.percentiles[1])],
            channels=spec.channels,
            output_scaling=spec.output_scaling,
            pad_value=float(spec.pad_value),
            interpolation=spec.interpolation,
        ),
        optim=replace(
            o,
            epochs=epochs,
            lr=lr or o.lr or DEFAULT_LR,
            batch_size=batch,
            backbone_lr_factor=1.0,
            freeze_backbone_epochs=0,
        ),
        augment=replace(base.augment, strength=strength),
        recipe=replace(base.recipe, auto=False, lr_range_test=False),
    ).resolved()
    config.validate()
    if config.preprocess_spec() != spec:
        raise ConfigError(
            f"the fine-tune's preprocessing {config.preprocess_spec()} is not the model's {spec}"
        )
    return config


@dataclass
class PruneResult:
    out: Path
    amount: float
    parameters_before: int
    parameters_after: int
    history: list[dict[str, Any]]
    best_epoch: int
    thresholds: dict[str, float]
    metrics: dict[str, Any]
    calibration: dict[str, Any]
    ood_flag_rate: dict[str, float]
    seconds: float
    notes: list[str] = field(default_factory=list)


def prune_model_file(
    model_path: Path,
    data_path: Path,
    out: Path,
    config: TrainConfig,
    amount: float,
    *,
    epochs: int = DEFAULT_EPOCHS,
    lr: float | None = None,
    batch_size: int | None = None,
    layout: dict[str, str] | None = None,
    on_epoch: EpochCallback | None = None,
    progress_factory: ProgressFactory | None = None,
    stop: StopFlag = None,
    on_info: Callable[[str], None] | None = None,
) -> PruneResult:
    """Prune ``model_path``'s network by ``amount``, fine-tune it for ``epochs`` on
    ``data_path`` (split as the model's training split it; a public layout read as it was
    read, ``layout`` keys over that), re-fit its thresholds, temperatures and OOD statistics
    and write ``out`` with its model card beside it (``out`` with ``.md``)."""
    from desktop_app.model.modelfile import load_model_file
    from training.applicability import (
        calibrated_metrics,
        fit_applicability,
        read_as_trained,
        score_splits,
    )
    from training.dataset import Stopped
    from training.evaluate import layout_for_model
    from training.runtime import setup_runtime

    start = time.perf_counter()
    check_amount(amount)
    say = on_info or (lambda line: None)
    loaded = load_model_file(model_path, map_location="cpu")
    m = loaded.manifest
    spec = m.preprocessing
    recorded = m.training_data.get("config")
    config = finetune_config(
        config, m.architecture, m.arch_args, spec, recorded if isinstance(recorded, dict) else {},
        epochs=epochs, lr=lr, batch_size=batch_size,
    )  # fmt: skip
    options = layout_for_model(m.training_data, layout)
    data, splits, units = read_as_trained(
        data_path, m, options, needs="pruning",
        workers=max(1, config.data.workers or min(4, available_cpus())),
        progress=progress_factory("decode + preprocess (once)") if progress_factory else None,
        stop=stop,
    )  # fmt: skip
    runtime = setup_runtime(config)

    network = loaded.network
    before = parameter_count(network)
    example = torch.zeros(1, spec.channels, spec.image_size, spec.image_size)
    prune_network(network, amount, example)
    after = parameter_count(network)
    say(
        f"pruned {amount:.0%} of the channels: {before:,} -> {after:,} parameters "
        f"({after / before:.2f}x); fine-tuning {epochs} epoch(s) at lr {config.optim.peak_lr():g}"
    )
    trainer = _FineTuner(
        network, config, data, units, splits.train, splits.val, None, runtime,
        hooks=TrainHooks(on_epoch, progress_factory, stop),
    )  # fmt: skip
    result = trainer.run()
    if result.stopped:
        raise Stopped
    model = result.model.to(memory_format=torch.contiguous_format)
    scored = score_splits(
        model, data, units, {"train": splits.train, "val": splits.val, "test": splits.test},
        spec, runtime.device, workers=config.data.workers,
    )  # fmt: skip
    applicability = fit_applicability(config.applicability, data, scored)
    where = f"the validation split ({len(splits.val)} images of {data.source.name})"
    choice, final, _ = calibrated_metrics(
        data, scored, applicability, config.thresholds, config.evaluation, config.seed, where
    )
    fine_tune = {
        "manifest": data.source.name,
        "manifest_sha256": data.sha256,
        "splits": {name: len(getattr(splits, name)) for name in ("train", "val", "test")},
        "epochs": epochs,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "lr": config.optim.peak_lr(),
        "batch_size": config.optim.batch(),
        "train_seconds": round(result.seconds, 1),
    }
    if data.kind not in ("manifest", "rsna"):  # how a public layout's labels were read
        fine_tune["layout"] = dataclasses.asdict(options)
    pruning = {
        "from": {"name": m.name, "version": m.version, "tensor_sha256": m.tensor_sha256},
        "amount": amount,
        "method": METHOD,
        "parameters_before": before,
        "parameters_after": after,
        "fine_tune": fine_tune,
    }
    _write(out, loaded, model, pruning, choice, final, applicability)
    return PruneResult(
        out=out,
        amount=amount,
        parameters_before=before,
        parameters_after=after,
        history=result.history,
        best_epoch=result.best_epoch,
        thresholds=dict(choice.thresholds),
        metrics=final,
        calibration=applicability.calibration,
        ood_flag_rate=applicability.ood_rates,
        seconds=time.perf_counter() - start,
        notes=list(result.notes),
    )


def _write(
    out: Path,
    loaded: Any,
    model: nn.Module,
    pruning: dict[str, Any],
    choice: Any,
    final: dict[str, Any],
    applicability: Any,
) -> None:
    """The pruned model file (version ``<source version>-pruned<percent>``) and its model card."""
    from training.applicability import write_refitted

    m = loaded.manifest
    training_data = {k: v for k, v in m.training_data.items() if k != "calibration"}
    training_data["pruning"] = pruning
    write_refitted(
        out, model, m, applicability, choice, final, training_data,
        arch_args={**m.arch_args, "pruned": True},
        version=f"{m.version}-pruned{round(100 * pruning['amount'])}",
        site_calibration=None,
    )  # fmt: skip
