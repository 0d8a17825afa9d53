"""Where a model's ONNX graphs come from, without importing PyTorch when they already exist: the
model file itself (``model.modeldata``: stored graphs), else the graph cache on disk, else made
once with PyTorch (``inference.graphs``) and stored in the cache.

The cache is a folder (``RADASSIST_CACHE_DIR``, else the user's cache folder: ``~/.cache/
radassist/graphs`` on Linux) of ``<model>-<kind>-g<format>-opset<n>-ort<version>.onnx`` files,
keyed by the model's graph identity (``modeldata.graph_identity``: the tensor sha256, the
architecture and its arguments, the input), the graph kind and format, the ONNX opset and the
ONNX Runtime version; each has a ``.json`` sidecar with the graph's sha256, the weights it was made
for and the PyTorch version that made it. A graph whose bytes do not match its sidecar, or
whose sidecar is unreadable, is refused with a log line and made again; one made by another
PyTorch version (when PyTorch is installed) is stale and made again. Files are written
atomically (graph, then sidecar) and at most ``MAX_ENTRIES`` graphs are kept (the least
recently used go). The cache holds no patient data: only the network's graphs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from desktop_app.inference.ortrun import (  # noqa: F401  (the errors are public here too)
    ONNX_OPSET,
    GraphUnavailable,
    UnsupportedLayers,
)
from desktop_app.infra.atomicio import atomic_write_bytes, atomic_write_json
from desktop_app.model.modeldata import ModelData

log = logging.getLogger(__name__)

GRAPH_FORMAT = 1
"""Bumped when a graph's inputs, outputs or meaning change: older cached graphs are not used."""
MAX_ENTRIES = 24
NO_TORCH_HINT = (
    "on a machine with the training tools, store the graphs in the model file: "
    "radassist-train export-onnx --model FILE --embed"
)


@dataclass(frozen=True)
class Graph:
    """A verified graph and where it came from: "model file", "cache" or "made"."""

    kind: str
    data: bytes
    source: str


def cache_dir() -> Path:
    env = os.environ.get("RADASSIST_CACHE_DIR")
    if env:
        return Path(env) / "graphs"
    import platformdirs

    return Path(platformdirs.user_cache_dir("radassist", appauthor=False)) / "graphs"


def version_of(distribution: str) -> str | None:
    """An installed distribution's version, from its metadata (imports nothing)."""
    try:
        return importlib.metadata.version(distribution).split("+")[0]
    except importlib.metadata.PackageNotFoundError:
        return None


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def _key(model_sha: str, kind: str) -> str:
    ort = version_of("onnxruntime") or "unknown"
    return f"{model_sha[:32]}-{kind}-g{GRAPH_FORMAT}-opset{ONNX_OPSET}-ort{ort}"


def entry_paths(model_sha: str, kind: str, folder: Path | None = None) -> tuple[Path, Path]:
    """(graph, sidecar) paths of a cache entry."""
    base = (folder or cache_dir()) / _key(model_sha, kind)
    return base.with_suffix(".onnx"), base.with_suffix(".json")


def _current_exporter() -> str | None:
    version = version_of("torch")
    return None if version is None else f"torch {version}"


def _drop(paths: tuple[Path, Path]) -> None:
    for p in paths:
        try:
            p.unlink(missing_ok=True)
        except OSError:
            log.debug("could not remove %s", p, exc_info=True)


def load_cached(model_sha: str, kind: str, folder: Path | None = None) -> bytes | None:
    """The cached graph, or None when there is none, it is stale, or it is damaged (refused:
    removed, with a log line)."""
    paths = entry_paths(model_sha, kind, folder)
    graph_path, meta_path = paths
    if not graph_path.exists() and not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        data = graph_path.read_bytes()
        sha, made_for, exporter = str(meta["sha256"]), str(meta["made_for"]), str(meta["exporter"])
    except (OSError, ValueError, KeyError, TypeError):
        log.warning(
            "graph cache entry %s is unreadable; refused, it will be made again", graph_path.name
        )
        _drop(paths)
        return None
    if hashlib.sha256(data).hexdigest() != sha or made_for != model_sha:
        log.warning(
            "graph cache entry %s is damaged; refused, it will be made again", graph_path.name
        )
        _drop(paths)
        return None
    current = _current_exporter()
    if current is not None and exporter != current:
        log.info(
            "graph cache entry %s was made by %s; stale, made again", graph_path.name, exporter
        )
        return None
    with contextlib.suppress(OSError):
        os.utime(graph_path)  # least recently used goes first
    return data


def store(
    model_sha: str, kind: str, data: bytes, exporter: str, folder: Path | None = None
) -> Path | None:
    """Write a cache entry atomically (graph, then sidecar); None when the folder can't be
    written (the graph is still used, just not kept)."""
    graph_path, meta_path = entry_paths(model_sha, kind, folder)
    try:
        graph_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(graph_path, data, durable=False)  # a cache: damaged = made again
        atomic_write_json(
            meta_path,
            {
                "kind": kind,
                "sha256": hashlib.sha256(data).hexdigest(),
                "made_for": model_sha,
                "exporter": exporter,
                "format": GRAPH_FORMAT,
                "opset": ONNX_OPSET,
            },
        )
    except OSError as err:
        log.warning(
            "the graph cache %s can't be written (%s); the graph is not kept",
            graph_path.parent,
            err.strerror or err,
        )
        return None
    _trim(graph_path.parent)
    return graph_path


def _trim(folder: Path, keep: int = MAX_ENTRIES) -> None:
    try:
        graphs = sorted(folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for old in graphs[keep:]:
        _drop((old, old.with_suffix(".json")))


def obtain(model: ModelData, kind: str, *, make: bool = True) -> Graph:
    """``kind``'s graph for ``model``: stored in the model file, cached, or made (with PyTorch,
    then cached). GraphUnavailable (one line, with what to do) when none can be had; the
    heatmap graph's Unsupported (a layer it can't write out) passes through."""
    stored = model.graphs.get(kind)
    if stored is not None:
        return Graph(kind, stored, "model file")
    cached = load_cached(model.graph_id, kind)
    if cached is not None:
        return Graph(kind, cached, "cache")
    if not make or not torch_installed():
        raise GraphUnavailable(
            f"the model file holds no {kind} graph, and this installation has no PyTorch to "
            "make one",
            model.path,
            NO_TORCH_HINT,
        )
    from desktop_app.inference.graphs import build_for_file, exporter_version

    data = build_for_file(kind, model.path)
    store(model.graph_id, kind, data, exporter_version())
    return Graph(kind, data, "made")
