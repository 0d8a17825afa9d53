"""The reader's truth per label: verdicts that never drift with a threshold, agreement derived
from them, missed findings as false negatives, a normal study in one step, and schema-1 review
files upgraded on load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from desktop_app.review.migrate import upgrade
from desktop_app.review.state import (
    ABSENT,
    ACCEPTED,
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    PENDING,
    PRESENT,
    REJECTED,
    TRUE_NEGATIVE,
    TRUE_POSITIVE,
    UNCERTAIN,
    ReviewState,
    agreement,
    reasons_for,
)
from desktop_app.review.store import ReviewStore
from tests.review.test_review import MODEL, STUDY, finding

LABELS = ("nodule", "effusion", "mass", "cardiomegaly")


def study(probabilities: dict[str, float], threshold: float = 0.5) -> ReviewState:
    s = ReviewState(STUDY, reviewer="Dr Reader")
    s.merge_findings([finding(label, p, threshold) for label, p in probabilities.items()], MODEL)
    return s


def verdicts(s: ReviewState) -> list[tuple[object, ...]]:
    return [
        (f.truth, f.reason, f.verdict_probability, f.verdict_threshold, f.verdict, f.edited_box)
        for f in s.findings
    ]


class TestAgreement:
    @pytest.mark.parametrize(
        ("truth", "positive", "expected"),
        [
            (PRESENT, True, TRUE_POSITIVE),
            (PRESENT, False, FALSE_NEGATIVE),
            (ABSENT, True, FALSE_POSITIVE),
            (ABSENT, False, TRUE_NEGATIVE),
            (UNCERTAIN, True, None),
            (PENDING, False, None),
        ],
    )
    def test_table(self, truth: str, positive: bool, expected: str | None) -> None:
        assert agreement(truth, positive) == expected

    def test_reasons_fit_the_direction(self) -> None:
        assert "fp_artefact" in reasons_for(True) and "fp_artefact" not in reasons_for(False)
        assert "fn_subtle" in reasons_for(False) and "fn_subtle" not in reasons_for(True)


class TestThresholdNeverEditsAVerdict:
    def test_many_thresholds_many_studies(self) -> None:
        """Property-style: over seeded random studies, verdicts and thresholds, no threshold
        move changes any stored verdict; agreement follows the threshold in force."""
        rng = np.random.default_rng(14)
        for _ in range(40):
            s = study({label: float(rng.random()) for label in LABELS})
            for f in s.findings:
                choice = rng.integers(4)
                if choice == 0:
                    s.set_truth(f.finding_id, PRESENT)
                elif choice == 1:
                    s.set_truth(f.finding_id, ABSENT, "other")
                elif choice == 2:
                    s.set_truth(f.finding_id, UNCERTAIN)
            before = verdicts(s)
            for value in [0.0, 1.0, *rng.random(25)]:
                label = LABELS[int(rng.integers(len(LABELS)))]
                s.set_threshold(label, float(value))
                assert verdicts(s) == before
                for f in s.findings:
                    assert s.agreement(f) == agreement(
                        f.truth, f.probability >= s.threshold(f.label)
                    )
                s.reset_threshold(label)
                assert verdicts(s) == before
            restored = ReviewState.from_dict(json.loads(json.dumps(s.to_dict())))
            assert verdicts(restored) == before

    def test_the_reported_case_a_negative_stays_absent_at_threshold_zero(self) -> None:
        s = study({"effusion": 0.0003})
        s.accept("s#0:effusion")  # agree with the negative call
        f = s.find("s#0:effusion")
        assert (f.truth, f.verdict, s.agreement(f)) == (ABSENT, ACCEPTED, TRUE_NEGATIVE)
        s.set_threshold("effusion", 0.0)
        assert s.positive(f)  # the model's call moved ...
        assert (f.truth, f.verdict) == (ABSENT, ACCEPTED)  # ... the verdict did not
        assert s.agreement(f) == FALSE_POSITIVE  # agreement is re-derived
        assert (f.verdict_probability, f.verdict_threshold) == (0.0003, 0.5)
        assert f.model_positive_at_verdict is False


class TestMissedFinding:
    def test_added_finding_is_a_false_negative(self) -> None:
        s = study({"nodule": 0.9, "mass": 0.1})
        f = s.add_missed("s#0", "mass", (5, 6, 20, 10), slice_index=7, sop_instance_uid="9.9")
        assert (f.truth, f.added, f.edited_box) == (PRESENT, True, (5.0, 6.0, 20.0, 10.0))
        assert f.shown_box == (5.0, 6.0, 20.0, 10.0) and f.shown_outline == []
        assert (f.shown_slice_index, f.box_sop_instance_uid) == (7, "9.9")
        assert s.agreement(f) == FALSE_NEGATIVE
        assert f.verdict == REJECTED  # the model's negative call was wrong
        truths = {t.label: t for t in s.label_truths("s#0")}
        assert truths["mass"].agreement_now == FALSE_NEGATIVE
        assert truths["mass"].model_positive_at_verdict is False
        assert truths["mass"].reader_box == (5.0, 6.0, 20.0, 10.0) and truths["mass"].added
        assert truths["nodule"].truth == PENDING and truths["nodule"].agreement_now is None

    def test_added_box_survives_a_rerun_and_a_save(self, tmp_path) -> None:
        s = study({"mass": 0.1})
        s.add_missed("s#0", "mass", (5, 6, 20, 10), slice_index=2, reviewer="Dr B")
        s.merge_findings([finding("mass", 0.1)], MODEL)  # the same model again
        store = ReviewStore(tmp_path)
        store.save(s)
        f = store.load(STUDY).find("s#0:mass")  # type: ignore[union-attr]
        assert (f.truth, f.added, f.box_slice_index, f.reviewer) == (PRESENT, True, 2, "Dr B")

    def test_clearing_removes_the_drawn_box(self) -> None:
        s = study({"mass": 0.1})
        s.add_missed("s#0", "mass", (5, 6, 20, 10), slice_index=2)
        f = s.clear_verdict("s#0:mass")
        assert (f.truth, f.added, f.edited_box, f.shown_box) == (PENDING, False, None, f.box)

    def test_unknown_label_is_refused(self) -> None:
        s = study({"mass": 0.1})
        with pytest.raises(KeyError, match="no finding 's#0:tumour'"):
            s.add_missed("s#0", "tumour", (5, 6, 20, 10), slice_index=0)

    def test_bad_box_is_refused(self) -> None:
        s = study({"mass": 0.1})
        with pytest.raises(ValueError, match="should be positive"):
            s.add_missed("s#0", "mass", (5, 6, 0, 10), slice_index=0)


def test_normal_study_marks_only_the_remaining_labels_absent() -> None:
    s = study({"nodule": 0.9, "effusion": 0.2, "mass": 0.1})
    s.set_truth("s#0:nodule", PRESENT)
    marked = s.mark_remaining_absent("s#0", reviewer="Dr C")
    assert marked == ["s#0:effusion", "s#0:mass"]
    assert [f.truth for f in s.findings] == [PRESENT, ABSENT, ABSENT]
    assert s.find("s#0:mass").reviewer == "Dr C"
    assert s.mark_remaining_absent("s#0") == []


def test_set_truth_refuses_unknown_values() -> None:
    s = study({"nodule": 0.9})
    with pytest.raises(ValueError, match="`truth` 'maybe' should be one of"):
        s.set_truth("s#0:nodule", "maybe")
    with pytest.raises(ValueError, match="`reason` 'bad' should be one of"):
        s.set_truth("s#0:nodule", ABSENT, "bad")


def schema1_file(thresholds: dict[str, float]) -> dict[str, object]:
    """A review file as RadAssist wrote it before the reader's truth (schema 1), by hand."""

    def old(label: str, p: float, verdict: str, reason: str | None = None) -> dict[str, object]:
        return {
            "finding_id": f"s#0:{label}", "label": label, "series_key": "s#0",
            "series_uid": "1.2.3", "probability": p, "model_threshold": 0.5,
            "slice_index": 1, "sop_instance_uid": "1.2.3.4", "frame": 0,
            "box": [1, 2, 3, 4], "outline": [], "verdict": verdict, "reason": reason,
            "note": "n", "edited_box": None, "reviewer": "Dr Old",
            "updated": "2024-01-02T03:04:05.000000Z",
        }  # fmt: skip

    return {
        "schema": "radassist-review",
        "schema_version": 1,
        "study_uid": STUDY,
        "reviewer": "Dr Old",
        "created": "2024-01-01T00:00:00.000000Z",
        "updated": "2024-01-02T03:04:05.000000Z",
        "model": {"name": "demo", "version": "1.0", "sha256": "a" * 64},
        "thresholds": thresholds,
        "findings": [
            old("nodule", 0.9, "accepted"),
            old("effusion", 0.1, "accepted"),
            old("mass", 0.8, "rejected", "fp_artefact"),
            old("atelectasis", 0.2, "rejected", "other"),
            old("cardiomegaly", 0.7, "pending"),
        ],
    }


