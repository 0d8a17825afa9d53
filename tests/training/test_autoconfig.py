"""training.autoconfig: each choice from a fingerprint, explicit values winning, the LR range
test, the static recipe, and fit recording (and on resume reusing) what it chose."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from desktop_app.model.modelfile import read_manifest
from tests.helpers.tinydata import demo_dataset, tiny_config
from training import autoconfig as A
from training.config import TrainConfig, config_from_dict, load_config_file, write_config
from training.pipeline import run_fit

CPU = torch.device("cpu")
GIB = 2**30


def fingerprint(
    *, train: int = 400, images: int = 500, longer: float = 2048.0,
    boxes: dict[str, float] | None = None, prevalence: dict[str, float] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A hand-made fingerprint: ``boxes`` gives each label's 5th-percentile box fraction."""
    per_label = {
        label: {"count": 50, "min_side_fraction": {"min": p5 / 2, "p5": p5, "median": p5 * 3}}
        for label, p5 in (boxes or {}).items()
    }
    return {
        "images": images,
        "splits": {"train": {"images": train}},
        "image": {"longer_side": {"median": longer}},
        "prevalence": {"train": prevalence or {"a": 0.5}},
        "boxes": {"per_label": per_label},
    }


class TestImageSize:
    @pytest.mark.parametrize(
        ("boxes", "longer", "size"),
        [
            (None, 2048.0, A.DEFAULT_IMAGE_SIZE),  # no boxes: the default
            ({"nodule": 0.05}, 2048.0, 320),  # 16 / 0.05 = 320
            ({"nodule": 0.05, "mass": 0.2}, 2048.0, 320),  # the smallest label decides
            ({"nodule": 0.06}, 2048.0, 288),  # 267 rounded up to a multiple of 32
            ({"mass": 0.3}, 2048.0, 224),  # not below the native size
            ({"nodule": 0.005}, 2048.0, 384),  # capped: 3x the native size's compute
            ({"nodule": 0.02}, 300.0, 320),  # capped at the median image side (rounded up)
            (None, 96.0, 224),  # small images: the native size, no less
        ],
    )
    def test_smallest_findings_keep_their_pixels(
        self, boxes: dict[str, float] | None, longer: float, size: int
    ) -> None:
        chosen, reason = A.choose_image_size(
            TrainConfig(), fingerprint(boxes=boxes, longer=longer), CPU, 2
        )
        assert chosen == size
        if boxes:
            assert f"{chosen} px keeps the smallest" in reason

    def test_max_slowdown_caps_the_size(self) -> None:
        tiny = fingerprint(boxes={"nodule": 0.005})
        for slowdown, size in ((1.0, 224), (3.0, 384), (100.0, A.MAX_IMAGE_SIZE)):
            config = config_from_dict({"recipe": {"max_slowdown": slowdown}})
            chosen, reason = A.choose_image_size(config, tiny, CPU, 2)
            assert chosen == size
            if size < A.MAX_IMAGE_SIZE:
                assert "max_slowdown" in reason

    def test_min_finding_pixels_is_a_config_key(self) -> None:
        config = config_from_dict({"recipe": {"min_finding_pixels": 24, "max_slowdown": 10.0}})
        size, _ = A.choose_image_size(config, fingerprint(boxes={"n": 0.05}), CPU, 2)
        assert size == 480

    def test_a_time_budget_shrinks_the_size_but_not_below_native(self) -> None:
        fp = fingerprint(boxes={"nodule": 0.03}, train=2000)
        free, _ = A.choose_image_size(
            config_from_dict({"recipe": {"max_slowdown": 10.0}}), fp, CPU, 2
        )
        budget = config_from_dict({"recipe": {"time_budget_minutes": 60.0, "max_slowdown": 10.0}})
        size, reason = A.choose_image_size(budget, fp, CPU, 2)
        assert free == 544 - 32 and 224 <= size < free and "60-minute budget" in reason
        est = A.seconds_per_image("efficientnet-lite0", size, CPU, 2) * 2000 * 12
        assert est <= 3600
        tiny = config_from_dict({"recipe": {"time_budget_minutes": 0.01}})
        size, reason = A.choose_image_size(tiny, fp, CPU, 2)
        assert size == 224 and "lower optim.epochs" in reason


