"""desktop_app.inference.devices: device choice, failure detection, CPU threads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from desktop_app.inference import devices as D
from desktop_app.infra.errors import ConfigError


@pytest.fixture
def accelerators(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Pretend which accelerators exist (this machine has none)."""
    state = {"cuda": False, "mps": False}
    monkeypatch.setattr(D, "cuda_available", lambda: state["cuda"])
    monkeypatch.setattr(D, "mps_available", lambda: state["mps"])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    return state


class TestChooseDevice:
    @pytest.mark.parametrize(
        ("cuda", "mps", "expected"),
        [(True, True, "cuda:0"), (False, True, "mps"), (False, False, "cpu")],
    )
    def test_auto_prefers_cuda_then_mps_then_cpu(
        self, accelerators: dict[str, bool], cuda: bool, mps: bool, expected: str
    ) -> None:
        accelerators.update(cuda=cuda, mps=mps)
        choice = D.choose_device("auto")
        assert choice.name == expected and choice.warning is None

    @pytest.mark.parametrize(
        ("requested", "expected"), [("cpu", "cpu"), ("CUDA", "cuda:0"), ("cuda:1", "cuda:1")]
    )
    def test_explicit_choice_wins(
        self, accelerators: dict[str, bool], requested: str, expected: str
    ) -> None:
        accelerators.update(cuda=True, mps=True)
        assert D.choose_device(requested).name == expected

    @pytest.mark.parametrize(
        ("requested", "message"),
        [
            ("cuda", "CUDA was requested but no usable CUDA device was found; running on the CPU"),
            ("mps", "MPS was requested but is not available; running on the CPU"),
        ],
    )
    def test_missing_accelerator_falls_back_with_a_warning(
        self, accelerators: dict[str, bool], requested: str, message: str
    ) -> None:
        choice = D.choose_device(requested)
        assert choice.name == "cpu" and choice.warning == message

    def test_missing_cuda_index(self, accelerators: dict[str, bool]) -> None:
        accelerators["cuda"] = True
        choice = D.choose_device("cuda:5")
        assert choice.name == "cpu"
        assert choice.warning == "CUDA device 5 does not exist (2 found); running on the CPU"

    @pytest.mark.parametrize("bad", ["gpu", "tpu", "mps:1", "cuda:x"])
    def test_unknown_device_is_a_usage_error(self, bad: str) -> None:
        with pytest.raises(ConfigError, match=f"unknown device '{bad}'"):
            D.choose_device(bad)

    @pytest.mark.parametrize(
        ("requested", "local_rank", "expected"),
        [
            ("auto", 0, "cuda:0"),
            ("auto", 1, "cuda:1"),
            ("cuda", 3, "cuda:1"),
            ("cuda:0", 1, "cuda:0"),
        ],
    )
    def test_local_rank_picks_the_gpu_unless_one_is_named(
        self, accelerators: dict[str, bool], requested: str, local_rank: int, expected: str
    ) -> None:
        accelerators["cuda"] = True
        assert D.choose_device(requested, local_rank=local_rank).name == expected

    def test_failed_smoke_test_falls_back_in_the_callers_words(
        self, accelerators: dict[str, bool], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        accelerators["cuda"] = True
        monkeypatch.setattr(D, "cuda_smoke_test", lambda index: "CUDA error: no device")
        words = D.FallbackWords("-", "-", "-", "broken ({reason}); training on the CPU")
        choice = D.choose_device("cuda", smoke_test=True, words=words)
        assert choice.name == "cpu"
        assert choice.warning == "broken (CUDA error: no device); training on the CPU"
        assert D.choose_device("cuda").name == "cuda:0"  # no smoke test unless asked


class TestFailures:
    @pytest.mark.parametrize(
        ("err", "expected"),
        [
            (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), True),
            (RuntimeError("CUDA error: device-side assert triggered"), True),
            (RuntimeError("Found no NVIDIA driver on your system."), True),
            (RuntimeError("cuDNN error: CUDNN_STATUS_NOT_INITIALIZED"), True),
            (RuntimeError("MPS backend out of memory"), True),
            (RuntimeError("mat1 and mat2 shapes cannot be multiplied (1x3 and 4x5)"), False),
            (ValueError("cuda"), False),
            (KeyError("x"), False),
        ],
    )
    def test_is_device_failure(self, err: BaseException, expected: bool) -> None:
        assert D.is_device_failure(err) is expected

    @pytest.mark.parametrize(
        ("err", "summary"),
        [
            (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried..."), "out of memory"),
            (RuntimeError("CUDA error: no kernel image\nmore text"), "CUDA error: no kernel image"),
            (RuntimeError("x" * 300), "x" * 157 + "..."),
        ],
    )
    def test_failure_summary(self, err: BaseException, summary: str) -> None:
        assert D.failure_summary(err) == summary


class TestThreads:
    @pytest.fixture
    def restore_threads(self) -> Iterator[None]:
        before = torch.get_num_threads()
        yield
        torch.set_num_threads(before)

    @pytest.mark.usefixtures("restore_threads")
    def test_configure_cpu_threads_is_idempotent(self) -> None:
        assert D.configure_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        assert D.configure_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        assert D.configure_cpu_threads() == D.physical_cores() == torch.get_num_threads()
