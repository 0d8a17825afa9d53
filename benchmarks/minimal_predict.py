"""The baseline of bench_e2e.py: the least code that does `radassist predict`'s core job.

pydicom reads each DICOM file, the model file's preprocessing spec (its manifest, read from the
safetensors header as plain JSON) is replayed in numpy, one ONNX Runtime session runs the same
graph (written by ``radassist-train export-onnx``), and the probabilities (sigmoid of the logits
over the manifest's per-label temperatures) go out as JSON with the manifest's thresholds. It
imports nothing of RadAssist, torch or MONAI, on purpose: it is what a careful engineer would
write in an afternoon, the floor the app's whole process is measured against.

    python benchmarks/minimal_predict.py PATH --model FILE.safetensors --onnx FILE.onnx --out DIR

Not done here (the app does it): heatmaps, overlays, the input check and OOD score, series
assembly, audit, progress. The preprocessing follows desktop_app/model/preprocessing.py step by
step (percentile/window/minmax normalization, MONOCHROME1 inversion, antialiased resize as
``torch.nn.functional.interpolate(..., antialias=True)`` computes it, centred padding, output
scaling); tests/benchmarks/test_minimal_predict.py checks its probabilities against the engine.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pydicom
from pydicom.misc import is_dicom
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut

PERCENTILE_SAMPLE_PIXELS = 1_000_000  # as desktop_app.model.preprocessing
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def read_manifest(model: Path) -> dict[str, Any]:
    """The model file's manifest: ``__metadata__["radassist_manifest"]`` of its safetensors
    header (u64 little-endian length, then that many bytes of JSON)."""
    with open(model, "rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
    manifest: dict[str, Any] = json.loads(header["__metadata__"]["radassist_manifest"])
    return manifest


# --------------------------------------------------------------------------- preprocessing


def _window(ds: pydicom.Dataset) -> tuple[float, float, str] | None:
    """The file's first VOI window (PS3.3 C.11.2.1.2), or None when it is missing or unusable."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    first = [v[0] if isinstance(v, MultiValue) else v for v in (center, width)]
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    try:
        c, w = float(first[0]), float(first[1])
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(c) and math.isfinite(w)) or w <= (1.0 if function == "LINEAR" else 0.0):
        return None
    return c, w, function


