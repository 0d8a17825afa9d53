"""Review state: verdicts, notes, edited boxes, live thresholds, merging re-runs, atomic files."""

from __future__ import annotations

import json
import os
import stat

import pytest

from desktop_app.infra.errors import ReviewStateError
from desktop_app.review.state import (
    ABSENT,
    ACCEPTED,
    FALSE_NEGATIVE_REASONS,
    FALSE_POSITIVE_REASONS,
    PENDING,
    PRESENT,
    REJECT_REASONS,
    REJECTED,
    UNCERTAIN,
    FindingReview,
    ModelRef,
    ReviewState,
    is_positive,
)
from desktop_app.review.store import ReviewStore

STUDY = "1.2.826.0.1.3680043.8.498.1"
MODEL = ModelRef("demo", "1.0", "a" * 64)


def finding(
    label: str, probability: float, threshold: float = 0.5, series: str = "s#0"
) -> FindingReview:
    return FindingReview(
        finding_id=f"{series}:{label}",
        label=label,
        series_key=series,
        series_uid="1.2.3",
        probability=probability,
        model_threshold=threshold,
        slice_index=3,
        sop_instance_uid="1.2.3.4",
        box=(10.0, 20.0, 30.0, 40.0),
        outline=[[(10.0, 20.0), (40.0, 20.0), (40.0, 60.0)]],
    )


def state() -> ReviewState:
    s = ReviewState(STUDY, reviewer="dr-a")
    s.merge_findings([finding("nodule", 0.8), finding("effusion", 0.3, 0.4)], MODEL)
    return s


class TestIsPositive:
    @pytest.mark.parametrize(
        ("probability", "threshold", "expected"),
        [
            (0.5, 0.5, True),
            (0.49999, 0.5, False),
            (0.0, 0.0, True),
            (1.0, 1.0, True),
            (0.7, 0.9, False),
        ],
    )
    def test_table(self, probability: float, threshold: float, expected: bool) -> None:
        assert is_positive(probability, threshold) is expected


