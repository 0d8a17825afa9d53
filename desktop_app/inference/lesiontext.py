"""Lesions in words, one home for the GUI and the CLI: "7.2 cm³ · 24 mm · mean 48 HU (max 95) ·
Im 17–20 · p 0.93", slices named as the viewer names them (Instance Numbers, PS3.3 C.7.6.1.1.1's
Instance Number (0020,0013)), and the warning for a run with more lesions than a reader expects.
"""

from __future__ import annotations

from collections.abc import Callable

from desktop_app.inference.lesions import Lesion

#: More lesions than a reader expects in one series: the summary lists these and counts the rest
#: (a lung CT with nodules has a handful; 157 "lesions" is a model off its input).
MANY_LESIONS = 20


def format_volume(mm3: float | None) -> str:
    """mm³ under 1000, cm³ from there ("640 mm³", "7.2 cm³"), as the findings rows show it."""
    if mm3 is None:
        return ""
    if mm3 < 1000:
        return f"{mm3:.0f} mm³" if mm3 >= 10 else f"{mm3:.1f} mm³"
    return f"{mm3 / 1000:.1f} cm³"


def slice_span(first: str, last: str) -> str:
    """Two slice names as one span: "Im 17–20" (same prefix), "Im 17" (one slice)."""
    if first == last:
        return first
    head_a, _, num_a = first.rpartition(" ")
    head_b, _, num_b = last.rpartition(" ")
    if head_a == head_b and num_a and num_b:
        return f"{first}–{num_b}"
    return f"{first}–{last}"


def slice_name(instance_number: int | None, index: int) -> str:
    """A slice as the viewer names a single-frame one: "Im 17" (its Instance Number), else
    "#18" (its 1-based place in the stack)."""
    return f"Im {instance_number}" if instance_number is not None else f"#{index + 1}"


def lesion_line(lesion: Lesion, unit: str = "", namer: Callable[[int], str] | None = None) -> str:
    """A lesion's measurements as the viewer's findings row shows them: "7.2 cm³ · 24 mm · mean
    48 HU (max 95) · Im 17–20 · p 0.93". ``namer`` names a slice index (the viewer's own
    ``SliceStack.short_label``); without it, the lesion's Instance Numbers."""
    parts = [format_volume(lesion.volume_mm3)] if lesion.volume_mm3 is not None else []
    parts.append(f"{lesion.longest_diameter_mm:.0f} mm")
    if lesion.mean_value is not None:
        extra = f" (max {lesion.max_value:.0f})" if lesion.max_value is not None else ""
        parts.append(f"mean {lesion.mean_value:.0f}{f' {unit}' if unit else ''}{extra}")
    if namer is not None:
        lo, hi = sorted((lesion.first_slice, lesion.last_slice))
        first, last = namer(lo), namer(hi)
    else:
        first = slice_name(lesion.first_instance_number, lesion.first_slice)
        last = slice_name(lesion.last_instance_number, lesion.last_slice)
        if lesion.first_instance_number is not None and lesion.last_instance_number is not None:
            low, high = sorted((lesion.first_instance_number, lesion.last_instance_number))
            first, last = slice_name(low, 0), slice_name(high, 0)
    parts.append(slice_span(first, last))
    confidence = lesion.mean_probability
    if confidence is None:
        confidence = lesion.max_probability
    if confidence is not None:
        parts.append(f"p {confidence:.2f}")  # the model's mean probability inside it
    return " · ".join(parts)


def crowd_warning(count: int) -> str | None:
    """The one warning line for a run with more lesions than a reader expects (over
    :data:`MANY_LESIONS`), else None."""
    if count <= MANY_LESIONS:
        return None
    return f"{count} lesions: far more than a reader expects; is this model made for this input?"


__all__ = [
    "MANY_LESIONS",
    "crowd_warning",
    "format_volume",
    "lesion_line",
    "slice_name",
    "slice_span",
]
