"""Number of Frames checked before anything is listed per frame: the limit, and what the file holds.

A 300-byte file can declare 2**32 frames (0028,0008; PS3.3 C.7.6.6). Before the index keeps
such an instance, or a stack lists its frames, the declared count is checked against
``ReadLimits.max_frames`` and against what the pixel data can hold:

- native data (PS3.5 8.1.1): its length against frames x the bytes of one frame (bit-packed
  for Bits Allocated 1, two samples per pixel for YBR_FULL_422, PS3.3 C.7.6.3.1.2);
- encapsulated data (PS3.5 A.4): every frame starts a fragment of its own, so there are at
  least as many fragments as frames; a Basic Offset Table, when present, has one entry per
  frame.

The index runs :func:`check_declared_frames` on the raw header (before any per-frame geometry
is read) and :func:`check_frames` on the instance, so ``inspect``, ``predict`` and the viewer
refuse the same files in the same way, in microseconds, with one line each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from desktop_app.dicom.headerinfo import InstanceInfo
from desktop_app.dicom.limits import DEFAULT_LIMITS, ReadLimits
from desktop_app.dicom.structure import ScanResult, TopLevel, hint_limit
from desktop_app.infra.errors import LimitExceededError, PixelDecodeError

NUMBER_OF_FRAMES = 0x00280008
HINT_SHORT = "the file is truncated or its Number of Frames is wrong; re-export or re-transfer it"


def declared_frames(raw: bytes | None) -> float | None:
    """The first value of a raw Number of Frames (IS, PS3.5 6.2), or None when absent or not
    a finite number (the decoder words that case)."""
    if not raw:
        return None
    first = raw.split(b"\\", 1)[0].strip(b" \x00")
    try:
        number = float(first.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _limit_error(frames: float, path: Path | None, limits: ReadLimits) -> LimitExceededError:
    count = int(frames) if frames == int(frames) else frames
    return LimitExceededError(
        f"declares {count} frames, over the limit of {limits.max_frames}",
        path,
        hint_limit("max_frames"),
    )


def check_declared_frames(
    scan: ScanResult, top: TopLevel, limits: ReadLimits = DEFAULT_LIMITS
) -> None:
    """Refuse a file with pixel data whose Number of Frames is over ``limits.max_frames``,
    from the raw header alone (LimitExceededError)."""
    if scan.pixel is None:
        return
    entry = top.values.get(NUMBER_OF_FRAMES)
    frames = declared_frames(entry[1] if entry is not None else None)
    if frames is not None and frames > limits.max_frames:
        raise _limit_error(frames, scan.path, limits)


def native_bytes_needed(inst: InstanceInfo, frames: int) -> int | None:
    """The fewest bytes of native pixel data that hold ``frames`` frames of ``inst``, or None
    when the header does not say enough to tell (the decoder then words the problem)."""
    if inst.rows < 1 or inst.columns < 1 or inst.bits_allocated < 1:
        return None
    samples = max(inst.samples_per_pixel, 1)
    if inst.photometric == "YBR_FULL_422" and samples == 3:
        samples = 2  # two chroma samples shared by two pixels (PS3.3 C.7.6.3.1.2)
    bits = inst.rows * inst.columns * samples * inst.bits_allocated * frames
    return (bits + 7) // 8


def check_frames(inst: InstanceInfo, limits: ReadLimits = DEFAULT_LIMITS) -> None:
    """Refuse an instance whose frames are over the limit or more than its pixel data holds.

    Raises LimitExceededError or PixelDecodeError (one line, naming the file); returns for an
    instance without pixel data. Cost: a few arithmetic operations, whatever the count.
    """
    frames = inst.number_of_frames
    info = inst.pixel_data
    if not inst.has_pixels or info is None:
        return
    if frames > limits.max_frames:
        raise _limit_error(frames, inst.path, limits)
    if frames <= 1:
        return  # one frame: the decoder reports short data with the frame's own numbers
    if info.length is not None:
        needed = native_bytes_needed(inst, frames)
        if needed is not None and info.length < needed:
            one = native_bytes_needed(inst, 1) or 1
            raise PixelDecodeError(
                f"pixel data holds {info.length} bytes, enough for {info.length // one} of "
                f"the {frames} frames declared ({needed} bytes)",
                inst.path,
                HINT_SHORT,
            )
        return
    if info.fragments < frames:
        raise PixelDecodeError(
            f"encapsulated pixel data holds {info.fragments} fragment(s), fewer than the "
            f"{frames} frames declared (each frame starts a fragment, PS3.5 A.4)",
            inst.path,
            HINT_SHORT,
        )
    if info.bot_entries and info.bot_valid and len(info.bot_entries) < frames:
        raise PixelDecodeError(
            f"the Basic Offset Table lists {len(info.bot_entries)} frame(s), fewer than the "
            f"{frames} frames declared (PS3.5 A.4)",
            inst.path,
            HINT_SHORT,
        )


def spread(count: int, most: int) -> Sequence[int]:
    """``most`` indices of ``range(count)`` spread evenly, first and last included (all of
    them when ``count <= most``)."""
    if count <= most:
        return range(count)
    if most <= 1:
        return range(min(count, most))
    return [round(k * (count - 1) / (most - 1)) for k in range(most)]
