"""training.loop, .optim and .runtime: schedule, optimiser groups, freezing, device fallback,
early stopping, augmentation, caching, and that the loop actually learns."""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from desktop_app.infra.errors import ConfigError, DataError
from desktop_app.model.networks import backbone_parameters, head_parameters
from desktop_app.model.preprocessing import PreprocessSpec, unit_image
from tests.helpers.tinydata import demo_dataset, tiny_config
from training import loop as L
from training import optim as O
from training import runtime as R
from training.augment import build_augmenter, sample_seed
from training.config import AugmentConfig
from training.data import read_dataset, split_dataset
from training.dataset import UnitImageDataset, decode_unit, load_units, prepare_cache_dir


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_dataset(tmp_path_factory.mktemp("demo"))


class TestSchedule:
    def test_warmup_then_cosine(self) -> None:
        f = [O.lr_factor(s, 100, 10, 0.01) for s in range(100)]
        assert f[0] == pytest.approx(O.WARMUP_START)
        assert all(a < b for a, b in itertools.pairwise(f[:11]))  # rising warm-up
        assert f[10] == pytest.approx(1.0)
        assert all(a >= b for a, b in itertools.pairwise(f[10:]))  # then falling
        assert f[99] == pytest.approx(0.01)

    def test_no_warmup(self) -> None:
        assert O.lr_factor(0, 50, 0, 0.1) == pytest.approx(1.0)


class TestOptimizer:
    def test_groups_discriminative_lr_and_no_decay_on_biases(self) -> None:
        config = tiny_config(optim={"lr": 1e-3, "backbone_lr_factor": 0.1, "weight_decay": 0.05})
        model = O.build_model(config, 2)
        opt = O.make_optimizer(model, config)
        groups = {g["name"]: g for g in opt.param_groups}
        assert set(groups) == {"head", "head_no_decay", "backbone", "backbone_no_decay"}
        assert groups["head"]["lr"] == pytest.approx(1e-3)
        assert groups["backbone"]["lr"] == pytest.approx(1e-4)
        assert groups["backbone_no_decay"]["weight_decay"] == 0.0
        assert groups["head"]["weight_decay"] == 0.05
        n_params = sum(len(g["params"]) for g in opt.param_groups)
        assert n_params == len(list(model.parameters()))

    def test_head_starts_small_with_prevalence_bias(self) -> None:
        model = O.build_model(tiny_config(), 2, prevalence=[0.2, 0.5])
        head = model._fc
        assert head.weight.std().item() == pytest.approx(0.01, rel=0.1)
        assert torch.allclose(head.bias, torch.tensor([math.log(0.25), 0.0]), atol=1e-6)
        assert all(
            m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
        )

    def test_pos_weight_from_prevalence(self) -> None:
        y = np.array([[1, 0], [0, 0], [0, 1], [0, 1]], dtype=np.float32)
        assert O.pos_weight_from(y).tolist() == [3.0, 1.0]


