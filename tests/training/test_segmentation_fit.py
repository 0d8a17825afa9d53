"""``radassist-train fit --task segmentation`` end to end on bright discs, and its config checks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from desktop_app.infra.errors import ConfigError, DataError
from desktop_app.model.modelfile import load_model_file
from training.cli import main as cli_main
from training.config import TrainConfig, config_from_dict
from training.segdata import read_segmentation_data
from training.segmasks import LabelImage

SIZE = 80


def write_discs(folder: Path, n: int, seed: int = 0, *, mask_column: bool = True) -> Path:
    """``n`` noisy PNG images with 0-2 bright discs each, their PNG masks and a manifest."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rows = []
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in range(n):
        image = rng.normal(60, 12, (SIZE, SIZE))
        mask = np.zeros((SIZE, SIZE), bool)
        for _ in range(int(rng.integers(0, 3)) if i % 4 else 1):
            r = rng.uniform(5, 11)
            cy, cx = rng.uniform(r + 2, SIZE - r - 2, 2)
            mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        image[mask] += 110
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"images/{i}.png")
        Image.fromarray((mask * 255).astype(np.uint8)).save(folder / f"masks/{i}.png")
        row = {"path": f"images/{i}.png", "patient_id": f"p{i}"}
        if mask_column:
            row["mask"] = f"masks/{i}.png"
        rows.append(row)
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


@pytest.mark.slow
def test_fit_segmentation_writes_a_loadable_model_with_dice_and_cis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_discs(tmp_path / "data", 48)
    out = tmp_path / "run"
    code = cli_main(
        ["fit", "--task", "segmentation", "--data", str(manifest), "--out", str(out),
         "--epochs", "6", "--image-size", "64", "--batch-size", "8", "--lr", "0.003",
         "--device", "cpu", "--quiet", "--set", "evaluation.bootstrap=200",
         "--set", "output.tensorboard=false", "--set", "augment.enabled=false"]
    )  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    loaded = load_model_file(out / "model.safetensors")
    m = loaded.manifest
    assert m.task == "segmentation"
    assert m.architecture == "unet-lite0"
    assert m.labels == ("lesion",)
    assert m.to_dict()["task"] == "segmentation"
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["final"]["test"]["lesion"]
    lo, hi = test["dice"]["ci95"]
    assert lo <= test["dice"]["value"] <= hi
    assert test["dice_positive"]["value"] > 0.5  # chance (all background) scores 0 here
    assert "lesion_sensitivity" in test and "fp_per_image" in test and "hd95_px" in test
    assert "What it segments" in (out / "model_card.md").read_text()
    assert "test lesion: Dice" in printed.out


class TestSegmentationConfig:
    def test_bad_task_is_one_line(self) -> None:
        with pytest.raises(ConfigError, match=r"config data.task 'detection' is unknown"):
            config_from_dict({"data": {"task": "detection"}}).resolved().validate()

    def test_segmentation_swaps_the_classifier_defaults(self) -> None:
        c = config_from_dict({"data": {"task": "segmentation"}}).resolved().validate()
        assert c.model.arch == "unet-lite0"
        assert c.early_stopping.monitor == "dice"
        assert c.preprocess_spec().image_size == 224

    def test_classification_is_unchanged(self) -> None:
        assert TrainConfig().resolved() == config_from_dict({}).resolved()
        assert TrainConfig().data.task == "classification"

    def test_classifier_arch_for_segmentation_is_refused(self) -> None:
        config = config_from_dict(
            {"data": {"task": "segmentation"}, "model": {"arch": "resnet18", "pretrained": False}}
        )
        with pytest.raises(ConfigError, match=r"resnet18 is a classification network"):
            config.resolved().validate()

    def test_unet_for_classification_is_refused(self) -> None:
        with pytest.raises(ConfigError, match=r"unet-lite0 is a segmentation network"):
            config_from_dict({"model": {"arch": "unet-lite0"}}).resolved().validate()

    def test_size_not_a_multiple_of_32_is_refused(self) -> None:
        config = config_from_dict(
            {"data": {"task": "segmentation"}, "preprocessing": {"image_size": 100}}
        )
        with pytest.raises(ConfigError, match=r"image_size 100 must be a multiple of 32"):
            config.resolved().validate()


class TestSegmentationData:
    def test_manifest_without_mask_column_is_one_line(self, tmp_path: Path) -> None:
        manifest = write_discs(tmp_path, 3, mask_column=False)
        with pytest.raises(DataError, match=r"there is no 'mask' column, which segmentation"):
            read_segmentation_data(manifest)

    def test_cli_without_mask_column_prints_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        manifest = write_discs(tmp_path / "d", 3, mask_column=False)
        code = cli_main(
            ["fit", "--task", "segmentation", "--data", str(manifest), "--out",
             str(tmp_path / "o"), "--device", "cpu", "--quiet"]
        )  # fmt: skip
        err = capsys.readouterr().err.strip().splitlines()
        assert code != 0
        assert len(err) == 1 and "'mask' column" in err[0]

    def test_labels_follow_the_masks_foreground(self, tmp_path: Path) -> None:
        seg = read_segmentation_data(write_discs(tmp_path, 8), ["nodule"])
        assert seg.data.labels == ("nodule",)
        y = seg.data.label_matrix()[:, 0]
        for record, mask in zip(seg.data.records, seg.masks, strict=True):
            assert isinstance(mask, LabelImage)
            has = (np.asarray(Image.open(mask.path)) > 0).any()
            assert y[seg.data.records.index(record)] == float(has)

    def test_two_labels_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(DataError, match=r"one mask per image, so one class"):
            read_segmentation_data(write_discs(tmp_path, 2), ["a", "b"])
