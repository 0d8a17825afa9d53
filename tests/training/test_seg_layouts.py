"""Public segmentation folder layouts: MSD / nnU-Net raw (3-D NIfTI and 2-D PNG) and
images/ + masks/ folders are detected and read, labels named from dataset.json, split by case;
one tiny ``fit --task segmentation --data MSD_DIR`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from desktop_app.infra.errors import DataError
from desktop_app.model.modelfile import load_model_file
from training.cli import main as cli_main
from training.data import split_dataset
from training.segdata import load_pairs, read_segmentation_data
from training.seglayouts import (
    EMPTY_PER_FOREGROUND,
    MAX_FOREGROUND_SLICES,
    choose_slices,
    find_seg_layout,
    label_values,
)
from training.segmasks import VolumeSlice

SHAPE = (40, 40, 12)  # x, y, z as stored


def sphere_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy volume with a bright sphere (label 1) and a dimmer box (label 2)."""
    rng = np.random.default_rng(seed)
    x, y, z = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    cx, cy = rng.uniform(12, 28, 2)
    label = np.zeros(SHAPE, np.uint8)
    label[(x - cx) ** 2 + (y - cy) ** 2 + ((z - 6) * 2.0) ** 2 <= 36] = 1
    label[4:8, 30:36, 5:7] = 2
    image = rng.normal(0, 20, SHAPE).astype(np.float32) - 100
    image[label == 1] += 300
    image[label == 2] += 150
    return image, label


def write_msd(root: Path, cases: int = 6, *, nnunet: bool = False) -> Path:
    """An MSD (``<case>.nii.gz``, labels value -> name) or nnU-Net v2 (``<case>_0000``, labels
    name -> value, file_ending) raw dataset of sphere cases, with an imagesTs and macOS junk."""
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True)
    affine = np.diag([1.5, 1.5, 3.0, 1.0])
    for i in range(cases):
        image, label = sphere_case(i)
        name = f"case_{i:03d}"
        image_name = f"{name}_0000.nii.gz" if nnunet else f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(image, affine), root / "imagesTr" / image_name)
        nib.save(nib.Nifti1Image(label, affine), root / "labelsTr" / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(image, affine), root / "imagesTs" / "case_900.nii.gz")
    (root / "labelsTr" / "._case_000.nii.gz").write_bytes(b"\x00\x05\x16\x07")
    if nnunet:
        meta = {"labels": {"background": 0, "nodule": 1, "box": 2}, "file_ending": ".nii.gz"}
    else:
        meta = {"labels": {"0": "background", "1": "nodule", "2": "box"}, "modality": {"0": "CT"}}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


