"""DICOM SEG export: built over the CT sample's headers, read back by highdicom and by the
app's own reader; coded segments, algorithm identification, de-identification, refusals."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest

from desktop_app.dicom.segread import read_segmentation
from desktop_app.exports.content import ModelSummary
from desktop_app.exports.seg import (
    CONTENT_DESCRIPTION,
    SEG_SERIES_DESCRIPTION,
    SegmentSpec,
    SegRequest,
    series_segmentation,
    write_segmentation,
)
from desktop_app.exports.sources import StudySources
from desktop_app.infra.errors import ExportError
from desktop_app.privacy.deid import Deidentifier
from tests.helpers.segobjects import NODULE_SLICES, copy_ct

MODEL = ModelSummary(name="ct-nodule-seg", version="1.2", tensor_sha256="ab" * 32)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StudySources]:
    folder = tmp_path_factory.mktemp("segexport")
    copy_ct(folder / "ct")
    return folder, StudySources([folder / "ct"])


def labels_for(sources: StudySources) -> tuple[str, dict[str, np.ndarray]]:
    """Two lesions on the z-sorted slices: lesion 1 on NODULE_SLICES, lesion 2 on slice 5."""
    series_uid = sources.study.series[0].series_instance_uid
    instances = sorted(
        sources.series_instances(series_uid),
        key=lambda i: i.image_position[2] if i.image_position else 0,
    )
    masks: dict[str, np.ndarray] = {}
    for k in NODULE_SLICES:
        label = np.zeros((instances[k].rows, instances[k].columns), dtype=np.uint8)
        label[140:160, 100:120] = 1
        masks[instances[k].sop_instance_uid] = label
    label = np.zeros_like(label)
    label[30:40, 30:40] = 2
    masks[instances[5].sop_instance_uid] = label
    return series_uid, masks


SEGMENTS = [
    SegmentSpec("Nodule 1", color=(255, 80, 80)),
    SegmentSpec("Nodule 2", algorithm_type="SEMIAUTOMATIC", description="edited by the reader"),
]


class TestSeriesSegmentation:
    def test_highdicom_reads_it_back(
        self, study: tuple[Path, StudySources], tmp_path: Path
    ) -> None:
        _folder, sources = study
        series_uid, masks = labels_for(sources)
        seg = series_segmentation(
            sources, series_uid, masks, SegRequest(np.zeros(0), SEGMENTS, MODEL)
        )
        path = write_segmentation(seg, tmp_path / "out" / "seg.dcm")
        assert not [p for p in path.parent.iterdir() if p.name != "seg.dcm"]  # no temp left
        back = hd.seg.segread(path)
        assert back.SeriesDescription == SEG_SERIES_DESCRIPTION
        assert back.ContentDescription == CONTENT_DESCRIPTION
        referenced = {
            r.ReferencedSOPInstanceUID
            for r in back.ReferencedSeriesSequence[0].ReferencedInstanceSequence
        }
        assert referenced == {i.sop_instance_uid for i in sources.series_instances(series_uid)}
        assert len(referenced) == 40
        first = back.get_segment_description(1)
        assert first.segment_label == "Nodule 1"
        assert first.segmented_property_type.value == "27925004"
        assert first.segmented_property_category.meaning == "Morphologically abnormal structure"
        assert first.algorithm_type.value == "AUTOMATIC"
        assert first.algorithm_identification[0].AlgorithmName == "ct-nodule-seg"
        assert first.algorithm_identification[0].AlgorithmVersion == "1.2"
        assert back.get_segment_description(2).algorithm_type.value == "SEMIAUTOMATIC"
        for sop, label in masks.items():
            got = back.get_pixels_by_source_instance(
                source_sop_instance_uids=[sop], segment_numbers=[1, 2], combine_segments=True
            )
            np.testing.assert_array_equal(got[0], label)
        assert back.NumberOfFrames == len(NODULE_SLICES) + 1  # empty frames omitted

    def test_own_reader_round_trip(self, study: tuple[Path, StudySources], tmp_path: Path) -> None:
        _folder, sources = study
        series_uid, masks = labels_for(sources)
        seg = series_segmentation(
            sources, series_uid, masks, SegRequest(np.zeros(0), SEGMENTS, MODEL)
        )
        read = read_segmentation(write_segmentation(seg, tmp_path / "seg.dcm"))
        assert read.segments[1].color == (255, 80, 80)
        assert read.segments[2].description == "edited by the reader"
        for frame in read.frames:
            np.testing.assert_array_equal(
                frame.mask, masks[frame.source_sop_instance_uid] == frame.segment_number
            )

    def test_deidentified_references_match_the_deidentified_study(
        self, study: tuple[Path, StudySources], tmp_path: Path
    ) -> None:
        folder, _sources = study
        deid = Deidentifier()
        sources = StudySources([folder / "ct"], deidentifier=deid)
        series_uid, masks = labels_for(sources)
        manual = [
            SegmentSpec("Drawn", algorithm_type="MANUAL"),
            SegmentSpec("Also drawn", algorithm_type="MANUAL"),
        ]
        seg = series_segmentation(sources, series_uid, masks, SegRequest(np.zeros(0), manual))
        back = hd.seg.segread(write_segmentation(seg, tmp_path / "deid.dcm"))
        assert back.StudyInstanceUID == deid.uid(sources.study_uid)
        refs = {
            r.ReferencedSOPInstanceUID
            for r in back.ReferencedSeriesSequence[0].ReferencedInstanceSequence
        }
        assert refs == {deid.uid(i.sop_instance_uid) for i in sources.series_instances(series_uid)}
        assert back.PatientIdentityRemoved == "YES"
        assert back.PatientName != "" and "PLACEHOLDER" not in str(back.PatientName)


class TestRefusals:
    def test_masks_off_the_grid(self, study: tuple[Path, StudySources]) -> None:
        _folder, sources = study
        series_uid, masks = labels_for(sources)
        sop = next(iter(masks))
        masks[sop] = np.ones((10, 10), dtype=np.uint8)
        with pytest.raises(ExportError, match=r"is not on the series' grid \(256, 256\)"):
            series_segmentation(
                sources, series_uid, masks, SegRequest(np.zeros(0), SEGMENTS, MODEL)
            )

    def test_automatic_segments_need_the_model(self, study: tuple[Path, StudySources]) -> None:
        _folder, sources = study
        series_uid, masks = labels_for(sources)
        with pytest.raises(ExportError, match="automatic segments need the model"):
            series_segmentation(sources, series_uid, masks, SegRequest(np.zeros(0), SEGMENTS))

    def test_label_values_beyond_the_segments(self, study: tuple[Path, StudySources]) -> None:
        _folder, sources = study
        series_uid, masks = labels_for(sources)
        with pytest.raises(ExportError, match=r"mask values 0\.\.2 do not fit 1 segment"):
            series_segmentation(
                sources, series_uid, masks, SegRequest(np.zeros(0), SEGMENTS[:1], MODEL)
            )

    def test_unknown_algorithm_type(self) -> None:
        with pytest.raises(ExportError, match="'GUESSED' is not one of"):
            SegmentSpec("x", algorithm_type="GUESSED")

    def test_images_outside_the_series(self, study: tuple[Path, StudySources]) -> None:
        _folder, sources = study
        series_uid, _masks = labels_for(sources)
        with pytest.raises(ExportError, match="1 mask"):
            series_segmentation(
                sources,
                series_uid,
                {"1.2.3": np.zeros((256, 256))},
                SegRequest(np.zeros(0), SEGMENTS, MODEL),
            )
