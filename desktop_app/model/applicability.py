"""Where a model applies: its intended input, its out-of-distribution statistics, its temperatures.

Stored in the model file (manifest format 2): ``intended_input`` (JSON) says which series the
model was made for, and the engine checks it before running; ``ood`` (JSON) plus the tensors
``radassist.ood.mean`` and ``radassist.ood.precision`` describe a Gaussian of the training
split's penultimate features, whose Mahalanobis distance flags images unlike the training data;
``temperatures`` (JSON) are per-label temperature-scaling factors fitted on validation.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from desktop_app.infra.errors import ModelFileError

OOD_TENSOR_PREFIX = "radassist.ood."
OOD_MEAN = OOD_TENSOR_PREFIX + "mean"
OOD_PRECISION = OOD_TENSOR_PREFIX + "precision"
OOD_METHODS = ("mahalanobis",)
IMAGE_KINDS = ("projection", "slice", "any")
MAX_FEATURE_DIM = 8192
MAX_TEMPERATURE = 100.0
_CODE = re.compile(r"^[A-Z0-9_ ]{1,16}$")  # CS values (PS3.5 6.2): upper case, digits, _, space

# Modalities whose images are projections; anything else with slices is cross-sectional.
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "RF", "XA", "IO", "PX", "RG"})

DEFAULT_SOURCE = "default: 2-D projection radiographs (the file's maker did not say)"
LEGACY_SOURCE = "default: the model file predates intended-input checks (format 1)"


def _exact_keys(data: Any, keys: tuple[str, ...], where: str) -> dict[str, Any]:
    """``data``'s values of exactly ``keys`` (strict, like the rest of the manifest)."""
    if not isinstance(data, Mapping):
        raise ModelFileError(f"manifest {where} is not a JSON object")
    unknown = sorted(str(k) for k in data if k not in keys)
    if unknown:
        raise ModelFileError(f"manifest {where} has an unknown key {unknown[0]!r}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise ModelFileError(f"manifest {where}.{missing[0]} is missing")
    return {k: data[k] for k in keys}


def _codes(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ModelFileError(f"manifest intended_input.{key} must be a list of codes")
    out = []
    for item in value:
        if not isinstance(item, str) or not _CODE.match(item.strip().upper()):
            raise ModelFileError(f"manifest intended_input.{key} has an invalid code {item!r}")
        out.append(item.strip().upper())
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class IntendedInput:
    """The series a model was made for (PS3.3 C.7.3.1 Modality and Body Part Examined, C.8.11.7
    View Position). An empty tuple means "any"; ``image_kind`` is ``projection`` (a radiograph),
    ``slice`` (one slice of a cross-sectional volume) or ``any``; ``min_matrix`` is the smallest
    side in pixels; ``source`` says where the block came from (fit, config, convert, default)."""

    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    view_positions: tuple[str, ...] = ()
    image_kind: str = "any"
    min_matrix: int = 0
    source: str = "unspecified"

    def __post_init__(self) -> None:
        for key in ("modalities", "body_parts", "view_positions"):
            object.__setattr__(self, key, _codes(getattr(self, key), key))
        if self.image_kind not in IMAGE_KINDS:
            raise ModelFileError(
                f"manifest intended_input.image_kind {self.image_kind!r} is not one of "
                f"{', '.join(IMAGE_KINDS)}"
            )
        m = self.min_matrix
        if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m <= 65535:
            raise ModelFileError(f"manifest intended_input.min_matrix {m!r} is not 0..65535")
        if not isinstance(self.source, str) or len(self.source) > 500:
            raise ModelFileError("manifest intended_input.source must be text (≤ 500 chars)")

    @classmethod
    def radiographs(cls, source: str = DEFAULT_SOURCE) -> IntendedInput:
        """2-D projection radiographs (CR/DX), any body part: what a model file that does not
        say otherwise is checked against."""
        return cls(("CR", "DX"), (), (), "projection", 0, source)

    @classmethod
    def legacy(cls) -> IntendedInput:
        """The conservative default for a format-1 file: 2-D projection radiographs (CR/DX),
        which is what every format-1 RadAssist model was trained on."""
        return cls.radiographs(LEGACY_SOURCE)

    def describe(self) -> str:
        """One phrase for messages: "chest CR/DX projection radiographs"."""
        parts = []
        if self.body_parts:
            parts.append("/".join(p.lower() for p in self.body_parts))
        parts.append("/".join(self.modalities) if self.modalities else "any-modality")
        parts.append(
            {"projection": "radiographs", "slice": "slices", "any": "images"}[self.image_kind]
        )
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "modalities": list(self.modalities),
            "body_parts": list(self.body_parts),
            "view_positions": list(self.view_positions),
            "image_kind": self.image_kind,
            "min_matrix": self.min_matrix,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Any) -> IntendedInput:
        keys = ("modalities", "body_parts", "view_positions", "image_kind", "min_matrix", "source")
        return cls(**_exact_keys(data, keys, "intended_input"))


@dataclass(frozen=True)
class OodSpec:
    """The JSON half of the out-of-distribution statistics (the tensors are in the file).

    ``threshold``: a score above it flags the image; ``threshold_rule`` says how it was set
    (e.g. the 95th percentile of the validation split's scores); ``stats`` holds what was
    measured (validation false-flag rate, feature counts, shrinkage), for the model card."""

    method: str
    feature_dim: int
    threshold: float
    threshold_rule: str
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in OOD_METHODS:
            raise ModelFileError(
                f"manifest ood.method {self.method!r} is unknown",
                hint=f"this RadAssist knows: {', '.join(OOD_METHODS)}",
            )
        d = self.feature_dim
        if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_FEATURE_DIM:
            raise ModelFileError(f"manifest ood.feature_dim {d!r} is not 1..{MAX_FEATURE_DIM}")
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
            raise ModelFileError(f"manifest ood.threshold {t!r} is not a finite number ≥ 0")
        if not isinstance(self.threshold_rule, str) or len(self.threshold_rule) > 2000:
            raise ModelFileError("manifest ood.threshold_rule must be text (≤ 2000 chars)")
        if not isinstance(self.stats, Mapping):
            raise ModelFileError("manifest ood.stats must be a mapping")

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        d = self.feature_dim
        return {OOD_MEAN: (d,), OOD_PRECISION: (d, d)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "feature_dim": self.feature_dim,
            "threshold": float(self.threshold),
            "threshold_rule": self.threshold_rule,
            "stats": dict(self.stats),
        }

    @classmethod
    def from_dict(cls, data: Any) -> OodSpec:
        keys = ("method", "feature_dim", "threshold", "threshold_rule", "stats")
        return cls(**_exact_keys(data, keys, "ood"))


@dataclass(frozen=True)
class OodModel:
    """A Gaussian of training features: scores are Mahalanobis distances (square-rooted), so a
    threshold reads in units of "standard deviations" of the training data."""

    spec: OodSpec
    mean: np.ndarray  # (d,) float32
    precision: np.ndarray  # (d, d) float32, symmetric positive definite

    def __post_init__(self) -> None:
        shapes = self.spec.tensor_shapes()
        for name, arr in ((OOD_MEAN, self.mean), (OOD_PRECISION, self.precision)):
            if tuple(arr.shape) != shapes[name]:
                raise ModelFileError(
                    f"tensor {name} has shape {tuple(arr.shape)}, ood needs {shapes[name]}"
                )
            if not np.isfinite(arr).all():
                raise ModelFileError(f"tensor {name} holds NaN or infinite values")

    @property
    def threshold(self) -> float:
        return float(self.spec.threshold)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``features`` (n, d) to the training mean."""
        x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
        if x.shape[1] != self.spec.feature_dim:
            raise ValueError(
                f"features have {x.shape[1]} dimensions, the OOD model {self.spec.feature_dim}"
            )
        centred = x - self._mean64
        # Two two-operand einsums (numpy's own loops, one thread): 0.3-0.4 ms per image at
        # d = 1280. The three-operand einsum took 2-6 ms, and a BLAS product (``@``) 9-16 ms
        # on the shared machine, where OpenBLAS's threads wait for busy cores
        # (benchmarks/bench_ood_cost.py).
        d2 = np.einsum("ij,ij->i", np.einsum("ij,jk->ik", centred, self._precision64), centred)
        return np.sqrt(np.maximum(d2, 0.0))

    @functools.cached_property
    def _mean64(self) -> np.ndarray:
        return self.mean.astype(np.float64)

    @functools.cached_property
    def _precision64(self) -> np.ndarray:
        return self.precision.astype(np.float64)

    def flags(self, scores: np.ndarray) -> np.ndarray:
        """True where a score is over the threshold (or not finite: no evidence it is in)."""
        s = np.asarray(scores, dtype=np.float64)
        return ~np.isfinite(s) | (s > self.threshold)

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            OOD_MEAN: np.ascontiguousarray(self.mean, dtype=np.float32),
            OOD_PRECISION: np.ascontiguousarray(self.precision, dtype=np.float32),
        }


def check_temperatures(temperatures: Any, labels: Iterable[str]) -> dict[str, float] | None:
    """``None`` (not calibrated) or one finite temperature in (0, 100] per label, no others."""
    if temperatures is None:
        return None
    labels = tuple(labels)
    if not isinstance(temperatures, Mapping):
        raise ModelFileError("manifest temperatures must be a mapping of label to number")
    extra = sorted(set(temperatures) - set(labels))
    if extra:
        raise ModelFileError(f"manifest has a temperature for unknown label {extra[0]!r}")
    out = {}
    for label in labels:
        value = temperatures.get(label)
        if (
            value is None
            or isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not 0.0 < float(value) <= MAX_TEMPERATURE
        ):
            raise ModelFileError(
                f"manifest temperature for {label!r} is {value!r}, not a number in "
                f"(0, {MAX_TEMPERATURE:g}]"
            )
        out[label] = float(value)
    return out


def apply_temperatures(
    logits: np.ndarray, labels: Iterable[str], temperatures: Mapping[str, float] | None
) -> np.ndarray:
    """Logits divided by each label's temperature (columns in ``labels`` order); unchanged when
    the model is not calibrated."""
    if not temperatures:
        return logits
    t = np.array([temperatures[label] for label in labels], dtype=np.float64)
    return np.asarray(logits, dtype=np.float64) / t


def projection_modality(modality: str) -> bool:
    return modality.strip().upper() in PROJECTION_MODALITIES


__all__ = [
    "IMAGE_KINDS",
    "LEGACY_SOURCE",
    "OOD_MEAN",
    "OOD_PRECISION",
    "OOD_TENSOR_PREFIX",
    "IntendedInput",
    "OodModel",
    "OodSpec",
    "apply_temperatures",
    "check_temperatures",
    "projection_modality",
]
