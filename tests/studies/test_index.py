"""Indexing files and folders into patient -> study -> series -> instance (headers only)."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from desktop_app.dicom.limits import ReadLimits
from desktop_app.studies.index import (
    InstanceInfo,
    StudyIndex,
    hashed_uid,
    index_paths,
    patient_key,
)
from desktop_app.studies.series import assemble
from tests.helpers.dicomfiles import image_dataset, pydicom_test_file, save

STUDY_A, STUDY_B = generate_uid(), generate_uid()
SERIES_1, SERIES_2, SERIES_3 = generate_uid(), generate_uid(), generate_uid()


def write(path: Path, **elements: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(image_dataset(**elements), path)


def slice_file(path: Path, series: str, study: str, z: float, **elements: Any) -> Path:
    return write(
        path,
        StudyInstanceUID=study,
        SeriesInstanceUID=series,
        ImagePositionPatient=[0, 0, z],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
        **elements,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Two patients: A has a study with two series (3 + 1 slices), B a study with one (2)."""
    root = tmp_path / "studies"
    for i in range(3):
        slice_file(
            root / "a" / f"s1_{i}.dcm",
            SERIES_1,
            STUDY_A,
            float(i),
            PatientName="Alpha^A",
            PatientID="PA",
            SeriesNumber=1,
        )
    slice_file(
        root / "a" / "deep" / "er" / "s2.dcm",
        SERIES_2,
        STUDY_A,
        0.0,
        PatientName="Alpha^A",
        PatientID="PA",
        SeriesNumber=2,
    )
    for i in range(2):
        slice_file(
            root / "b" / f"IMG{i}",
            SERIES_3,
            STUDY_B,
            float(i),
            PatientName="Beta^B",
            PatientID="PB",
            Modality="MR",
            SeriesDescription="T1 AX",
        )
    return root


def shape_of(index: StudyIndex) -> dict[str, dict[str, dict[str, int]]]:
    return {
        p.patient_id: {
            st.study_instance_uid: {s.series_instance_uid: s.instance_count for s in st.series}
            for st in p.studies
        }
        for p in index.patients
    }