class TestMsd:
    @pytest.mark.parametrize("nnunet", [False, True])
    def test_detected_read_and_named_from_dataset_json(self, tmp_path: Path, nnunet: bool) -> None:
        root = write_msd(tmp_path / "Task99_Spheres", nnunet=nnunet)
        assert find_seg_layout(tmp_path) == (root, "msd")  # one folder down
        seg = read_segmentation_data(tmp_path, ["nodule"])
        data = seg.data
        assert data.kind == "msd" and data.labels == ("nodule",)
        cases = {r.patient for r in data.records}
        assert cases == {f"case_{i:03d}" for i in range(6)}  # imagesTs and ._ files left out
        first = [i for i, r in enumerate(data.records) if r.patient == "case_000"]
        images = [seg.image_of(i) for i in first]
        assert all(isinstance(s, VolumeSlice) for s in images)
        # the sphere spans z 4..8 (|z - 6| * 2 < 6 off a voxel centre): 5 foreground slices
        # and ceil(5 / 3) = 2 empty ones
        positive = [data.records[i].labels[0] for i in first]
        assert positive.count(1.0) == 5 and positive.count(0.0) == 2
        masks = [seg.masks[i] for i in first]
        assert all(isinstance(m, VolumeSlice) and m.values == (1,) for m in masks)

    def test_without_labels_every_label_is_foreground(self, tmp_path: Path) -> None:
        seg = read_segmentation_data(write_msd(tmp_path / "msd"))
        assert seg.data.labels == ("foreground",)
        assert all(isinstance(m, VolumeSlice) and m.values == (1, 2) for m in seg.masks)

    def test_an_unknown_label_lists_the_dataset_json_ones(self, tmp_path: Path) -> None:
        write_msd(tmp_path / "msd")
        with pytest.raises(DataError, match="no such label; it has: nodule, box"):
            read_segmentation_data(tmp_path / "msd", ["liver"])

    def test_the_split_is_by_case(self, tmp_path: Path) -> None:
        seg = read_segmentation_data(write_msd(tmp_path / "msd", cases=8), ["nodule"])
        splits = split_dataset(seg.data, seed=0, val_fraction=0.25, test_fraction=0.25)
        by_split = [{seg.data.records[i].patient for i in getattr(splits, s)}
                    for s in ("train", "val", "test")]  # fmt: skip
        assert all(by_split) and sum(len(s) for s in by_split) == 8
        assert not (
            by_split[0] & by_split[1] or by_split[0] & by_split[2] or by_split[1] & by_split[2]
        )

    def test_pairs_follow_the_label_volume(self, tmp_path: Path) -> None:
        from desktop_app.model.preprocessing import PreprocessSpec

        seg = read_segmentation_data(write_msd(tmp_path / "msd", cases=2), ["box"])
        units, masks, mm = load_pairs(seg, PreprocessSpec(image_size=40))
        box = [i for i, r in enumerate(seg.data.records) if r.labels[0] == 1.0]
        assert box and all(masks[i].sum() == 4 * 6 for i in box)
        assert np.allclose(mm, 1.5)
        # the box is brighter than its surroundings in the unit image: image and label agree
        i = box[0]
        inside = units[i][masks[i, 0] > 0].mean()
        assert float(inside) > float(units[i].mean())

    def test_a_label_of_another_shape_is_refused(self, tmp_path: Path) -> None:
        root = write_msd(tmp_path / "msd", cases=2)
        nib.save(nib.Nifti1Image(np.zeros((40, 40, 11), np.uint8), np.eye(4)),
                 root / "labelsTr" / "case_001.nii.gz")  # fmt: skip
        with pytest.raises(
            DataError, match=r"case case_001: label is 40x40x11 .* image is 40x40x12"
        ):
            read_segmentation_data(root)

    def test_a_label_without_its_image_is_refused(self, tmp_path: Path) -> None:
        root = write_msd(tmp_path / "msd", cases=2)
        (root / "imagesTr" / "case_001.nii.gz").unlink()
        with pytest.raises(DataError, match=r"1 case.* have no image in imagesTr, e\.g\. case_001"):
            read_segmentation_data(root)

    def test_a_2d_nnunet_dataset_of_pngs(self, tmp_path: Path) -> None:
        root = tmp_path / "Dataset120_Discs"
        (root / "imagesTr").mkdir(parents=True)
        (root / "labelsTr").mkdir()
        yy, xx = np.mgrid[:48, :48]
        for i in range(4):
            label = (((yy - 20 - i) ** 2 + (xx - 24) ** 2) <= 49).astype(np.uint8)  # values 0/1
            Image.fromarray(label).save(root / "labelsTr" / f"d{i}.png")
            Image.fromarray((label * 150 + 40).astype(np.uint8)).save(
                root / "imagesTr" / f"d{i}_0000.png"
            )
        (root / "dataset.json").write_text(
            json.dumps({"labels": {"background": 0, "disc": 1}, "file_ending": ".png"})
        )
        seg = read_segmentation_data(root)
        assert seg.data.labels == ("disc",) and len(seg.data.records) == 4
        assert seg.images == []
        from desktop_app.model.preprocessing import PreprocessSpec

        _, masks, _ = load_pairs(seg, PreprocessSpec(image_size=48))
        assert int(masks[0].sum()) == int(((yy - 20) ** 2 + (xx - 24) ** 2 <= 49).sum())


class TestLabelValues:
    @pytest.mark.parametrize(
        ("labels", "want"),
        [
            ({"0": "background", "1": "liver", "2": "cancer"}, {"liver": (1,), "cancer": (2,)}),
            ({"background": 0, "liver": 1, "cancer": 2}, {"liver": (1,), "cancer": (2,)}),
            ({"background": 0, "whole tumor": [1, 2, 3], "enhancing": 3},
             {"whole tumor": (1, 2, 3), "enhancing": (3,)}),
            ({"background": 0, "lesion": 1, "ignore": 2}, {"lesion": (1,)}),
        ],
    )  # fmt: skip
    def test_msd_and_nnunet_forms(self, labels: dict[str, object], want: dict[str, object]) -> None:
        assert label_values(labels, Path("dataset.json")) == want


class TestChooseSlices:
    def test_every_foreground_slice_and_one_empty_per_three(self) -> None:
        has = np.zeros(30, bool)
        has[10:16] = True
        chosen = choose_slices(has)
        assert [z for z in chosen if has[z]] == list(range(10, 16))
        assert len([z for z in chosen if not has[z]]) == 6 // EMPTY_PER_FOREGROUND

    def test_bounded(self) -> None:
        has = np.ones(500, bool)
        has[::7] = False
        chosen = choose_slices(has)
        assert len([z for z in chosen if has[z]]) == MAX_FOREGROUND_SLICES


