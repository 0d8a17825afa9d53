"""A manifest's ``mask`` column from PNG, NIfTI, DICOM SEG and RTSTRUCT gives the PNG's mask;
bad masks fail with one-line DataErrors."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from desktop_app.infra.errors import DataError
from desktop_app.model.preprocessing import PreprocessSpec
from tests.helpers.segobjects import (
    NODULE_SLICES,
    copy_ct,
    ct_slices,
    nodule_masks,
    write_rtstruct,
    write_seg,
)
from training.segdata import load_pairs, read_segmentation_data
from training.segmasks import read_volume

SPEC = PreprocessSpec(image_size=64)
PICKED = (10, 19, 20, 22)  # slice 10: only "Nodule B" of the SEG; 19-22: the nodule; 22: small


def write_manifest(folder: Path, rows: Sequence[Mapping[str, object]]) -> Path:
    path = folder / "manifest.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], np.ndarray]:
    """The CT sample's slices (z-sorted paths), a SEG and an RTSTRUCT beside them, and the
    SEG's "Nodule A" masks."""
    folder = tmp_path_factory.mktemp("ct")
    files = copy_ct(folder / "images")
    slices = ct_slices(files)
    by_uid = {str(pydicom.dcmread(p).SOPInstanceUID): p for p in files}
    paths = [by_uid[str(d.SOPInstanceUID)] for d in slices]
    write_seg(folder, slices)
    write_rtstruct(folder, slices)
    return folder, paths, nodule_masks(slices)


def _png_rows(folder: Path, paths: list[Path], masks: np.ndarray) -> list[dict[str, object]]:
    (folder / "png").mkdir(exist_ok=True)
    rows = []
    for k in PICKED:
        Image.fromarray(masks[k].astype(np.uint8) * 255).save(folder / f"png/{k}.png")
        rows.append({"path": paths[k].relative_to(folder), "mask": f"png/{k}.png"})
    return rows


class TestSegMask:
    def test_the_named_segment_equals_the_png(
        self, ct: tuple[Path, list[Path], np.ndarray]
    ) -> None:
        folder, paths, masks = ct
        png = write_manifest(folder, _png_rows(folder, paths, masks))
        want = load_pairs(read_segmentation_data(png), SPEC)[1]
        rows = [{"path": paths[k].relative_to(folder), "mask": "seg.dcm"} for k in PICKED]
        seg = read_segmentation_data(write_manifest(folder, rows), ["Nodule A"])
        assert seg.data.labels == ("Nodule A",)
        assert [r.labels[0] for r in seg.data.records] == [0.0, 1.0, 1.0, 1.0]
        got = load_pairs(seg, SPEC)[1]
        assert np.array_equal(got.numpy(), want.numpy())

    def test_any_segment_without_labels(self, ct: tuple[Path, list[Path], np.ndarray]) -> None:
        folder, paths, _ = ct
        rows = [{"path": paths[k].relative_to(folder), "mask": "seg.dcm"} for k in PICKED]
        seg = read_segmentation_data(write_manifest(folder, rows))
        assert seg.data.labels == ("lesion",)
        assert [r.labels[0] for r in seg.data.records] == [1.0, 1.0, 1.0, 1.0]  # B on slice 10

    def test_an_unknown_segment_name_lists_those_there(
        self, ct: tuple[Path, list[Path], np.ndarray]
    ) -> None:
        folder, paths, _ = ct
        rows = [{"path": paths[19].relative_to(folder), "mask": "seg.dcm"}]
        with pytest.raises(DataError, match="no segment named Liver; it has: Nodule A, Nodule B"):
            read_segmentation_data(write_manifest(folder, rows), ["Liver"])

    def test_a_seg_of_another_image_is_refused(
        self, ct: tuple[Path, list[Path], np.ndarray], tmp_path: Path
    ) -> None:
        folder = ct[0]
        other = tmp_path / "other.png"
        Image.fromarray(np.zeros((256, 256), np.uint8)).save(other)
        rows = [{"path": other, "mask": folder / "seg.dcm"}]
        with pytest.raises(DataError) as err:
            read_segmentation_data(write_manifest(tmp_path, rows))
        assert "row 2: " in str(err.value) and "must be DICOM" in str(err.value)
        assert "\n" not in str(err.value)


class TestRtstructMask:
    def test_the_lesion_roi_matches_its_disc(self, ct: tuple[Path, list[Path], np.ndarray]) -> None:
        folder, paths, _ = ct
        rows = [{"path": paths[k].relative_to(folder), "mask": "rtstruct.dcm"} for k in PICKED]
        seg = read_segmentation_data(write_manifest(folder, rows), ["lesion"])
        assert [r.labels[0] for r in seg.data.records] == [0.0, 1.0, 1.0, 1.0]
        got = load_pairs(seg, PreprocessSpec(image_size=256))[1].numpy()[:, 0] > 0
        yy, xx = np.mgrid[:256, :256]
        disc = (yy - 150) ** 2 + (xx - 110) ** 2 <= 100  # the 24-gon of radius 10 px
        for k in range(1, 4):
            inter = (got[k] & disc).sum()
            assert inter / (got[k] | disc).sum() > 0.9
        assert not got[0].any()

    def test_every_roi_without_labels(self, ct: tuple[Path, list[Path], np.ndarray]) -> None:
        folder, paths, _ = ct
        rows = [{"path": paths[20].relative_to(folder), "mask": "rtstruct.dcm"}]
        seg = read_segmentation_data(write_manifest(folder, rows))
        got = load_pairs(seg, PreprocessSpec(image_size=256))[1].numpy()[0, 0] > 0
        assert got.sum() > np.pi * 85**2  # the body ring (radius 90) is there too


