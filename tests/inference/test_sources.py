"""desktop_app.inference.sources: what a run iterates over, planned before anything is decoded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from desktop_app.inference.findings import ResultSlice
from desktop_app.inference.sources import plan_slices
from desktop_app.infra.errors import DicomReadError, InferenceError
from desktop_app.model.imageio import ImageForModel
from desktop_app.model.paths import resources_dir

CHEST = resources_dir() / "sample" / "chest_xr" / "chest_pa.dcm"


class TestPlanSlices:
    def test_images_are_planned_in_order(self) -> None:
        images = [np.zeros((3, 5), np.float32), ImageForModel(np.ones((4, 6), np.float32))]
        plan = plan_slices(images)
        assert len(plan) == 2
        assert plan.refs == [ResultSlice(0, "", 0, 3, 5), ResultSlice(1, "", 0, 4, 6)]
        assert plan.paths == ["<image 0>", "<image 1>"]
        assert plan.load(1).values.shape == (4, 6)
        assert (plan.series_uid, plan.part, plan.parts) == ("", 1, 1)

    def test_a_dicom_file_names_its_series_and_study(self) -> None:
        plan = plan_slices(CHEST)
        assert len(plan) == 1 and plan.refs[0].sop_instance_uid
        assert plan.series_uid and plan.study_uid
        assert plan.paths == [str(CHEST)]

    @pytest.mark.parametrize(("source", "error", "message"), [
        ([], InferenceError, "no images to run the model on"),
        ([np.zeros((2, 2, 2))], InferenceError, r"image 0 must be 2-D grey values, got \(2, 2, 2\)"),
        (42, TypeError, "can't run the model on a int: pass a SeriesVolume"),
    ])  # fmt: skip
    def test_refuses(self, source: Any, error: type[Exception], message: str) -> None:
        with pytest.raises(error, match=message):
            plan_slices(source)

    def test_a_file_that_is_not_dicom_after_all(self, tmp_path: Path) -> None:
        path = tmp_path / "not.dcm"
        path.write_bytes(b"\0" * 128 + b"DICM")
        with pytest.raises(DicomReadError):
            plan_slices(path)
