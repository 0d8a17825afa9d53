"""The model file: one ``.safetensors`` file whose ``__metadata__`` holds the RadAssist manifest.

This is the one module that writes model files (training, ``radassist-train convert``) and
reads them (the app). Nothing on the read path unpickles: the header is parsed here (8-byte
little-endian length + JSON, with size limits) and tensors come from ``safetensors.torch.load``.

Layout (safetensors format): ``u64 N | N bytes of JSON header | tensor data``. The header's
``__metadata__`` maps ``"radassist_manifest"`` to the manifest as a JSON string.

Tensor hash (``tensor_sha256``, format version 1): SHA-256 over the ASCII line
``radassist-tensors-v1\\n`` followed, for every tensor in ascending code-point order of its name,
by the UTF-8 line ``{name}\\0{dtype}\\0{shape}\\0{nbytes}\\n`` (dtype as safetensors spells it,
e.g. ``F32``; shape as comma-separated decimal integers, empty for a scalar) and then the tensor's
raw bytes exactly as stored (little-endian, C order). It covers every tensor but not the
manifest, so the manifest can say which tensors it belongs to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from desktop_app import __version__ as RADASSIST_VERSION
from desktop_app.infra.atomicio import atomic_path
from desktop_app.infra.errors import ConfigError, ModelFileError
from desktop_app.model.networks import (
    ARCHITECTURES,
    arch_args,
    build_from_arch_args,
    get_arch,
    validate_arch_args,
)
from desktop_app.model.preprocessing import PreprocessSpec

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_KEY = "radassist_manifest"
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_TENSORS = 100_000
MAX_MODEL_BYTES = 4 * 1024**3
MAX_TEXT_CHARS = 1_000_000
MAX_LABELS = 1000
HASH_PREFIX = b"radassist-tensors-v1\n"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle")
CONVERT_HINT = (
    "convert a state dict with: radassist-train convert IN.pth --arch NAME --labels a,b,c "
    "--out model.safetensors"
)
DEFAULT_INTENDED_USE = (
    "Research use only, not for diagnosis. Flags candidate findings on 2-D radiographs for a "
    "qualified reader to review; every finding must be confirmed by that reader."
)
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,63}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")

# safetensors dtype name -> (bytes per element, torch dtype)
DTYPES: dict[str, tuple[int, torch.dtype]] = {
    "F64": (8, torch.float64),
    "F32": (4, torch.float32),
    "F16": (2, torch.float16),
    "BF16": (2, torch.bfloat16),
    "I64": (8, torch.int64),
    "I32": (4, torch.int32),
    "I16": (2, torch.int16),
    "I8": (1, torch.int8),
    "U8": (1, torch.uint8),
    "BOOL": (1, torch.bool),
}
TORCH_TO_NAME = {dtype: name for name, (_, dtype) in DTYPES.items()}

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
)


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


@dataclass(frozen=True)
class ModelManifest:
    """What a model file says about itself (``__metadata__["radassist_manifest"]``).

    ``thresholds``: per-label operating points in [0, 1]; ``threshold_rule`` says how they were
    chosen. ``metrics``: JSON, by convention ``{split: {label: {metric: value or
    {"value": v, "ci95": [lo, hi]}}}}``. ``training_data``: JSON with counts, the manifest CSV's
    ``manifest_sha256`` and ``synthetic: true`` for phantom-trained models.
    ``tensor_sha256`` is filled in by :func:`save_model_file`.
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
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
    def synthetic(self) -> bool:
        return bool(self.training_data.get("synthetic"))

    def _validate(self) -> None:
        fv = self.format_version
        if isinstance(fv, bool) or not isinstance(fv, int) or fv < 1:
            raise ModelFileError(f"manifest format_version {fv!r} is not a positive integer")
        if fv > FORMAT_VERSION:
            raise ModelFileError(
                f"model file format version {fv} is newer than this RadAssist reads "
                f"({FORMAT_VERSION})",
                hint="upgrade RadAssist",
            )
        _text(self.name, "name", limit=200)
        _text(self.version, "version", limit=100)
        _text(self.threshold_rule, "threshold_rule", limit=2000)
        _text(self.intended_use, "intended_use")
        _text(self.radassist_version, "radassist_version", limit=100)
        if self.model_card is not None:
            _text(self.model_card, "model_card", empty_ok=True)
        if not isinstance(self.architecture, str) or self.architecture not in ARCHITECTURES:
            raise ModelFileError(
                f"manifest architecture {self.architecture!r} is unknown",
                hint=f"this RadAssist knows: {', '.join(ARCHITECTURES)}",
            )
        if not isinstance(self.preprocessing, PreprocessSpec):
            raise ModelFileError("manifest preprocessing is not a PreprocessSpec")
        if not isinstance(self.arch_args, Mapping):
            raise ModelFileError("manifest arch_args must be a mapping")
        try:
            validate_arch_args(self.architecture, self.arch_args)
        except ConfigError as err:
            raise ModelFileError(f"manifest arch_args: {err.reason}") from None
        labels = self.labels
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
        n = self.arch_args["num_classes"]
        if n != len(labels):
            raise ModelFileError(
                f"manifest has {len(labels)} labels but the network has {n} outputs"
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
        if not isinstance(self.thresholds, Mapping):
            raise ModelFileError("manifest thresholds must be a mapping of label to number")
        extra = sorted(set(self.thresholds) - set(labels))
        if extra:
            raise ModelFileError(f"manifest has a threshold for unknown label {extra[0]!r}")
        for label in labels:
            if label not in self.thresholds:
                raise ModelFileError(f"manifest has no threshold for label {label!r}")
            value = self.thresholds[label]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0.0 <= float(value) <= 1.0
            ):
                raise ModelFileError(
                    f"manifest threshold for {label!r} is {value!r}, not a number in [0, 1]"
                )
        if not isinstance(self.metrics, dict) or not isinstance(self.training_data, dict):
            raise ModelFileError("manifest metrics and training_data must be mappings")
        _text(self.created, "created", limit=100)
        try:
            created = datetime.fromisoformat(self.created)
        except ValueError:
            raise ModelFileError(f"manifest created {self.created!r} is not an ISO date") from None
        if created.tzinfo is None:
            raise ModelFileError(f"manifest created {self.created!r} has no time zone")
        if self.tensor_sha256 and not SHA256_PATTERN.match(str(self.tensor_sha256)):
            raise ModelFileError(
                f"manifest tensor_sha256 {self.tensor_sha256!r} is not 64 hex digits"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
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
        }

    @classmethod
    def from_dict(cls, data: Any) -> ModelManifest:
        """Strict: exactly the known keys, every value checked; ModelFileError otherwise."""
        if not isinstance(data, Mapping):
            raise ModelFileError("manifest is not a JSON object")
        unknown = sorted(str(k) for k in data if k not in MANIFEST_KEYS)
        if unknown:
            raise ModelFileError(f"manifest has an unknown key {unknown[0]!r}")
        missing = [k for k in MANIFEST_KEYS if k not in data]
        if missing:
            raise ModelFileError(f"manifest key {missing[0]!r} is missing")
        # format first: a newer file should say "upgrade", not fail on a key it added
        fv = data["format_version"]
        if isinstance(fv, int) and not isinstance(fv, bool) and fv > FORMAT_VERSION:
            raise ModelFileError(
                f"model file format version {fv} is newer than this RadAssist reads "
                f"({FORMAT_VERSION})",
                hint="upgrade RadAssist",
            )
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