class TestIndexPaths:
    def test_groups_patient_study_series(self, tree: Path) -> None:
        index = index_paths([tree])
        assert shape_of(index) == {
            "PA": {STUDY_A: {SERIES_1: 3, SERIES_2: 1}},
            "PB": {STUDY_B: {SERIES_3: 2}},
        }
        assert index.problems == []
        assert index.skipped_non_dicom == 0
        assert index.files_seen == 6
        assert index.instance_count == 6
        mr = index.patients[1].studies[0].series[0]
        assert (mr.modality, mr.description, mr.image_count) == ("MR", "T1 AX", 2)

    def test_patient_key_is_a_hash_of_id_and_name(self, tree: Path) -> None:
        index = index_paths([tree])
        keys = [p.key for p in index.patients]
        assert keys == [patient_key("PA", "Alpha^A"), patient_key("PB", "Beta^B")]
        assert all(len(k) == 16 and "Alpha" not in k for k in keys)

    def test_patient_data_stays_out_of_repr_and_logs(
        self, tree: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG, logger="desktop_app"):
            index = index_paths([tree])
        assert index.patients[0].name == "Alpha^A"
        for text in (repr(index), caplog.text):
            assert "Alpha" not in text and "Beta" not in text

    def test_instance_fields_from_a_real_file(self) -> None:
        index = index_paths([pydicom_test_file("CT_small.dcm")])
        (info,) = list(index.iter_instances())
        assert (info.rows, info.columns, info.number_of_frames) == (128, 128, 1)
        assert info.modality == "CT"
        assert info.image_orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        assert info.image_position == pytest.approx((-158.135803, -179.035797, -75.699997))
        assert info.pixel_spacing == pytest.approx((0.661468, 0.661468))
        assert info.bits_allocated == 16 and info.pixel_representation == 1
        assert info.pixel_data is not None and info.pixel_data.length == 128 * 128 * 2
        assert index.patients[0].name == "CompressedSamples^CT1"

    def test_files_without_uids_stand_alone(self, tmp_path: Path) -> None:
        for i in range(2):
            ds = image_dataset()
            del ds.SeriesInstanceUID
            save(ds, tmp_path / f"x{i}.dcm")
        index = index_paths([tmp_path])
        assert index.series_count == 2
        assert all(s.instance_count == 1 for _, _, s in index.iter_series())

    def test_progress_and_on_instance(self, tree: Path) -> None:
        calls: list[tuple[int, int]] = []
        seen: list[InstanceInfo] = []
        index_paths([tree], progress=lambda d, t: calls.append((d, t)), on_instance=seen.append)
        assert calls[-1] == (6, 6)
        assert [d for d, _ in calls] == sorted(d for d, _ in calls)
        assert len(seen) == 6

    def test_stop_ends_the_run_early(self, tree: Path) -> None:
        stop = threading.Event()
        index = index_paths([tree], stop=stop, on_instance=lambda _: stop.set())
        assert index.stopped
        assert index.instance_count == 1

    @pytest.mark.parametrize("executor", ["serial", "threads", "processes"])
    def test_executors_give_the_same_tree(self, tree: Path, executor: str) -> None:
        index = index_paths([tree], executor=executor, workers=2)  # type: ignore[arg-type]
        assert shape_of(index) == shape_of(index_paths([tree], executor="serial"))

    def test_limits_refuse_a_file(self, tree: Path) -> None:
        index = index_paths([tree / "b"], limits=ReadLimits(max_elements=10))
        assert index.instance_count == 0
        assert [p.kind for p in index.problems] == ["LimitExceededError"] * 2
        assert all("more than 10 data elements" in p.reason for p in index.problems)

    def test_hashed_uid_is_short_and_stable(self) -> None:
        assert hashed_uid("1.2.3") == hashed_uid("1.2.3") != hashed_uid("1.2.4")
        assert len(hashed_uid("1.2.3")) == 12


