"""Lesion review: verdicts, brush and eraser edits, reader lesions, saving (review.lesionreview)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from desktop_app.inference.lesions import MaskGeometry, find_lesions
from desktop_app.infra.errors import ReviewStateError
from desktop_app.review.lesionfiles import pack_labels, unpack_labels
from desktop_app.review.lesionreview import SeriesLesions
from desktop_app.review.migrate import upgrade
from desktop_app.review.state import ReviewState
from desktop_app.review.store import ReviewStore

STUDY = "1.2.826.0.1.3680043.8.498.1"
KEY = "1.2.826.0.1.3680043.8.498.2#1"
GEOMETRY = MaskGeometry(pixel_spacing=(0.5, 0.5), slice_spacing=2.0)
SHAPE = (6, 32, 40)


def hu_volume() -> np.ndarray:
    return np.random.default_rng(7).normal(40.0, 10.0, SHAPE).astype(np.float32)


def series(values: bool = True) -> SeriesLesions:
    """Two model lesions: a 3-slice cube (id 1, the larger) and a 1-slice square (id 2)."""
    mask = np.zeros(SHAPE, dtype=bool)
    mask[1:4, 4:10, 4:10] = True
    mask[4, 20:24, 30:34] = True
    hu = hu_volume()
    table = find_lesions(mask, GEOMETRY, values=hu, with_labels=True)
    assert table.labels is not None
    return SeriesLesions.from_table(
        KEY,
        "1.2.826.0.1.3680043.8.498.2",
        "nodule",
        table,
        table.labels,
        GEOMETRY,
        model_sha256="ab" * 32,
        values=(lambda i: hu[i]) if values else None,
    )


def state() -> ReviewState:
    s = ReviewState(STUDY, reviewer="Dr Reader")
    s.merge_lesions(KEY, series())
    return s


def square(top: int, left: int, size: int) -> np.ndarray:
    region = np.zeros(SHAPE[1:], dtype=bool)
    region[top : top + size, left : left + size] = True
    return region


class TestEntry:
    def test_model_lesions_enter_pending_with_the_models_measurements(self) -> None:
        lesions = state().lesions_for(KEY)
        assert [(x.lesion_id, x.source, x.verdict) for x in lesions] == [
            (1, "model", "pending"),
            (2, "model", "pending"),
        ]
        big = lesions[0]
        assert big.volume_mm3 == pytest.approx(3 * 36 * 0.25 * 2.0)
        assert big.slices == (1, 3)
        assert big.longest_diameter_mm == pytest.approx(np.hypot(3.0, 2.5))  # edge midpoints
        assert big.mean_value is not None and big.max_value is not None
        assert not big.decided

    def test_no_segmentation_means_no_lesions(self) -> None:
        s = ReviewState(STUDY)
        assert s.lesions_for(KEY) == []
        assert s.lesion_labels(KEY) is None and s.reviewed_labels(KEY) is None


class TestVerdicts:
    def test_accept_reject_clear(self) -> None:
        s = state()
        a = s.accept_lesion(KEY, 1)
        assert (a.verdict, a.reviewer, a.decided) == ("accepted", "Dr Reader", True)
        assert a.updated_at is not None
        r = s.reject_lesion(KEY, 2, "fp_artefact", reviewer="Dr Other")
        assert (r.verdict, r.reason, r.reviewer) == ("rejected", "fp_artefact", "Dr Other")
        c = s.clear_lesion_verdict(KEY, 2)
        assert (c.verdict, c.reason) == ("pending", None)

    def test_unknown_reason_and_lesion_are_refused(self) -> None:
        s = state()
        with pytest.raises(ValueError, match="`reason` 'nope' should be one of"):
            s.reject_lesion(KEY, 1, "nope")
        with pytest.raises(KeyError, match="no lesion 9 on this series"):
            s.accept_lesion(KEY, 9)
        with pytest.raises(KeyError, match="has no lesions under review"):
            s.accept_lesion("other#1", 1)

    def test_reviewed_labels_keep_only_accepted_and_reader_lesions(self) -> None:
        s = state()
        s.accept_lesion(KEY, 1)
        s.reject_lesion(KEY, 2, "fp_normal_anatomy")
        new = s.paint_lesion(KEY, 0, square(25, 2, 3), None)
        labels = s.lesion_labels(KEY)
        reviewed = s.reviewed_labels(KEY)
        assert labels is not None and reviewed is not None
        assert set(np.unique(labels)) == {0, 1, 2, new}
        assert set(np.unique(reviewed)) == {0, 1, new}
        s.clear_lesion_verdict(KEY, 2)  # pending is not the reader's truth either
        assert 2 not in np.unique(s.reviewed_labels(KEY))  # type: ignore[arg-type]


class TestEdits:
    def test_brush_adds_pixels_and_measures_again(self) -> None:
        s = state()
        before = s.lesion(KEY, 1)
        painted = s.paint_lesion(KEY, 2, square(10, 4, 2), 1)  # 2 rows below the cube
        after = s.lesion(KEY, 1)
        labels = s.lesion_labels(KEY)
        assert painted == 1 and labels is not None
        assert (labels[2, 10:12, 4:6] == 1).all()
        assert after.voxels == before.voxels + 4
        assert after.volume_mm3 == pytest.approx(before.volume_mm3 + 4 * 0.25 * 2.0)  # type: ignore[operator]
        assert after.edited and after.box == (4, 4, 6, 8)
        assert after.mean_value is not None

    def test_brush_on_a_new_slice_extends_the_lesion(self) -> None:
        s = state()
        s.paint_lesion(KEY, 5, square(4, 4, 2), 1)
        assert s.lesion(KEY, 1).slices == (1, 5)  # one lesion id, two parts

    def test_erase_removes_pixels(self) -> None:
        s = state()
        before = s.lesion(KEY, 1)
        s.paint_lesion(KEY, 1, square(4, 4, 6), None, erase=True)
        after = s.lesion(KEY, 1)
        labels = s.lesion_labels(KEY)
        assert labels is not None and not (labels[1] == 1).any()
        assert after.voxels == before.voxels - 36 and after.slices == (2, 3)
        assert after.volume_mm3 == pytest.approx(2 * 36 * 0.25 * 2.0)

    def test_erasing_only_one_lesion_spares_the_others(self) -> None:
        s = state()
        s.paint_lesion(KEY, 4, square(20, 30, 4), 1)  # brush lesion 1 over lesion 2
        assert [x.lesion_id for x in s.lesions_for(KEY)] == [1]  # 2 was wholly painted over
        s.paint_lesion(KEY, 4, np.ones(SHAPE[1:], dtype=bool), 1, erase=True)
        assert s.lesion(KEY, 1).slices == (1, 3)

    def test_erasing_a_lesion_wholly_removes_it(self) -> None:
        s = state()
        s.paint_lesion(KEY, 4, square(18, 28, 8), None, erase=True)
        assert [x.lesion_id for x in s.lesions_for(KEY)] == [1]
        assert 2 not in np.unique(s.lesion_labels(KEY))  # type: ignore[arg-type]

    def test_add_a_reader_lesion(self) -> None:
        s = state()
        new = s.paint_lesion(KEY, 3, square(20, 4, 4), None)
        lesion = s.lesion(KEY, new)
        assert new == 3
        assert (lesion.source, lesion.verdict, lesion.confidence) == ("reader", "accepted", None)
        assert lesion.voxels == 16 and lesion.slices == (3, 3)
        assert lesion.volume_mm3 == pytest.approx(16 * 0.25 * 2.0)
        assert lesion.longest_diameter_mm == pytest.approx(np.hypot(2.0, 1.5))
        assert lesion.agreement == "FN"
        assert s.lesions_for(KEY)[-1].lesion_id == new

    def test_stroke_is_undone_and_redone(self) -> None:
        s = state()
        snap = s.lesion_snapshot(KEY, 2)
        s.paint_lesion(KEY, 2, square(20, 4, 4), None)
        redo = s.restore_lesions(snap)
        assert [x.lesion_id for x in s.lesions_for(KEY)] == [1, 2]
        assert not (s.lesion_labels(KEY)[2, 20:24, 4:8]).any()  # type: ignore[index]
        s.restore_lesions(redo)
        assert [x.lesion_id for x in s.lesions_for(KEY)] == [1, 2, 3]

    @pytest.mark.parametrize(
        ("slice_index", "region", "error"),
        [
            (9, np.zeros(SHAPE[1:], bool), IndexError),
            (0, np.zeros((3, 3), bool), ValueError),
            (0, np.zeros(SHAPE[1:], np.uint8), ValueError),
        ],
    )
    def test_bad_strokes_are_refused(
        self, slice_index: int, region: np.ndarray, error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            state().paint_lesion(KEY, slice_index, region, 1)

    def test_an_edit_measures_only_its_bounding_box(self) -> None:
        """A stroke on a 300 x 512 x 512 volume touches the lesion's box, not the volume:
        the values of far slices are never asked for."""
        shape = (300, 512, 512)
        labels = np.zeros(shape, dtype=np.uint16)
        labels[150:153, 100:110, 100:110] = 1
        table = find_lesions(labels, GEOMETRY)
        asked: list[int] = []

        def values(i: int) -> np.ndarray:
            asked.append(i)
            return np.zeros(shape[1:], np.float32)

        big = SeriesLesions.from_table(KEY, "", "nodule", table, labels, GEOMETRY, values=values)
        region = np.zeros(shape[1:], dtype=bool)
        region[108:112, 100:104] = True
        big.paint(151, region, 1, erase=False, reviewer="", now="")
        assert sorted(set(asked)) == [149, 150, 151, 152, 153]
        assert big.get(1).voxels == 300 + 8


class TestSaving:
    def test_round_trip(self, tmp_path) -> None:
        s = state()
        s.accept_lesion(KEY, 1)
        s.reject_lesion(KEY, 2, "duplicate")
        new = s.paint_lesion(KEY, 0, square(25, 2, 3), None)
        store = ReviewStore(tmp_path)
        path = store.save(s)
        data = json.loads(path.read_text())
        entry = data["lesions"][KEY]
        assert data["schema_version"] == 4 and "labels_npz" not in entry
        assert (tmp_path / entry["labels_file"]).stat().st_mode & 0o777 == 0o600
        back = store.load(STUDY)
        assert back is not None and back.lesion_problems == []
        assert back.lesions_for(KEY) == s.lesions_for(KEY)
        np.testing.assert_array_equal(back.lesion_labels(KEY), s.lesion_labels(KEY))  # type: ignore[arg-type]
        assert back.lesion(KEY, new).source == "reader"
        # editing the loaded review works (geometry saved); a new mask file replaces the old
        back.paint_lesion(KEY, 0, square(25, 2, 3), None, erase=True)
        store.save(back)
        assert [p.name for p in tmp_path.glob("*.labels.npz")] == [
            json.loads(path.read_text())["lesions"][KEY]["labels_file"]
        ]

    def test_in_memory_copy_carries_the_mask(self) -> None:
        s = state()
        s.paint_lesion(KEY, 0, square(25, 2, 3), None)
        copy = ReviewState.from_dict(s.to_dict())  # the export worker's own copy
        np.testing.assert_array_equal(copy.lesion_labels(KEY), s.lesion_labels(KEY))  # type: ignore[arg-type]

    def test_damaged_mask_loses_only_that_series(self, tmp_path) -> None:
        s = state()
        s.accept_lesion(KEY, 1)
        store = ReviewStore(tmp_path)
        path = store.save(s)
        mask = tmp_path / json.loads(path.read_text())["lesions"][KEY]["labels_file"]
        mask.write_bytes(mask.read_bytes()[:40])
        back = store.load(STUDY)
        assert back is not None and back.lesions_for(KEY) == []
        (problem,) = back.lesion_problems
        assert "\n" not in problem and "does not match its checksum" in problem
        store.save(back)  # saved again: the entry is kept, so nothing more is lost
        assert json.loads(path.read_text())["lesions"][KEY]["lesions"][0]["verdict"] == "accepted"

    @pytest.mark.parametrize(
        ("shape", "ids", "message"),
        [
            ((6, 32, 41), [1, 2], r"is \(6, 32, 40\), not the series' \(6, 32, 41\)"),
            ((6, 32, 40), [1], r"holds lesion ids \[2\] the review does not list"),
            ((0, 32, 40), [1, 2], "is not a"),
        ],
    )
    def test_saved_mask_is_checked(self, shape, ids, message) -> None:
        packed = pack_labels(series())
        with pytest.raises(ReviewStateError, match=message):
            unpack_labels(packed, shape, ids)

    def test_garbage_is_one_line(self) -> None:
        with pytest.raises(ReviewStateError, match=r"^lesion mask is damaged \(BadZipFile\)"):
            unpack_labels(b"PK\x03\x04 not a zip", SHAPE, [1])

    def test_a_mask_bigger_than_the_series_is_refused_before_it_is_read(self) -> None:
        import io

        buffer = io.BytesIO()
        big = np.zeros((60, 64, 64), np.uint16)
        np.savez_compressed(buffer, labels=big, offset=[0, 0, 0], shape=SHAPE)
        with pytest.raises(ReviewStateError, match="would inflate to"):
            unpack_labels(buffer.getvalue(), SHAPE, [1])

    def test_an_array_header_declaring_terabytes_is_refused_before_np_load(self) -> None:
        """1 kB on disk whose labels.npy header declares 4096³ uint16 (128 GiB): np.load
        would try to allocate it."""
        import io
        import zipfile

        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<u2", "fortran_order": False, "shape": (4096, 4096, 4096)}
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("labels.npy", header.getvalue() + b"\0" * 64)
            for name, value in (("offset", np.zeros(3, np.int64)), ("shape", np.array(SHAPE))):
                member = io.BytesIO()
                np.save(member, value)
                archive.writestr(f"{name}.npy", member.getvalue())
        assert len(buffer.getvalue()) < 2048
        with pytest.raises(ReviewStateError, match="declares arrays of 137,438,953,"):
            unpack_labels(buffer.getvalue(), SHAPE, [1])

    def test_pickled_arrays_are_refused(self) -> None:
        import io

        buffer = io.BytesIO()
        np.savez(buffer, labels=np.array([object()], dtype=object), offset=[0, 0, 0], shape=SHAPE)
        with pytest.raises(ReviewStateError, match="damaged"):
            unpack_labels(buffer.getvalue(), SHAPE, [1])

    def test_schema_3_files_gain_no_lesions(self) -> None:
        old = {"schema": "radassist-review", "schema_version": 3, "study_uid": STUDY}
        assert upgrade(old)["lesions"] == {}
        assert ReviewState.from_dict(old).lesion_sets == {}


class TestFromTheEngine:
    def test_a_segmentation_run_enters_the_review_with_its_images_and_values(
        self, tmp_path
    ) -> None:
        """The real runner (EngineRunner, ONNX Runtime) on a small CT: pending model lesions,
        one image reference per slice in stack order, and HU measured again after an edit."""
        import threading

        from desktop_app.review.runner import EngineRunner
        from desktop_app.studies.index import index_paths
        from desktop_app.studies.series import assemble
        from desktop_app.studies.volume import SeriesVolume
        from tests.helpers.modelchoice import ct_series, make_ct_segmenter

        model = make_ct_segmenter(tmp_path / "seg.safetensors")
        folder = ct_series(tmp_path / "ct", slices=3, rows=32)
        index = index_paths([str(folder)])
        (_, _, series), *_ = list(index.iter_series())
        stack = assemble(series).stacks[0]
        runner = EngineRunner(str(model), "cpu", threads=1)
        runner.load()
        key = f"{stack.series_instance_uid}#1"
        out = runner.run(stack, SeriesVolume(stack), key, lambda _d, _t: None, threading.Event())
        assert out.lesions is not None
        s = ReviewState(STUDY)
        s.merge_lesions(key, out.lesions)
        (lesion,) = s.lesions_for(key)
        assert (lesion.source, lesion.verdict, lesion.slices) == ("model", "pending", (0, 2))
        assert lesion.confidence is not None and lesion.mean_value is not None
        refs = s.lesion_set(key).slice_refs
        assert refs == tuple((ref.instance.sop_instance_uid, ref.frame) for ref in stack.slices)
        region = np.zeros((32, 32), dtype=bool)
        region[:, :16] = True
        s.paint_lesion(key, 1, region, None, erase=True)
        after = s.lesion(key, 1)
        assert after.voxels == lesion.voxels - 32 * 16
        assert after.mean_value is not None and after.edited
