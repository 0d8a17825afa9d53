"""Public 2-D/3-D segmentation datasets in their published layouts (file and folder names,
value encodings), made tiny from a seed: each is found and read with the right pairs, masks
and splits (Kvasir-SEG, ISIC 2018, Montgomery, Shenzhen, SCR, BUSI, CVC, nnU-Net/MSD volumes),
or refused in one line that says what to do."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from desktop_app.infra.errors import DataError
from desktop_app.model.preprocessing import PreprocessSpec
from training.segdata import load_pairs, read_segmentation_data
from training.seglayouts import find_seg_layout
from training.segmasks import LabelImage, SegDataset, read_label_image

SIZE = 48


def ellipse(seed: int, size: int = SIZE) -> np.ndarray:
    """A seeded ellipse mask (bool, size x size)."""
    rng = np.random.default_rng(seed)
    cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
    ry, rx = rng.uniform(size * 0.12, size * 0.22, 2)
    y, x = np.mgrid[:size, :size]
    return np.asarray(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1)


def picture(mask: np.ndarray, seed: int, *, rgb: bool = False) -> np.ndarray:
    """A noisy uint8 image, brighter inside ``mask``."""
    rng = np.random.default_rng(seed + 1000)
    grey = np.clip(rng.normal(70, 12, mask.shape) + 110 * mask, 0, 255).astype(np.uint8)
    return np.stack([grey, grey // 2 + 20, grey // 3], axis=2) if rgb else grey


def save(array: np.ndarray, path: Path, **options: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)
    return path


def jpeg_bytes_roundtrip(array: np.ndarray) -> np.ndarray:
    """``array`` after a JPEG round trip: values near 0/255, not exact (Kvasir's masks)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=75)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


def unit_masks(root: Path, labels: list[str] | None = None) -> tuple[SegDataset, list[int]]:
    """The dataset read from ``root`` and its masks' pixel counts at the images' own size."""
    seg = read_segmentation_data(root, labels)
    _, masks, _ = load_pairs(seg, PreprocessSpec(image_size=SIZE))
    return seg, [int(m.sum()) for m in masks]


class TestKvasirSeg:
    """Kvasir-SEG: ``Kvasir-SEG/images/<id>.jpg`` (RGB) and ``masks/<id>.jpg`` (RGB JPEG),
    unzipped with macOS's ``__MACOSX/`` resource forks beside it."""

    def test_rgb_jpeg_masks_are_thresholded(self, tmp_path: Path) -> None:
        root = tmp_path / "Kvasir-SEG"
        truth = []
        for i in range(4):
            mask = ellipse(i) if i < 3 else np.zeros((SIZE, SIZE), bool)
            name = f"cju{i:04d}kwl35piu0993l0dewei2"
            save(picture(mask, i, rgb=True), root / "images" / f"{name}.jpg")
            rgb_mask = np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2)
            save(rgb_mask, root / "masks" / f"{name}.jpg", quality=75)
            truth.append(mask)
        (root / "kavsir_bboxes.json").write_text("{}")
        junk = tmp_path / "__MACOSX" / "Kvasir-SEG" / "masks"  # a zip made on macOS
        junk.mkdir(parents=True)
        (junk / "._cju0000kwl35piu0993l0dewei2.jpg").write_bytes(b"\x00\x05\x16\x07")
        assert find_seg_layout(tmp_path) == (tmp_path, "folders")
        seg, counts = unit_masks(tmp_path)
        assert [r.labels[0] for r in seg.data.records] == [1.0, 1.0, 1.0, 0.0]
        for got, want in zip(counts, truth, strict=True):
            assert abs(got - int(want.sum())) <= 0.1 * max(int(want.sum()), 10)
        assert counts[3] == 0


