"""The model's preprocessing, defined once: training uses it, the model file stores its spec, and
the app reproduces it from that spec exactly.

One 2-D grey image goes through:

1. modality values (float32, from desktop_app.dicom: Modality LUT applied, PS3.3 C.11.1);
2. normalization to [0, 1]: "percentile" (robust, default 0.5..99.5), "window" (the file's first
   VOI window, PS3.3 C.11.2.1.2, falling back to percentile), or "minmax";
3. MONOCHROME1 inverted (``1 - x``, PS3.3 C.7.6.3.1.2) so that air is always dark;
4. aspect-preserving resize of the longest side to ``image_size`` (antialiased, half-pixel
   centres: Pillow's separable resampling of float images, which
   ``torch.nn.functional.interpolate(antialias=True)`` is a port of; no PyTorch here, so the
   app's CPU path runs without it);
5. centred padding to a square;
6. grey replicated to the network's channels;
7. output scaling ("lite": ``(x*255-127)/128``, "imagenet": mean/std, "none").

Steps 1-5 give the *unit image* (S, S) in [0, 1] (training caches and augments this); steps 6-7
turn it into the network input (C, S, S). :class:`Geometry` records what 4-5 did so that a
heatmap or a box can be mapped back onto the original pixel grid.

The window functions are implemented here rather than borrowed from the viewer's display code on
purpose: a model file's preprocessing must not change when the display code does.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from desktop_app.infra.errors import ConfigError, DataError

log = logging.getLogger(__name__)

NORMALIZATIONS = ("percentile", "window", "minmax")
OUTPUT_SCALINGS = ("lite", "imagenet", "none")
INTERPOLATIONS = ("bilinear", "bicubic")
PERCENTILE_SAMPLE_PIXELS = 1_000_000  # percentiles come from a fixed strided subsample above this

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything that decides the network input; stored in the model file as ``to_dict()``.

    image_size: side S of the square network input.
    normalization: "percentile", "window" or "minmax" (see the module docstring).
    percentiles: (low, high) for "percentile" and for "window"'s fallback.
    channels: 3 (grey replicated) or 1.
    output_scaling: "lite" ((x*255-127)/128, EfficientNet-Lite's ImageNet input), "imagenet"
        (torchvision's mean/std) or "none" (the unit image as it is).
    pad_value: the padding's value in unit space (0 = black), before output scaling.
    interpolation: "bilinear" or "bicubic", both antialiased when shrinking.
    """

    image_size: int = 224
    normalization: str = "percentile"
    percentiles: tuple[float, float] = (0.5, 99.5)
    channels: int = 3
    output_scaling: str = "lite"
    pad_value: float = 0.0
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_size": self.image_size,
            "normalization": self.normalization,
            "percentiles": [float(self.percentiles[0]), float(self.percentiles[1])],
            "channels": self.channels,
            "output_scaling": self.output_scaling,
            "pad_value": float(self.pad_value),
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, partial: bool = False) -> PreprocessSpec:
        """Strict: unknown keys and bad values raise ConfigError naming them.

        ``partial=True`` (configs) fills missing keys with the defaults; a model file's spec
        must be complete (``partial=False``) so that a change of default never changes it.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"preprocessing must be a mapping, not {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in data if k not in names)
        if unknown:
            raise ConfigError(
                f"unknown preprocessing key {unknown[0]!r}", hint=f"known keys: {', '.join(names)}"
            )
        missing = [n for n in names if n not in data]
        if missing and not partial:
            raise ConfigError(f"preprocessing key {missing[0]!r} is missing")
        kwargs = dict(data)
        if "percentiles" in kwargs:
            p = kwargs["percentiles"]
            if not isinstance(p, list | tuple) or len(p) != 2:
                raise ConfigError(f"preprocessing percentiles {p!r} must be a pair [low, high]")
            kwargs["percentiles"] = (p[0], p[1])
        return cls(**kwargs)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _validate(spec: PreprocessSpec) -> None:
    size = spec.image_size
    if isinstance(size, bool) or not isinstance(size, int) or not 32 <= size <= 2048:
        raise ConfigError(f"preprocessing image_size {size!r} must be an integer in 32..2048")
    if spec.normalization not in NORMALIZATIONS:
        raise ConfigError(
            f"preprocessing normalization {spec.normalization!r} is unknown",
            hint=f"choose one of: {', '.join(NORMALIZATIONS)}",
        )
    lo, hi = spec.percentiles
    if not (_is_number(lo) and _is_number(hi) and 0.0 <= lo < hi <= 100.0):
        raise ConfigError(
            f"preprocessing percentiles ({lo!r}, {hi!r}) must satisfy 0 <= low < high <= 100"
        )
    if spec.channels not in (1, 3) or isinstance(spec.channels, bool):
        raise ConfigError(f"preprocessing channels {spec.channels!r} must be 1 or 3")
    if spec.output_scaling not in OUTPUT_SCALINGS:
        raise ConfigError(
            f"preprocessing output_scaling {spec.output_scaling!r} is unknown",
            hint=f"choose one of: {', '.join(OUTPUT_SCALINGS)}",
        )
    if not (_is_number(spec.pad_value) and 0.0 <= spec.pad_value <= 1.0):
        raise ConfigError(f"preprocessing pad_value {spec.pad_value!r} must be in [0, 1]")
    if spec.interpolation not in INTERPOLATIONS:
        raise ConfigError(
            f"preprocessing interpolation {spec.interpolation!r} is unknown",
            hint=f"choose one of: {', '.join(INTERPOLATIONS)}",
        )


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Geometry:
    """How an original (rows, cols) image sits in the S x S network input.

    Coordinates are continuous pixel coordinates ``(x, y)`` with pixel ``(row r, col c)``
    covering ``[c, c+1) x [r, r+1)`` (its centre is ``(c + 0.5, r + 0.5)``), on both grids.
    A box is ``(x, y, width, height)`` in the same convention, as in the training manifest.
    """

    original_shape: tuple[int, int]
    resized_shape: tuple[int, int]
    size: int
    pad: tuple[int, int]  # (top, left)

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) scale factors from original to network pixels."""
        return (
            self.resized_shape[1] / self.original_shape[1],
            self.resized_shape[0] / self.original_shape[0],
        )

    def point_to_model(self, x: float, y: float) -> tuple[float, float]:
        sx, sy = self.scale
        return (x * sx + self.pad[1], y * sy + self.pad[0])

    def point_to_original(self, x: float, y: float) -> tuple[float, float]:
        sx, sy = self.scale
        return ((x - self.pad[1]) / sx, (y - self.pad[0]) / sy)

    def box_to_model(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        x, y, w, h = (float(v) for v in box)
        sx, sy = self.scale
        mx, my = self.point_to_model(x, y)
        return (mx, my, w * sx, h * sy)

    def box_to_original(self, box: Sequence[float]) -> tuple[float, float, float, float]:
        """Map a network-grid box back, clipped to the original image."""
        x, y, w, h = (float(v) for v in box)
        x0, y0 = self.point_to_original(x, y)
        x1, y1 = self.point_to_original(x + w, y + h)
        rows, cols = self.original_shape
        x0, x1 = min(max(x0, 0.0), cols), min(max(x1, 0.0), cols)
        y0, y1 = min(max(y0, 0.0), rows), min(max(y1, 0.0), rows)
        return (x0, y0, x1 - x0, y1 - y0)

    def heatmap_to_original(self, heatmap: Any) -> np.ndarray:
        """A heatmap over the network input (S x S, or any coarser grid over it) -> float32
        (rows, cols) on the original pixel grid: padding cut off, resize undone (bilinear)."""
        t = np.asarray(heatmap, dtype=np.float32).squeeze()
        if t.ndim != 2:
            raise ValueError(f"heatmap must be 2-D, got shape {tuple(t.shape)}")
        if t.shape != (self.size, self.size):
            t = resize(t, (self.size, self.size), "bilinear")
        top, left = self.pad
        h, w = self.resized_shape
        return resize(t[top : top + h, left : left + w], self.original_shape, "bilinear")

    def to_dict(self) -> dict[str, Any]:
        return {
            "original_shape": list(self.original_shape),
            "resized_shape": list(self.resized_shape),
            "size": self.size,
            "pad": list(self.pad),
        }


def geometry_for(shape: tuple[int, int], size: int) -> Geometry:
    """Longest side to ``size`` (aspect kept, each side at least 1), centred in the square."""
    rows, cols = int(shape[0]), int(shape[1])
    if rows < 1 or cols < 1:
        raise ValueError(f"image shape {shape} has an empty side")
    scale = size / max(rows, cols)
    new_rows = min(size, max(1, round(rows * scale)))
    new_cols = min(size, max(1, round(cols * scale)))
    return Geometry(
        (rows, cols), (new_rows, new_cols), size, ((size - new_rows) // 2, (size - new_cols) // 2)
    )


# --------------------------------------------------------------------------- normalization


def _window_params(file_window: object) -> tuple[float, float, str] | None:
    if file_window is None:
        return None
    if isinstance(file_window, tuple | list):
        center, width = file_window[0], file_window[1]
        function = file_window[2] if len(file_window) > 2 else "LINEAR"
    else:
        center = getattr(file_window, "center", None)
        width = getattr(file_window, "width", None)
        function = getattr(file_window, "function", "LINEAR") or "LINEAR"
    try:
        c, w = float(center), float(width)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    function = str(function).upper()
    minimum = 1.0 if function == "LINEAR" else 0.0
    if not (math.isfinite(c) and math.isfinite(w)) or w <= minimum:
        return None  # PS3.3 C.11.2.1.2: an unusable window; the caller falls back
    return c, w, function


def _apply_window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """VOI window to [0, 1]: LINEAR (PS3.3 C.11.2.1.2.1), LINEAR_EXACT (C.11.2.1.3.2),
    SIGMOID (C.11.2.1.3.1)."""
    if function == "SIGMOID":
        z = np.clip(-4.0 * (x - np.float32(center)) / np.float32(width), -80.0, 80.0)
        return (1.0 / (1.0 + np.exp(z))).astype(np.float32)
    if function == "LINEAR_EXACT":
        return (x - np.float32(center)) / np.float32(width) + np.float32(0.5)
    return (x - np.float32(center - 0.5)) / np.float32(width - 1.0) + np.float32(0.5)


def _percentile_range(x: np.ndarray, low: float, high: float) -> tuple[float, float]:
    step = max(1, math.ceil(math.sqrt(x.size / PERCENTILE_SAMPLE_PIXELS)))
    sample = x[::step, ::step].ravel()
    if not np.isfinite(sample).all():
        sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(sample.astype(np.float64), [low, high])
    return float(lo), float(hi)


def _rescale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if not hi > lo:
        return np.zeros_like(x)  # a constant image carries nothing to normalize
    return (x - np.float32(lo)) / np.float32(hi - lo)


def normalize_unit(
    values: np.ndarray,
    spec: PreprocessSpec,
    *,
    photometric: str = "MONOCHROME2",
    file_window: object | None = None,
) -> np.ndarray:
    """Steps 2-3: modality values -> float32 in [0, 1], air dark, same shape."""
    x = np.asarray(values, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"a grey image must be 2-D, got shape {x.shape}")
    window = _window_params(file_window) if spec.normalization == "window" else None
    with np.errstate(all="ignore"):
        if window is not None:
            unit = _apply_window(x, *window)
        elif spec.normalization == "minmax":
            finite = x[np.isfinite(x)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
            unit = _rescale(x, lo, hi)
        else:
            unit = _rescale(x, *_percentile_range(x, *spec.percentiles))
        unit = np.nan_to_num(unit, nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(unit, 0.0, 1.0, out=unit)
    if str(photometric).strip().upper() == "MONOCHROME1":
        unit = np.float32(1.0) - unit
    return unit.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- resize and pad


_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def resize(image: np.ndarray, shape: tuple[int, int], interpolation: str) -> np.ndarray:
    """A 2-D float image resized to ``shape`` (rows, cols): separable resampling with
    half-pixel centres and a filter widened by the scale when shrinking (antialiased), as
    Pillow does for float images (``torch.nn.functional.interpolate(..., antialias=True)``
    is a port of it; on upscaling both equal plain bilinear). Float32 out."""
    rows, cols = int(shape[0]), int(shape[1])
    src = np.ascontiguousarray(image, dtype=np.float32)
    if src.shape == (rows, cols):
        return src.copy()
    out = Image.fromarray(src, mode="F").resize((cols, rows), _RESAMPLE[interpolation])
    return np.asarray(out, dtype=np.float32)


def _resize_and_pad(units: np.ndarray, geometry: Geometry, spec: PreprocessSpec) -> np.ndarray:
    """(N, H, W) unit images of one shape -> (N, S, S)."""
    h, w = geometry.resized_shape
    size = spec.image_size
    out = np.full((units.shape[0], size, size), float(spec.pad_value), dtype=np.float32)
    top, left = geometry.pad
    for i, unit in enumerate(units):
        if (h, w) == unit.shape:
            out[i, top : top + h, left : left + w] = unit
            continue
        x = resize(unit, (h, w), spec.interpolation)
        if spec.interpolation == "bicubic":
            x = np.clip(x, 0.0, 1.0)  # cubic overshoots
        out[i, top : top + h, left : left + w] = x
    return out


def to_network_input(unit: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Steps 6-7: unit image(s) (S, S) or (N, S, S) -> (C, S, S) or (N, C, S, S) float32."""
    x = np.asarray(unit, dtype=np.float32)
    batched = x.ndim == 3
    if not batched:
        x = x[None]
    x = x[:, None]
    if spec.output_scaling == "lite":
        x = (x * np.float32(255.0) - np.float32(127.0)) / np.float32(128.0)
    if spec.channels == 3:
        x = np.repeat(x, 3, axis=1)
    if spec.output_scaling == "imagenet":
        mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
        std = np.asarray(IMAGENET_STD, dtype=np.float32)
        if spec.channels == 1:  # one grey channel: the channel means of mean and std
            mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
        x = (x - mean[None, :, None, None]) / std[None, :, None, None]
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x if batched else x[0]


def unit_image(
    values: np.ndarray,
    spec: PreprocessSpec,
    *,
    photometric: str = "MONOCHROME2",
    file_window: object | None = None,
) -> tuple[np.ndarray, Geometry]:
    """Steps 1-5: one grey image -> (S, S) float32 in [0, 1] and its Geometry."""
    unit = normalize_unit(values, spec, photometric=photometric, file_window=file_window)
    geometry = geometry_for(unit.shape, spec.image_size)
    return _resize_and_pad(unit[None], geometry, spec)[0], geometry


def preprocess_gray(
    values: np.ndarray,
    spec: PreprocessSpec,
    *,
    photometric: str = "MONOCHROME2",
    file_window: object | None = None,
) -> tuple[np.ndarray, Geometry]:
    """One grey 2-D image (modality values) -> network input (C, S, S) float32 and Geometry.

    ``file_window``: the file's first VOI window (anything with ``center``, ``width`` and
    ``function``, or a ``(center, width[, function])`` tuple), used by "window" normalization.
    """
    unit, geometry = unit_image(values, spec, photometric=photometric, file_window=file_window)
    return to_network_input(unit, spec), geometry


def preprocess_batch(
    images: Sequence[Any] | np.ndarray,
    spec: PreprocessSpec,
    *,
    photometric: str = "MONOCHROME2",
    file_window: object | None = None,
) -> tuple[np.ndarray, list[Geometry]]:
    """Many frames (a series) at once -> (N, C, S, S) float32 and one Geometry each.

    ``images``: a (N, rows, cols) array, or a sequence of 2-D arrays or ``ImageForModel``
    (each of which brings its own photometric and window; plain arrays use the keywords).
    Gives exactly what ``preprocess_gray`` gives
    frame by frame.
    """
    items = list(images)
    if not items:
        size = spec.image_size
        return np.zeros((0, spec.channels, size, size), np.float32), []
    units: list[np.ndarray] = []
    for item in items:
        if hasattr(item, "values") and hasattr(item, "photometric"):
            units.append(
                normalize_unit(
                    item.values,
                    spec,
                    photometric=item.photometric,
                    file_window=getattr(item, "file_window", None),
                )
            )
        else:
            units.append(
                normalize_unit(item, spec, photometric=photometric, file_window=file_window)
            )
    geometries = [geometry_for(u.shape, spec.image_size) for u in units]
    out = np.empty((len(units), spec.image_size, spec.image_size), dtype=np.float32)
    for i, (u, geometry) in enumerate(zip(units, geometries, strict=True)):
        out[i] = _resize_and_pad(u[None], geometry, spec)[0]
    return to_network_input(out, spec), geometries


def preprocess_file(
    path: str | os.PathLike[str], spec: PreprocessSpec, frame: int = 0
) -> tuple[np.ndarray, Geometry]:
    """Read a DICOM (through desktop_app.dicom), PNG or JPEG frame and preprocess it."""
    from desktop_app.model.imageio import read_image

    image = read_image(path, frame)
    try:
        return preprocess_gray(
            image.values, spec, photometric=image.photometric, file_window=image.file_window
        )
    except ValueError as err:
        raise DataError(f"can't be preprocessed: {err}", Path(path)) from None