class TestBatchSize:
    def test_the_target_when_memory_and_data_allow(self) -> None:
        batch, reason = A.choose_batch_size(TrainConfig(), 256, 400, 500, CPU, free_bytes=64 * GIB)
        assert batch == A.TARGET_BATCH_SIZE and reason.startswith("the target 16")

    def test_at_most_a_quarter_of_the_train_split(self) -> None:
        batch, reason = A.choose_batch_size(TrainConfig(), 256, 40, 50, CPU, free_bytes=64 * GIB)
        assert batch == 10 and "a quarter of the 40 train images" in reason
        assert A.choose_batch_size(TrainConfig(), 256, 8, 10, CPU, free_bytes=64 * GIB)[0] == 4

    def test_memory_limits_it(self) -> None:
        # 1.5 GiB free: half of it less the overhead and the decoded cache of 500 images
        batch, reason = A.choose_batch_size(
            TrainConfig(), 512, 4000, 500, CPU, free_bytes=int(1.5 * GIB)
        )
        per = A.ACTIVATION_MB_224["efficientnet-lite0"] * (512 / 224) ** 2 * 2**20
        usable = 0.75 * GIB - A.MODEL_OVERHEAD_MB * 2**20 - 500 * 512 * 512 * 4
        assert batch == max(4, int(usable // per)) < 16 and "half the free RAM" in reason

    def test_amp_on_cuda_fits_more(self) -> None:
        free = 8 * GIB
        config = config_from_dict({"optim": {"amp": True}})
        cpu_like, _ = A.choose_batch_size(
            config, 512, 4000, 500, torch.device("meta"), free_bytes=free
        )
        cuda, reason = A.choose_batch_size(
            config, 512, 4000, 500, torch.device("cuda"), free_bytes=free
        )
        assert cuda >= cpu_like and "with AMP" in reason and "GPU" in reason


class TestClassWeightsAndStrength:
    @pytest.mark.parametrize(
        ("prevalence", "expected"),
        [({"a": 0.5}, "none"), ({"a": 0.5, "b": 0.05}, "prevalence"), ({"a": 0.9}, "prevalence"),
         ({"a": 0.2, "b": 0.8}, "none"), ({"a": None}, "none")],
    )  # fmt: skip
    def test_prevalence_outside_the_band(self, prevalence: dict, expected: str) -> None:
        assert A.choose_class_weights(prevalence)[0] == expected

    def test_strength_fewer_images_stronger_small_findings_weaker(self) -> None:
        assert A.augment_strength(1000, None) == pytest.approx(0.5)
        assert A.augment_strength(100, None) > A.augment_strength(1000, None)
        assert A.augment_strength(10_000, None) < A.augment_strength(1000, None)
        assert A.augment_strength(1000, 0.02) < A.augment_strength(1000, 0.2)
        assert A.augment_strength(1000, 0.2) == A.augment_strength(1000, None)
        assert A.MIN_STRENGTH <= A.augment_strength(10**7, 0.001) <= A.STRENGTH_RANGE[1]


class TestPlan:
    def test_explicit_values_are_never_changed(self) -> None:
        config = config_from_dict(
            {"preprocessing": {"image_size": 64}, "optim": {"batch_size": 3, "lr": 0.01,
             "class_weights": "none"}, "augment": {"strength": 1.5}}
        )  # fmt: skip
        fp = fingerprint(boxes={"n": 0.01}, prevalence={"a": 0.01})
        out, recipe = A.choose_without_images(config, fp, CPU, free_bytes=64 * GIB)
        assert out == config and recipe.choices == []
        assert A.choose_lr(out, recipe, None, 1000) == out

    def test_open_keys_are_filled_with_reasons(self) -> None:
        fp = fingerprint(boxes={"nodule": 0.05}, prevalence={"a": 0.1})
        out, recipe = A.choose_without_images(TrainConfig(), fp, CPU, free_bytes=64 * GIB)
        chosen = {c.key: c.value for c in recipe.choices}
        assert chosen == {
            "preprocessing.image_size": 320,
            "optim.batch_size": 16,
            "optim.class_weights": "prevalence",
            "augment.strength": out.augment.strength,
        }
        assert out.open_keys() == ["optim.lr"]
        out = A.choose_lr(
            config_from_dict({"recipe": {"lr_range_test": False}}), recipe, None, 10**4
        )
        assert out.optim.lr == A.FALLBACK_LR
        assert "recipe.lr_range_test is off" in recipe.choices[-1].reason

    def test_the_static_recipe(self) -> None:
        config = config_from_dict({"recipe": {"auto": False}}).resolved()
        assert config.open_keys() == []
        assert (config.preprocessing.image_size, config.optim.batch_size, config.optim.lr) == (
            224, 8, 1e-3,
        )  # fmt: skip
        assert (config.augment.strength, config.optim.class_weights) == (1.0, "none")

    def test_config_yaml_carries_a_comment_above_each_choice(self, tmp_path: Path) -> None:
        fp = fingerprint(boxes={"nodule": 0.05})
        config, recipe = A.choose_without_images(TrainConfig(), fp, CPU, free_bytes=64 * GIB)
        write_config(config, tmp_path / "c.yaml", recipe.comments())
        lines = (tmp_path / "c.yaml").read_text().splitlines()
        k = lines.index("  image_size: 320")
        assert lines[k - 1].startswith("  # chosen by fit: 320 px keeps the smallest nodule boxes")
        assert load_config_file(tmp_path / "c.yaml") == config


class TestLrRangeTest:
    @pytest.mark.parametrize(
        ("losses", "lr"),
        [
            # falls to its minimum at step 40 of 60 (LR 1e-5 x 1e4^(40/59)), then climbs
            ([1.0 - 0.015 * k for k in range(41)] + [0.4 + 0.2 * k for k in range(1, 20)], "min"),
            ([0.7] * 60, None),  # never falls
            ([math.nan] * 60, None),
        ],
    )
    def test_pick(self, losses: list[float], lr: str | None) -> None:
        lrs = [A.LR_TEST_MIN * (A.LR_TEST_MAX / A.LR_TEST_MIN) ** (k / 59) for k in range(60)]
        chosen, reason = A.pick_lr(lrs[: len(losses)], losses)
        if lr is None:
            assert chosen is None and reason
        else:
            s = A.smooth(losses)
            at_min = lrs[int(np.nanargmin(s))]
            expected = min(A.LR_CLAMP[1], max(A.LR_CLAMP[0], at_min / 10))
            assert chosen == pytest.approx(expected, rel=1e-2)
            assert "/ 10" in reason

    def test_a_real_range_test_on_the_train_split(self, tmp_path: Path) -> None:
        manifest = demo_dataset(tmp_path, n=24, size=64)
        from training.data import read_dataset, split_dataset
        from training.dataset import load_units

        config = A.set_key(tiny_config(manifest), "optim.batch_size", 4)
        data = read_dataset(manifest)
        train = split_dataset(data).train
        units = load_units(data.records, config.preprocess_spec(), workers=1, source=data.source)
        seen: list[tuple[int, int]] = []
        test = A.lr_range_test(
            config, units, data.label_matrix(), train, CPU, steps=20,
            progress=lambda done, total: seen.append((done, total)),
        )  # fmt: skip
        assert 2 <= len(test.lrs) <= 20 and test.lrs[0] == pytest.approx(A.LR_TEST_MIN)
        assert all(b > a for a, b in zip(test.lrs, test.lrs[1:], strict=False))
        assert seen[-1] == (len(test.lrs), 20)
        assert test.lr is None or A.LR_CLAMP[0] <= test.lr <= A.LR_CLAMP[1]
        again = A.lr_range_test(config, units, data.label_matrix(), train, CPU, steps=20)
        assert again.losses == pytest.approx(test.losses, rel=1e-4)  # seeded

    def test_heavy_class_weights_do_not_stop_the_test_at_once(self, tmp_path: Path) -> None:
        """A rare label's pos_weight makes the first batches' losses swing by more than the
        divergence factor; the test must still run its first LR_TEST_MIN_STEPS steps (it
        stopped after 3 and fell back to 1e-3 on a 5 % prevalence set)."""
        manifest = demo_dataset(tmp_path, n=40, size=64, findings=("nodule",), prevalence=0.1)
        from training.data import read_dataset, split_dataset
        from training.dataset import load_units

        config = A.set_key(tiny_config(manifest), "optim.batch_size", 4)
        config = A.set_key(config, "optim.class_weights", "prevalence")
        data = read_dataset(manifest)
        train = split_dataset(data).train
        units = load_units(data.records, config.preprocess_spec(), workers=1, source=data.source)
        test = A.lr_range_test(config, units, data.label_matrix(), train, CPU, steps=16)
        assert len(test.lrs) >= A.LR_TEST_MIN_STEPS
        assert "stopped after" not in test.reason


@pytest.mark.slow
class TestFit:
    def test_fit_chooses_records_and_resumes_with_the_same_choices(self, tmp_path: Path) -> None:
        manifest = demo_dataset(tmp_path / "data", n=150, size=64, seed=2)
        config = tiny_config(
            manifest, optim={"epochs": 1, "batch_size": None}, recipe={"lr_range_test": True}
        )
        lines: list[str] = []
        out = tmp_path / "run"
        run_fit(config, out, on_info=lines.append)
        recipe = json.loads((out / "recipe.json").read_text())
        assert set(recipe["choices"]) == {
            "optim.batch_size", "optim.class_weights", "augment.strength", "optim.lr",
        }  # fmt: skip
        assert recipe["lr_range_test"]["lrs"][0] == pytest.approx(A.LR_TEST_MIN)
        assert any(line.startswith("data: ") for line in lines)
        assert sum(line.startswith("chosen by fit: ") for line in lines) == 4
        fp = json.loads((out / "fingerprint.json").read_text())
        assert fp["images"] == 150 and fp["boxes"]["per_label"]
        text = (out / "config.yaml").read_text()
        stored = yaml.safe_load(text)
        lr = recipe["choices"]["optim.lr"]["value"]
        assert stored["optim"]["lr"] == lr and stored["preprocessing"]["image_size"] == 64
        assert (
            "  # chosen by fit: LR range test" in text
            or "  # chosen by fit: LR range test unreliable" in text
        )
        training = read_manifest(out / "model.safetensors").training_data
        assert training["config"]["lr"] == lr
        assert set(training["config"]["recipe"]) == set(recipe["choices"])
        # resume: the recorded choices, no second range test
        lines.clear()
        again = tiny_config(
            manifest, optim={"epochs": 2, "batch_size": None}, recipe={"lr_range_test": True}
        )
        run_fit(again, out, resume=True, on_info=lines.append)
        assert json.loads((out / "recipe.json").read_text()) == recipe
        assert sum(line.startswith("recorded by the run being resumed: ") for line in lines) == 4
        history = json.loads((out / "metrics.json").read_text())["history"]
        assert [h["epoch"] for h in history] == [1, 2]