class TestIsic2018:
    """ISIC 2018 task 1: ``ISIC2018_Task1-2_<Split>_Input/ISIC_x.jpg`` and
    ``ISIC2018_Task1_<Split>_GroundTruth/ISIC_x_segmentation.png`` (0/255)."""

    def _write(self, root: Path, splits: tuple[str, ...]) -> None:
        n = 0
        for split in splits:
            images = root / f"ISIC2018_Task1-2_{split}_Input"
            truths = root / f"ISIC2018_Task1_{split}_GroundTruth"
            for _ in range(3):
                mask = ellipse(n)
                save(picture(mask, n, rgb=True), images / f"ISIC_{n:07d}.jpg")
                save((mask * 255).astype(np.uint8), truths / f"ISIC_{n:07d}_segmentation.png")
                n += 1
            (images / "LICENSE.txt").write_text("CC-BY-NC")
            (images / "ATTRIBUTION.txt").write_text("ISIC")
            (truths / "LICENSE.txt").write_text("CC-BY-NC")

    def test_the_folders_give_the_split(self, tmp_path: Path) -> None:
        self._write(tmp_path, ("Training", "Validation", "Test"))
        seg, counts = unit_masks(tmp_path)
        records = seg.data.records
        assert [r.split for r in records] == ["train"] * 3 + ["val"] * 3 + ["test"] * 3
        assert [r.path.name for r in records[:2]] == ["ISIC_0000000.jpg", "ISIC_0000001.jpg"]
        assert counts == [int(ellipse(i).sum()) for i in range(9)]
        assert seg.data.notes == []

    def test_without_a_test_folder_the_split_is_made(self, tmp_path: Path) -> None:
        self._write(tmp_path, ("Training", "Validation"))
        seg = read_segmentation_data(tmp_path)
        assert {r.split for r in seg.data.records} == {None} and not seg.data.has_split


class TestChestRadiographs:
    def test_montgomery_unites_left_and_right_lung(self, tmp_path: Path) -> None:
        root = tmp_path / "MontgomerySet"
        left, right = np.zeros((SIZE, SIZE), bool), np.zeros((SIZE, SIZE), bool)
        left[10:40, 5:20], right[10:40, 28:44] = True, True
        for i in range(3):
            name = f"MCUCXR_{i:04d}_{i % 2}.png"
            save(picture(left | right, i), root / "CXR_png" / name)
            save((left * 255).astype(np.uint8), root / "ManualMask" / "leftMask" / name)
            save((right * 255).astype(np.uint8), root / "ManualMask" / "rightMask" / name)
            (root / "ClinicalReadings").mkdir(exist_ok=True)
            (root / "ClinicalReadings" / f"MCUCXR_{i:04d}_{i % 2}.txt").write_text("normal")
        seg, counts = unit_masks(tmp_path)
        assert counts == [int((left | right).sum())] * 3
        assert seg.data.notes == [
            "each image's masks in ManualMask/leftMask, ManualMask/rightMask are united "
            "(--labels NAME keeps the mask folders whose name holds NAME)"
        ]
        _, counts = unit_masks(tmp_path, labels=["left"])
        assert counts == [int(left.sum())] * 3

    def test_shenzhen_kaggle_masks_with_a_tail_and_unlabelled_images(self, tmp_path: Path) -> None:
        root = tmp_path / "Lung Segmentation"
        for i in range(3):
            mask = ellipse(i)
            save(picture(mask, i), root / "CXR_png" / f"CHNCXR_{i:04d}_0.png")
            save((mask * 255).astype(np.uint8), root / "masks" / f"CHNCXR_{i:04d}_0_mask.png")
        save(picture(ellipse(7), 7), root / "CXR_png" / "MCUCXR_0007_0.png")  # plain name
        save((ellipse(7) * 255).astype(np.uint8), root / "masks" / "MCUCXR_0007_0.png")
        save(picture(ellipse(8), 8), root / "CXR_png" / "CHNCXR_0099_1.png")  # no mask
        save(picture(ellipse(9), 9), root / "test" / "CHNCXR_0100_1.png")
        seg, counts = unit_masks(tmp_path)
        names = [r.path.name for r in seg.data.records]
        assert names == [f"CHNCXR_{i:04d}_0.png" for i in range(3)] + ["MCUCXR_0007_0.png"]
        assert counts == [int(ellipse(i).sum()) for i in (0, 1, 2, 7)]
        assert seg.data.notes == ["1 image(s) without a mask of the same stem were left out"]

    def _scr(self, root: Path) -> dict[str, np.ndarray]:
        organs = {"left lung": (slice(8, 40), slice(4, 20)), "right lung": (slice(8, 40),
                  slice(28, 44)), "heart": (slice(24, 40), slice(16, 32))}  # fmt: skip
        masks = {}
        for organ, (rows, cols) in organs.items():
            mask = np.zeros((SIZE, SIZE), bool)
            mask[rows, cols] = True
            masks[organ] = mask
            for i in range(2):
                save((mask * 255).astype(np.uint8), root / "masks" / organ / f"JPCLN{i:03d}.gif")
        return masks

    def test_scr_masks_picked_by_labels(self, tmp_path: Path) -> None:
        masks = self._scr(tmp_path / "scratch")
        for i in range(2):
            save(picture(masks["heart"], i), tmp_path / "images" / f"JPCLN{i:03d}.png")
        _, counts = unit_masks(tmp_path, labels=["lung"])
        assert counts == [int((masks["left lung"] | masks["right lung"]).sum())] * 2
        _, counts = unit_masks(tmp_path)
        assert counts == [int(np.logical_or.reduce(list(masks.values())).sum())] * 2
        with pytest.raises(DataError, match="--labels liver: no mask folder is named so; "
                           "they are: scratch/masks/heart, scratch/masks/left lung"):  # fmt: skip
            read_segmentation_data(tmp_path, ["liver"])

    def test_jsrt_raw_images_are_refused_in_one_line(self, tmp_path: Path) -> None:
        masks = self._scr(tmp_path / "scratch")
        (tmp_path / "All247images").mkdir()
        for i in range(2):
            (tmp_path / "All247images" / f"JPCLN{i:03d}.IMG").write_bytes(bytes(64))
        assert masks
        with pytest.raises(DataError, match=r"\.img files are headerless raw images") as err:
            read_segmentation_data(tmp_path)
        assert "convert them to PNG" in str(err.value) and "\n" not in str(err.value)