class TestDevice:
    def test_cpu(self) -> None:
        assert R.select_device("cpu").type == "cpu"

    def test_cuda_asked_but_absent_warns_and_uses_cpu(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        with caplog.at_level(logging.WARNING, logger="training.runtime"):
            assert R.select_device("cuda").type == "cpu"
        assert [r.message for r in caplog.records] == [
            "CUDA was asked for but is not available; training on the CPU"
        ]

    def test_cuda_failure_at_start_falls_back_with_one_warning(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("CUDA error: no CUDA-capable device is detected")

        monkeypatch.setattr(torch.cuda, "synchronize", broken)
        real_zeros = torch.zeros

        def zeros(*args: object, **kwargs: object) -> torch.Tensor:
            if "cuda" in str(kwargs.get("device", "")):
                broken()
            return real_zeros(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(torch, "zeros", zeros)
        with caplog.at_level(logging.WARNING, logger="training.runtime"):
            device = R.select_device("auto")
        assert device.type == "cpu"
        assert len(caplog.records) == 1
        assert caplog.records[0].message.startswith("CUDA failed at start (CUDA error: no CUDA")


class TestAugmentAndCache:
    def test_augmentation_is_a_function_of_seed_epoch_index(self) -> None:
        aug = build_augmenter(AugmentConfig(affine_prob=1.0, noise_prob=1.0), 64)
        assert aug is not None
        x = torch.rand(64, 64)
        a = aug(x, sample_seed(0, 1, 5))
        assert torch.equal(a, aug(x, sample_seed(0, 1, 5)))
        assert not torch.equal(a, aug(x, sample_seed(0, 2, 5)))
        assert a.shape == (64, 64) and a.min() >= 0.0 and a.max() <= 1.0

    def test_no_horizontal_flip_by_default(self) -> None:
        # only intensity off, affine off: a default config never mirrors the image
        cfg = AugmentConfig(affine_prob=0.0, contrast_prob=0.0, intensity_prob=0.0, noise_prob=0.0)
        assert build_augmenter(cfg, 64) is None
        flip = build_augmenter(replace(cfg, hflip_prob=1.0), 64)
        assert flip is not None
        x = torch.rand(64, 64)
        assert torch.equal(flip(x, 1), torch.flip(x, dims=[1]))

    def test_cache_gives_exactly_the_preprocessing(self, demo: Path, tmp_path: Path) -> None:
        data = read_dataset(demo)
        spec = PreprocessSpec(image_size=48)
        records = data.records[:4]
        units = load_units(records, spec, cache_dir=tmp_path / "cache", workers=2)
        from desktop_app.model.imageio import read_image

        for k, r in enumerate(records):
            image = read_image(r.path)
            expected, _ = unit_image(image.values, spec, photometric=image.photometric)
            assert torch.equal(units[k], torch.from_numpy(expected))
        assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
        assert len(list((tmp_path / "cache").glob("*.npy"))) == 4
        # second run: from the disk cache, identical
        assert torch.equal(load_units(records, spec, cache_dir=tmp_path / "cache"), units)

    def test_cache_file_that_is_a_pickle_is_never_loaded(self, demo: Path, tmp_path: Path) -> None:
        data = read_dataset(demo)
        spec = PreprocessSpec(image_size=48)
        first = load_units(data.records[:1], spec, cache_dir=tmp_path / "c")
        (cached,) = list((tmp_path / "c").glob("*.npy"))
        np.save(cached, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
        again = load_units(data.records[:1], spec, cache_dir=tmp_path / "c")
        assert torch.equal(first, again)  # refused, decoded afresh

    def test_cache_dir_writable_by_others_is_refused(self, tmp_path: Path) -> None:
        folder = tmp_path / "shared"
        folder.mkdir()
        folder.chmod(0o777)
        with pytest.raises(
            ConfigError, match=r"cache folder is writable by other users \(run chmod 700"
        ):
            prepare_cache_dir(folder)

    def test_unreadable_image_names_the_row(self, demo: Path, tmp_path: Path) -> None:
        data = read_dataset(demo)
        record = replace(data.records[2], path=tmp_path / "broken.dcm")
        record.path.write_bytes(b"not an image at all")
        with pytest.raises(
            DataError,
            match=r"row 4: image broken\.dcm can't be read: .*\(fix or replace the file, or remove its row\)",
        ):
            decode_unit(record, PreprocessSpec(image_size=48), data.source)

    def test_dataset_items(self, demo: Path) -> None:
        data = read_dataset(demo)
        spec = PreprocessSpec(image_size=48)
        units = load_units(data.records, spec)
        ds = UnitImageDataset(units, data.label_matrix(), [3, 5], spec)
        x, y, k = ds[1]
        assert x.shape == (3, 48, 48) and k == 5
        assert torch.equal(y, torch.from_numpy(data.label_matrix()[5]))
        assert torch.allclose(x[0], (units[5] * 255 - 127) / 128)


class TestTraining:
    def test_frozen_backbone_epoch_moves_only_the_head(self, demo: Path) -> None:
        config = tiny_config(
            demo,
            model={"pretrained": True},
            optim={"epochs": 1, "freeze_backbone_epochs": 1, "freeze_bn": True},
        )
        data = read_dataset(demo)
        s = split_dataset(data)
        units = load_units(data.records, config.preprocess_spec())
        before = O.build_model(config, len(data.labels))
        runtime = R.Runtime(torch.device("cpu"))
        result = L.train_model(config, data, units, s.train, s.val, None, runtime)
        after = result.model
        for p0, p1 in zip(backbone_parameters(before), backbone_parameters(after), strict=True):
            assert torch.equal(p0, p1)
        for name, buf in before.named_buffers():  # BatchNorm statistics frozen too
            assert torch.equal(buf, dict(after.named_buffers())[name]), name
        assert not all(
            torch.equal(a, b)
            for a, b in zip(head_parameters(before), head_parameters(after), strict=True)
        )
        assert result.history[0]["backbone_frozen"] is True

    def test_frozen_backbone_with_adapting_batchnorm(self, demo: Path) -> None:
        config = tiny_config(
            demo,
            model={"pretrained": True},
            optim={"epochs": 2, "freeze_backbone_epochs": 1, "freeze_bn": False},
        )
        data = read_dataset(demo)
        s = split_dataset(data)
        units = load_units(data.records, config.preprocess_spec())
        before = O.build_model(config, len(data.labels))
        result = L.train_model(
            config,
            data,
            units,
            s.train,
            s.val,
            None,
            R.Runtime(torch.device("cpu")),
            fixed_epochs=1,
        )
        after = result.model
        for p0, p1 in zip(backbone_parameters(before), backbone_parameters(after), strict=True):
            assert torch.equal(p0, p1)
        stats = [n for n, _ in before.named_buffers() if n.endswith("running_mean")]
        assert not torch.equal(before.get_buffer(stats[0]), after.get_buffer(stats[0]))

    @pytest.mark.slow
    def test_early_stopping(self, demo: Path) -> None:
        config = tiny_config(
            demo,
            optim={"epochs": 5},
            early_stopping={"monitor": "loss", "patience": 1, "min_delta": 0.9},
        )
        data = read_dataset(demo)
        s = split_dataset(data)
        units = load_units(data.records, config.preprocess_spec())
        result = L.train_model(
            config, data, units, s.train, s.val, None, R.Runtime(torch.device("cpu"))
        )
        assert result.early_stopped and result.epochs_run == 2 and result.best_epoch == 1
        assert [h["best"] for h in result.history] == [True, False]
        assert {"train_loss", "val_loss", "train_auroc", "val_auroc", "lr"} <= set(
            result.history[0]
        )

    @pytest.mark.slow
    def test_loader_workers_do_not_change_the_result(self, demo: Path) -> None:
        """Augmentation is seeded per (seed, epoch, image) and the order per epoch, so two
        DataLoader worker processes give the same weights as none."""
        data = read_dataset(demo)
        s = split_dataset(data)
        results = []
        for workers in (0, 2):
            config = tiny_config(demo, data={"workers": workers}, optim={"epochs": 1})
            units = load_units(data.records, config.preprocess_spec())
            result = L.train_model(
                config, data, units, s.train, s.val, None, R.Runtime(torch.device("cpu"))
            )
            results.append(result.model.state_dict())
        for key, value in results[0].items():
            assert torch.equal(value, results[1][key]), key

    def test_one_image_train_split_is_refused(self, demo: Path) -> None:
        config = tiny_config(demo)
        data = read_dataset(demo)
        units = load_units(data.records[:3], config.preprocess_spec())
        with pytest.raises(DataError, match=r"the train split has 1 image\(s\), too few to train"):
            L.train_model(config, data, units, [0], [1, 2], None, R.Runtime(torch.device("cpu")))

    @pytest.mark.slow
    def test_it_learns_an_easy_task(self, tmp_path: Path) -> None:
        """A bright disc present or not: the pretrained default path must separate it."""
        rng = np.random.default_rng(0)
        rows = ["path,disc,patient_id"]
        for i in range(48):
            img = rng.normal(1000, 60, (80, 64)).clip(0, 4095)
            label = i % 2
            if label:
                cy, cx = rng.integers(20, 60), rng.integers(16, 48)
                yy, xx = np.mgrid[:80, :64]
                img[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] += 900
            Image.fromarray(img.astype(np.uint16)).save(tmp_path / f"i{i}.png")
            rows.append(f"i{i}.png,{label},P{i}")
        (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
        config = tiny_config(
            tmp_path / "m.csv", model={"pretrained": True}, optim={"epochs": 4, "batch_size": 8}
        )
        data = read_dataset(tmp_path / "m.csv")
        s = split_dataset(data, val_fraction=0.25, test_fraction=0.0)
        units = load_units(data.records, config.preprocess_spec())
        result = L.train_model(
            config, data, units, s.train, s.val, None, R.Runtime(torch.device("cpu"))
        )
        assert result.best_metric > 0.9, result.history
