"""Shared test fixtures. No patient data: pydicom's and pydicom-data's public files, or seeded
synthetic images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session", autouse=True)
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ONNX graph cache (``inference.onnxcache``) of the whole session, never the user's:
    a test model's graphs are made once per session (the same seeded weights, the same hash);
    subprocesses inherit it. Tests of the cache itself use their own folder."""
    folder = tmp_path_factory.mktemp("graph-cache")
    os.environ["RADASSIST_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test ever writes to the real user data folder (review state, audit log, PACS store):
    each gets its own, not yet created (as on a first start), outside ``tmp_path`` so that a
    test can list what it wrote there."""
    folder = tmp_path_factory.mktemp("radassist") / "data"
    monkeypatch.setenv("RADASSIST_DATA_DIR", str(folder))
    return folder