class TestBusi:
    """BUSI: ``<class>/<class> (n).png`` with ``<class> (n)_mask.png`` (and ``_mask_1`` for a
    second lesion) in the same folder; normal images have an empty mask."""

    def test_same_folder_masks_and_second_lesions(self, tmp_path: Path) -> None:
        root = tmp_path / "Dataset_BUSI_with_GT"
        one, two = ellipse(1), np.zeros((SIZE, SIZE), bool)
        two[2:8, 2:8] = True
        for kind in ("benign", "malignant"):
            save(picture(one | two, 1, rgb=True), root / kind / f"{kind} (1).png")
            save((one * 255).astype(np.uint8), root / kind / f"{kind} (1)_mask.png")
        save((two * 255).astype(np.uint8), root / "benign" / "benign (1)_mask_1.png")
        save(picture(one, 2), root / "normal" / "normal (1).png")
        save(np.zeros((SIZE, SIZE), np.uint8), root / "normal" / "normal (1)_mask.png")
        seg, counts = unit_masks(tmp_path)
        records = seg.data.records
        assert [r.path.name for r in records] == ["benign (1).png", "malignant (1).png",
                                                  "normal (1).png"]  # fmt: skip
        assert counts == [int((one | two).sum()), int(one.sum()), 0]
        assert [r.labels[0] for r in records] == [1.0, 1.0, 0.0]
        assert seg.data.notes == []


