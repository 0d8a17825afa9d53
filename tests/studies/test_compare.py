"""desktop_app.studies.compare: the prior's matching series, and slice matching between stacks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from desktop_app.studies.compare import (
    INDEX,
    MM,
    StackGeometry,
    StackSummary,
    find_prior,
    follow,
    offset_between,
    summarize,
    sync_mode,
)
from desktop_app.studies.index import index_paths
from desktop_app.studies.series import assemble
from tests.helpers.priors import write_prior_pair


def axial(z: list[float]) -> StackGeometry:
    positions = np.array([[0.0, 0.0, v] for v in z])
    return StackGeometry(len(z), positions, np.array([0.0, 0.0, 1.0]))


def no_positions(n: int) -> StackGeometry:
    return StackGeometry(n, None, None)


BASE = StackSummary(
    key="cur#1", patient="p1", study_uid="s-now", study_date="20240301", study_time="0900",
    modality="CT", body_part="CHEST", description="Thorax 1.0 B70f", plane="axial", images=300,
)  # fmt: skip


def candidate(key: str, **kw: object) -> StackSummary:
    fields = {"key": key, "study_uid": "s-prior", "study_date": "20230301", **kw}
    return replace(BASE, **fields)  # type: ignore[arg-type]


class TestFindPrior:
    def test_written_studies_pick_the_same_patients_earlier_ct(self, tmp_path: Path) -> None:
        pair = write_prior_pair(tmp_path)
        summaries = summarize(index_paths([tmp_path]))
        by_folder = {
            s.images: s
            for s in summaries.values()
            if s.patient == next(iter(summaries.values())).patient
        }
        current = next(s for s in summaries.values() if s.images == len(pair.current.paths)
                       and s.study_date == "20220309")  # fmt: skip
        result = find_prior(current, summaries.values())
        assert result.match is not None
        assert result.match.summary.study_date == "20210131"  # not the other patient's 2020
        assert result.match.summary.images == len(pair.prior.paths)
        assert result.message == "Prior 2021-01-31: same description, same body part, axial"
        assert by_folder  # both patients indexed

    def test_the_oldest_study_has_no_prior(self, tmp_path: Path) -> None:
        write_prior_pair(tmp_path)
        summaries = summarize(index_paths([tmp_path]))
        oldest = next(s for s in summaries.values() if s.study_date == "20210131")
        result = find_prior(oldest, summaries.values())
        assert result.match is None
        assert (
            result.message == "No earlier study of this patient is open: open the prior study too"
        )

    def test_description_outranks_body_part_plane_and_size(self) -> None:
        others = [
            candidate("a#1", description="Lung 5mm", images=400),
            candidate("b#1", description="THORAX 1.0  b70f", body_part="", plane="coronal"),
        ]
        assert find_prior(BASE, others).match.key == "b#1"  # type: ignore[union-attr]

    def test_plane_and_body_part_break_ties_then_image_count(self) -> None:
        others = [
            candidate("a#1", description="x", plane="coronal", images=500),
            candidate("b#1", description="x", images=100),
            candidate("c#1", description="x", images=200),
        ]
        assert find_prior(BASE, others).match.key == "c#1"  # type: ignore[union-attr]

    def test_the_latest_earlier_study_wins_over_a_better_match_in_an_older_one(self) -> None:
        others = [
            candidate("old#1", study_uid="s-old", study_date="20200101"),
            candidate("new#1", study_uid="s-new", study_date="20230101", description="other"),
            candidate("later#1", study_uid="s-later", study_date="20250101"),
        ]
        assert find_prior(BASE, others).match.key == "new#1"  # type: ignore[union-attr]

    def test_other_modality_only(self) -> None:
        result = find_prior(BASE, [candidate("mr#1", modality="MR")])
        assert result.match is None
        assert result.message == "The prior study (2023-03-01) has no CT series"

    @pytest.mark.parametrize(
        ("current", "other", "message"),
        [
            (replace(BASE, study_date=""), candidate("a#1"), "no Study Date"),
            (BASE, candidate("a#1", study_date=""), "No earlier study"),
            (BASE, candidate("a#1", patient="p2"), "No earlier study"),
            (BASE, candidate("a#1", study_uid="s-now"), "No earlier study"),
        ],
    )
    def test_no_prior(self, current: StackSummary, other: StackSummary, message: str) -> None:
        result = find_prior(current, [other])
        assert result.match is None
        assert message in result.message


class TestFollow:
    def test_by_position_between_different_slice_spacings(self) -> None:
        current = axial([10.0 - 2.5 * i for i in range(9)])  # 10 .. -10
        prior = axial([-10.0 + 5.0 * i for i in range(5)])  # reversed order, 5 mm
        assert sync_mode(current, prior) == MM
        # halfway between two prior slices: the first of the two in the prior's order
        assert [follow(current, i, prior) for i in range(9)] == [4, 3, 3, 2, 2, 1, 1, 0, 0]
        assert follow(prior, 0, current) == 8

    def test_beyond_the_target_clamps_to_its_end(self) -> None:
        assert follow(axial([0.0, 1.0, 2.0]), 2, axial([-50.0, -49.0])) == 1

    def test_offset_in_mm_round_trips(self) -> None:
        a, b = axial([0.0, 2.0, 4.0, 6.0]), axial([100.0, 102.0, 104.0, 106.0])
        offset = offset_between(a, 1, b, 2)
        assert offset == pytest.approx(102.0)
        assert [follow(a, i, b, offset) for i in range(4)] == [1, 2, 3, 3]

    @pytest.mark.parametrize(
        ("source", "target"),
        [
            (no_positions(5), axial([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])),
            (
                axial([0.0, 1.0, 2.0]),
                StackGeometry(
                    6, np.array([[v, 0.0, 0.0] for v in range(6)]), np.array([1.0, 0.0, 0.0])
                ),
            ),
        ],
        ids=["no positions", "another plane"],
    )
    def test_by_index_otherwise(self, source: StackGeometry, target: StackGeometry) -> None:
        assert sync_mode(source, target) == INDEX
        assert follow(source, 2, target) == 2
        assert follow(source, 2, target, offset_between(source, 0, target, 3)) == 5
        assert follow(source, 2, target, 9.0) == 5

    def test_geometry_of_written_stacks(self, tmp_path: Path) -> None:
        pair = write_prior_pair(tmp_path)
        index = index_paths([pair.current.folder, pair.prior.folder])
        stacks = [assemble(series).stacks[0] for _, _, series in index.iter_series()]
        geos = {g.count: g for g in map(StackGeometry.of, stacks)}
        current, prior = geos[16], geos[8]
        assert sync_mode(current, prior) == MM
        for i in range(16):
            j = follow(current, i, prior)
            assert current.positions is not None and prior.positions is not None
            assert abs(current.positions[i, 2] - prior.positions[j, 2]) <= 2.5
