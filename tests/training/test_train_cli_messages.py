"""What `radassist-train` tells a new user: help texts that are true for segmentation, what a
segmentation fit found in a folder and trains with, and a caution on lesion sensitivity when
the model marks much of every image."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from training import cli
from training.commands.evaluate import plural
from training.config import TrainConfig, config_from_dict
from training.data import split_dataset
from training.evaluate import format_table
from training.segdata import read_segmentation_data
from training.segmentation import data_line, recipe_line, split_line, summary_lines
from training.segmetrics import false_positive_clause

SIZE = 40


def write_folder(root: Path, n: int, unpaired: int = 0, suffix: str = ".jpg") -> Path:
    """``images/`` + ``masks/`` with one bright disc per image, and ``unpaired`` images
    without a mask."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in range(n + unpaired):
        cy, cx = rng.uniform(10, SIZE - 10, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= 36
        image = rng.normal(60, 12, (SIZE, SIZE))
        image[disc] += 110
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / f"images/c{i}.jpg")
        if i < n:
            Image.fromarray((disc * 255).astype(np.uint8)).save(root / f"masks/c{i}{suffix}")
    return root


def _help(*command: str) -> str:
    parser, _ = cli.build_parser(command[0] if command else None)
    if not command:
        return parser.format_help()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[
        command[0]
    ]
    return " ".join(sub.format_help().split())


class TestHelpTexts:
    def test_commands_name_segmentation_and_ct(self) -> None:
        text = " ".join(_help().split())
        assert "CT series with nodule masks (--ct)" in text
        assert "classifier or a segmentation model" in text
        assert "Dice, HD95, lesion sensitivity, FP/image" in text
        assert "RSNA layout" not in text

    def test_fit_data_and_task_name_the_layouts_and_mask_formats(self) -> None:
        text = _help("fit")
        for layout in ("NIH", "CheXpert", "SIIM-ACR", "VinBigData", "MSD", "nnU-Net",
                       "image + mask folders"):  # fmt: skip
            assert layout in text
        for mask in ("PNG", "NIfTI", "DICOM SEG", "RTSTRUCT", "RLE"):
            assert mask in text

    def test_fit_image_size_says_what_segmentation_uses(self) -> None:
        assert "segmentation uses the architecture's, 224 for unet-lite0" in _help("fit")

    def test_evaluate_data_says_the_own_data_gives_its_test_split(self) -> None:
        assert "the model's own training data gives its test split" in _help("evaluate")


