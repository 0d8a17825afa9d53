"""A model file read and verified without PyTorch: the manifest, the tensor hash, the OOD
statistics and the ONNX graphs stored in it, for the app's CPU path (ONNX Runtime).

``read_model_data`` makes every check of ``modelfile.load_model_file`` that needs no network:
not a pickle or zip, the size and header limits, the tensor layout, the strict manifest, the
tensor hash and finite weights. The tensor names and shapes are checked against the rebuilt
architecture where an ONNX graph is made (``inference.graphs``, with PyTorch) and by
``load_model_file``; a graph is only ever used for the tensor hash it was made from.

Stored graphs: a model file may carry ONNX graphs of its own network (``embed_graphs``, from
``radassist-train export-onnx --embed`` and the installer), so that a CPU installation without
PyTorch can run it. Each is a U8 tensor named ``radassist.graph.<kind>``; the metadata key
``radassist.graphs`` lists them as JSON ``{kind: {"sha256", "made_for", "opset", "exporter"}}``.
Graphs are not part of the model's identity: ``tensor_sha256`` covers the other tensors (the
network's and the OOD statistics), so embedding a graph keeps the hash that reviews, audits and
site calibrations refer to. A graph is made for a *graph identity* (:func:`graph_identity`: the
tensor hash, the architecture and its arguments, the input size and channels), since the same
weights under other arguments are another network. A graph whose bytes do not match its
sha256, or that was made for another identity, is refused (and made again where PyTorch is).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from desktop_app.infra.atomicio import atomic_write_bytes
from desktop_app.infra.errors import ModelFileError
from desktop_app.model.applicability import OOD_MEAN, OOD_PRECISION, OOD_TENSOR_PREFIX, OodModel
from desktop_app.model.archs import get_arch
from desktop_app.model.manifest import MANIFEST_KEY, ModelManifest
from desktop_app.model.modelcard import model_card_markdown
from desktop_app.model.tensorfile import (
    Header,
    TensorEntry,
    hash_entries,
    header_length,
    no_duplicate_keys,
    parse_header,
    refuse_pickle_name,
)

log = logging.getLogger(__name__)

GRAPH_TENSOR_PREFIX = "radassist.graph."
GRAPHS_KEY = "radassist.graphs"
GRAPH_KINDS = ("forward", "layercam")
MAX_MODEL_BYTES = 4 * 1024**3
_NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16}


@dataclass(frozen=True)
class GraphInfo:
    """What the model file says about one stored graph."""

    kind: str
    sha256: str
    made_for: str  # the graph identity (``graph_identity``) of the network it was exported from
    opset: int
    exporter: str  # e.g. "torch 2.14.1"

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "made_for": self.made_for,
            "opset": self.opset,
            "exporter": self.exporter,
        }


@dataclass
class ModelData:
    """A verified model file without its network: what the ONNX Runtime path needs."""

    manifest: ModelManifest
    path: Path
    sha256: str
    ood: OodModel | None = None
    graphs: dict[str, bytes] = field(default_factory=dict)
    graph_info: dict[str, GraphInfo] = field(default_factory=dict)
    load_seconds: float = 0.0
    head_weight: np.ndarray | None = None  # (labels, K): CAM from the last feature map

    @property
    def model_card(self) -> str:
        return self.manifest.model_card or model_card_markdown(self.manifest)

    @property
    def graph_id(self) -> str:
        return graph_identity(self.manifest)


def graph_identity(manifest: ModelManifest) -> str:
    """What a graph of this model depends on: the weights (tensor hash), the architecture and
    its arguments (EfficientNet's padding depends on the image size, the head on the labels),
    and the input it is exported for."""
    spec = manifest.preprocessing
    payload = {
        "tensor_sha256": manifest.tensor_sha256,
        "architecture": manifest.architecture,
        "arch_args": manifest.arch_args,
        "input": [spec.channels, spec.image_size],
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_graph_tensor(name: str) -> bool:
    return name.startswith(GRAPH_TENSOR_PREFIX)


def without_graphs(header: Header) -> Header:
    """``header`` with the stored graphs left out (what the tensor hash and the network cover)."""
    tensors = {k: v for k, v in header.tensors.items() if not is_graph_tensor(k)}
    return replace(header, tensors=tensors)


def stat_model_file(path: Path) -> int:
    """The file's size; ModelFileError when it is missing, unreadable or not a file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelFileError("model file not found", path, "check the path") from None
    except OSError as err:
        raise ModelFileError(f"can't be read: {err.strerror or err}", path) from None
    if not path.is_file():
        raise ModelFileError("is not a file", path)
    return st.st_size


def read_bytes(path: Path, max_bytes: int = MAX_MODEL_BYTES) -> bytes:
    """The whole file, once (everything after is checked on these bytes only)."""
    size = stat_model_file(path)
    refuse_pickle_name(path)
    if size > max_bytes:
        raise ModelFileError(f"file is {size} bytes, over the limit of {max_bytes}", path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(size)
            grew = fh.read(1)
    except OSError as err:
        raise ModelFileError(f"can't be read: {err.strerror or err}", path) from None
    if grew or len(data) != size:
        raise ModelFileError("file changed while it was read", path, "try again")
    return data


def manifest_of(path: Path, header: Header) -> ModelManifest:
    text = header.metadata.get(MANIFEST_KEY)
    if text is None:
        raise ModelFileError(
            "is a safetensors file without a RadAssist manifest",
            path,
            "package plain weights with: radassist-train convert IN --arch NAME --labels a,b,c "
            "--out model.safetensors",
        )
    try:
        data = json.loads(text, object_pairs_hook=no_duplicate_keys)
    except ModelFileError as err:
        raise ModelFileError(f"manifest {err.reason}", path) from None
    except (ValueError, RecursionError):
        raise ModelFileError("manifest is not valid JSON; damaged file", path) from None
    try:
        return ModelManifest.from_dict(data)
    except ModelFileError as err:
        raise ModelFileError(err.reason, path, err.hint) from None


def read_manifest(path: str | os.PathLike[str]) -> ModelManifest:
    """The manifest alone, cheaply: reads the header only (size-limited), validates it."""
    p = Path(path)
    size = stat_model_file(p)
    refuse_pickle_name(p)
    try:
        with open(p, "rb") as fh:
            head = fh.read(9)
            length = header_length(p, head, size)
            fh.seek(8)
            header_bytes = fh.read(length)
    except OSError as err:
        raise ModelFileError(f"can't be read: {err.strerror or err}", p) from None
    if len(header_bytes) != length:
        raise ModelFileError("file is truncated inside its header", p)
    return manifest_of(p, parse_header(p, header_bytes, length, size))


def _raw(data: bytes, header: Header, entry: TensorEntry) -> memoryview:
    return memoryview(data)[header.data_start + entry.begin : header.data_start + entry.end]


def weights_digest(data: bytes, header: Header) -> str:
    """The tensor hash over every tensor but the stored graphs."""
    return hash_entries(
        (name, e.dtype, e.shape, _raw(data, header, e))
        for name, e in header.tensors.items()
        if not is_graph_tensor(name)
    )


def _array(data: bytes, header: Header, name: str) -> np.ndarray:
    entry = header.tensors[name]
    dtype = _NUMPY_DTYPES.get(entry.dtype)
    if dtype is None:
        raise ModelFileError(f"tensor {name} is {entry.dtype}, expected F32")
    return np.frombuffer(_raw(data, header, entry), dtype=dtype).reshape(entry.shape)


def _refuse_non_finite(path: Path, data: bytes, header: Header) -> None:
    for name in sorted(header.tensors):
        entry = header.tensors[name]
        if entry.dtype == "BF16":  # exponent all ones: infinity or NaN
            bits = np.frombuffer(_raw(data, header, entry), dtype=np.uint16)
            bad = int(((bits & 0x7F80) == 0x7F80).sum())
        elif entry.dtype in _NUMPY_DTYPES:
            values = _array(data, header, name)
            bad = int(values.size - np.isfinite(values).sum())
        else:
            continue
        if bad:
            raise ModelFileError(
                f"tensor {name} holds {bad} NaN or infinite value(s); the training diverged or "
                "the file was altered",
                path,
                "retrain, or use another model file",
            )


def _ood(path: Path, manifest: ModelManifest, data: bytes, header: Header) -> OodModel | None:
    if manifest.ood is None:
        return None
    names = {OOD_MEAN, OOD_PRECISION}
    missing = sorted(names - set(header.tensors))
    if missing:
        raise ModelFileError(
            f"tensor {missing[0]} that the manifest's ood block needs is missing", path
        )
    try:
        return OodModel(
            manifest.ood,
            np.array(_array(data, header, OOD_MEAN), dtype=np.float32),
            np.array(_array(data, header, OOD_PRECISION), dtype=np.float32),
        )
    except ModelFileError as err:
        raise ModelFileError(err.reason, path) from None


def graph_infos(path: Path, header: Header) -> dict[str, GraphInfo]:
    """The stored graphs the metadata lists, checked against the tensors (strict)."""
    text = header.metadata.get(GRAPHS_KEY)
    stored = sorted(k for k in header.tensors if is_graph_tensor(k))
    if text is None:
        if stored:
            raise ModelFileError(f"tensor {stored[0]} is not listed in {GRAPHS_KEY}", path)
        return {}
    try:
        raw = json.loads(text, object_pairs_hook=no_duplicate_keys)
        infos = {
            str(kind): GraphInfo(
                str(kind),
                str(v["sha256"]),
                str(v["made_for"]),
                int(v["opset"]),
                str(v["exporter"]),
            )
            for kind, v in raw.items()
        }
    except (ModelFileError, ValueError, TypeError, KeyError, AttributeError, RecursionError):
        raise ModelFileError(
            f"{GRAPHS_KEY} is not a valid list of graphs; damaged file", path
        ) from None
    for kind in infos:
        if kind not in GRAPH_KINDS:
            raise ModelFileError(f"{GRAPHS_KEY} names an unknown graph {kind!r}", path)
        entry = header.tensors.get(GRAPH_TENSOR_PREFIX + kind)
        if entry is None or entry.dtype != "U8" or len(entry.shape) != 1:
            raise ModelFileError(
                f"graph {kind!r} has no U8 tensor {GRAPH_TENSOR_PREFIX}{kind}", path
            )
    for name in stored:
        if name[len(GRAPH_TENSOR_PREFIX) :] not in infos:
            raise ModelFileError(f"tensor {name} is not listed in {GRAPHS_KEY}", path)
    return infos


def _graphs(
    path: Path, data: bytes, header: Header, identity: str
) -> tuple[dict[str, bytes], dict[str, GraphInfo]]:
    """The stored graphs whose bytes match their sha256 and that were made for these weights;
    the others are left out with a log line (the engine rebuilds or refuses)."""
    graphs: dict[str, bytes] = {}
    infos = graph_infos(path, header)
    for kind, info in sorted(infos.items()):
        raw = bytes(_raw(data, header, header.tensors[GRAPH_TENSOR_PREFIX + kind]))
        if hashlib.sha256(raw).hexdigest() != info.sha256:
            log.warning("model file %s: stored %s graph is damaged; not used", path.name, kind)
            continue
        if info.made_for != identity:
            log.warning(
                "model file %s: stored %s graph is for other weights; not used", path.name, kind
            )
            continue
        graphs[kind] = raw
    return graphs, infos


def _head_weight(
    path: Path, manifest: ModelManifest, data: bytes, header: Header
) -> np.ndarray | None:
    """The head's weight (labels, K), after checking that the head has one output per label
    (the one shape check that needs no network: a manifest naming other labels than the
    weights were trained for is refused here, as ``load_model_file`` refuses it)."""
    head = get_arch(manifest.architecture).head
    n = len(manifest.labels)
    for name, rows in ((f"{head}.bias", (n,)), (f"{head}.weight", None)):
        entry = header.tensors.get(name)
        if entry is None:
            continue
        shape = rows or (n, *entry.shape[1:])
        if entry.shape != shape:
            raise ModelFileError(
                f"tensor {name} has shape {entry.shape}, {manifest.architecture} with these "
                f"arguments needs {shape}",
                path,
            )
    name = f"{head}.weight"
    return (
        np.array(_array(data, header, name), dtype=np.float32) if name in header.tensors else None
    )


def read_model_data(path: str | os.PathLike[str], *, max_bytes: int = MAX_MODEL_BYTES) -> ModelData:
    """Read and verify a model file without PyTorch; refuse (ModelFileError, one line)
    anything that ``load_model_file`` would refuse before building the network."""
    start = time.perf_counter()
    p = Path(path)
    data = read_bytes(p, max_bytes)
    length = header_length(p, data[:9], len(data))
    header = parse_header(p, data[8 : 8 + length], length, len(data))
    manifest = manifest_of(p, header)
    for name in sorted(header.tensors):
        if name.startswith(OOD_TENSOR_PREFIX) and name not in (OOD_MEAN, OOD_PRECISION):
            raise ModelFileError(f"tensor {name} is not part of the manifest's ood block", p)
    digest = weights_digest(data, header)
    if digest != manifest.tensor_sha256:
        raise ModelFileError(
            "tensor data do not match the manifest's tensor_sha256; the file was altered or "
            "damaged",
            p,
        )
    weights = without_graphs(header)
    _refuse_non_finite(p, data, weights)
    ood = _ood(p, manifest, data, weights)
    graphs, infos = _graphs(p, data, header, graph_identity(manifest))
    head_weight = _head_weight(p, manifest, data, weights)
    elapsed = time.perf_counter() - start
    log.info("read model %s %s in %.2f s", manifest.name, manifest.version, elapsed)
    return ModelData(manifest, p, digest, ood, graphs, infos, elapsed, head_weight)


def embed_graphs(
    path: str | os.PathLike[str],
    graphs: Mapping[str, bytes],
    *,
    exporter: str,
    opset: int,
    out: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the model file (``out``, default: in place, atomically) with ``graphs`` stored in
    it; tensors and manifest unchanged, so its tensor_sha256 stays. Replaces stored graphs of
    the same kind and keeps the others."""
    from safetensors.numpy import save

    src = Path(path)
    data = read_bytes(src)
    length = header_length(src, data[:9], len(data))
    header = parse_header(src, data[8 : 8 + length], length, len(data))
    manifest = manifest_of(src, header)
    digest = weights_digest(data, header)
    if digest != manifest.tensor_sha256:
        raise ModelFileError("tensor data do not match the manifest's tensor_sha256", src)
    infos = {k: v.to_dict() for k, v in graph_infos(src, header).items()}
    arrays: dict[str, np.ndarray] = {}
    for name, entry in header.tensors.items():
        if entry.dtype not in _NUMPY_DTYPES and entry.dtype not in ("U8", "I64", "I32"):
            raise ModelFileError(f"tensor {name} is {entry.dtype}; can't rewrite it", src)
        dtype = (
            _NUMPY_DTYPES.get(entry.dtype)
            or {"U8": np.uint8, "I64": np.int64, "I32": np.int32}[entry.dtype]
        )
        arrays[name] = np.frombuffer(_raw(data, header, entry), dtype=dtype).reshape(entry.shape)
    for kind, raw in graphs.items():
        if kind not in GRAPH_KINDS:
            raise ModelFileError(f"unknown graph kind {kind!r}", src)
        arrays[GRAPH_TENSOR_PREFIX + kind] = np.frombuffer(raw, dtype=np.uint8)
        infos[kind] = GraphInfo(
            kind, hashlib.sha256(raw).hexdigest(), graph_identity(manifest), opset, exporter
        ).to_dict()
    metadata = dict(header.metadata)
    metadata[GRAPHS_KEY] = json.dumps(infos, sort_keys=True)
    target = Path(out) if out is not None else src
    atomic_write_bytes(target, save(arrays, metadata=metadata))
    log.info("stored %s graph(s) in %s", ", ".join(sorted(graphs)), target.name)
    return target