class TestFolderForms:
    def test_dsb2018_case_folders_with_a_mask_per_nucleus(self, tmp_path: Path) -> None:
        """``stage1_train/<id>/images/<id>.png`` (RGBA) and ``<id>/masks/<other id>.png``,
        one per nucleus: united."""
        truth = []
        for i in range(3):
            case = tmp_path / "stage1_train" / f"{i:02d}ab3f"
            nuclei = [ellipse(10 * i + k, SIZE) for k in range(2)]
            union = nuclei[0] | nuclei[1]
            rgba = np.dstack([picture(union, i, rgb=True), np.full((SIZE, SIZE), 255, np.uint8)])
            save(rgba, case / "images" / f"{i:02d}ab3f.png")
            for k, nucleus in enumerate(nuclei):
                save((nucleus * 255).astype(np.uint8), case / "masks" / f"{k}c{i}e9.png")
            truth.append(int(union.sum()))
        seg, counts = unit_masks(tmp_path)
        assert [r.path.name for r in seg.data.records] == ["00ab3f.png", "01ab3f.png",
                                                           "02ab3f.png"]  # fmt: skip
        assert counts == truth and seg.data.notes == []

    def test_cvc_ground_truth_folder_of_tiffs(self, tmp_path: Path) -> None:
        root = tmp_path / "CVC-ClinicDB"
        for i in range(1, 4):
            mask = ellipse(i)
            save(picture(mask, i, rgb=True), root / "Original" / f"{i}.tif")
            save((mask * 255).astype(np.uint8), root / "Ground Truth" / f"{i}.tif")
        _, counts = unit_masks(tmp_path)
        assert counts == [int(ellipse(i).sum()) for i in range(1, 4)]

    def test_split_subfolders_under_images_and_masks(self, tmp_path: Path) -> None:
        """``images/{train,val,test}/x.png`` + ``masks/{train,val,test}/x.png``: the same
        names in each split pair within their split."""
        for n, split in enumerate(("train", "val", "test")):
            for i in range(2):
                mask = ellipse(10 * n + i)
                save(picture(mask, i), tmp_path / "images" / split / f"{i}.png")
                save((mask * 255).astype(np.uint8), tmp_path / "masks" / split / f"{i}.png")
        seg, counts = unit_masks(tmp_path)
        records = seg.data.records
        assert [r.split for r in records] == ["train"] * 2 + ["val"] * 2 + ["test"] * 2
        assert counts == [int(ellipse(k).sum()) for k in (0, 1, 10, 11, 20, 21)]
        assert len({r.patient for r in records}) == 6  # the same stem in each split

    @pytest.mark.parametrize("value", [1, 255])
    def test_mask_values_one_or_255(self, tmp_path: Path, value: int) -> None:
        for i in range(2):
            mask = ellipse(i)
            save(picture(mask, i), tmp_path / "images" / f"a{i}.png")
            save((mask * value).astype(np.uint8), tmp_path / "masks" / f"a{i}.png")
        _, counts = unit_masks(tmp_path)
        assert counts == [int(ellipse(i).sum()) for i in range(2)]

    def test_16_bit_images(self, tmp_path: Path) -> None:
        for i in range(2):
            mask = ellipse(i)
            grey = (picture(mask, i).astype(np.uint16) * 200).astype(np.uint16)
            save(grey, tmp_path / "images" / f"x{i}.png")
            save((mask * 255).astype(np.uint8), tmp_path / "masks" / f"x{i}_mask.png")
        seg = read_segmentation_data(tmp_path)
        units, masks, _ = load_pairs(seg, PreprocessSpec(image_size=SIZE))
        inside = masks[0, 0] > 0
        assert float(units[0][inside].mean()) > float(units[0][~inside].mean()) + 0.2

    def test_a_mask_of_another_size_is_refused_in_one_line(self, tmp_path: Path) -> None:
        save(picture(ellipse(0), 0), tmp_path / "images" / "a.png")
        save(np.zeros((SIZE // 2, SIZE), np.uint8) + 255, tmp_path / "masks" / "a.png")
        seg = read_segmentation_data(tmp_path)
        with pytest.raises(DataError, match=r"a\.png: mask is 48x24 but its image a\.png is "
                           r"48x48") as err:  # fmt: skip
            load_pairs(seg, PreprocessSpec(image_size=SIZE))
        assert "give a mask of the image's size" in str(err.value)
        assert "row" not in str(err.value)  # a folder has no rows to point at

    def test_a_folder_of_masks_that_pairs_with_nothing(self, tmp_path: Path) -> None:
        save(picture(ellipse(0), 0), tmp_path / "photos" / "a.png")
        save(np.zeros((SIZE, SIZE), np.uint8), tmp_path / "masks" / "b.png")
        with pytest.raises(DataError, match="no image has a mask of the same file stem"):
            read_segmentation_data(tmp_path)

    def test_an_image_folder_is_never_taken_for_masks(self, tmp_path: Path) -> None:
        """``images/`` and ``enhanced/`` share stems, but neither is named as masks."""
        for folder in ("images", "enhanced"):
            save(picture(ellipse(0), 0), tmp_path / folder / "a.png")
        assert find_seg_layout(tmp_path) is None


class TestLossyMasks:
    def test_a_jpeg_mask_saved_again_as_png(self, tmp_path: Path) -> None:
        mask = ellipse(3)
        noisy = jpeg_bytes_roundtrip((mask * 255).astype(np.uint8))
        assert len(np.unique(noisy)) > 16 and int(noisy[~mask].max()) > 0
        path = save(noisy, tmp_path / "m.png")
        got = read_label_image(LabelImage(path))
        assert int((got != mask).sum()) <= 0.05 * int(mask.sum())

    def test_an_empty_jpeg_mask_is_empty(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(0)
        noise = rng.integers(0, 12, (SIZE, SIZE)).astype(np.uint8)
        path = save(noise, tmp_path / "m.jpg", quality=60)
        assert not read_label_image(LabelImage(path)).any()

    def test_an_instance_map_of_many_ids_keeps_every_id(self, tmp_path: Path) -> None:
        ids = np.zeros((SIZE, SIZE), np.uint8)
        for k in range(30):  # 30 nuclei of 2 x 2 pixels, ids 1..30
            ids[(k // 6) * 8 : (k // 6) * 8 + 2, (k % 6) * 8 : (k % 6) * 8 + 2] = k + 1
        path = save(ids, tmp_path / "m.png")
        assert int(read_label_image(LabelImage(path)).sum()) == 120

    def test_a_label_image_keeps_its_values(self, tmp_path: Path) -> None:
        labels = np.zeros((SIZE, SIZE), np.uint8)
        labels[5:10, 5:10], labels[20:30, 20:30] = 1, 2
        path = save(labels, tmp_path / "m.png")
        assert int(read_label_image(LabelImage(path)).sum()) == 125
        assert int(read_label_image(LabelImage(path, values=(2,))).sum()) == 100


class TestVolumes:
    def test_anisotropic_volumes_stored_in_another_orientation(self, tmp_path: Path) -> None:
        """nnU-Net v2 raw ``Dataset001_X`` (``imagesTs`` without labels, macOS ``._`` files)
        of volumes stored slice-first (z, y, x) with 0.7 x 0.9 x 5 mm voxels: the slices read
        are axial, and each image slice is bright where its mask is."""
        root = tmp_path / "nnUNet_raw" / "Dataset001_Blobs"
        for sub in ("imagesTr", "labelsTr", "imagesTs"):
            (root / sub).mkdir(parents=True)
        # array axes (z, y, x) -> world (x, y, z): a permuted, anisotropic affine
        affine = np.array([[0, 0, 0.7, 0], [0, 0.9, 0, 0], [5.0, 0, 0, 0], [0, 0, 0, 1]])
        for i in range(3):
            label = np.zeros((6, 32, 40), np.uint8)
            label[2:4, 8 + i : 20 + i, 10:30] = 1
            image = np.random.default_rng(i).normal(0, 10, label.shape) + 200 * label
            nib.save(nib.Nifti1Image(image.astype(np.float32), affine),
                     root / "imagesTr" / f"blob_{i:03d}_0000.nii.gz")  # fmt: skip
            nib.save(nib.Nifti1Image(label, affine), root / "labelsTr" / f"blob_{i:03d}.nii.gz")
            (root / "imagesTr" / f"._blob_{i:03d}_0000.nii.gz").write_bytes(b"\x00\x05")
        nib.save(nib.Nifti1Image(image.astype(np.float32), affine), root / "imagesTs" / "t.nii.gz")
        meta = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "blob": 1},
                "numTraining": 3, "file_ending": ".nii.gz"}  # fmt: skip
        (root / "dataset.json").write_text(json.dumps(meta))
        assert find_seg_layout(tmp_path / "nnUNet_raw") == (root, "msd")
        seg = read_segmentation_data(tmp_path / "nnUNet_raw")
        assert seg.data.labels == ("blob",)
        assert {r.patient for r in seg.data.records} == {"blob_000", "blob_001", "blob_002"}
        units, masks, mm = load_pairs(seg, PreprocessSpec(image_size=40))
        positive = [i for i, r in enumerate(seg.data.records) if r.labels[0] == 1.0]
        assert len(positive) == 6  # two axial slices with foreground per case
        for i in positive:
            inside = masks[i, 0] > 0
            assert int(inside.sum()) == 12 * 20  # rows (y) x columns (x) of the label's box
            assert float(units[i][inside].mean()) > float(units[i][~inside].mean()) + 0.3
        assert mm[positive[0]] == pytest.approx((0.9, 0.7))
