"""Series thumbnails: area-averaged shrinking that keeps the aspect ratio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desktop_app.studies.index import index_paths
from desktop_app.studies.series import assemble
from desktop_app.studies.thumbnails import shrink, stack_thumbnail

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "sample"


class TestShrink:
    @pytest.mark.parametrize(
        ("shape", "size", "out"),
        [
            ((512, 512), 64, (64, 64)),
            ((100, 30, 3), 64, (64, 19, 3)),
            ((40, 40), 64, (40, 40)),  # never enlarged
            ((1, 1000), 10, (1, 10)),
        ],
    )
    def test_shapes(self, shape, size, out) -> None:
        assert shrink(np.zeros(shape, dtype=np.uint8), size).shape == out

    def test_area_average_keeps_thin_lines(self) -> None:
        img = np.zeros((64, 64), dtype=np.uint8)
        img[:, ::4] = 255  # one bright column in four
        small = shrink(img, 16)
        assert np.all(small == 64)  # nearest sampling would give 0 or 255

    def test_bad_input(self) -> None:
        with pytest.raises(TypeError, match="shrink needs uint8, got float32"):
            shrink(np.zeros((4, 4), dtype=np.float32))
        with pytest.raises(ValueError, match="`size` 0 should be at least 1"):
            shrink(np.zeros((4, 4), dtype=np.uint8), 0)


def test_stack_thumbnail_of_the_sample_ct() -> None:
    index = index_paths([SAMPLE / "ct_phantom"])
    ((_, _, series),) = list(index.iter_series())
    thumb = stack_thumbnail(assemble(series).stacks[0], 48)
    assert thumb.shape == (48, 48) and thumb.dtype == np.uint8
    assert thumb.std() > 10  # an image, not a flat square
