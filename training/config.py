"""The training configuration: typed sections, strict YAML, command-line overrides.

``TrainConfig()`` is the documented default (``training/defaults.yaml`` says the same in YAML
with a comment per key; a test keeps the two equal). A YAML file given with ``--config`` is
read strictly (unknown keys and wrong types raise ConfigError naming the key), flags override
it, and the resolved config (every value filled in) is written to ``DIR/config.yaml``.

Precedence: defaults < ``--config FILE`` < ``--set section.key=value`` < named flags.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from desktop_app.infra.errors import ConfigError, ModelFileError
from desktop_app.model.applicability import IMAGE_KINDS, IntendedInput
from desktop_app.model.archs import TASKS
from desktop_app.model.networks import INITS, get_arch
from desktop_app.model.preprocessing import (
    INTERPOLATIONS,
    NORMALIZATIONS,
    OUTPUT_SCALINGS,
    PreprocessSpec,
)
from desktop_app.settings.schema import DEVICES
from training.layouts.common import LayoutOptions

CACHE_MODES = ("memory", "disk")
CACHE_DTYPES = ("float32", "float16")
CLASS_WEIGHTS = ("auto", "none", "prevalence")
THRESHOLD_RULES = ("youden", "sensitivity")
MONITORS = ("auroc", "dice", "loss")  # dice: segmentation only
# What ``fit --task segmentation`` trains when the config keeps the classifier's default.
DEFAULT_SEGMENTATION_ARCH = "unet-lite0"
# What recipe.auto false (and a config written before the recipe section) trains with.
STATIC_BATCH_SIZE = 8
STATIC_LR = 1e-3
STATIC_AUGMENT_STRENGTH = 1.0
STATIC_CLASS_WEIGHTS = "none"


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split and cached."""

    manifest: str | None = None
    # classification: 0/1 label columns; segmentation: a ``mask`` column (training.segdata)
    task: str = "classification"
    labels: list[str] | None = None  # None: every 0/1 column of the manifest
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    folds: int = 1
    cache: str = "memory"
    cache_dir: str | None = None
    cache_dtype: str = "float32"
    workers: int = 0
    # how a public layout's labels are read (uncertainty, views, label rule, missing images,
    # labeler); a manifest and RSNA ignore it. Part of the training hash: another reading is
    # other training data.
    layout: LayoutOptions = field(default_factory=LayoutOptions)


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "efficientnet-lite0"
    pretrained: bool = True
    weights: str | None = None
    init: str = "default"
    dropout: float = 0.2
    bn_momentum: float | None = 0.1


@dataclass(frozen=True)
class PreprocessingConfig:
    """``desktop_app.model.preprocessing.PreprocessSpec``; None picks the architecture's own value."""

    image_size: int | None = None
    normalization: str = "percentile"
    percentiles: list[float] = field(default_factory=lambda: [0.5, 99.5])
    channels: int = 3
    output_scaling: str | None = None
    pad_value: float = 0.0
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class AugmentConfig:
    """Training-only augmentation of the unit image (MONAI array transforms)."""

    enabled: bool = True
    strength: float | None = None  # x the magnitudes below; None: chosen by fit
    affine_prob: float = 0.8
    rotate_degrees: float = 7.0
    scale: float = 0.07
    translate: float = 0.05
    contrast_prob: float = 0.5
    gamma: list[float] = field(default_factory=lambda: [0.8, 1.25])
    intensity_prob: float = 0.3
    intensity_scale: float = 0.1
    noise_prob: float = 0.3
    noise_std: float = 0.015
    hflip_prob: float = 0.0
    vflip_prob: float = 0.0


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 12
    batch_size: int | None = None  # None: chosen by fit (training.autoconfig)
    lr: float | None = None  # None: chosen by fit (an LR range test)
    backbone_lr_factor: float = 1.0
    weight_decay: float = 0.01
    warmup_epochs: float = 0.5
    min_lr_ratio: float = 0.01
    freeze_backbone_epochs: int = 0
    freeze_bn: bool = False
    grad_clip_norm: float = 1.0
    class_weights: str = "auto"  # "auto": chosen by fit from the train prevalence
    amp: bool = True
    channels_last: bool = True

    def batch(self) -> int:
        """``batch_size``; the static recipe's while it is open (fit chooses it first)."""
        return STATIC_BATCH_SIZE if self.batch_size is None else self.batch_size

    def peak_lr(self) -> float:
        """``lr``; the static recipe's while it is open (fit chooses it first)."""
        return STATIC_LR if self.lr is None else self.lr


