"""Orientation letters from direction cosines and Patient Orientation, and how screen-space
rotation and flips move them (PS3.3 C.7.6.1.1.1, C.7.6.2.1.1)."""

from __future__ import annotations

import itertools
import math

import pytest

from desktop_app.dicom.orientation import (
    ViewTransform,
    direction_letters,
    image_axes_letters,
    opposite,
    patient_orientation_letters,
)
from desktop_app.infra.errors import DataError


class TestDirectionLetters:
    @pytest.mark.parametrize(
        ("vector", "letters"),
        [
            ((1, 0, 0), "L"),
            ((-1, 0, 0), "R"),
            ((0, 1, 0), "P"),
            ((0, -1, 0), "A"),
            ((0, 0, 1), "H"),
            ((0, 0, -1), "F"),
            ((0.8, -0.6, 0), "LA"),
            ((-0.6, 0.8, 0), "PR"),
            ((0.6, 0.48, -0.64), "FLP"),
            ((0, 0, 0), ""),
            ((math.nan, 0, 1), ""),
        ],
    )
    def test_letters(self, vector: tuple[float, float, float], letters: str) -> None:
        assert direction_letters(vector) == letters

    def test_a_small_tilt_adds_no_letter(self) -> None:
        t = math.radians(10)
        assert direction_letters((0, math.cos(t), -math.sin(t))) == "P"
        t = math.radians(20)
        assert direction_letters((0, math.cos(t), -math.sin(t))) == "PF"

    def test_a_wrong_length_is_refused_with_the_value(self) -> None:
        with pytest.raises(DataError, match=r"3 components, got 2: \(1, 0\)"):
            direction_letters((1, 0))

    def test_opposite(self) -> None:
        assert opposite("LAH") == "RPF"
        assert opposite("") == ""

    def test_image_orientation(self) -> None:
        assert image_axes_letters((1, 0, 0, 0, 1, 0)) == ("L", "P")  # axial
        assert image_axes_letters((0, 1, 0, 0, 0, -1)) == ("P", "F")  # sagittal
        with pytest.raises(DataError, match="needs 6 values, got 3"):
            image_axes_letters((1, 0, 0))


class TestPatientOrientation:
    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            (("L", "F"), ("L", "F")),
            (("r", "h"), ("R", "H")),
            (("LA", "F"), ("LA", "F")),
            (("A", "I"), ("A", "F")),  # S / I as H / F
            (("L",), None),
            (("L", "X"), None),
            (("", "F"), None),
        ],
    )
    def test_values(self, values: tuple[str, ...], expected: tuple[str, str] | None) -> None:
        assert patient_orientation_letters(values) == expected


CHEST = ("L", "F")  # the chest sample: rows toward the patient's left, columns to the feet


class TestViewTransform:
    def test_identity_shows_the_stored_directions(self) -> None:
        assert ViewTransform().edge_letters(*CHEST) == {
            "top": "H",
            "right": "L",
            "bottom": "F",
            "left": "R",
        }

    def test_rotate_right_turns_the_letters_clockwise(self) -> None:
        view = ViewTransform().rotated(90)
        assert view.rotation == 90
        assert view.edge_letters(*CHEST) == {"top": "R", "right": "H", "bottom": "L", "left": "F"}

    def test_flip_h_after_rotate_flips_left_right_on_screen(self) -> None:
        rotated = ViewTransform().rotated(90)
        flipped = rotated.flipped_h()
        before, after = rotated.edge_letters(*CHEST), flipped.edge_letters(*CHEST)
        assert (after["left"], after["right"]) == (before["right"], before["left"])
        assert (after["top"], after["bottom"]) == (before["top"], before["bottom"])
        # a point on the screen's left moves to the screen's right
        x, y = rotated.to_image(-1, 0)
        assert flipped.to_screen(x, y) == (1, 0)

    def test_flip_v_flips_up_down_on_screen(self) -> None:
        rotated = ViewTransform().rotated(270)
        before, after = rotated.edge_letters(*CHEST), rotated.flipped_v().edge_letters(*CHEST)
        assert (after["top"], after["bottom"]) == (before["bottom"], before["top"])
        assert (after["left"], after["right"]) == (before["left"], before["right"])

    def test_rotate_right_after_a_flip_still_turns_the_screen_clockwise(self) -> None:
        flipped = ViewTransform().flipped_h()
        turned = flipped.rotated(90)
        before, after = flipped.edge_letters(*CHEST), turned.edge_letters(*CHEST)
        assert after["right"] == before["top"]  # what was on top goes right
        assert after["bottom"] == before["right"]

    def test_eight_views_and_their_inverses(self) -> None:
        seen = set()
        for turns, h, v in itertools.product(range(4), (False, True), (False, True)):
            view = ViewTransform().rotated(90 * turns)
            view = view.flipped_h() if h else view
            view = view.flipped_v() if v else view
            seen.add(view)
            for point in ((1, 0), (0, 1), (2, -3)):
                assert view.to_image(*view.to_screen(*point)) == point
            assert view.swaps_axes == (turns % 2 == 1)
        assert len(seen) == 8

    def test_two_flips_are_a_half_turn(self) -> None:
        view = ViewTransform().flipped_h().flipped_v()
        assert (view.rotation, view.mirrored) == (180, False)
        assert ViewTransform().flipped_v().rotation == 180  # = a mirror after a half turn
        assert ViewTransform().flipped_v().mirrored

    def test_quarter_turns_only(self) -> None:
        with pytest.raises(DataError, match="steps of 90 degrees, not 45"):
            ViewTransform().rotated(45)
