"""Shared test fixtures. No patient data: pydicom's and pydicom-data's public files, or seeded
synthetic images."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _private_user_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """No test ever writes to the real user data folder (review state, audit log, PACS store)."""
    data = tmp_path_factory.mktemp("radassist-data")
    monkeypatch.setenv("RADASSIST_DATA_DIR", str(data))
    yield data