@dataclass(frozen=True)
class EarlyStoppingConfig:
    enabled: bool = True
    monitor: str = "auroc"
    patience: int = 4
    min_delta: float = 0.001


@dataclass(frozen=True)
class ThresholdConfig:
    rule: str = "youden"
    target_sensitivity: float = 0.9


@dataclass(frozen=True)
class EvaluationConfig:
    bootstrap: int = 1000
    ci_level: float = 0.95


@dataclass(frozen=True)
class OutputConfig:
    dir: str | None = None
    name: str | None = None
    version: str = "1"
    intended_use: str | None = None
    tensorboard: bool = True
    plots: bool = True


@dataclass(frozen=True)
class ApplicabilityConfig:
    """Where the model file says the model applies, and its calibration (fitted after training).

    The intended-input lists default (None) to what the train split's headers hold; a list or
    value given here replaces that (an empty list means any)."""

    modalities: list[str] | None = None
    body_parts: list[str] | None = None
    view_positions: list[str] | None = None
    image_kind: str | None = None
    min_matrix: int | None = None
    ood: bool = True
    ood_percentile: float = 95.0
    temperature_scaling: bool = True


@dataclass(frozen=True)
class RecipeConfig:
    """How fit chooses the keys left open (None / "auto") from the dataset fingerprint
    (``training.autoconfig``); false ``auto`` trains the static recipe."""

    auto: bool = True
    time_budget_minutes: float | None = None
    max_slowdown: float = 3.0
    min_finding_pixels: int = 16
    lr_range_test: bool = True


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    thresholds: ThresholdConfig = field(default_factory=ThresholdConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    applicability: ApplicabilityConfig = field(default_factory=ApplicabilityConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)

    # ------------------------------------------------------------------ views

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def preprocess_spec(self) -> PreprocessSpec:
        """The PreprocessSpec that training uses and the model file stores."""
        p = self.preprocessing
        arch = get_arch(self.model.arch)
        return PreprocessSpec(
            image_size=p.image_size or arch.default_image_size,
            normalization=p.normalization,
            percentiles=(float(p.percentiles[0]), float(p.percentiles[1])),
            channels=p.channels,
            output_scaling=p.output_scaling or arch.default_output_scaling,
            pad_value=float(p.pad_value),
            interpolation=p.interpolation,
        )

    def resolved(self) -> TrainConfig:
        """Architecture-dependent defaults filled in (what DIR/config.yaml records). With
        ``recipe.auto`` the keys that fit chooses stay open (None / "auto") until it has seen
        the data; without it they get the static recipe (``static_recipe``)."""
        if self.data.task == "segmentation":
            return self._segmentation_resolved()
        spec = self.preprocess_spec()
        config = self if self.recipe.auto else self.static_recipe()
        return replace(
            config,
            model=replace(self.model, arch=get_arch(self.model.arch).name),
            preprocessing=replace(config.preprocessing, output_scaling=spec.output_scaling),
        )

    def _segmentation_resolved(self) -> TrainConfig:
        """Segmentation: the classifier defaults swapped for the task's (``unet-lite0``, Dice
        as the monitor) and the static recipe for the open keys (fit's choices are tuned for
        classifiers: there is no LR range test for a UNet yet)."""
        config = self
        if self.model.arch == ModelConfig().arch:
            config = replace(config, model=replace(config.model, arch=DEFAULT_SEGMENTATION_ARCH))
        if config.early_stopping.monitor == "auroc":
            config = replace(config, early_stopping=replace(config.early_stopping, monitor="dice"))
        config = config.static_recipe()
        spec = config.preprocess_spec()
        return replace(
            config,
            model=replace(config.model, arch=get_arch(config.model.arch).name),
            preprocessing=replace(config.preprocessing, output_scaling=spec.output_scaling),
        )

    def static_recipe(self) -> TrainConfig:
        """Every open key at the static recipe: the architecture's native size, batch 8,
        lr 1e-3, augmentation strength 1, no class weights."""
        o, a = self.optim, self.augment
        cw = STATIC_CLASS_WEIGHTS if o.class_weights == "auto" else o.class_weights
        return replace(
            self,
            preprocessing=replace(self.preprocessing, image_size=self.preprocess_spec().image_size),
            optim=replace(
                o,
                batch_size=STATIC_BATCH_SIZE if o.batch_size is None else o.batch_size,
                lr=STATIC_LR if o.lr is None else o.lr,
                class_weights=cw,
            ),
            augment=replace(
                a, strength=STATIC_AUGMENT_STRENGTH if a.strength is None else a.strength
            ),
        )

    def open_keys(self) -> list[str]:
        """The keys still to be chosen (``section.key``): None, or "auto" class weights."""
        keys = [
            ("preprocessing.image_size", self.preprocessing.image_size),
            ("optim.batch_size", self.optim.batch_size),
            ("optim.lr", self.optim.lr),
            ("augment.strength", self.augment.strength),
        ]
        open_ = [k for k, v in keys if v is None]
        if self.optim.class_weights == "auto":
            open_.append("optim.class_weights")
        return open_

    def training_hash(self) -> str:
        """A hash of what decides the trained weights (not output, device or worker count);
        a resumed run must match it."""
        d = self.resolved().to_dict()
        for key in (
            "device", "threads", "output", "evaluation", "thresholds", "applicability", "recipe",
        ):  # fmt: skip
            d.pop(key)  # recipe: what it chose is in the other keys
        for key in ("workers", "cache", "cache_dir", "manifest"):
            d["data"].pop(key)
        d["optim"].pop("epochs")  # may grow on resume; the schedule records its own length
        text = json.dumps(d, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def validate(self) -> TrainConfig:
        _validate(self)
        return self


SECTIONS: dict[str, type] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in fields(TrainConfig)
    if f.default_factory is not dataclasses.MISSING
}


# --------------------------------------------------------------------------- parsing


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints pass as floats, nothing else."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str) and item_tp is str:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"config {where} must be a list, not {value!r}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config {where} must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config {where} must be a whole number, not {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"config {where} must be a number, not {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"config {where} must be a finite number, not {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config {where} must be text, not {value!r}")
        return value
    raise ConfigError(f"config {where}: unsupported type {_type_name(tp)}")  # pragma: no cover


def _section_from_dict(cls: type, data: Any, where: str, base: Any) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {where!r} must be a mapping, not {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise ConfigError(
            f"unknown config key {where}.{unknown[0]}"
            if where
            else f"unknown config key {unknown[0]}",
            hint=f"known keys{' in ' + where if where else ''}: {', '.join(names)}",
        )
    changes = {
        k: _nested(hints[k], v, f"{where}.{k}", getattr(base, k))
        if dataclasses.is_dataclass(hints[k])
        else _coerce(v, hints[k], f"{where}.{k}" if where else k)
        for k, v in data.items()
    }
    return replace(base, **changes)


def _nested(cls: Any, data: Any, where: str, base: Any) -> Any:
    """A sub-block of a section (``data.layout``): read strictly; the block's own checks
    (``__post_init__``) are reported with the key."""
    try:
        return _section_from_dict(cls, data, where, base)
    except ConfigError as err:
        if err.reason.startswith(("config ", "unknown config key")):
            raise
        raise ConfigError(f"config {where}.{err.reason}", hint=err.hint) from None


def config_from_dict(data: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Apply a (partial) nested mapping onto ``base`` (default: the defaults), strictly."""
    base = base or TrainConfig()
    if data is None:
        return base
    if not isinstance(data, Mapping):
        raise ConfigError("a config file must hold a mapping of sections")
    top = {k: v for k, v in data.items() if k not in SECTIONS}
    config = _section_from_dict(TrainConfig, top, "", base) if top else base
    for name in SECTIONS:
        if name in data and data[name] is not None:
            section = _section_from_dict(
                type(getattr(base, name)), data[name], name, getattr(config, name)
            )
            config = replace(config, **{name: section})
    return config


def load_config_file(path: str | os.PathLike[str], base: TrainConfig | None = None) -> TrainConfig:
    """Read a YAML config (safe loader: plain data only) over ``base``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found", p, "check the --config path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file can't be read: {err}", p) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file is not valid YAML{where}", p) from None
    if data is None:
        return base or TrainConfig()
    try:
        return config_from_dict(data, base)
    except ConfigError as err:
        raise ConfigError(err.reason, p, err.hint) from None


def parse_set_option(text: str) -> tuple[list[str], Any]:
    """``section.key=value`` (value parsed as YAML) for ``--set``."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r} must look like section.key=value")
    key, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    parts = [p.strip() for p in key.strip().split(".") if p.strip()]
    if not parts or len(parts) > 2:
        raise ConfigError(f"--set {text!r}: the key must be 'key' or 'section.key'")
    return parts, value


def apply_overrides(config: TrainConfig, overrides: Iterable[tuple[list[str], Any]]) -> TrainConfig:
    """Apply ``(["section", "key"], value)`` pairs strictly."""
    for parts, value in overrides:
        nested: dict[str, Any] = (
            {parts[0]: value} if len(parts) == 1 else {parts[0]: {parts[1]: value}}
        )
        config = config_from_dict(nested, config)
    return config


def write_config(
    config: TrainConfig,
    path: str | os.PathLike[str],
    comments: Mapping[str, str] | None = None,
) -> None:
    """The resolved config as YAML; ``comments`` (``{"section.key": text}``) go on a comment
    line above their keys (fit's choices and why)."""
    from desktop_app.infra.atomicio import atomic_write_text

    header = (
        "# RadAssist training config, resolved: every value that this run used.\n"
        "# Re-run it with: radassist-train fit --config this-file --data MANIFEST --out DIR\n"
    )
    if not comments:
        atomic_write_text(Path(path), header + config.to_yaml())
        return
    block = yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)
    atomic_write_text(Path(path), header + _with_comments(block, comments))


def _with_comments(text: str, comments: Mapping[str, str]) -> str:
    """Insert ``# text`` above each ``section.key`` line of a block-style YAML dump."""
    lines, section = [], ""
    for line in text.splitlines():
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        key = stripped.split(":", 1)[0]
        if not indent:
            section = key
            full = key
        else:
            full = f"{section}.{key}"
        if full in comments and ":" in stripped:
            lines.append(f"{indent}# {' '.join(comments[full].split())}")
        lines.append(line)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- validation


def _check(ok: bool, message: str, hint: str | None = None) -> None:
    if not ok:
        raise ConfigError(message, hint=hint)


def _choice(value: str, choices: tuple[str, ...], key: str) -> None:
    _check(
        value in choices,
        f"config {key} {value!r} is unknown",
        f"choose one of: {', '.join(choices)}",
    )


def _validate(c: TrainConfig) -> None:
    """Every value in range, section by section; the first problem is a ConfigError."""
    _check(0 <= c.seed < 2**32, f"config seed {c.seed} must be in 0..2**32-1")
    _choice(c.device, DEVICES, "device")
    _check(c.threads is None or c.threads >= 1, f"config threads {c.threads} must be >= 1")
    _check_data(c.data)
    _check_model(c.model)
    _check_task(c)
    _check_preprocessing(c)
    _check_augment(c.augment)
    _check_optim(c.optim)
    _check_stopping_and_evaluation(c)
    _check_applicability(c.applicability)
    _check_recipe(c.recipe)


def _check_recipe(r: RecipeConfig) -> None:
    _check(
        1.0 <= r.max_slowdown <= 100.0,
        f"config recipe.max_slowdown {r.max_slowdown} must be in [1, 100]",
        "1 keeps the architecture's native input size",
    )
    """The time budget and the smallest finding's pixels at input size."""
    _check(
        r.time_budget_minutes is None or r.time_budget_minutes > 0,
        f"config recipe.time_budget_minutes {r.time_budget_minutes} must be > 0 (null: none)",
    )
    _check(
        1 <= r.min_finding_pixels <= 256,
        f"config recipe.min_finding_pixels {r.min_finding_pixels} must be in 1..256",
    )


def _check_applicability(a: ApplicabilityConfig) -> None:
    """Intended-input codes and kind, matrix size, the OOD percentile."""
    if a.image_kind is not None:
        _choice(a.image_kind, IMAGE_KINDS, "applicability.image_kind")
    _check(
        a.min_matrix is None or 0 <= a.min_matrix <= 65535,
        f"config applicability.min_matrix {a.min_matrix} must be in 0..65535",
    )
    _check(
        50.0 <= a.ood_percentile < 100.0,
        f"config applicability.ood_percentile {a.ood_percentile} must be in [50, 100)",
        "95 flags about 5 % of images like the validation split",
    )
    for key in ("modalities", "body_parts", "view_positions"):
        codes: dict[str, Any] = {key: tuple(getattr(a, key) or ())}
        try:
            IntendedInput(**codes)
        except ModelFileError as err:
            raise ConfigError(
                f"config applicability.{key}: {err.reason.removeprefix('manifest ')}",
                hint="use DICOM code strings: upper case letters, digits, _ (e.g. CR, CHEST, PA)",
            ) from None


def _check_task(c: TrainConfig) -> None:
    """The task, the architecture's task and the monitor agree."""
    task = c.data.task
    _choice(task, TASKS, "data.task")
    arch = get_arch(c.model.arch)
    _check(
        arch.task == task,
        f"config model.arch {arch.name} is a {arch.task} network, not a {task} one",
        "use unet-lite0 for segmentation" if task == "segmentation" else
        "use a classifier such as efficientnet-lite0",
    )  # fmt: skip
    if task == "segmentation":
        _check(
            c.data.folds == 1,
            f"config data.folds {c.data.folds}: k-fold is not available for segmentation yet",
            "use folds 1",
        )
        _check(
            c.preprocess_spec().image_size % 32 == 0,
            f"config preprocessing.image_size {c.preprocess_spec().image_size} must be a "
            "multiple of 32 for segmentation",
        )
    _check(
        (c.early_stopping.monitor == "dice") == (task == "segmentation")
        or c.early_stopping.monitor == "loss",
        f"config early_stopping.monitor {c.early_stopping.monitor!r} does not fit {task}",
        "segmentation monitors dice or loss; classification auroc or loss",
    )


def _check_data(d: DataConfig) -> None:
    """Fractions, folds, cache and workers, and the label list."""
    _check(
        0.0 < d.val_fraction < 0.9, f"config data.val_fraction {d.val_fraction} must be in (0, 0.9)"
    )
    _check(
        0.0 <= d.test_fraction < 0.9,
        f"config data.test_fraction {d.test_fraction} must be in [0, 0.9)",
    )
    _check(
        d.val_fraction + d.test_fraction < 0.95,
        f"config data.val_fraction + test_fraction = {d.val_fraction + d.test_fraction} leaves "
        "too little for training",
    )
    _check(
        d.folds == 1 or 2 <= d.folds <= 20, f"config data.folds {d.folds} must be 1 (off) or 2..20"
    )
    _choice(d.cache, CACHE_MODES, "data.cache")
    _choice(d.cache_dtype, CACHE_DTYPES, "data.cache_dtype")
    _check(0 <= d.workers <= 64, f"config data.workers {d.workers} must be in 0..64")
    if d.labels is not None:
        _check(
            len(d.labels) > 0, "config data.labels is empty", "omit it to use every label column"
        )
        _check(
            len(set(d.labels)) == len(d.labels),
            f"config data.labels {d.labels} names a label twice",
        )


def _check_model(m: ModelConfig) -> None:
    """The architecture, its pretrained weights, init, dropout and BatchNorm momentum."""
    arch = get_arch(m.arch)
    _check(
        not (m.pretrained and arch.wheel is None and m.weights is None),
        f"no pretrained weights are bundled for {arch.name} and nothing is downloaded",
        "give model.weights (a local torchvision state-dict file), or use --no-pretrained",
    )
    _choice(m.init, INITS, "model.init")
    _check(0.0 <= m.dropout < 1.0, f"config model.dropout {m.dropout} must be in [0, 1)")
    _check(
        m.bn_momentum is None or 0.0 < m.bn_momentum <= 1.0,
        f"config model.bn_momentum {m.bn_momentum} must be in (0, 1] (null: the network's own)",
    )
    _check(
        m.weights is None or m.pretrained,
        f"config model.weights {m.weights!r} is set but model.pretrained is false",
        "drop the weights file, or turn pretrained on",
    )


def _check_preprocessing(c: TrainConfig) -> None:
    """The preprocessing choices, then PreprocessSpec's own checks."""
    p = c.preprocessing
    _choice(p.normalization, NORMALIZATIONS, "preprocessing.normalization")
    _choice(p.interpolation, INTERPOLATIONS, "preprocessing.interpolation")
    if p.output_scaling is not None:
        _choice(p.output_scaling, OUTPUT_SCALINGS, "preprocessing.output_scaling")
    _check(
        len(p.percentiles) == 2, f"config preprocessing.percentiles {p.percentiles} must be a pair"
    )
    c.preprocess_spec()  # PreprocessSpec's own checks (size range, percentile order, ...)


def _check_augment(a: AugmentConfig) -> None:
    """Probabilities in [0, 1] and every augmentation's strength in its range."""
    _check(
        a.strength is None or 0.0 <= a.strength <= 2.0,
        f"config augment.strength {a.strength} must be in [0, 2]",
        "0 turns augmentation off, 1 keeps the magnitudes as written",
    )
    for key in (
        "affine_prob",
        "contrast_prob",
        "intensity_prob",
        "noise_prob",
        "hflip_prob",
        "vflip_prob",
    ):
        value = getattr(a, key)
        _check(0.0 <= value <= 1.0, f"config augment.{key} {value} must be in [0, 1]")
    _check(
        0.0 <= a.rotate_degrees <= 45.0,
        f"config augment.rotate_degrees {a.rotate_degrees} must be in [0, 45]",
    )
    _check(0.0 <= a.scale < 0.5, f"config augment.scale {a.scale} must be in [0, 0.5)")
    _check(0.0 <= a.translate < 0.5, f"config augment.translate {a.translate} must be in [0, 0.5)")
    _check(
        len(a.gamma) == 2 and 0.0 < a.gamma[0] <= a.gamma[1],
        f"config augment.gamma {a.gamma} must be [low, high] with 0 < low <= high",
    )
    _check(
        0.0 <= a.intensity_scale < 1.0,
        f"config augment.intensity_scale {a.intensity_scale} must be in [0, 1)",
    )
    _check(0.0 <= a.noise_std < 1.0, f"config augment.noise_std {a.noise_std} must be in [0, 1)")


def _check_optim(o: OptimConfig) -> None:
    """Epochs, batch size, learning rates, schedule, clipping and class weights."""
    _check(1 <= o.epochs <= 10_000, f"config optim.epochs {o.epochs} must be in 1..10000")
    _check(
        o.batch_size is None or 1 <= o.batch_size <= 4096,
        f"config optim.batch_size {o.batch_size} must be in 1..4096 (null: chosen by fit)",
    )
    _check(
        o.lr is None or 0.0 < o.lr < 1.0,
        f"config optim.lr {o.lr} must be in (0, 1) (null: chosen by fit)",
    )
    _check(
        0.0 <= o.backbone_lr_factor <= 10.0,
        f"config optim.backbone_lr_factor {o.backbone_lr_factor} must be in [0, 10]",
    )
    _check(
        0.0 <= o.weight_decay < 1.0, f"config optim.weight_decay {o.weight_decay} must be in [0, 1)"
    )
    _check(
        0.0 <= o.warmup_epochs <= o.epochs,
        f"config optim.warmup_epochs {o.warmup_epochs} must be in 0..epochs",
    )
    _check(
        0.0 <= o.min_lr_ratio <= 1.0,
        f"config optim.min_lr_ratio {o.min_lr_ratio} must be in [0, 1]",
    )
    _check(
        o.freeze_backbone_epochs >= 0,
        f"config optim.freeze_backbone_epochs {o.freeze_backbone_epochs} must be >= 0",
    )
    _check(
        o.grad_clip_norm >= 0.0,
        f"config optim.grad_clip_norm {o.grad_clip_norm} must be >= 0 (0: off)",
    )
    _choice(o.class_weights, CLASS_WEIGHTS, "optim.class_weights")


def _check_stopping_and_evaluation(c: TrainConfig) -> None:
    """Early stopping, threshold rule and the evaluation's bootstrap."""
    e = c.early_stopping
    _choice(e.monitor, MONITORS, "early_stopping.monitor")
    _check(e.patience >= 1, f"config early_stopping.patience {e.patience} must be >= 1")
    _check(e.min_delta >= 0.0, f"config early_stopping.min_delta {e.min_delta} must be >= 0")
    t = c.thresholds
    _choice(t.rule, THRESHOLD_RULES, "thresholds.rule")
    _check(
        0.0 < t.target_sensitivity < 1.0,
        f"config thresholds.target_sensitivity {t.target_sensitivity} must be in (0, 1)",
    )
    v = c.evaluation
    _check(
        v.bootstrap == 0 or 100 <= v.bootstrap <= 100_000,
        f"config evaluation.bootstrap {v.bootstrap} must be 0 (off) or 100..100000",
    )
    _check(0.5 <= v.ci_level < 1.0, f"config evaluation.ci_level {v.ci_level} must be in [0.5, 1)")


def default_config_path() -> Path:
    """``training/defaults.yaml``: the defaults, documented."""
    return Path(__file__).with_name("defaults.yaml")