class TestSchema1Files:
    def test_old_file_loads_with_the_agreed_mapping(self, tmp_path) -> None:
        store = ReviewStore(tmp_path)
        store.path_for(STUDY).write_text(json.dumps(schema1_file({})))
        s = store.load(STUDY)
        assert s is not None
        got = {f.label: (f.truth, f.reason, f.verdict) for f in s.findings}
        assert got == {
            "nodule": (PRESENT, None, ACCEPTED),
            "effusion": (ABSENT, None, ACCEPTED),
            "mass": (ABSENT, "fp_artefact", REJECTED),
            "atelectasis": (PRESENT, "other", REJECTED),
            "cardiomegaly": (PENDING, None, PENDING),
        }
        mass = s.find("s#0:mass")
        assert (mass.verdict_probability, mass.verdict_threshold, mass.reviewer) == (
            0.8,
            0.5,
            "Dr Old",
        )
        assert s.find("s#0:cardiomegaly").verdict_threshold is None
        store.save(s)  # written back in the current schema (3: with annotations)
        assert json.loads(store.path_for(STUDY).read_text())["schema_version"] == 4

    def test_the_reader_threshold_in_the_file_decides_the_old_call(self) -> None:
        s = ReviewState.from_dict(schema1_file({"nodule": 0.95}))
        nodule = s.find("s#0:nodule")  # accepted while negative at 0.95: absent
        assert (nodule.truth, nodule.verdict_threshold) == (ABSENT, 0.95)

    def test_a_newer_schema_is_refused_with_what_to_do(self) -> None:
        with pytest.raises(ValueError, match=r"version 5 is not supported.*RadAssist that wrote"):
            upgrade({"schema": "radassist-review", "schema_version": 5})

    def test_an_unknown_old_verdict_is_refused(self) -> None:
        data = schema1_file({})
        data["findings"][0]["verdict"] = "maybe"  # type: ignore[index]
        with pytest.raises(ValueError, match="unknown verdict 'maybe'"):
            ReviewState.from_dict(data)
