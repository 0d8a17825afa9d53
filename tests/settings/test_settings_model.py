"""Settings schema: values read back from an INI file are coerced, bad ones fall back."""

from __future__ import annotations

import pytest

from desktop_app.settings.schema import coerce, defaults, spec, validate_all


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("inference/auto_run", "true", True),
        ("inference/auto_run", "0", False),
        ("inference/auto_run", True, True),
        ("inference/auto_run", "maybe", False),  # default
        ("inference/device", "CUDA", "cuda"),
        ("inference/device", "tpu", "auto"),
        ("overlay/opacity", "0.7", 0.7),
        ("overlay/opacity", "7", 0.45),
        ("overlay/opacity", "nan", 0.45),
        ("cine/fps", "12.4", 12),
        ("cine/fps", "0", 10),
        ("review/reviewer", "Dr Who", "Dr Who"),
        ("review/reviewer", ["a", "b"], ""),
        ("overlay/colormap", None, "turbo"),
    ],
)
def test_coerce(key: str, raw: object, expected: object) -> None:
    assert coerce(key, raw) == expected


def test_unknown_key() -> None:
    with pytest.raises(KeyError, match="unknown setting 'nope'"):
        spec("nope")


def test_validate_all_fills_defaults() -> None:
    values = validate_all({"cine/fps": "30"})
    assert values["cine/fps"] == 30
    assert {k: v for k, v in values.items() if k != "cine/fps"} == {
        k: v for k, v in defaults().items() if k != "cine/fps"
    }