class TestVerdicts:
    def test_accept_sets_reviewer_and_time(self) -> None:
        s = state()
        f = s.accept("s#0:nodule")
        assert (f.verdict, f.reviewer, f.reason) == (ACCEPTED, "dr-a", None)
        assert f.updated is not None and f.updated == s.updated

    def test_reject_needs_a_known_reason(self) -> None:
        s = state()
        with pytest.raises(ValueError, match=r"`reason` 'bogus' should be one of: fp_artefact"):
            s.reject("s#0:nodule", "bogus")
        f = s.reject("s#0:nodule", "duplicate", reviewer="dr-b")
        assert (f.verdict, f.reason, f.reviewer) == (REJECTED, "duplicate", "dr-b")

    def test_accept_after_reject_clears_reason(self) -> None:
        s = state()
        s.reject("s#0:nodule", "other")
        assert s.accept("s#0:nodule").reason is None

    def test_clear_verdict(self) -> None:
        s = state()
        s.reject("s#0:nodule", "other")
        assert s.clear_verdict("s#0:nodule").verdict == PENDING
        assert s.counts() == {PENDING: 2, PRESENT: 0, ABSENT: 0, UNCERTAIN: 0}

    def test_unknown_finding(self) -> None:
        with pytest.raises(KeyError, match="no finding 'nope'"):
            state().accept("nope")

    def test_note_length_is_bounded(self) -> None:
        s = state()
        assert s.set_note("s#0:nodule", "check old films").note == "check old films"
        with pytest.raises(ValueError, match="a note is at most 10000 characters"):
            s.set_note("s#0:nodule", "x" * 10_001)

    @pytest.mark.parametrize(
        ("box", "message"),
        [
            ((1, 2, 0, 4), "width 0.0 and height 4.0 should be positive"),
            ((1, 2, 3), "should be four finite numbers"),
            ((1, float("nan"), 3, 4), "should be four finite numbers"),
        ],
    )
    def test_edit_box_validates(self, box: tuple[float, ...], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            state().edit_box("s#0:nodule", box)

    def test_edit_box_and_back(self) -> None:
        s = state()
        f = s.edit_box("s#0:nodule", (1, 2, 3, 4))
        assert f.shown_box == (1.0, 2.0, 3.0, 4.0)
        assert s.edit_box("s#0:nodule", None).shown_box == (10.0, 20.0, 30.0, 40.0)


class TestThresholds:
    def test_model_threshold_is_the_default(self) -> None:
        s = state()
        assert s.threshold("effusion") == 0.4
        assert [s.positive(f) for f in s.findings] == [True, False]

    def test_slider_redecides_without_the_model(self) -> None:
        s = state()
        changed = s.set_threshold("effusion", 0.25)
        assert changed == ["s#0:effusion"]
        assert s.positive(s.find("s#0:effusion"))
        assert s.set_threshold("effusion", 0.2) == []  # still positive: nothing flips
        assert s.reset_threshold("effusion") == ["s#0:effusion"]
        assert not s.positive(s.find("s#0:effusion"))

    @pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
    def test_threshold_range(self, value: float) -> None:
        with pytest.raises(ValueError, match="should be between 0 and 1"):
            state().set_threshold("nodule", value)


class TestMerge:
    def test_rerun_of_same_model_keeps_decisions(self) -> None:
        s = state()
        s.reject("s#0:nodule", "fp_artefact")
        s.set_note("s#0:nodule", "rib crossing")
        s.edit_box("s#0:nodule", (5, 5, 5, 5))
        s.merge_findings([finding("nodule", 0.81)], MODEL)
        f = s.find("s#0:nodule")
        assert (f.verdict, f.reason, f.note, f.edited_box, f.probability) == (
            REJECTED,
            "fp_artefact",
            "rib crossing",
            (5.0, 5.0, 5.0, 5.0),
            0.81,
        )
        assert [x.finding_id for x in s.findings] == ["s#0:nodule"]

    def test_other_series_are_kept(self) -> None:
        s = state()
        s.merge_findings([finding("nodule", 0.2, series="t#0")], MODEL)
        assert {f.series_key for f in s.findings} == {"s#0", "t#0"}
        assert len(s.for_series("s#0")) == 2

    def test_new_model_starts_over(self) -> None:
        s = state()
        s.accept("s#0:nodule")
        s.set_threshold("nodule", 0.9)
        s.merge_findings([finding("nodule", 0.7)], ModelRef("demo", "2.0", "b" * 64))
        assert s.find("s#0:nodule").verdict == PENDING
        assert s.thresholds == {}


class TestStore:
    def test_round_trip_private_and_named_by_hash(self, tmp_path) -> None:
        store = ReviewStore(tmp_path)
        s = state()
        s.reject("s#0:nodule", "wrong_location")
        s.set_note("s#0:effusion", "a note — with ünïcode")
        s.set_threshold("nodule", 0.65)
        path = store.save(s)
        assert STUDY not in path.name and len(path.stem) == 16
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        back = store.load(STUDY)
        assert back is not None
        assert back.to_dict() == s.to_dict()

    def test_missing_is_none(self, tmp_path) -> None:
        assert ReviewStore(tmp_path).load(STUDY) is None

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("{not json", "is not readable JSON"),
            ('{"schema": "other"}', "is not a valid review file: not a RadAssist review file"),
            (
                '{"schema": "radassist-review", "schema_version": 9}',
                "review schema version 9 is not supported",
            ),
        ],
    )
    def test_bad_file_is_refused_with_path(self, tmp_path, content: str, message: str) -> None:
        store = ReviewStore(tmp_path)
        store.path_for(STUDY).write_text(content)
        with pytest.raises(ReviewStateError, match=message) as info:
            store.load(STUDY)
        assert str(store.path_for(STUDY)) in str(info.value)

    def test_quarantine_keeps_the_bad_file(self, tmp_path) -> None:
        store = ReviewStore(tmp_path)
        store.path_for(STUDY).write_text("{broken")
        moved = store.quarantine(STUDY)
        assert moved is not None and moved.read_text() == "{broken"
        assert store.load(STUDY) is None

    def test_model_change_keeps_the_old_file(self, tmp_path) -> None:
        store = ReviewStore(tmp_path)
        s = state()
        s.accept("s#0:nodule")
        store.save(s)
        s.merge_findings([finding("nodule", 0.7)], ModelRef("demo", "2.0", "b" * 64))
        path = store.save(s)
        aside = path.with_name(f"{path.stem}.{'a' * 12}.json")
        assert json.loads(aside.read_text())["findings"][0]["truth"] == PRESENT
        assert [st.study_uid for st in store.iter_states()] == [STUDY]

    def test_unknown_reason_in_file(self, tmp_path) -> None:
        store = ReviewStore(tmp_path)
        s = state()
        data = s.to_dict()
        data["findings"][0]["reason"] = "made-up"
        store.path_for(STUDY).write_text(json.dumps(data))
        with pytest.raises(ReviewStateError, match="unknown reason code 'made-up'"):
            store.load(STUDY)


def test_reason_codes_are_the_agreed_list() -> None:
    assert list(FALSE_POSITIVE_REASONS) == [
        "fp_artefact",
        "fp_normal_anatomy",
        "wrong_location",
        "duplicate",
        "other",
    ]
    assert list(FALSE_NEGATIVE_REASONS) == [
        "fn_subtle",
        "fn_small",
        "fn_obscured",
        "fn_image_quality",
        "other",
    ]
    assert set(REJECT_REASONS) == set(FALSE_POSITIVE_REASONS) | set(FALSE_NEGATIVE_REASONS)


