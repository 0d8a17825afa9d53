"""Fixtures for the DICOM-reading tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.dicomfiles import image_dataset, save


@pytest.fixture
def make_image(tmp_path: Path) -> Callable[..., Path]:
    """``make_image(name="img.dcm", pixels=None, **image_dataset_kwargs) -> Path``."""

    def make(name: str = "img.dcm", pixels: np.ndarray | None = None, **kwargs: Any) -> Path:
        return save(image_dataset(pixels, **kwargs), tmp_path / name)

    return make
