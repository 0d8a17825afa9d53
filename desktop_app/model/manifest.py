"""The model file's manifest: what a model says about itself, validated strictly (``ModelManifest``).

The manifest is stored as JSON under ``__metadata__["radassist_manifest"]`` of the model file
(``desktop_app.model.modelfile``); ``to_json`` fixes its bytes (sorted keys, no NaN).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from desktop_app import __version__ as RADASSIST_VERSION
from desktop_app.infra.errors import ConfigError, ModelFileError
from desktop_app.model.applicability import IntendedInput, OodSpec, check_temperatures
from desktop_app.model.archs import (
    ARCHITECTURES,
    TASKS,
    arch_args,
    get_arch,
    validate_arch_args,
)
from desktop_app.model.preprocessing import PreprocessSpec

FORMAT_VERSION = 2
# Keys a format-1 file lacks; it loads with their conservative defaults (and a warning).
APPLICABILITY_KEYS = ("intended_input", "ood", "temperatures")
MANIFEST_KEY = "radassist_manifest"
MAX_TEXT_CHARS = 1_000_000
MAX_LABELS = 1000
DEFAULT_INTENDED_USE = (
    "Research use only, not for diagnosis. Flags candidate findings on 2-D radiographs for a "
    "qualified reader to review; every finding must be confirmed by that reader."
)
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,63}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")

MANIFEST_KEYS = (
    "format_version",
    "name",
    "version",
    "architecture",
    "arch_args",
    "input_size",
    "input_channels",
    "labels",
    "preprocessing",
    "thresholds",
    "threshold_rule",
    "metrics",
    "training_data",
    "created",
    "radassist_version",
    "intended_use",
    "tensor_sha256",
    "model_card",
    *APPLICABILITY_KEYS,
    "site_calibration",
    "task",
)
# Keys any file may leave out (added within format 2). A file without ``task`` is a classifier:
# classification files never write it, so they stay byte-for-byte what they were.
OPTIONAL_KEYS = ("site_calibration", "task")


def utc_now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _json_clean(value: Any, where: str) -> Any:
    """A JSON-safe deep copy: non-finite floats become null (JSON has no NaN)."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ModelFileError(f"manifest {where} has a non-string key {k!r}")
            out[k] = _json_clean(v, where)
        return out
    if isinstance(value, list | tuple):
        return [_json_clean(v, where) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _json_clean(value.item(), where)
    raise ModelFileError(f"manifest {where} holds a {type(value).__name__}, which is not JSON")


def _text(value: Any, key: str, *, empty_ok: bool = False, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(value, str):
        raise ModelFileError(f"manifest {key} must be text, not {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise ModelFileError(f"manifest {key} is empty")
    if len(value) > limit:
        raise ModelFileError(f"manifest {key} is {len(value)} characters, over {limit}")
    return value


def _refuse_newer(format_version: int) -> None:
    if format_version > FORMAT_VERSION:
        raise ModelFileError(
            f"model file format version {format_version} is newer than this RadAssist reads "
            f"({FORMAT_VERSION})",
            hint="upgrade RadAssist",
        )


def _check_format_version(fv: Any) -> None:
    if isinstance(fv, bool) or not isinstance(fv, int) or fv < 1:
        raise ModelFileError(f"manifest format_version {fv!r} is not a positive integer")
    _refuse_newer(fv)


def _check_labels(labels: tuple[str, ...]) -> None:
    if not labels:
        raise ModelFileError("manifest labels are empty")
    if len(labels) > MAX_LABELS:
        raise ModelFileError(f"manifest has {len(labels)} labels, over {MAX_LABELS}")
    for label in labels:
        if not isinstance(label, str) or not LABEL_PATTERN.match(label):
            raise ModelFileError(
                f"manifest label {label!r} is not allowed",
                hint="labels are 1-64 letters, digits, spaces, '.', '_' or '-', "
                "starting with a letter or digit",
            )
    if len(set(labels)) != len(labels):
        dup = next(lab for lab in labels if labels.count(lab) > 1)
        raise ModelFileError(f"manifest label {dup!r} appears twice")


def _check_thresholds(thresholds: Any, labels: tuple[str, ...]) -> None:
    """One threshold in [0, 1] per label, and none for a label the model does not have."""
    if not isinstance(thresholds, Mapping):
        raise ModelFileError("manifest thresholds must be a mapping of label to number")
    extra = sorted(set(thresholds) - set(labels))
    if extra:
        raise ModelFileError(f"manifest has a threshold for unknown label {extra[0]!r}")
    for label in labels:
        if label not in thresholds:
            raise ModelFileError(f"manifest has no threshold for label {label!r}")
        value = thresholds[label]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0.0 <= float(value) <= 1.0
        ):
            raise ModelFileError(
                f"manifest threshold for {label!r} is {value!r}, not a number in [0, 1]"
            )


def _check_created(created: str) -> None:
    _text(created, "created", limit=100)
    try:
        when = datetime.fromisoformat(created)
    except ValueError:
        raise ModelFileError(f"manifest created {created!r} is not an ISO date") from None
    if when.tzinfo is None:
        raise ModelFileError(f"manifest created {created!r} has no time zone")


@dataclass(frozen=True)
class ModelManifest:
    """What a model file says about itself (``__metadata__["radassist_manifest"]``).

    ``thresholds``: per-label operating points in [0, 1]; ``threshold_rule`` says how they were
    chosen. ``metrics``: JSON, by convention ``{split: {label: {metric: value or
    {"value": v, "ci95": [lo, hi]}}}}``. ``training_data``: JSON with counts, the manifest CSV's
    ``manifest_sha256`` and ``synthetic: true`` for phantom-trained models.
    ``tensor_sha256`` is filled in by :func:`save_model_file`. ``intended_input``: the series
    the model was made for (checked before running); ``ood``: the out-of-distribution score's
    method and threshold (its tensors live in the file), or None; ``temperatures``: per-label
    temperature scaling fitted on validation, or None (thresholds then apply to raw sigmoids).
    ``task``: "classification" (per-image logits, one per label) or "segmentation" (per-pixel
    logits ``(N, labels, S, S)`` over the network input; a pixel belongs to a label where its
    sigmoid reaches the label's threshold); it must be the architecture's own task.
    """

    name: str
    architecture: str
    arch_args: dict[str, Any]
    labels: tuple[str, ...]
    preprocessing: PreprocessSpec
    thresholds: dict[str, float]
    threshold_rule: str
    version: str = "1"
    metrics: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    intended_use: str = DEFAULT_INTENDED_USE
    created: str = field(default_factory=utc_now_iso)
    radassist_version: str = RADASSIST_VERSION
    tensor_sha256: str = ""
    model_card: str | None = None
    format_version: int = FORMAT_VERSION
    intended_input: IntendedInput = field(default_factory=IntendedInput.radiographs)
    ood: OodSpec | None = None
    temperatures: dict[str, float] | None = None
    site_calibration: dict[str, Any] | None = None
    task: str = "classification"

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        if not isinstance(self.intended_input, IntendedInput):
            raise ModelFileError("manifest intended_input is not an IntendedInput")
        if self.ood is not None and not isinstance(self.ood, OodSpec):
            raise ModelFileError("manifest ood is not an OodSpec")
        object.__setattr__(self, "temperatures", check_temperatures(self.temperatures, self.labels))
        if self.site_calibration is not None:
            block = _json_clean(self.site_calibration, "site_calibration")
            object.__setattr__(
                self, "site_calibration", _check_site_calibration(block, self.labels)
            )
        object.__setattr__(self, "metrics", _json_clean(self.metrics, "metrics"))
        object.__setattr__(self, "training_data", _json_clean(self.training_data, "training_data"))
        self._validate()

    @property
    def input_size(self) -> int:
        return self.preprocessing.image_size

    @property
    def input_channels(self) -> int:
        return self.preprocessing.channels

    @property
    def legacy(self) -> bool:
        """A format-1 file: no intended input, OOD statistics or temperatures of its own."""
        return self.format_version < 2

    @property
    def synthetic(self) -> bool:
        return bool(self.training_data.get("synthetic"))

    def _validate(self) -> None:
        # the order of the checks decides which problem a file with several is refused for
        _check_format_version(self.format_version)
        self._check_texts()
        self._check_architecture()
        _check_labels(self.labels)
        self._check_network_fits()
        _check_thresholds(self.thresholds, self.labels)
        if not isinstance(self.metrics, dict) or not isinstance(self.training_data, dict):
            raise ModelFileError("manifest metrics and training_data must be mappings")
        _check_created(self.created)
        if self.tensor_sha256 and not SHA256_PATTERN.match(str(self.tensor_sha256)):
            raise ModelFileError(
                f"manifest tensor_sha256 {self.tensor_sha256!r} is not 64 hex digits"
            )

    def _check_texts(self) -> None:
        _text(self.name, "name", limit=200)
        _text(self.version, "version", limit=100)
        _text(self.threshold_rule, "threshold_rule", limit=2000)
        _text(self.intended_use, "intended_use")
        _text(self.radassist_version, "radassist_version", limit=100)
        if self.model_card is not None:
            _text(self.model_card, "model_card", empty_ok=True)

    def _check_architecture(self) -> None:
        if not isinstance(self.architecture, str) or self.architecture not in ARCHITECTURES:
            raise ModelFileError(
                f"manifest architecture {self.architecture!r} is unknown",
                hint=f"this RadAssist knows: {', '.join(ARCHITECTURES)}",
            )
        if not isinstance(self.task, str) or self.task not in TASKS:
            raise ModelFileError(
                f"manifest task {self.task!r} is unknown", hint=f"one of: {', '.join(TASKS)}"
            )
        if get_arch(self.architecture).task != self.task:
            raise ModelFileError(
                f"manifest task {self.task!r} does not fit architecture {self.architecture} "
                f"(a {get_arch(self.architecture).task} network)"
            )
        if not isinstance(self.preprocessing, PreprocessSpec):
            raise ModelFileError("manifest preprocessing is not a PreprocessSpec")
        if not isinstance(self.arch_args, Mapping):
            raise ModelFileError("manifest arch_args must be a mapping")
        try:
            validate_arch_args(self.architecture, self.arch_args)
        except ConfigError as err:
            raise ModelFileError(f"manifest arch_args: {err.reason}") from None

    def _check_network_fits(self) -> None:
        """The network's outputs, input size and channels agree with labels and preprocessing."""
        n = self.arch_args["num_classes"]
        if n != len(self.labels):
            raise ModelFileError(
                f"manifest has {len(self.labels)} labels but the network has {n} outputs"
            )
        if self.arch_args["image_size"] != self.preprocessing.image_size:
            raise ModelFileError(
                f"network image_size {self.arch_args['image_size']} differs from the "
                f"preprocessing image_size {self.preprocessing.image_size}"
            )
        if self.arch_args["in_channels"] != self.preprocessing.channels:
            raise ModelFileError(
                f"network in_channels {self.arch_args['in_channels']} differs from the "
                f"preprocessing channels {self.preprocessing.channels}"
            )

    def to_dict(self) -> dict[str, Any]:
        task = {} if self.task == "classification" else {"task": self.task}
        return {
            **task,
            "format_version": self.format_version,
            "name": self.name,
            "version": self.version,
            "architecture": self.architecture,
            "arch_args": dict(self.arch_args),
            "input_size": self.input_size,
            "input_channels": self.input_channels,
            "labels": list(self.labels),
            "preprocessing": self.preprocessing.to_dict(),
            "thresholds": {k: float(self.thresholds[k]) for k in self.labels},
            "threshold_rule": self.threshold_rule,
            "metrics": self.metrics,
            "training_data": self.training_data,
            "created": self.created,
            "radassist_version": self.radassist_version,
            "intended_use": self.intended_use,
            "tensor_sha256": self.tensor_sha256,
            "model_card": self.model_card,
            "intended_input": self.intended_input.to_dict(),
            "ood": None if self.ood is None else self.ood.to_dict(),
            "temperatures": self.temperatures,
            "site_calibration": self.site_calibration,
        }

    @classmethod
    def from_dict(cls, data: Any) -> ModelManifest:
        """Strict: exactly the known keys, every value checked; ModelFileError otherwise."""
        if not isinstance(data, Mapping):
            raise ModelFileError("manifest is not a JSON object")
        unknown = sorted(str(k) for k in data if k not in MANIFEST_KEYS)
        if unknown:
            raise ModelFileError(f"manifest has an unknown key {unknown[0]!r}")
        # format first: a newer file should say "upgrade", not fail on a key it added
        fv: Any = data.get("format_version")
        if isinstance(fv, int) and not isinstance(fv, bool):
            _refuse_newer(fv)
        optional = (APPLICABILITY_KEYS if fv == 1 else ()) + OPTIONAL_KEYS
        missing = [k for k in MANIFEST_KEYS if k not in data and k not in optional]
        if missing:
            raise ModelFileError(f"manifest key {missing[0]!r} is missing")
        try:
            spec = PreprocessSpec.from_dict(data["preprocessing"])
        except ConfigError as err:
            raise ModelFileError(f"manifest {err.reason}", hint=err.hint) from None
        labels = data["labels"]
        if not isinstance(labels, list):
            raise ModelFileError("manifest labels must be a list")
        manifest = cls(
            name=data["name"],
            architecture=data["architecture"],
            arch_args=data["arch_args"],
            labels=tuple(labels),
            preprocessing=spec,
            thresholds=data["thresholds"],
            threshold_rule=data["threshold_rule"],
            version=data["version"],
            metrics=data["metrics"],
            training_data=data["training_data"],
            intended_use=data["intended_use"],
            created=data["created"],
            radassist_version=data["radassist_version"],
            tensor_sha256=data["tensor_sha256"],
            model_card=data["model_card"],
            format_version=fv,
            site_calibration=data.get("site_calibration"),
            task=data.get("task", "classification"),
            **_applicability(data),
        )
        if data["input_size"] != spec.image_size or data["input_channels"] != spec.channels:
            raise ModelFileError(
                f"manifest input {data['input_size']!r}x{data['input_channels']!r} differs from "
                f"its preprocessing ({spec.image_size}, {spec.channels} channels)"
            )
        if not SHA256_PATTERN.match(str(manifest.tensor_sha256)):
            raise ModelFileError(
                f"manifest tensor_sha256 {manifest.tensor_sha256!r} is not 64 hex digits"
            )
        return manifest

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, allow_nan=False)


def _check_site_calibration(block: Any, labels: tuple[str, ...]) -> dict[str, Any]:
    """A site's own measurement of the model (``radassist-train calibrate``): a mapping whose
    ``labels`` mapping names only the model's labels."""
    if not isinstance(block, dict):
        raise ModelFileError("manifest site_calibration must be a mapping")
    per_label = block.get("labels")
    if not isinstance(per_label, dict):
        raise ModelFileError("manifest site_calibration.labels must be a mapping of label")
    unknown = sorted(set(per_label) - set(labels))
    if unknown:
        raise ModelFileError(f"manifest site_calibration has unknown label {unknown[0]!r}")
    return block


def _applicability(data: Mapping[str, Any]) -> dict[str, Any]:
    """The format-2 blocks of a manifest; a format-1 file gets the conservative defaults."""
    if "intended_input" not in data:
        return {"intended_input": IntendedInput.legacy(), "ood": None, "temperatures": None}
    ood = data["ood"]
    return {
        "intended_input": IntendedInput.from_dict(data["intended_input"]),
        "ood": None if ood is None else OodSpec.from_dict(ood),
        "temperatures": data["temperatures"],
    }


def default_manifest(
    *,
    name: str,
    architecture: str,
    labels: Iterable[str],
    image_size: int | None = None,
    channels: int = 3,
    dropout: float = 0.2,
    **kwargs: Any,
) -> ModelManifest:
    """A manifest with default preprocessing for ``architecture`` and thresholds 0.5 ("not
    tuned"), for conversions and tests; ``kwargs`` override any other field."""
    spec_arch = get_arch(architecture)
    size = image_size or spec_arch.default_image_size
    labels = tuple(labels)
    spec = kwargs.pop(
        "preprocessing",
        PreprocessSpec(
            image_size=size, channels=channels, output_scaling=spec_arch.default_output_scaling
        ),
    )
    args = arch_args(
        spec_arch.name, len(labels), in_channels=channels, image_size=size, dropout=dropout
    )
    fields_: dict[str, Any] = {
        "thresholds": dict.fromkeys(labels, 0.5),
        "threshold_rule": "0.5 for every label: not tuned on validation data",
    }
    fields_.update(kwargs)
    return ModelManifest(
        name=name,
        architecture=spec_arch.name,
        arch_args=args,
        labels=labels,
        preprocessing=spec,
        **fields_,
    )