@dataclass
class LoadedModel:
    """A verified model file: its manifest, the network (eval mode) and where it came from."""

    manifest: ModelManifest
    network: nn.Module
    path: Path
    sha256: str
    load_seconds: float = 0.0

    @property
    def model_card(self) -> str:
        return self.manifest.model_card or model_card_markdown(self.manifest)


# --------------------------------------------------------------------------- hashing


def _hash_entries(entries: Iterable[tuple[str, str, tuple[int, ...], memoryview | bytes]]) -> str:
    h = hashlib.sha256(HASH_PREFIX)
    for name, dtype, shape, raw in sorted(entries, key=lambda e: e[0]):
        line = f"{name}\0{dtype}\0{','.join(str(int(s)) for s in shape)}\0{len(raw)}\n"
        h.update(line.encode("utf-8"))
        h.update(raw)
    return h.hexdigest()


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().data.cast("B")


def tensor_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The tensor hash of a state dict (see the module docstring for the definition)."""
    entries = []
    for name, t in state_dict.items():
        if t.dtype not in TORCH_TO_NAME:
            raise ModelFileError(
                f"tensor {name} has dtype {t.dtype}, which a model file can't hold"
            )
        entries.append((name, TORCH_TO_NAME[t.dtype], tuple(t.shape), _tensor_bytes(t)))
    return _hash_entries(entries)


# --------------------------------------------------------------------------- header parsing


@dataclass(frozen=True)
class _TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class _Header:
    length: int
    metadata: dict[str, str]
    tensors: dict[str, _TensorEntry]
    data_size: int

    @property
    def data_start(self) -> int:
        return 8 + self.length


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ModelFileError(f"header names {key!r} twice")
        out[key] = value
    return out


def _classify_prefix(path: Path, head: bytes, file_size: int) -> int:
    """From the first 9 bytes: the declared header length, or refuse pickles, zips and other
    formats. A safetensors header is a JSON object, so byte 8 is ``{``."""
    if len(head) < 9:
        raise ModelFileError(
            f"file is only {file_size} bytes, too short to be a model file",
            path,
            "it may be truncated",
        )
    if head[:4] == b"PK\x03\x04":
        raise ModelFileError(
            "is a zip archive (a torch.save checkpoint?), not a safetensors model file; "
            "RadAssist never loads pickled checkpoints",
            path,
            CONVERT_HINT,
        )
    if head[8:9] != b"{":
        if head[0] == 0x80 and 2 <= head[1] <= 5:
            raise ModelFileError(
                "is a Python pickle (a torch.save file?), not a safetensors model file; "
                "RadAssist never unpickles because a pickle can run code",
                path,
                CONVERT_HINT,
            )
        raise ModelFileError("is not a safetensors model file", path)
    length = int.from_bytes(head[:8], "little")
    if length > MAX_HEADER_BYTES:
        raise ModelFileError(
            f"declares a {length}-byte header, over the limit of {MAX_HEADER_BYTES}; "
            "not a safetensors model file",
            path,
        )
    if length > file_size - 8:
        raise ModelFileError(
            f"declares a {length}-byte header but the file has {file_size - 8} bytes after the "
            "length; truncated or not a safetensors file",
            path,
        )
    return length


def _parse_header(path: Path, header_bytes: bytes, length: int, file_size: int) -> _Header:
    try:
        raw = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except ModelFileError as err:
        raise ModelFileError(err.reason, path) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ModelFileError(
            f"safetensors header is not valid JSON ({type(err).__name__}); damaged file", path
        ) from None
    if not isinstance(raw, dict):
        raise ModelFileError("safetensors header is not a JSON object", path)
    metadata = raw.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ModelFileError("safetensors __metadata__ is not a map of strings", path)
    if len(raw) > MAX_TENSORS:
        raise ModelFileError(f"header lists {len(raw)} tensors, over {MAX_TENSORS}", path)
    tensors: dict[str, _TensorEntry] = {}
    for name, entry in raw.items():
        tensors[name] = _tensor_entry(path, name, entry)
    data_size = file_size - 8 - length
    covered = 0
    for name, entry in sorted(tensors.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
        if entry.begin != covered:
            raise ModelFileError(
                f"tensor {name} starts at byte {entry.begin}, expected {covered}; damaged file",
                path,
            )
        covered = entry.end
    if covered > data_size:
        raise ModelFileError(
            f"file is truncated: the header declares {covered} bytes of tensor data, "
            f"{data_size} are present",
            path,
        )
    if covered < data_size:
        raise ModelFileError(
            f"file has {data_size - covered} bytes after the last tensor; damaged file", path
        )
    return _Header(length, metadata, tensors, data_size)


def _tensor_entry(path: Path, name: str, entry: Any) -> _TensorEntry:
    if not name or any(ord(c) < 32 for c in name):
        raise ModelFileError(f"header has an invalid tensor name {name!r}", path)
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise ModelFileError(f"header entry for tensor {name} is malformed", path)
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPES:
        raise ModelFileError(f"tensor {name} has unsupported dtype {dtype!r}", path)
    if (
        not isinstance(shape, list)
        or len(shape) > 8
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise ModelFileError(f"tensor {name} has an invalid shape {shape!r}", path)
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise ModelFileError(f"tensor {name} has invalid data offsets {offsets!r}", path)
    nbytes = math.prod(shape) * DTYPES[dtype][0]
    if offsets[1] - offsets[0] != nbytes:
        raise ModelFileError(
            f"tensor {name} {tuple(shape)} {dtype} needs {nbytes} bytes, the header gives "
            f"{offsets[1] - offsets[0]}",
            path,
        )
    return _TensorEntry(dtype, tuple(shape), offsets[0], offsets[1])


def _refuse_by_name(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelFileError(
            f"is a PyTorch {path.suffix} file (a pickle), not a .safetensors model file; "
            "RadAssist never unpickles because a pickle can run code",
            path,
            CONVERT_HINT,
        )


def _manifest_from_header(path: Path, header: _Header) -> ModelManifest:
    text = header.metadata.get(MANIFEST_KEY)
    if text is None:
        raise ModelFileError(
            "is a safetensors file without a RadAssist manifest",
            path,
            "package plain weights with: radassist-train convert IN --arch NAME --labels a,b,c "
            "--out model.safetensors",
        )
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except ModelFileError as err:
        raise ModelFileError(f"manifest {err.reason}", path) from None
    except (ValueError, RecursionError):
        raise ModelFileError("manifest is not valid JSON; damaged file", path) from None
    try:
        return ModelManifest.from_dict(data)
    except ModelFileError as err:
        raise ModelFileError(err.reason, path, err.hint) from None


def _stat_file(path: Path) -> int:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelFileError("model file not found", path, "check the path") from None
    except OSError as err:
        raise ModelFileError(f"can't be read: {err.strerror or err}", path) from None
    if not path.is_file():
        raise ModelFileError("is not a file", path)
    return st.st_size


def read_manifest(path: str | os.PathLike[str]) -> ModelManifest:
    """The manifest alone, cheaply: reads the header only (size-limited), validates it."""
    p = Path(path)
    size = _stat_file(p)
    _refuse_by_name(p)
    try:
        with open(p, "rb") as fh:
            head = fh.read(9)
            length = _classify_prefix(p, head, size)
            fh.seek(8)
            header_bytes = fh.read(length)
    except OSError as err:
        raise ModelFileError(f"can't be read: {err.strerror or err}", p) from None
    if len(header_bytes) != length:
        raise ModelFileError("file is truncated inside its header", p)
    return _manifest_from_header(p, _parse_header(p, header_bytes, length, size))


# --------------------------------------------------------------------------- loading


def _check_tensors_match(path: Path, header: _Header, network: nn.Module, arch: str) -> None:
    expected = {
        name: (TORCH_TO_NAME.get(t.dtype, str(t.dtype)), tuple(t.shape))
        for name, t in network.state_dict().items()
    }
    for name in sorted(expected):
        if name not in header.tensors:
            raise ModelFileError(f"tensor {name} that {arch} needs is missing", path)
    for name in sorted(header.tensors):
        if name not in expected:
            raise ModelFileError(f"tensor {name} is not part of {arch}", path)
    for name in sorted(expected):
        entry = header.tensors[name]
        dtype, shape = expected[name]
        if entry.shape != shape:
            raise ModelFileError(
                f"tensor {name} has shape {entry.shape}, {arch} with these arguments needs {shape}",
                path,
            )
        if entry.dtype != dtype:
            raise ModelFileError(f"tensor {name} is {entry.dtype}, {arch} needs {dtype}", path)


def load_model_file(
    path: str | os.PathLike[str],
    *,
    map_location: str | torch.device = "cpu",
    max_bytes: int = MAX_MODEL_BYTES,
) -> LoadedModel:
    """Load and verify a model file; refuse (ModelFileError, one line) anything not exactly right.

    Checks, in order: not a pickle/zip, size and header limits, the header's tensor layout
    (no holes, overlaps, truncation), the manifest (strict), every tensor's name, shape and
    dtype against the rebuilt architecture, and the tensor hash. Only then are the tensors
    materialised (``safetensors.torch.load``; no pickle) into a network in eval mode.
    """
    start = time.perf_counter()
    p = Path(path)
    size = _stat_file(p)
    _refuse_by_name(p)
    if size > max_bytes:
        raise ModelFileError(f"file is {size} bytes, over the limit of {max_bytes}", p)
    try:
        with open(p, "rb") as fh:
            data = fh.read(size)
            grew = fh.read(1)
    except OSError as err:
        raise ModelFileError(f"can't be read: {err.strerror or err}", p) from None
    if grew or len(data) != size:
        raise ModelFileError("file changed while it was read", p, "try again")
    # from here on, only these bytes are checked, hashed and loaded
    length = _classify_prefix(p, data[:9], size)
    header = _parse_header(p, data[8 : 8 + length], length, size)
    manifest = _manifest_from_header(p, header)
    try:
        network = build_from_arch_args(manifest.architecture, manifest.arch_args)
    except ConfigError as err:
        raise ModelFileError(f"architecture can't be built: {err.reason}", p) from None
    _check_tensors_match(p, header, network, manifest.architecture)
    view = memoryview(data)
    digest = _hash_entries(
        (
            name,
            e.dtype,
            e.shape,
            view[header.data_start + e.begin : header.data_start + e.end],
        )
        for name, e in header.tensors.items()
    )
    if digest != manifest.tensor_sha256:
        raise ModelFileError(
            "tensor data do not match the manifest's tensor_sha256; the file was altered or "
            "damaged",
            p,
        )
    import safetensors.torch

    try:
        state = safetensors.torch.load(data)
        network.load_state_dict(state, strict=True)
    except Exception as err:  # the checks above make this unexpected
        raise ModelFileError(f"tensors can't be loaded: {type(err).__name__}: {err}", p) from None
    network.to(map_location)
    network.eval()
    elapsed = time.perf_counter() - start
    log.info("loaded model %s %s in %.2f s", manifest.name, manifest.version, elapsed)
    return LoadedModel(manifest, network, p, digest, elapsed)


# --------------------------------------------------------------------------- saving


def _state_dict_of(model_or_state_dict: nn.Module | Mapping[str, torch.Tensor]) -> dict[str, Any]:
    if isinstance(model_or_state_dict, nn.Module):
        module = getattr(model_or_state_dict, "module", model_or_state_dict)  # DDP
        state = module.state_dict()
    else:
        state = dict(model_or_state_dict)
    out = {}
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise ModelFileError(f"state dict entry {name} is not a tensor")
        # own, contiguous CPU storage: safetensors refuses shared or strided tensors
        out[name] = t.detach().to("cpu", copy=True).contiguous()
    return out


def save_model_file(
    path: str | os.PathLike[str],
    model_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    manifest: ModelManifest,
) -> str:
    """Write a model file atomically; return the tensor sha256 (also stored in the manifest).

    The tensors must match ``manifest``'s architecture exactly (names, shapes, dtypes): a file
    that the app would refuse is never written.
    """
    import safetensors.torch

    p = Path(path)
    if p.suffix.lower() != ".safetensors":
        raise ModelFileError("a model file's name must end in .safetensors", p)
    state = _state_dict_of(model_or_state_dict)
    network = build_from_arch_args(manifest.architecture, manifest.arch_args)
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        first = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise ModelFileError(
            f"the weights don't match {manifest.architecture} ({first}; {len(missing)} missing, "
            f"{len(unexpected)} unexpected)",
            p,
        )
    for name in sorted(expected):
        if tuple(state[name].shape) != tuple(expected[name].shape):
            raise ModelFileError(
                f"tensor {name} has shape {tuple(state[name].shape)}, the manifest's "
                f"{manifest.architecture} needs {tuple(expected[name].shape)}",
                p,
            )
        if state[name].dtype != expected[name].dtype:
            state[name] = state[name].to(expected[name].dtype)
    digest = tensor_sha256(state)
    final = replace(manifest, tensor_sha256=digest)
    metadata = {MANIFEST_KEY: final.to_json()}
    if len(json.dumps(metadata)) > MAX_HEADER_BYTES // 2:
        raise ModelFileError("manifest is too large for a model file header", p)
    with atomic_path(p) as tmp:
        safetensors.torch.save_file(state, str(tmp), metadata=metadata)
    log.info("wrote model file %s (%d tensors, sha256 %s)", p, len(state), digest[:12])
    return digest


# --------------------------------------------------------------------------- model card


def _fmt(value: Any) -> str:
    if isinstance(value, dict) and "value" in value:
        text = _fmt(value["value"])
        ci = value.get("ci95", value.get("ci"))
        if isinstance(ci, list | tuple) and len(ci) == 2:
            text += f" (95% CI {_fmt(ci[0])}–{_fmt(ci[1])})"
        return text
    if isinstance(value, float):
        return f"{value:.3f}"
    if value is None:
        return "n/a"
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, dict) or "value" in value


def _render_block(title: str, data: Mapping[str, Any], level: int = 3) -> list[str]:
    lines: list[str] = []
    table_rows = {k: v for k, v in data.items() if isinstance(v, dict) and not _is_leaf(v)}
    if table_rows and all(all(_is_leaf(x) for x in v.values()) for v in table_rows.values()):
        columns: list[str] = []
        for row in table_rows.values():
            columns += [c for c in row if c not in columns]
        lines += [f"{'#' * level} {title}", "", "| | " + " | ".join(columns) + " |"]
        lines.append("|---" * (len(columns) + 1) + "|")
        for name, row in table_rows.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
        lines.append("")
        rest = {k: v for k, v in data.items() if k not in table_rows}
    else:
        lines += [f"{'#' * level} {title}", ""]
        rest = dict(data)
    for key, value in rest.items():
        if isinstance(value, dict) and not _is_leaf(value):
            lines += _render_block(key, value, level + 1)
        else:
            lines.append(f"- {key}: {_fmt(value)}")
    if rest:
        lines.append("")
    return lines


def model_card_markdown(manifest: ModelManifest) -> str:
    """A human model card, generated from the manifest alone."""
    m = manifest
    spec = m.preprocessing
    lines = [f"# Model card: {m.name} (version {m.version})", ""]
    if m.synthetic:
        lines += [
            "> **Trained on synthetic phantoms, for demonstration only — not for diagnosis.** "
            "Its outputs say nothing about real patients.",
            "",
        ]
    lines += ["> Research use only — not for diagnosis.", "", "## Intended use", "", m.intended_use]
    lines += [
        "",
        "## Model",
        "",
        f"- Architecture: {m.architecture} ({', '.join(f'{k}={v}' for k, v in m.arch_args.items())})",
        f"- Input: {m.input_size}×{m.input_size}, {m.input_channels} channel(s)",
        f"- Created: {m.created} with RadAssist {m.radassist_version} "
        f"(model file format {m.format_version})",
        f"- Tensor SHA-256: `{m.tensor_sha256 or 'not yet written'}`",
        "",
        "## Labels and operating thresholds",
        "",
        "| label | threshold |",
        "|---|---|",
    ]
    lines += [f"| {label} | {float(m.thresholds[label]):.3f} |" for label in m.labels]
    lines += ["", f"Threshold rule: {m.threshold_rule}", "", "## Metrics", ""]
    if m.metrics:
        for key, value in m.metrics.items():
            if isinstance(value, dict) and not _is_leaf(value):
                lines += _render_block(key, value)
            else:
                lines.append(f"- {key}: {_fmt(value)}")
        lines.append("")
    else:
        lines += ["No metrics recorded: performance is unknown.", ""]
    lines += ["## Training data", ""]
    if m.training_data:
        lines += [f"- {k}: {_fmt(v)}" for k, v in m.training_data.items()]
    else:
        lines.append("Not recorded.")
    low, high = spec.percentiles
    norm = {
        "percentile": f"percentiles {low}–{high} mapped to 0–1",
        "window": f"the file's first VOI window (percentiles {low}–{high} when none)",
        "minmax": "minimum–maximum mapped to 0–1",
    }[spec.normalization]
    lines += [
        "",
        "## Preprocessing",
        "",
        "- DICOM: Modality LUT, then " + norm + "; MONOCHROME1 inverted so that air is dark",
        f"- Longest side resized to {spec.image_size} ({spec.interpolation}, antialiased), "
        f"centred and padded to a square with {spec.pad_value}",
        f"- {spec.channels} channel(s); output scaling: {spec.output_scaling}",
        "",
        "## Limitations",
        "",
        "- Not a medical device; not validated for clinical use.",
        "- Sees one 2-D image at a time at the input size above; small findings may be lost.",
        "- Thresholds and metrics hold only for data like the training data; expect different "
        "results on other scanners, populations and protocols.",
        "- Grad-CAM heatmaps show where the network looked, not proof of a finding.",
    ]
    if m.synthetic:
        lines.append(
            "- Trained and evaluated on synthetic phantoms only: the metrics above are about the "
            "phantoms, not about real radiographs."
        )
    return "\n".join(lines) + "\n"


def manifest_summary(manifest: ModelManifest) -> dict[str, Any]:
    """A short dict for logs and findings: name, version, architecture, labels, hash."""
    return {
        "name": manifest.name,
        "version": manifest.version,
        "architecture": manifest.architecture,
        "labels": list(manifest.labels),
        "tensor_sha256": manifest.tensor_sha256,
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


__all__ = [
    "CONVERT_HINT",
    "FORMAT_VERSION",
    "MANIFEST_KEY",
    "LoadedModel",
    "ModelManifest",
    "default_manifest",
    "load_model_file",
    "manifest_summary",
    "model_card_markdown",
    "read_manifest",
    "save_model_file",
    "tensor_sha256",
]