class TestFolders:
    def _write(self, root: Path, names: list[str], mask_dir: str = "masks", tail: str = "") -> None:
        (root / "images").mkdir(parents=True)
        (root / mask_dir).mkdir()
        for i, name in enumerate(names):
            mask = np.zeros((32, 32), np.uint8)
            mask[4 + i : 12 + i, 8:16] = 255 if i % 2 == 0 else 0
            Image.fromarray(mask // 2 + 30).save(root / "images" / f"{name}.jpg")
            Image.fromarray(mask).save(root / mask_dir / f"{name}{tail}.png")

    @pytest.mark.parametrize(("mask_dir", "tail"), [("masks", ""), ("labels", "_mask")])
    def test_pairs_by_stem(self, tmp_path: Path, mask_dir: str, tail: str) -> None:
        self._write(tmp_path, ["a", "b", "c", "d"], mask_dir, tail)
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "images" / "lonely.png")
        assert find_seg_layout(tmp_path) == (tmp_path, "folders")
        seg = read_segmentation_data(tmp_path)
        assert [r.path.stem for r in seg.data.records] == ["a", "b", "c", "d"]
        assert [r.labels[0] for r in seg.data.records] == [1.0, 0.0, 1.0, 0.0]
        assert seg.data.notes == ["1 image(s) without a mask of the same stem were left out"]

    def test_train_and_test_folders_give_the_split(self, tmp_path: Path) -> None:
        self._write(tmp_path / "train", ["a", "b", "c", "d", "e", "f"])
        self._write(tmp_path / "test", ["g", "h"])
        seg = read_segmentation_data(tmp_path)
        assert [r.split for r in seg.data.records] == ["train"] * 6 + ["test"] * 2
        assert seg.data.has_split

    def test_tiff_images_and_masks(self, tmp_path: Path) -> None:
        from desktop_app.model.preprocessing import PreprocessSpec

        (tmp_path / "images").mkdir()
        (tmp_path / "masks").mkdir()
        for i in range(2):
            mask = np.zeros((40, 32), np.uint8)
            mask[10:20, 8 + i : 16 + i] = 255
            Image.fromarray(mask // 3 + 20).save(tmp_path / "images" / f"s{i}.tif")
            Image.fromarray(mask).save(tmp_path / "masks" / f"s{i}_mask.tif")
        seg = read_segmentation_data(tmp_path)
        units, masks, mm = load_pairs(seg, PreprocessSpec(image_size=40))
        assert [int(m.sum()) for m in masks] == [80, 80] and np.isnan(mm).all()
        assert float(units[0][masks[0, 0] > 0].mean()) > float(units[0].mean())

    def test_no_pairs(self, tmp_path: Path) -> None:
        self._write(tmp_path, ["a"], tail="_other")
        with pytest.raises(DataError, match="no image has a mask of the same file stem"):
            read_segmentation_data(tmp_path)


@pytest.mark.slow
def test_fit_segmentation_on_an_msd_folder_writes_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_msd(tmp_path / "Task99_Spheres", cases=6)
    out = tmp_path / "run"
    code = cli_main(
        ["fit", "--task", "segmentation", "--data", str(root), "--labels", "nodule",
         "--out", str(out), "--epochs", "1", "--image-size", "64", "--batch-size", "8",
         "--device", "cpu", "--quiet", "--set", "evaluation.bootstrap=100",
         "--set", "output.tensorboard=false", "--set", "augment.enabled=false"]
    )  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    manifest = load_model_file(out / "model.safetensors").manifest
    assert manifest.task == "segmentation" and manifest.labels == ("nodule",)
    metrics = json.loads((out / "metrics.json").read_text())
    test = metrics["final"]["test"]["nodule"]
    assert "hd95_mm" in test  # NIfTI zooms give the spacing
    assert "mm)" in printed.out  # fit's summary shows HD95 in mm too
    # evaluate scores the same test split of the folder as fit did, with the same metrics
    code = cli_main(["evaluate", "--model", str(out / "model.safetensors"), "--data", str(root),
                     "--device", "cpu", "--quiet", "--bootstrap", "100",
                     "--json", str(tmp_path / "eval.json")])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "Dice (95% CI)" in printed.out and "mean Dice" in printed.out
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["task"] == "segmentation" and result["data"]["split"] == "test"
    scored = result["labels"]["nodule"]
    assert scored["images"] == test["images"]
    assert scored["dice"]["value"] == pytest.approx(test["dice"]["value"], abs=1e-6)