class TestNiftiMask:
    def test_a_2d_nifti_taken_as_stored_equals_the_png(
        self, ct: tuple[Path, list[Path], np.ndarray]
    ) -> None:
        folder, paths, masks = ct
        (folder / "nii").mkdir(exist_ok=True)
        rows = []
        for k in PICKED:
            nib.save(
                nib.Nifti1Image(masks[k].astype(np.uint8), np.eye(4)), folder / f"nii/{k}.nii.gz"
            )
            rows.append({"path": paths[k].relative_to(folder), "mask": f"nii/{k}.nii.gz"})
        got = load_pairs(read_segmentation_data(write_manifest(folder, rows)), SPEC)[1]
        png = write_manifest(folder, _png_rows(folder, paths, masks))
        want = load_pairs(read_segmentation_data(png), SPEC)[1]
        assert np.array_equal(got.numpy(), want.numpy())

    def test_a_3d_nifti_with_a_slice_column(self, ct: tuple[Path, list[Path], np.ndarray]) -> None:
        folder, paths, masks = ct
        stack = np.moveaxis(masks.astype(np.uint8), 0, -1)  # (rows, cols, slices) as stored
        nib.save(nib.Nifti1Image(stack, np.eye(4)), folder / "stack.nii.gz")
        rows = [{"path": paths[k].relative_to(folder), "mask": "stack.nii.gz", "slice": k}
                for k in PICKED]  # fmt: skip
        got = load_pairs(read_segmentation_data(write_manifest(folder, rows)), SPEC)[1]
        png = write_manifest(folder, _png_rows(folder, paths, masks))
        want = load_pairs(read_segmentation_data(png), SPEC)[1]
        assert np.array_equal(got.numpy(), want.numpy())

    def test_nifti_image_and_label_volumes_line_up_whatever_their_orientation(
        self, tmp_path: Path
    ) -> None:
        rng = np.random.default_rng(0)
        image = rng.normal(0, 1, (20, 24, 6)).astype(np.float32)
        label = np.zeros((20, 24, 6), np.uint8)
        label[3:9, 5:12, 2:4] = 1
        image[label > 0] += 8
        ras = np.diag([0.8, 0.8, 2.5, 1.0])
        lps = ras @ np.diag([-1, -1, 1, 1])  # the label stored flipped in x and y
        nib.save(nib.Nifti1Image(image, ras), tmp_path / "image.nii.gz")
        nib.save(nib.Nifti1Image(label[::-1, ::-1].copy(), lps), tmp_path / "label.nii.gz")
        a, spacing = read_volume(tmp_path / "image.nii.gz")
        b, _ = read_volume(tmp_path / "label.nii.gz")
        assert a.shape == b.shape == (6, 24, 20) and spacing == pytest.approx((0.8, 0.8))
        assert a[b > 0].mean() > 6 > a[b == 0].mean()
        rows = [{"path": "image.nii.gz", "mask": "label.nii.gz", "slice": z} for z in range(6)]
        seg = read_segmentation_data(write_manifest(tmp_path, rows))
        assert [r.labels[0] for r in seg.data.records] == [0, 0, 1, 1, 0, 0]
        _, got, mm = load_pairs(seg, PreprocessSpec(image_size=48))  # twice the 24 rows
        assert abs(int(got.numpy()[2, 0].sum()) - 4 * 6 * 7) <= 30
        assert np.allclose(mm, 0.4)

    def test_a_label_volume_of_another_shape_is_refused(self, tmp_path: Path) -> None:
        nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), tmp_path / "i.nii")
        nib.save(nib.Nifti1Image(np.ones((8, 8, 5), np.uint8), np.eye(4)), tmp_path / "l.nii")
        seg = read_segmentation_data(
            write_manifest(tmp_path, [{"path": "i.nii", "mask": "l.nii", "slice": 1}])
        )
        with pytest.raises(DataError, match=r"row 2: l.nii: NIfTI label is 8x8x5 .* is 8x8x4"):
            load_pairs(seg, SPEC)


class TestBadMasks:
    def test_a_png_of_another_size(self, tmp_path: Path) -> None:
        Image.fromarray(np.zeros((32, 40), np.uint8)).save(tmp_path / "i.png")
        Image.fromarray(np.ones((32, 32), np.uint8)).save(tmp_path / "m.png")
        seg = read_segmentation_data(write_manifest(tmp_path, [{"path": "i.png", "mask": "m.png"}]))
        with pytest.raises(
            DataError, match=r"row 2: m\.png: mask is 32x32 but its image i\.png is 40x32"
        ):
            load_pairs(seg, SPEC)

    def test_a_slice_that_is_not_a_number(self, tmp_path: Path) -> None:
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "i.png")
        rows = [{"path": "i.png", "mask": "i.png", "slice": "two"}]
        with pytest.raises(DataError, match="row 2: slice 'two' is not a whole number"):
            read_segmentation_data(write_manifest(tmp_path, rows))


def test_the_nodule_slices_are_the_seg_ones() -> None:
    assert list(NODULE_SLICES) == [18, 19, 20, 21, 22]
