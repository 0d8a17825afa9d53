"""The app's settings: keys, types, defaults and validation (Qt-free schema).

The GUI stores them with QSettings; an INI file gives every value back as text, so each value
read is coerced here to its declared type, and anything that doesn't fit falls back to the
default (logged by key, never by value: a value might be a name).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from desktop_app.dicom.limits import DEFAULT_LIMITS, INTERACTIVE_OBJECT_MIB, MIB

log = logging.getLogger(__name__)

#: The device names every front end accepts (GUI setting, CLI flags, training config).
DEVICES = ("auto", "cpu", "cuda", "mps")
COLORMAPS = ("turbo", "jet", "inferno", "hot", "viridis")  # = inference.colormaps.COLORMAPS


@dataclass(frozen=True)
class SettingSpec:
    """One setting: ``kind`` is "bool", "int", "float", "str" or "choice"."""

    key: str
    default: Any
    kind: str
    label: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("inference/device", "auto", "choice", "Device", DEVICES),
    SettingSpec("inference/auto_run", False, "bool", "Run the model when a series opens"),
    SettingSpec(
        "inference/model_path",
        "",
        "str",
        "Model file (empty: chosen per series from the installed models)",
    ),
    SettingSpec("review/reviewer", "", "str", "Reviewer name"),
    SettingSpec("overlay/colormap", "turbo", "choice", "Heatmap colormap", COLORMAPS),
    SettingSpec("overlay/opacity", 0.45, "float", "Heatmap opacity", (), 0.0, 1.0),
    SettingSpec("overlay/heatmap", True, "bool", "Show heatmap"),
    SettingSpec("overlay/outline", True, "bool", "Show outlines"),
    SettingSpec("overlay/box", True, "bool", "Show boxes"),
    SettingSpec("overlay/labels", True, "bool", "Show label text"),
    SettingSpec("cine/fps", 10, "int", "Cine frames per second", (), 1, 60),
    # Display-only: stacks are stored head first (studies.series); this turns the navigation.
    SettingSpec("view/axial_feet_first", False, "bool", "Show axial stacks feet to head"),
    SettingSpec("view/smooth", True, "bool", "Smooth (bilinear) magnification"),
    SettingSpec("view/hide_identifiers", False, "bool", "Hide patient identifiers on the image"),
    # The GUI's decode budget (dicom.limits.interactive_limits), up to the documented 2 GiB.
    SettingSpec(
        "reading/max_object_mib",
        INTERACTIVE_OBJECT_MIB,
        "int",
        "Largest image to open (MiB of decoded pixels)",
        (),
        64,
        DEFAULT_LIMITS.max_object_bytes // MIB,
    ),
)

BY_KEY: dict[str, SettingSpec] = {s.key: s for s in SETTINGS}
SHORTCUT_PREFIX = "shortcuts/"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def spec(key: str) -> SettingSpec:
    try:
        return BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown setting {key!r}; known: {', '.join(BY_KEY)}") from None


def coerce(key: str, value: Any) -> Any:
    """``value`` (as QSettings gave it back) as the setting's type, or its default when it
    doesn't fit (wrong type, out of range, not one of the choices)."""
    s = spec(key)
    if value is None:
        return s.default
    try:
        out = _convert(s, value)
    except (TypeError, ValueError):
        log.warning("setting %s has an invalid value; using the default", key)
        return s.default
    return out


def _convert(s: SettingSpec, value: Any) -> Any:
    if s.kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("not a boolean")
    if s.kind in ("int", "float"):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("not finite")
        if s.minimum is not None and number < s.minimum:
            raise ValueError("below minimum")
        if s.maximum is not None and number > s.maximum:
            raise ValueError("above maximum")
        return round(number) if s.kind == "int" else number
    if s.kind == "choice":
        text = str(value).strip().lower()
        if text not in s.choices:
            raise ValueError("not a choice")
        return text
    if isinstance(value, (list, tuple)):
        raise TypeError("a list where text was expected")
    return str(value)


def defaults() -> dict[str, Any]:
    return {s.key: s.default for s in SETTINGS}


def validate_all(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every known setting coerced from ``values`` (missing ones get their defaults)."""
    return {s.key: coerce(s.key, values.get(s.key)) for s in SETTINGS}
