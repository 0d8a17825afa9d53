"""desktop_app.inference.sources on multi-frame objects (issue 12): a stack's frames are checked
before the plan is made, and a stack over MAX_RUN_IMAGES is run on that many images spread over
it, saying so; findings name the stack position they came from."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from desktop_app.inference import sources
from desktop_app.inference.engine import InferenceEngine
from desktop_app.inference.sources import plan_slices
from desktop_app.infra.errors import PixelDecodeError
from desktop_app.model.applicability import IntendedInput
from desktop_app.model.imageio import image_from_frame
from desktop_app.studies.index import InstanceInfo, index_paths
from desktop_app.studies.series import SliceStack, assemble, instance_stack
from desktop_app.studies.volume import SeriesVolume
from tests.helpers.engine import make_model_file
from tests.studies.framefiles import multiframe

FRAMES = 20


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> SliceStack:
    path = multiframe(tmp_path_factory.mktemp("mf") / "f20.dcm", FRAMES, rows=8, columns=8)
    (_, _, series), = index_paths([path], executor="serial").iter_series()  # fmt: skip
    (found,) = assemble(series).stacks
    return found


class TestSampledPlan:
    def test_a_long_stack_is_spread_and_said_so(self, stack: SliceStack) -> None:
        volume = SeriesVolume(stack, keep=False)
        plan = plan_slices(volume, max_images=4)
        assert [r.index for r in plan.refs] == [0, 6, 13, 19]
        assert [r.frame for r in plan.refs] == [0, 6, 13, 19]
        assert plan.notes == (
            "the model ran on 4 of the 20 images of this stack, spread evenly (about one in 5); "
            "the others were not read",
        )
        expected = image_from_frame(volume.frame(13)).values
        np.testing.assert_array_equal(plan.load(2).values, expected)
        assert not np.array_equal(expected, image_from_frame(volume.frame(12)).values)

    def test_a_short_stack_is_run_whole(self, stack: SliceStack) -> None:
        plan = plan_slices(stack, max_images=FRAMES)
        assert [r.index for r in plan.refs] == list(range(FRAMES))
        assert plan.notes == ()

    def test_the_default_cap(self, stack: SliceStack, monkeypatch: pytest.MonkeyPatch) -> None:
        assert len(plan_slices(stack)) == FRAMES <= sources.MAX_RUN_IMAGES
        monkeypatch.setattr(sources, "MAX_RUN_IMAGES", 3)
        assert [r.index for r in plan_slices(stack).refs] == [0, 10, 19]

    def test_the_cap_must_be_positive(self, stack: SliceStack) -> None:
        with pytest.raises(ValueError, match=r"`max_images` 0 should be at least 1\."):
            plan_slices(stack, max_images=0)


class TestFramesCheckedFirst:
    def test_a_stack_that_claims_more_frames_is_refused_before_decoding(
        self, stack: SliceStack
    ) -> None:
        inst: InstanceInfo = stack.slices[0].instance
        lying = dataclasses.replace(inst, number_of_frames=100_000)
        volume = SeriesVolume(instance_stack(lying), keep=False)
        with pytest.raises(PixelDecodeError, match="enough for 20 of the 100000 frames declared"):
            plan_slices(volume)
        assert volume.errors == {}  # refused from the header: no frame was decoded


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_thread")
class TestEngineOnASampledPlan:
    def test_findings_name_stack_positions(
        self, stack: SliceStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        model = make_model_file(tmp_path / "m.safetensors", intended_input=IntendedInput())
        engine = InferenceEngine(model, device="cpu", backend="torch", batch_size=4, threads=1)
        monkeypatch.setattr(sources, "MAX_RUN_IMAGES", 4)
        result = engine.run(SeriesVolume(stack, keep=False))
        assert [s.index for s in result.slices] == [0, 6, 13, 19]
        assert result.probabilities.shape[0] == 4
        assert {f.slice_index for f in result.findings} <= {0, 6, 13, 19}
        assert any("4 of the 20 images" in w for w in result.warnings)