class TestFitSaysWhatItFound:
    def test_layout_pairs_jpeg_masks_and_left_out_images(self, tmp_path: Path) -> None:
        seg = read_segmentation_data(write_folder(tmp_path / "kv", 20, unpaired=2))
        line = data_line(seg)
        assert line.startswith(
            "images + masks folders: 20 image/mask pairs (JPEG masks thresholded at half their "
            "maximum); 2 image(s) without a mask"
        )

    def test_png_masks_are_not_said_to_be_thresholded(self, tmp_path: Path) -> None:
        seg = read_segmentation_data(write_folder(tmp_path / "kv", 1, suffix=".png"))
        assert data_line(seg) == "images + masks folders: 1 image/mask pair"

    def test_split_sizes_by_image_with_the_seed(self, tmp_path: Path) -> None:
        data = read_segmentation_data(write_folder(tmp_path / "kv", 20)).data
        splits = split_dataset(data, seed=3)
        assert split_line(data, splits, 3) == "split 14/3/3 (train/val/test) by image (seed 3)"

    def test_split_folders_are_said_to_give_the_split(self, tmp_path: Path) -> None:
        for name, n in (("train", 6), ("val", 2), ("test", 2)):
            write_folder(tmp_path / "kv" / name, n)
        data = read_segmentation_data(tmp_path / "kv").data
        line = split_line(data, split_dataset(data), 0)
        assert line == "split 6/2/2 (train/val/test) from the data's own split (column or folders)"

    def test_recipe_names_only_the_defaults(self) -> None:
        config = config_from_dict(
            {"data": {"task": "segmentation"}, "optim": {"epochs": 1}}
        ).resolved()
        line = recipe_line(config, ("image_size", "batch_size", "lr"))
        assert line == (
            "unet-lite0 (pretrained) at 224 px, batch 8, lr 0.001, 1 epoch (defaults: 224 px, "
            "batch 8, lr 0.001; --image-size, --batch-size, --lr to change)"
        )
        assert recipe_line(TrainConfig().resolved(), ()) is None

    @pytest.mark.slow
    def test_fit_prints_the_three_lines_on_stderr(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        folder = write_folder(tmp_path / "kv", 20, unpaired=2)
        code = cli.main(
            ["fit", "--task", "segmentation", "--data", str(folder), "--out", str(tmp_path / "r"),
             "--epochs", "1", "--image-size", "64", "--device", "cpu", "--no-pretrained",
             "--set", "evaluation.bootstrap=0", "--set", "output.tensorboard=false",
             "--set", "output.plots=false", "--set", "augment.enabled=false"]
        )  # fmt: skip
        out, err = capsys.readouterr()
        assert code == 0, err
        lines = err.splitlines()
        assert any(x.startswith("images + masks folders: 20 image/mask pairs") for x in lines)
        assert "split 14/3/3 (train/val/test) by image (seed 0)" in lines
        assert (
            "unet-lite0 (from scratch) at 64 px, batch 8, lr 0.001, 1 epoch (defaults: batch 8, "
            "lr 0.001; --batch-size, --lr to change)"
        ) in lines
        assert "images + masks folders" not in out  # stdout keeps the summary only


def _seg_metrics(fp: float) -> dict[str, Any]:
    def v(x: float | None) -> dict[str, Any]:
        return {"value": x, "ci95": [x, x]}

    return {
        "images": 3, "positive_images": 3, "dice": v(0.006), "dice_positive": v(0.006),
        "hd95_px": v(40.0), "lesions": 15, "lesion_sensitivity": v(1.0), "fp_per_image": v(fp),
    }  # fmt: skip


class TestManyFalsePositives:
    @pytest.mark.parametrize(
        ("fp", "clause"),
        [
            (100.07, "(with 100 false-positive lesions per image: the model marks much of every "
                     "image)"),
            (2.34, "(with 2.3 false-positive lesions per image: the model marks much of every "
                   "image)"),
            (1.0, ""),
            (0.2, ""),
            (None, ""),
            (float("nan"), ""),
        ],
    )  # fmt: skip
    def test_clause(self, fp: float | None, clause: str) -> None:
        assert false_positive_clause(fp) == clause

    def test_fit_summary_puts_it_after_the_sensitivity(self) -> None:
        metrics = {"threshold_rule": "0.5", "final": {"test": {"lesion": _seg_metrics(100.07)}}}
        line = summary_lines(metrics)[1]
        assert "lesion sensitivity 1.000 [1.000, 1.000] of 15 (with 100 false-positive" in line

    def test_fit_summary_without_many_has_none(self) -> None:
        metrics = {"threshold_rule": "0.5", "final": {"test": {"lesion": _seg_metrics(0.5)}}}
        assert "false-positive" not in summary_lines(metrics)[1]

    def test_evaluate_table_adds_a_line(self) -> None:
        table = format_table({"lesion": _seg_metrics(100.07)}, None)
        assert table.splitlines()[-1] == (
            "lesion: lesion sensitivity 1.000 (with 100 false-positive lesions per image: the "
            "model marks much of every image)"
        )
        assert "false-positive" not in format_table({"lesion": _seg_metrics(0.0)}, None)


@pytest.mark.parametrize(("n", "text"), [(0, "0 patients"), (1, "1 patient"), (8, "8 patients")])
def test_plural(n: int, text: str) -> None:
    assert plural(n, "patient") == text


def test_ct_demo_data_says_how_to_train_it_with_its_class_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CT demo manifest's 0/1 column is ``nodule``: the suggested fit names the class so."""
    out = tmp_path / "ct"
    code = cli.main(
        ["make-demo-data", str(out), "--ct", "--n", "2", "--size", "64", "--slices", "8-9",
         "--quiet"]
    )  # fmt: skip
    printed = capsys.readouterr().out.splitlines()
    assert code == 0
    manifest = out / "manifest.csv"
    assert printed[-1] == (
        f"train it: radassist-train fit --task segmentation --data {manifest} --labels nodule "
        "--out DIR"
    )
    assert read_segmentation_data(manifest, ["nodule"]).data.labels == ("nodule",)
