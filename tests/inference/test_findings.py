"""desktop_app.inference.findings: the result dataclasses and their versioned JSON."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from desktop_app.inference.findings import (
    SCHEMA_NAME,
    SCHEMA_VERSION,
    Finding,
    FindingsFormatError,
    ModelInfo,
    ResultSlice,
    SeriesResult,
    Timings,
)
from desktop_app.inference.inputcheck import InputCheck
from desktop_app.infra.hashedpaths import uid_hash

MODEL = ModelInfo(
    "demo", "2", "efficientnet-lite0", "ab" * 32, ("nodule", "effusion"), "m.safetensors"
)
TIMINGS = Timings(preprocess=0.1, network=0.2, gradcam=0.3, postprocess=0.05, total=0.7)


def _result() -> SeriesResult:
    heat = np.zeros((4, 6), np.float32)
    heat[1, 2] = 1.0
    findings = [
        Finding(
            label="nodule",
            probability=0.9312345678,
            threshold=0.41,
            positive=True,
            slice_index=1,
            sop_instance_uid="1.2.3.2",
            frame=0,
            box=(2.0, 1.0, 1.0, 1.0),
            outline=((2.0, 1.0), (3.0, 1.0), (3.0, 2.0), (2.0, 2.0)),
            peak=(2.5, 1.5),
            heatmap=heat,
            model=MODEL,
            device="cpu",
            timings=TIMINGS,
            gradcam_seconds=0.3,
            heatmap_method="layercam",
        ),
        Finding(
            label="effusion",
            probability=0.12,
            threshold=0.5,
            positive=False,
            slice_index=0,
            sop_instance_uid="1.2.3.1",
            threshold_source="user",
            model=MODEL,
            device="cpu",
            timings=TIMINGS,
        ),
    ]
    return SeriesResult(
        findings=findings,
        model=MODEL,
        device="cpu",
        backend="onnxruntime",
        slices=[ResultSlice(0, "1.2.3.1", 0, 4, 6), ResultSlice(1, "1.2.3.2", 0, 4, 6)],
        probabilities=np.array([[0.2, 0.12], [0.9312345678, np.nan]], np.float32),
        timings=TIMINGS,
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.3.0",
        modality="CT",
        warnings=["cuda:0 failed at start (out of memory); running on the CPU instead"],
        unreadable=[("/data/x.dcm", "/data/x.dcm: truncated")],
    )


def _round_trip(result: SeriesResult, files: dict[str, str] | None = None) -> SeriesResult:
    return SeriesResult.from_json(json.loads(json.dumps(result.to_json(files))))


class TestJson:
    def test_a_1_0_document_s_heatmaps_were_cam(self) -> None:
        doc = json.loads(json.dumps(_result().to_json({"nodule": "heatmap_0_nodule.png"})))
        doc["schema_version"] = "1.0"
        for f in doc["findings"]:
            del f["heatmap_method"]
        back = SeriesResult.from_json(doc)
        assert [f.heatmap_method for f in back.findings] == ["cam", None]

    def test_round_trip_keeps_everything_but_the_heatmap_arrays(self) -> None:
        result = _result()
        back = _round_trip(result, {"nodule": "heatmap_0_nodule.png"})
        assert back.findings == result.findings  # every compared field, floats exactly
        assert back.findings[0].heatmap is None
        np.testing.assert_array_equal(back.probabilities, result.probabilities)
        for name in (
            "slices", "study_instance_uid", "series_instance_uid", "modality", "part", "parts",
            "warnings", "unreadable", "created", "device", "backend", "model", "timings",
        ):  # fmt: skip
            assert getattr(back, name) == getattr(result, name), name
        assert back.findings[0].model == MODEL and back.findings[0].device == "cpu"

    def test_schema_fields_and_heatmap_file(self) -> None:
        doc = _result().to_json({"nodule": "heatmap_0_nodule.png"})
        assert doc["schema"] == SCHEMA_NAME == "radassist-findings"
        assert doc["schema_version"] == SCHEMA_VERSION == "1.3"
        assert doc["series"]["input_check"] == {
            "applicable": True,
            "in_distribution": None,
            "ood_score": None,
            "ood_threshold": None,
            "reasons": [],
            "forced": False,
        }
        assert doc["slice_ood_scores"] is None
        assert doc["series"]["series_uid_hash"] == uid_hash("1.2.3.0")
        nodule, effusion = doc["findings"]
        assert nodule["heatmap"] == {"file": "heatmap_0_nodule.png", "rows": 4, "columns": 6}
        assert effusion["heatmap"] is None and effusion["box"] is None
        assert nodule["box"] == {"x": 2.0, "y": 1.0, "width": 1.0, "height": 1.0}
        assert effusion["slice_probabilities"][1] is None  # NaN is not JSON
        assert "Research use only" in doc["notice"]
        json.dumps(doc, allow_nan=False)  # strict JSON

    def test_input_check_and_ood_round_trip(self) -> None:
        check = InputCheck(False, ("This model is for CR/DX radiographs; this series is CT",),
                           True, False, 7.5, 3.25)  # fmt: skip
        result = replace(
            _result(), input_check=check, ood_scores=np.array([7.5, np.nan])
        ).with_thresholds({})
        result.findings[0] = replace(
            result.findings[0], ood_score=7.5, out_of_distribution=True, out_of_scope=True,
            unreliable=True,
        )  # fmt: skip
        doc = json.loads(json.dumps(result.to_json(), allow_nan=False))
        assert doc["series"]["input_check"]["forced"] is True
        assert doc["slice_ood_scores"] == [7.5, None]
        back = SeriesResult.from_json(doc)
        assert back.input_check == check
        assert back.findings[0].unreliable and back.findings[0].ood_score == 7.5
        assert back.ood_scores is not None and np.isnan(back.ood_scores[1])

    def test_a_1_1_document_reads_as_checked_and_unflagged(self) -> None:
        doc = _result().to_json()
        doc["schema_version"] = "1.1"
        del doc["series"]["input_check"], doc["slice_ood_scores"]
        back = SeriesResult.from_json(doc)
        assert back.input_check == InputCheck() and back.ood_scores is None

    def test_minor_version_and_unknown_fields_are_read(self) -> None:
        doc = _result().to_json()
        doc["schema_version"] = "1.7"
        doc["something_new"] = {"x": 1}
        doc["findings"][0]["also_new"] = True
        assert SeriesResult.from_json(doc).findings[0].label == "nodule"

    @pytest.mark.parametrize(
        ("edit", "message"),
        [
            (lambda d: d.update(schema_version="2.0"), "schema version 2.0 is newer than this"),
            (lambda d: d.update(schema="radassist-inspect"), "not a RadAssist findings document"),
            (lambda d: d.update(schema_version="x"), "schema_version 'x' is not MAJOR.MINOR"),
            (lambda d: d["findings"][0].pop("label"), r"findings\[\]\.label is missing"),
            (lambda d: d["findings"][0].update(positive="yes"), "must be true or false"),
            (lambda d: d["findings"][0].update(probability="0.9"), "must be a number"),
            (
                lambda d: d["findings"][0]["slice_probabilities"].pop(),
                "finding 0 has 1 slice probabilities for 2 slices",
            ),
            (lambda d: d["findings"][0].update(outline=[[1, 2, 3]]), "is not \\[x, y\\]"),
            (lambda d: d.update(findings={}), "findings must be a list"),
        ],
    )
    def test_refuses_bad_documents(self, edit: Any, message: str) -> None:
        doc = copy.deepcopy(_result().to_json())
        edit(doc)
        with pytest.raises(FindingsFormatError, match=message):
            SeriesResult.from_json(doc)


class TestThresholds:
    @pytest.mark.parametrize(("threshold", "positive"), [(0.93, True), (0.95, False), (0.0, True)])
    def test_with_threshold_re_decides(self, threshold: float, positive: bool) -> None:
        f = _result().findings[0].with_threshold(threshold)
        assert f.positive is positive
        assert f.threshold == threshold and f.threshold_source == "user"
        assert f.box == (2.0, 1.0, 1.0, 1.0)  # the location stays

    @pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
    def test_with_threshold_refuses_out_of_range(self, bad: float) -> None:
        with pytest.raises(ValueError, match="not a number in \\[0, 1\\]"):
            _result().findings[0].with_threshold(bad)

    def test_with_thresholds_on_the_result(self) -> None:
        result = _result().with_thresholds({"effusion": 0.1})
        assert [f.positive for f in result.findings] == [True, True]
        with pytest.raises(KeyError, match="no finding for label 'edema'"):
            result.with_thresholds({"edema": 0.2})


class TestQueries:
    def test_positives_key_finding_and_lookup(self) -> None:
        result = _result()
        assert [f.label for f in result.positives] == ["nodule"]
        assert result.key_finding().label == "nodule"
        assert result.finding("effusion").probability == pytest.approx(0.12)
        with pytest.raises(KeyError, match="labels: nodule, effusion"):
            result.finding("edema")
        assert result.slice_count == 2 and result.labels == ("nodule", "effusion")

    def test_key_finding_without_positives_is_the_most_probable(self) -> None:
        result = _result().with_thresholds({"nodule": 0.99})
        assert not result.positives
        assert result.key_finding().label == "nodule"

    def test_summary(self) -> None:
        result = _result()
        assert result.findings[0].summary() == "nodule 0.93 (threshold 0.41): positive on slice 1"