class TestWhatIsSkipped:
    def test_non_dicom_files_in_a_folder_are_counted_quietly(self, tree: Path) -> None:
        (tree / "notes.txt").write_text("not an image")
        (tree / "b" / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
        (tree / "empty").write_bytes(b"")
        index = index_paths([tree])
        assert index.skipped_non_dicom == 3
        assert index.problems == []
        assert index.instance_count == 6

    def test_a_dcm_file_that_is_not_dicom_is_a_problem(self, tree: Path) -> None:
        (tree / "broken.dcm").write_text("hello")
        index = index_paths([tree])
        (problem,) = index.problems
        assert problem.path == tree / "broken.dcm"
        assert problem.kind == "NotDicomError"
        assert "\n" not in problem.one_line()

    @pytest.mark.parametrize(
        ("name", "refused"),
        [("x.dcm", True), ("X.DCM", True), ("notes.dcm.txt", False), (".dcm", False)],
    )
    def test_only_dcm_names_in_a_folder_are_expected_to_be_dicom(
        self, tmp_path: Path, name: str, refused: bool
    ) -> None:
        (tmp_path / name).write_text("hello")
        index = index_paths([tmp_path])
        assert [p.path.name for p in index.problems] == ([name] if refused else [])
        assert index.skipped_non_dicom == (0 if refused else 1)

    def test_a_named_file_that_is_not_dicom_is_a_problem(self, tmp_path: Path) -> None:
        note = tmp_path / "notes.txt"
        note.write_text("hello")
        index = index_paths([note])
        assert [p.path for p in index.problems] == [note]
        assert index.skipped_non_dicom == 0

    def test_a_missing_path_is_a_problem(self, tmp_path: Path) -> None:
        index = index_paths([tmp_path / "nope"])
        (problem,) = index.problems
        assert problem.one_line() == f"{tmp_path / 'nope'}: no such file or folder"

    def test_a_truncated_dicom_file_is_a_problem_in_a_folder(self, tree: Path) -> None:
        data = (tree / "a" / "s1_0.dcm").read_bytes()
        (tree / "cut").write_bytes(data[: len(data) // 2 + 7])
        index = index_paths([tree])
        assert [p.path.name for p in index.problems] == ["cut"]
        assert index.instance_count == 6


@pytest.mark.skipif(os.name != "posix", reason="symbolic links and FIFOs")
class TestLinksAndSpecialFiles:
    def test_symlink_loop_ends_and_each_file_counts_once(self, tree: Path) -> None:
        os.symlink(tree, tree / "a" / "loop")
        os.symlink(tree / "b", tree / "b_again")
        index = index_paths([tree, tree / "a"])
        assert index.instance_count == 6
        assert index.files_seen == 6

    def test_the_same_file_named_twice_is_indexed_once(self, tree: Path) -> None:
        f = tree / "a" / "s1_0.dcm"
        link = tree.parent / "link.dcm"
        os.symlink(f, link)
        index = index_paths([f, f, link])
        assert index.instance_count == 1

    def test_a_linked_file_in_a_folder_counts_once(self, tree: Path) -> None:
        os.symlink(tree / "a" / "s1_0.dcm", tree / "b" / "alias.dcm")
        index = index_paths([tree])
        assert index.instance_count == 6 and index.files_seen == 6

    def test_a_folder_named_through_a_link_and_its_file_named_directly(self, tree: Path) -> None:
        link = tree.parent / "link_to_tree"
        os.symlink(tree, link)
        index = index_paths([link, tree / "a" / "s1_0.dcm", tree / "b"])
        assert index.instance_count == 6 and index.files_seen == 6

    def test_a_fifo_is_never_opened(self, tmp_path: Path) -> None:
        fifo = tmp_path / "pipe.dcm"
        os.mkfifo(fifo)
        index = index_paths([tmp_path])  # in a folder: skipped, the walk does not block
        assert index.skipped_non_dicom == 1 and index.problems == []
        named = index_paths([fifo])  # named: refused, still without opening it
        assert [p.reason for p in named.problems] == [
            "not a regular file (a device, pipe or socket)"
        ]


def _item(**elements: Any) -> Dataset:
    ds = Dataset()
    for key, value in elements.items():
        setattr(ds, key, value)
    return ds


class TestMultiframeGeometry:
    def test_enhanced_per_frame_positions(self, tmp_path: Path) -> None:
        z = [3.0, 0.0, 2.0, 1.0]
        shared = _item(
            PlaneOrientationSequence=Sequence([_item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])]),
            PixelMeasuresSequence=Sequence([_item(PixelSpacing=[0.5, 0.5], SliceThickness=1)]),
        )
        per_frame = Sequence(
            [
                _item(PlanePositionSequence=Sequence([_item(ImagePositionPatient=[0, 0, v])]))
                for v in z
            ]
        )
        path = write(
            tmp_path / "enhanced.dcm",
            frames=4,
            SharedFunctionalGroupsSequence=Sequence([shared]),
            PerFrameFunctionalGroupsSequence=per_frame,
        )
        (info,) = list(index_paths([path]).iter_instances())
        assert info.number_of_frames == 4
        assert info.frame_positions == tuple((0.0, 0.0, v) for v in z)
        assert info.image_orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        assert info.pixel_spacing == (0.5, 0.5)
        ((_, _, series),) = list(index_paths([path]).iter_series())
        (stack,) = assemble(series).stacks
        assert [r.frame for r in stack.slices] == [0, 2, 3, 1]  # head first: z 3, 2, 1, 0

    def test_rt_dose_grid_frame_offsets(self, tmp_path: Path) -> None:
        path = write(
            tmp_path / "dose.dcm",
            frames=3,
            ImagePositionPatient=[10, 20, 30],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            GridFrameOffsetVector=[0, 2.5, 5],
        )
        (info,) = list(index_paths([path]).iter_instances())
        assert info.frame_positions == ((10.0, 20.0, 30.0), (10.0, 20.0, 32.5), (10.0, 20.0, 35.0))
