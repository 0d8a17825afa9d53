"""Shared test fixtures. No patient data: pydicom's and pydicom-data's public files, or seeded
synthetic images."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.helpers.dicomfiles import image_dataset, save


@pytest.fixture(autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test ever writes to the real user data folder (review state, audit log, PACS store):
    each gets its own, not yet created (as on a first start), outside ``tmp_path`` so that a
    test can list what it wrote there."""
    folder = tmp_path_factory.mktemp("radassist") / "data"
    monkeypatch.setenv("RADASSIST_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """``make_image(name="img.dcm", pixels=None, **image_dataset_kwargs) -> Path``."""

    def make(name: str = "img.dcm", pixels: np.ndarray | None = None, **kwargs: Any) -> Path:
        return save(image_dataset(pixels, **kwargs), tmp_path / name)

    return make
