"""The safetensors container of a model file: its header, parsed with limits, and the tensor hash.

Layout (safetensors format): ``u64 N | N bytes of JSON header | tensor data``. The header's
``__metadata__`` maps ``"radassist_manifest"`` to the manifest as a JSON string. Pickles and zip
archives (``torch.save`` files) are refused from their first bytes, before anything is parsed.

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
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from desktop_app.infra.errors import ModelFileError

if TYPE_CHECKING:
    import torch

MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_TENSORS = 100_000
HASH_PREFIX = b"radassist-tensors-v1\n"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle")
CONVERT_HINT = (
    "convert a state dict with: radassist-train convert IN.pth --arch NAME --labels a,b,c "
    "--out model.safetensors"
)

# safetensors dtype name -> bytes per element (the header check needs no torch)
DTYPE_SIZES: dict[str, int] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "BOOL": 1,
}  # fmt: skip


def torch_dtype_names() -> dict[Any, str]:
    """torch dtype -> safetensors dtype name (imports torch: the writing and training side)."""
    import torch

    return {
        torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
        torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
        torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
    }  # fmt: skip


# --------------------------------------------------------------------------- hashing


def hash_entries(entries: Iterable[tuple[str, str, tuple[int, ...], memoryview | bytes]]) -> str:
    h = hashlib.sha256(HASH_PREFIX)
    for name, dtype, shape, raw in sorted(entries, key=lambda e: e[0]):
        line = f"{name}\0{dtype}\0{','.join(str(int(s)) for s in shape)}\0{len(raw)}\n"
        h.update(line.encode("utf-8"))
        h.update(raw)
    return h.hexdigest()


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    import torch

    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().data.cast("B")


def tensor_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The tensor hash of a state dict (see the module docstring for the definition)."""
    names = torch_dtype_names()
    entries = []
    for name, t in state_dict.items():
        if t.dtype not in names:
            raise ModelFileError(
                f"tensor {name} has dtype {t.dtype}, which a model file can't hold"
            )
        entries.append((name, names[t.dtype], tuple(t.shape), _tensor_bytes(t)))
    return hash_entries(entries)


# --------------------------------------------------------------------------- header parsing


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Header:
    length: int
    metadata: dict[str, str]
    tensors: dict[str, TensorEntry]
    data_size: int

    @property
    def data_start(self) -> int:
        return 8 + self.length


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ModelFileError(f"header names {key!r} twice")
        out[key] = value
    return out


def header_length(path: Path, head: bytes, file_size: int) -> int:
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


def parse_header(path: Path, header_bytes: bytes, length: int, file_size: int) -> Header:
    try:
        raw = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=no_duplicate_keys)
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
    tensors: dict[str, TensorEntry] = {}
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
    return Header(length, metadata, tensors, data_size)


def _tensor_entry(path: Path, name: str, entry: Any) -> TensorEntry:
    if not name or any(ord(c) < 32 for c in name):
        raise ModelFileError(f"header has an invalid tensor name {name!r}", path)
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise ModelFileError(f"header entry for tensor {name} is malformed", path)
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPE_SIZES:
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
    nbytes = math.prod(shape) * DTYPE_SIZES[dtype]
    if offsets[1] - offsets[0] != nbytes:
        raise ModelFileError(
            f"tensor {name} {tuple(shape)} {dtype} needs {nbytes} bytes, the header gives "
            f"{offsets[1] - offsets[0]}",
            path,
        )
    return TensorEntry(dtype, tuple(shape), offsets[0], offsets[1])


def refuse_pickle_name(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelFileError(
            f"is a PyTorch {path.suffix} file (a pickle), not a .safetensors model file; "
            "RadAssist never unpickles because a pickle can run code",
            path,
            CONVERT_HINT,
        )


def key_mismatch(expected: Iterable[str], found: Iterable[str]) -> str | None:
    """How two sets of tensor names differ, for an error message (``"missing a.weight; 1
    missing, 0 unexpected"``, first names in sorted order); None when they are the same."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if not missing and not unexpected:
        return None
    first = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
    return f"{first}; {len(missing)} missing, {len(unexpected)} unexpected"