def normalize(x: np.ndarray, spec: Mapping[str, Any], window: tuple[float, float, str] | None,
              photometric: str) -> np.ndarray:  # fmt: skip
    """Modality values -> float32 in [0, 1], air dark (MONOCHROME1 inverted, PS3.3 C.7.6.3.1.2)."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(all="ignore"):
        if spec["normalization"] == "window" and window is not None:
            c, w, function = window
            if function == "SIGMOID":
                z = np.clip(-4.0 * (x - np.float32(c)) / np.float32(w), -80.0, 80.0)
                unit = (1.0 / (1.0 + np.exp(z))).astype(np.float32)
            elif function == "LINEAR_EXACT":
                unit = (x - np.float32(c)) / np.float32(w) + np.float32(0.5)
            else:
                unit = (x - np.float32(c - 0.5)) / np.float32(w - 1.0) + np.float32(0.5)
        else:
            if spec["normalization"] == "minmax":
                finite = x[np.isfinite(x)]
                lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
            else:  # percentile, and window's fallback
                step = max(1, math.ceil(math.sqrt(x.size / PERCENTILE_SAMPLE_PIXELS)))
                sample = x[::step, ::step].ravel()
                sample = sample[np.isfinite(sample)]
                lo, hi = (
                    (
                        float(v)
                        for v in np.percentile(sample.astype(np.float64), spec["percentiles"])
                    )
                    if sample.size
                    else (0.0, 0.0)
                )
            unit = (x - np.float32(lo)) / np.float32(hi - lo) if hi > lo else np.zeros_like(x)
        unit = np.clip(np.nan_to_num(unit, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    if photometric.strip().upper() == "MONOCHROME1":
        unit = np.float32(1.0) - unit
    return unit.astype(np.float32, copy=False)


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, 1.0 - np.abs(x))


def _cubic(x: np.ndarray) -> np.ndarray:  # Keys' cubic with a = -0.5, as PIL and torch's AA
    a, x = -0.5, np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def resize_weights(n_in: int, n_out: int, interpolation: str) -> np.ndarray:
    """(n_out, n_in) antialiased resampling matrix, half-pixel centres: the weights of
    ``interpolate(mode=..., align_corners=False, antialias=True)`` (PIL's resampling)."""
    filt: Callable[[np.ndarray], np.ndarray] = _triangle if interpolation == "bilinear" else _cubic
    half = 1.0 if interpolation == "bilinear" else 2.0
    scale = n_in / n_out
    support = half * scale if scale >= 1.0 else half
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    weights = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        w = filt((np.arange(lo, hi) - center + 0.5) * inv)
        total = w.sum()
        weights[i, lo:hi] = w / total if total != 0 else w
    return weights


def network_input(unit: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """Unit image (rows, cols) -> (1, C, S, S): longest side to S, centred pad, scaling."""
    size, (rows, cols) = int(spec["image_size"]), unit.shape
    scale = size / max(rows, cols)
    h = min(size, max(1, round(rows * scale)))
    w = min(size, max(1, round(cols * scale)))
    x = unit
    if (h, w) != (rows, cols):
        wy = resize_weights(rows, h, spec["interpolation"]).astype(np.float32)
        wx = resize_weights(cols, w, spec["interpolation"]).astype(np.float32)
        x = wy @ unit @ wx.T
        if spec["interpolation"] == "bicubic":
            x = np.clip(x, 0.0, 1.0)
    out = np.full((size, size), np.float32(spec["pad_value"]), np.float32)
    top, left = (size - h) // 2, (size - w) // 2
    out[top : top + h, left : left + w] = x
    if spec["output_scaling"] == "lite":
        out = (out * np.float32(255.0) - np.float32(127.0)) / np.float32(128.0)
    chans = np.repeat(out[None], int(spec["channels"]), axis=0)
    if spec["output_scaling"] == "imagenet":
        mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
        if spec["channels"] == 1:
            mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
        chans = (chans - mean[:, None, None]) / std[:, None, None]
    return np.ascontiguousarray(chans[None], dtype=np.float32)


# --------------------------------------------------------------------------- the job


def dicom_files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        candidates = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        found += [q for q in candidates if is_dicom(q)]
    return found


def predict(files: list[Path], manifest: Mapping[str, Any], onnx: Path) -> list[dict[str, Any]]:
    spec, labels = manifest["preprocessing"], list(manifest["labels"])
    temperatures = manifest.get("temperatures") or {}
    t = np.array([float(temperatures.get(label, 1.0)) for label in labels])
    thresholds = manifest.get("thresholds") or {}
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    results = []
    for path in files:
        ds = pydicom.dcmread(path)
        values = apply_modality_lut(ds.pixel_array, ds)
        frame = values[0] if values.ndim == 3 else values  # first frame of a multi-frame image
        unit = normalize(frame, spec, _window(ds), str(ds.PhotometricInterpretation))
        logits = session.run(None, {name: network_input(unit, spec)})[0][0]
        probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64) / t))
        results.append(
            {
                "file": str(path),
                "sop_instance_uid": str(ds.SOPInstanceUID),
                "findings": [
                    {
                        "label": label,
                        "probability": float(p),
                        "threshold": float(thresholds.get(label, 0.5)),
                        "positive": bool(p >= thresholds.get(label, 0.5)),
                    }
                    for label, p in zip(labels, probs, strict=True)
                ],
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--model", type=Path, required=True, help="the .safetensors model file")
    parser.add_argument("--onnx", type=Path, required=True, help="the model's ONNX graph")
    parser.add_argument("--out", type=Path, required=True, help="folder for findings.json")
    args = parser.parse_args(argv)
    manifest = read_manifest(args.model)
    results = predict(dicom_files(args.paths), manifest, args.onnx)
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"model": manifest.get("name"), "labels": manifest["labels"], "images": results}
    (args.out / "findings.json").write_text(json.dumps(doc, indent=2))
    for r in results:
        row = ", ".join(f"{f['label']} {f['probability']:.3f}" for f in r["findings"])
        print(f"{Path(r['file']).name}: {row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