class TestWriter:
    def test_saves_in_the_background_and_flushes(self, tmp_path) -> None:
        from desktop_app.privacy.audit import AuditLog, verify
        from desktop_app.review.writer import ReviewWriter

        store = ReviewStore(tmp_path / "reviews")
        audit = AuditLog(tmp_path / "audit.jsonl")
        writer = ReviewWriter(store, audit)
        s = state()
        s.accept("s#0:nodule")
        writer.save(s)
        writer.audit("review", label="nodule", verdict="accepted", reviewer="dr-a")
        s.set_note("s#0:nodule", "later change")
        writer.save(s)
        assert writer.flush()
        back = store.load(STUDY)
        assert back is not None and back.find("s#0:nodule").note == "later change"
        assert [r["kind"] for r in audit.records()] == ["review"]
        assert verify(audit.path).ok
        writer.close()

    def test_snapshot_is_taken_at_save_time(self, tmp_path) -> None:
        from desktop_app.review.writer import ReviewWriter

        store = ReviewStore(tmp_path)
        writer = ReviewWriter(store)
        s = state()
        s.set_note("s#0:nodule", "first")
        writer.save(s)
        s.findings[0].note = "changed without saving"
        writer.flush()
        assert store.load(STUDY).find("s#0:nodule").note == "first"  # type: ignore[union-attr]
        writer.close()

    def test_errors_are_reported_not_raised(self, tmp_path) -> None:
        from desktop_app.review.writer import ReviewWriter

        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        errors: list[str] = []
        writer = ReviewWriter(ReviewStore(blocker / "reviews"), on_error=errors.append)
        writer.save(state())
        writer.flush()
        writer.close()
        assert len(errors) == 1 and errors[0].startswith("review not saved: ")


def test_findings_from_an_engine_result() -> None:
    import numpy as np

    from desktop_app.inference.findings import Finding, ModelInfo, SeriesResult
    from desktop_app.review.state import findings_from_result, model_ref

    model = ModelInfo("demo", "1.0", "efficientnet-lite0", "c" * 64, ("nodule", "effusion"))
    heat = np.zeros((8, 8), dtype=np.float32)
    result = SeriesResult(
        findings=[
            Finding("nodule", 0.9, 0.5, True, 2, "1.2.3.9", 0, (1.0, 2.0, 3.0, 4.0),
                    ((1.0, 2.0), (4.0, 2.0), (4.0, 6.0)), (2.5, 4.0), heat),
            Finding("effusion", 0.1, 0.4, False, 0),
        ],
        model=model,
        device="cpu",
        backend="eager",
        slices=[],
        probabilities=np.zeros((3, 2), dtype=np.float32),
        series_instance_uid="1.2.3",
    )  # fmt: skip
    reviews, heatmaps = findings_from_result(result, "1.2.3#0")
    assert [r.finding_id for r in reviews] == ["1.2.3#0:nodule", "1.2.3#0:effusion"]
    nodule = reviews[0]
    assert (nodule.probability, nodule.model_threshold, nodule.slice_index) == (0.9, 0.5, 2)
    assert nodule.box == (1.0, 2.0, 3.0, 4.0) and nodule.outline == [
        [(1.0, 2.0), (4.0, 2.0), (4.0, 6.0)]
    ]
    assert (nodule.sop_instance_uid, nodule.series_uid) == ("1.2.3.9", "1.2.3")
    assert reviews[1].box is None and reviews[1].outline == []
    assert list(heatmaps) == ["1.2.3#0:nodule"] and heatmaps["1.2.3#0:nodule"] is heat
    assert model_ref(result) == ModelRef("demo", "1.0", "c" * 64)


def test_resolve_slices_follows_the_image_not_the_stored_position() -> None:
    """A review saved when the stack was ordered feet first opens on the finding's own image
    once the stack is head first (``ReviewState.resolve_slices`` with ``SliceStack.index_of``)."""
    state = ReviewState("1.2.3")
    f = FindingReview(
        "s#1:nodule", "nodule", "s#1", "s", 0.9, 0.5, slice_index=23, sop_instance_uid="1.9.17"
    )
    f.box_slice_index, f.box_sop_instance_uid = 30, "1.9.10"
    other = FindingReview("t#1:nodule", "nodule", "t#1", "t", 0.9, 0.5, slice_index=4)
    state.findings.extend([f, other])
    positions = {("1.9.17", 0): 16, ("1.9.10", 0): 9}
    assert state.resolve_slices("s#1", lambda uid, frame: positions.get((uid, frame)))
    assert (f.slice_index, f.box_slice_index, other.slice_index) == (16, 9, 4)
    assert not state.resolve_slices("s#1", lambda uid, frame: positions.get((uid, frame)))
    assert not state.resolve_slices("s#1", lambda uid, frame: None)  # not in the stack: kept
    assert f.slice_index == 16
