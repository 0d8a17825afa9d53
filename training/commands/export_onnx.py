"""`radassist-train export-onnx --model FILE --out model.onnx [--int8]`: a model file as ONNX,
for edge deployment (ONNX Runtime, TensorRT, OpenVINO...). `--embed [--out COPY.safetensors]`
stores the app's own graphs (the forward pass and the LayerCAM heatmaps, ``inference.graphs``)
in the model file instead, so that an installation without PyTorch (the CPU bundle) runs it;
the tensors, the manifest and the tensor_sha256 stay as they were.

The model file is loaded and verified as the app loads it (``desktop_app.model.modelfile``). The ONNX
graph takes ``input`` (N, C, S, S) float32, the model file's preprocessing already applied, and
gives ``logits`` (N, labels); probabilities are their sigmoid. The whole RadAssist manifest
(labels, thresholds, preprocessing, tensor hash, intended use) goes into the ONNX
``metadata_props`` under ``radassist_manifest``, so the file says how to feed it.

Before writing, ONNX Runtime's output is compared with PyTorch's on a fixed probe batch: fp32
must match within ``fastpath.EXACT_ATOL + EXACT_RTOL * |logit|`` or nothing is written, and a NaN
or infinite logit from either is refused (NaN matches nothing, itself included). With
``--int8`` (static QDQ quantization calibrated on seeded synthetic radiographs) the largest
logit and probability changes are reported instead. Exit 0 on success, 1 when refused.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from desktop_app.commands._common import EXIT_OK
from desktop_app.infra.atomicio import atomic_write_bytes
from desktop_app.infra.errors import InferenceError, ModelFileError

log = logging.getLogger(__name__)

METADATA_KEY = "radassist_manifest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="the .safetensors model file")
    parser.add_argument(
        "--out", type=Path,
        help="the .onnx file to write; with --embed, a copy of the model file (default: in place)",
    )  # fmt: skip
    parser.add_argument(
        "--embed", action="store_true",
        help="store the app's ONNX graphs (forward pass, LayerCAM) in the model file itself",
    )  # fmt: skip
    parser.add_argument(
        "--int8", action="store_true", help="static int8 quantization (smaller, faster on CPU)"
    )
    parser.add_argument(
        "--opset", type=int, default=17, choices=range(13, 21), metavar="N",
        help="ONNX opset (13-20, default 17)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out")


def with_metadata(onnx_model: bytes, key: str, value: str) -> bytes:
    """The ONNX model with ``metadata_props[key] = value`` (replacing an existing entry)."""
    import onnx

    proto = onnx.load_from_string(onnx_model)
    for prop in list(proto.metadata_props):
        if prop.key == key:
            proto.metadata_props.remove(prop)
    entry = proto.metadata_props.add()
    entry.key, entry.value = key, value
    return bytes(proto.SerializeToString())


def export(model: Path, *, int8: bool = False, opset: int = 17) -> tuple[bytes, dict[str, float]]:
    """The verified ONNX bytes of ``model`` and what the check measured."""
    from desktop_app.inference.devices import configure_cpu_threads
    from desktop_app.inference.fastpath import (
        OrtRunner,
        TorchRunner,
        calibration_inputs,
        export_onnx,
        max_difference,
        nonfinite,
        probe_input,
        quantize_int8,
    )
    from desktop_app.model.modelfile import load_model_file

    loaded = load_model_file(model)
    spec = loaded.manifest.preprocessing
    threads = configure_cpu_threads()
    probe = np.concatenate(
        [probe_input(spec.image_size, spec.channels), calibration_inputs(spec, n=2)]
    )
    reference = TorchRunner(loaded.network)(probe)
    if bad := nonfinite(reference):  # NaN would match NaN nowhere, and must not pass either
        raise InferenceError(
            f"PyTorch's logits on the check input are not finite ({bad}); not written",
            model,
            "its weights are broken, e.g. a normalization layer's running variance; retrain the model",
        )
    fp32 = export_onnx(loaded.network, spec.image_size, spec.channels, opset=opset)
    fp32_out = OrtRunner(fp32, threads)(probe)
    if bad := nonfinite(fp32_out):
        raise InferenceError(
            f"ONNX Runtime's logits are not finite ({bad}) where PyTorch's are; not written",
            model,
            "try another --opset",
        )
    diff = max_difference(fp32_out, reference)
    if diff > 1.0:
        raise InferenceError(
            f"ONNX Runtime's logits differ from PyTorch's by {diff:.1f}x the tolerance; "
            "not written",
            model,
            "try another --opset",
        )
    report = {
        "fp32_tolerance_ratio": diff,
        "max_logit_difference": float(np.max(np.abs(fp32_out - reference))),
    }
    onnx_bytes = fp32
    if int8:
        onnx_bytes = quantize_int8(fp32, calibration_inputs(spec))
        out = OrtRunner(onnx_bytes, threads)(probe)
        if bad := nonfinite(out):
            raise InferenceError(
                f"the int8 model's logits are not finite ({bad}); not written",
                model,
                "export without --int8",
            )
        sig = lambda z: 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))  # noqa: E731
        report["int8_max_logit_change"] = float(np.max(np.abs(out - reference)))
        report["int8_max_probability_change"] = float(np.max(np.abs(sig(out) - sig(reference))))
    manifest = loaded.manifest.to_dict()
    return with_metadata(onnx_bytes, METADATA_KEY, json.dumps(manifest, sort_keys=True)), report


def embed(model: Path, out: Path | None) -> tuple[Path, list[str]]:
    """Store the forward and LayerCAM graphs in ``model`` (or its copy ``out``); the kinds
    stored. A network whose heatmap graph can't be written out, and a segmentation model
    (per-pixel logits, no heatmaps), get the forward graph only."""
    from desktop_app.inference.graphs import Unsupported, build_graph, exporter_version
    from desktop_app.inference.ortrun import ONNX_OPSET
    from desktop_app.model.modeldata import embed_graphs
    from desktop_app.model.modelfile import load_model_file

    loaded = load_model_file(model)
    spec, manifest = loaded.manifest.preprocessing, loaded.manifest
    made: dict[str, bytes] = {}
    for kind in ("forward", "layercam"):
        try:
            made[kind] = build_graph(
                kind, loaded.network, manifest.architecture, spec.image_size, spec.channels,
                len(manifest.labels), manifest.task,
            )  # fmt: skip
        except Unsupported as err:
            print(f"no {kind} graph: {err.reason}; the app makes its heatmaps with PyTorch or CAM")
    target = embed_graphs(model, made, exporter=exporter_version(), opset=ONNX_OPSET, out=out)
    return target, list(made)


def run(args: argparse.Namespace) -> int:
    if args.embed:
        if args.int8:
            raise ModelFileError(
                "--int8 is for a .onnx file; --embed stores fp32 graphs", args.model
            )
        copy = args.out
        if copy is not None:
            if copy.suffix.lower() != ".safetensors":
                raise ModelFileError("with --embed, --out is a model file (.safetensors)", copy)
            if copy.exists() and not args.force:
                raise ModelFileError("already exists", copy, "pass --force to overwrite it")
        target, kinds = embed(args.model, copy)
        size = target.stat().st_size / 1e6
        print(f"stored the {' and '.join(kinds)} graph(s) in {target} ({size:.1f} MB); "
              "tensors and tensor_sha256 unchanged")  # fmt: skip
        return EXIT_OK
    out: Path | None = args.out
    if out is None:
        raise ModelFileError(
            "--out is required (the .onnx file to write), or pass --embed", args.model
        )
    if out.suffix.lower() != ".onnx":
        raise ModelFileError("the output's name must end in .onnx", out)
    if out.exists() and not args.force:
        raise ModelFileError("already exists", out, "pass --force to overwrite it")
    data, report = export(args.model, int8=args.int8, opset=args.opset)
    atomic_write_bytes(out, data)
    kind = "int8" if args.int8 else "fp32"
    print(f"wrote {out} ({kind}, {len(data) / 1e6:.1f} MB)")
    print(f"fp32 check: ONNX Runtime matches PyTorch, largest logit difference "
          f"{report['max_logit_difference']:.2e}")  # fmt: skip
    if args.int8:
        print(
            f"int8: largest logit change {report['int8_max_logit_change']:.3f}, largest "
            f"probability change {report['int8_max_probability_change']:.3f} on the probe"
        )
    return EXIT_OK
