"""desktop_app.inference.firststart: timing within a budget, the model key, the per-machine cache, the badge.

No torch here: the engine is a fake with the same attributes, the clock a counter."""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from desktop_app.inference import firststart
from desktop_app.inference.firststart import SpeedEstimate
from desktop_app.infra.cpus import available_cpus
from desktop_app.infra.errors import ConfigError, ModelFileError


def write_model_header(path: Path, metadata: dict[str, str], payload: bytes = b"\0" * 16) -> Path:
    """A file laid out like a safetensors model file: 8-byte length, JSON header, data."""
    header = json.dumps({"__metadata__": metadata}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + payload)
    return path


class FakeClock:
    """Every forward pass takes ``step`` seconds of this clock."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step
        self.calls = 0

    def __call__(self) -> float:
        return self.now

    def forward(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.now += self.step
        return np.zeros((batch.shape[0], 3), np.float32)


@dataclass
class FakeEngine:
    model_path: Path
    device: str = "cpu"
    backend: str = "onnxruntime"
    threads: int = 2
    manifest: Any = field(
        default_factory=lambda: SimpleNamespace(
            preprocessing=SimpleNamespace(channels=1, image_size=32)
        )
    )
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    fail_over_after: int | None = None  # passes after which the "GPU" fails over to the CPU

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shapes.append(x.shape)
        if self.fail_over_after is not None and len(self.shapes) > self.fail_over_after:
            self.device = "cpu"
        return np.zeros((x.shape[0], 3), np.float32)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_model_header(tmp_path / "m.safetensors", {"radassist_manifest": '{"a": 1}'})


def estimate(model_key: str = "k" * 64, **overrides: Any) -> SpeedEstimate:
    values: dict[str, Any] = {
        "device": "cpu",
        "backend": "onnxruntime",
        "ms_per_image": 14.2,
        "passes": 20,
        "seconds": 0.4,
        "model_key": model_key,
        "cpu_model": firststart.cpu_model(),
        "cpu_count": available_cpus(),
        "threads": 2,
        "measured_at": "2026-01-01T00:00:00+00:00",
    }
    values.update(overrides)
    return SpeedEstimate(**values)


class TestTimeForward:
    def test_stops_when_the_budget_is_spent(self) -> None:
        clock = FakeClock(0.1)
        times, spent = firststart.time_forward(
            clock.forward, np.zeros((1, 1, 4, 4), np.float32), budget_s=0.35, clock=clock
        )
        # warm-up (0.1) + three passes reach 0.4 >= 0.35
        assert times == pytest.approx([0.1, 0.1, 0.1])
        assert spent == pytest.approx(0.4)
        assert clock.calls == 4

    def test_stops_at_max_passes(self) -> None:
        clock = FakeClock(0.001)
        times, _ = firststart.time_forward(
            clock.forward,
            np.zeros((1, 1, 4, 4), np.float32),
            budget_s=10,
            max_passes=5,
            clock=clock,
        )
        assert len(times) == 5

    def test_times_one_pass_even_when_the_warm_up_spent_the_budget(self) -> None:
        clock = FakeClock(3.0)
        times, spent = firststart.time_forward(
            clock.forward, np.zeros((1, 1, 4, 4), np.float32), budget_s=1.5, clock=clock
        )
        assert times == [3.0]
        assert spent == 6.0

    @pytest.mark.parametrize("budget", [0.0, -1.0, float("nan"), float("inf")])
    def test_refuses_a_bad_budget(self, budget: float) -> None:
        with pytest.raises(ConfigError, match=r"time budget .* s must be a positive number"):
            firststart.time_forward(lambda x: x, np.zeros(1), budget_s=budget)


class TestMeasure:
    def test_batch_one_at_the_input_size_and_the_median(self) -> None:
        seen: list[tuple[tuple[int, ...], np.dtype[Any]]] = []
        steps = iter([0.5, 0.010, 0.030, 0.020, 0.5])  # warm-up, then three passes

        now = [0.0]

        def forward(x: np.ndarray) -> None:
            seen.append((x.shape, x.dtype))
            now[0] += next(steps)

        result = firststart.measure(
            forward,
            (3, 24, 24),
            device="cpu",
            backend="torch",
            key="abc",
            threads=1,
            budget_s=0.55,
            clock=lambda: now[0],
        )
        assert {shape for shape, _ in seen} == {(1, 3, 24, 24)}
        assert {dtype for _, dtype in seen} == {np.dtype(np.float32)}
        assert result.passes == 3
        assert result.ms_per_image == pytest.approx(20.0)
        assert (result.device, result.backend, result.model_key, result.threads) == (
            "cpu",
            "torch",
            "abc",
            1,
        )
        assert not result.from_cache


class TestModelKey:
    def test_same_header_same_key_and_any_header_change_changes_it(self, tmp_path: Path) -> None:
        a = write_model_header(tmp_path / "a.safetensors", {"m": "1"})
        b = write_model_header(tmp_path / "b.safetensors", {"m": "1"})
        c = write_model_header(tmp_path / "c.safetensors", {"m": "2"})
        assert firststart.model_key(a) == firststart.model_key(b)
        assert firststart.model_key(a) != firststart.model_key(c)
        assert len(firststart.model_key(a)) == 64

    def test_truncated_header(self, tmp_path: Path) -> None:
        path = tmp_path / "t.safetensors"
        path.write_bytes(struct.pack("<Q", 100) + b"{}")
        with pytest.raises(ModelFileError, match="truncated"):
            firststart.model_key(path)

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"abc", "too short to be a model file"),
            (
                struct.pack("<Q", 2**40) + b"{}",
                r"not a safetensors model file \(bad header length\)",
            ),
        ],
    )
    def test_not_a_model_file(self, tmp_path: Path, data: bytes, message: str) -> None:
        path = tmp_path / "x.safetensors"
        path.write_bytes(data)
        with pytest.raises(ModelFileError, match=message):
            firststart.model_key(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ModelFileError, match="can't be read"):
            firststart.model_key(tmp_path / "nope.safetensors")


class TestCache:
    def test_saved_estimate_is_found_for_the_same_model_device_and_threads(
        self, model: Path
    ) -> None:
        saved = estimate(firststart.model_key(model))
        path = firststart.save_estimate(saved)
        assert path == firststart.cache_path()
        found = firststart.cached_estimate(model, "cpu", threads=2)
        assert found is not None and found.from_cache
        assert found.ms_per_image == saved.ms_per_image
        assert firststart.cached_estimate(model, "cpu", threads=1) is None
        assert firststart.cached_estimate(model, "cuda:0") is None

    def test_without_threads_the_newest_measurement_wins(self, model: Path) -> None:
        key = firststart.model_key(model)
        firststart.save_estimate(estimate(key, threads=2, ms_per_image=10.0))
        firststart.save_estimate(estimate(key, threads=1, ms_per_image=19.0))
        found = firststart.cached_estimate(model, "cpu")
        assert found is not None and found.ms_per_image == 19.0

    def test_another_cpu_or_model_misses(self, model: Path, tmp_path: Path) -> None:
        firststart.save_estimate(estimate(firststart.model_key(model), cpu_model="Other CPU"))
        assert firststart.cached_estimate(model, "cpu") is None
        other = write_model_header(tmp_path / "other.safetensors", {"m": "other"})
        firststart.save_estimate(estimate(firststart.model_key(model)))
        assert firststart.cached_estimate(other, "cpu") is None

    @pytest.mark.parametrize(
        "content", ["not json", "[]", '{"format": 99, "entries": {}}', '{"format": 1}']
    )
    def test_a_damaged_cache_is_ignored_and_replaced(self, model: Path, content: str) -> None:
        firststart.cache_path().write_text(content)
        assert firststart.cached_estimate(model, "cpu") is None
        firststart.save_estimate(estimate(firststart.model_key(model)))
        assert firststart.cached_estimate(model, "cpu") is not None

    def test_a_bad_entry_is_skipped(self, model: Path) -> None:
        key = firststart.model_key(model)
        good = estimate(key)
        firststart.save_estimate(good)
        data = json.loads(firststart.cache_path().read_text())
        (entry_key,) = data["entries"]
        data["entries"][entry_key]["ms_per_image"] = -1
        firststart.cache_path().write_text(json.dumps(data))
        assert firststart.cached_estimate(model, "cpu", threads=2) is None

    def test_old_entries_are_dropped(self, model: Path) -> None:
        for i in range(firststart.MAX_CACHE_ENTRIES + 5):
            firststart.save_estimate(estimate(f"model-{i}"))
        entries = json.loads(firststart.cache_path().read_text())["entries"]
        assert len(entries) == firststart.MAX_CACHE_ENTRIES
        kept = {e["model_key"] for e in entries.values()}
        assert "model-0" not in kept and f"model-{firststart.MAX_CACHE_ENTRIES + 4}" in kept

    def test_an_unwritable_data_folder_is_logged_not_raised(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("")
        with caplog.at_level(logging.WARNING, logger="desktop_app.inference.firststart"):
            assert firststart.save_estimate(estimate(), path=blocker / "cache.json") is None
        assert "could not save the first-start estimate" in caplog.text


class TestEstimateForEngine:
    def test_measures_once_then_reads_the_cache(self, model: Path) -> None:
        engine = FakeEngine(model)
        first = firststart.estimate_for_engine(engine, budget_s=0.05)
        assert not first.from_cache and first.passes >= 1
        assert set(engine.shapes) == {(1, 1, 32, 32)}
        calls = len(engine.shapes)
        again = firststart.estimate_for_engine(engine, budget_s=0.05)
        assert again.from_cache and len(engine.shapes) == calls
        assert again.ms_per_image == pytest.approx(first.ms_per_image)
        refreshed = firststart.estimate_for_engine(engine, budget_s=0.05, refresh=True)
        assert not refreshed.from_cache and len(engine.shapes) > calls

    def test_a_fallback_while_measuring_is_reported_and_not_cached(self, model: Path) -> None:
        engine = FakeEngine(model, device="cuda:0", backend="torch-cuda", fail_over_after=1)
        result = firststart.estimate_for_engine(engine, budget_s=0.05)
        assert result.device == "cpu"
        assert firststart.cached_estimate(model, "cuda:0") is None
        assert firststart.cached_estimate(model, "cpu") is None

    def test_try_logs_a_failure_and_returns_none(
        self, model: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        class Broken(FakeEngine):
            def forward(self, x: np.ndarray) -> np.ndarray:
                raise RuntimeError("kaput")

        with caplog.at_level(logging.WARNING, logger="desktop_app.inference.firststart"):
            assert firststart.try_estimate_for_engine(Broken(model)) is None
        assert "could not measure the time per image: kaput" in caplog.text

    def test_an_engine_without_a_forward_pass_is_refused(self, model: Path) -> None:
        engine = SimpleNamespace(
            device="cpu", backend="x", model_path=model, threads=1, manifest=None
        )
        with pytest.raises(ConfigError, match="SimpleNamespace has no forward pass to time"):
            firststart.estimate_for_engine(engine)  # type: ignore[arg-type]


class TestBadgeTooltip:
    def test_without_a_measurement_the_device_alone(self, model: Path) -> None:
        assert firststart.badge_tooltip("CPU", model) == "Inference runs on CPU"
        assert firststart.badge_tooltip("Device: auto", model) == "Inference runs on Device: auto"

    def test_with_a_measurement_the_time_per_image(self, model: Path) -> None:
        firststart.save_estimate(estimate(firststart.model_key(model), ms_per_image=14.2))
        tip = firststart.badge_tooltip("CPU", model)
        assert tip.startswith("Inference runs on CPU · ~14 ms/image (onnxruntime, 2 CPU threads")

    def test_a_missing_model_gives_the_plain_text(self, tmp_path: Path) -> None:
        assert firststart.badge_tooltip("CPU", tmp_path / "none.safetensors") == (
            "Inference runs on CPU"
        )


class TestThisComputer:
    def test_cpu_model_from_cpuinfo(self, tmp_path: Path) -> None:
        info = tmp_path / "cpuinfo"
        info.write_text("processor\t: 0\nmodel name\t: Example  CPU @ 2.0GHz\n\n")
        assert firststart.cpu_model(info) == "Example CPU @ 2.0GHz"

    def test_cpu_model_without_cpuinfo(self, tmp_path: Path) -> None:
        assert firststart.cpu_model(tmp_path / "none")  # platform's answer, never empty


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0.84, "0.8 ms"),
        (9.94, "9.9 ms"),
        (9.96, "10 ms"),
        (14.2, "14 ms"),
        (999.7, "1.0 s"),
        (1234.0, "1.2 s"),
    ],
)
def test_format_ms(ms: float, text: str) -> None:
    assert firststart.format_ms(ms) == text


def test_describe_and_badge_text() -> None:
    e = estimate(ms_per_image=47.1, passes=20, threads=1)
    assert e.badge_text() == "CPU · ~47 ms/image"
    assert e.describe() == (
        "~47 ms per image on CPU (onnxruntime, 1 CPU thread, batch 1, median of 20 passes; "
        "measured now)"
    )
