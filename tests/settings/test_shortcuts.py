"""The shortcut table: defaults without conflicts, overrides, normalisation, cheat-sheet."""

from __future__ import annotations

import pytest

from desktop_app.settings.shortcuts import (
    BY_ID,
    DEFAULT_SHORTCUTS,
    GROUPS,
    cheat_sheet,
    conflicts,
    effective,
    normalize,
)


def test_defaults_have_unique_ids_and_no_conflicts() -> None:
    assert len(BY_ID) == len(DEFAULT_SHORTCUTS)
    assert conflicts(effective()) == {}
    assert {s.group for s in DEFAULT_SHORTCUTS} <= set(GROUPS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("shift+ctrl+o", "Ctrl+Shift+O"),
        ("a", "A"),
        ("Ctrl++", "Ctrl++"),
        ("+", "+"),
        ("", ""),
        ("  Esc ", "Esc"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_overrides_apply_to_configurable_actions_only() -> None:
    table = effective({"accept": "Ctrl+A", "slice_next": "N", "unknown": "Z"})
    assert table["accept"] == "Ctrl+A"
    assert table["slice_next"] == "Down"
    assert "unknown" not in table


def test_conflicts_are_found_whatever_the_spelling() -> None:
    table = effective({"accept": "shift+r"})
    assert conflicts(table) == {"Shift+R": ["accept", "rotate_left"]}


def test_cleared_shortcut_is_no_conflict() -> None:
    assert conflicts({"a": "", "b": ""}) == {}


def test_cheat_sheet_follows_the_table() -> None:
    sheet = dict(cheat_sheet(effective({"accept": "Y"})))
    assert ("Y", "Agree with the model's call") in sheet["Review"]
    assert next(iter(dict(cheat_sheet()))) == "File"
