"""Safety limits applied before anything is read into memory or allocated (the decode budget).

A hostile or broken file can declare sizes far beyond what it holds (huge Rows/Columns,
element lengths past the end of the file, sequences nested thousands deep, a codestream that
declares more than the header, a segmented LUT that expands a thousandfold, a deflate bomb).
Every reader and decoder in the core checks the declared numbers against one
:class:`ReadLimits` first and refuses the file with a
:class:`~desktop_app.infra.errors.LimitExceededError` instead of allocating or recursing;
expansions (inflate, segmented LUTs) are also capped while they run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class ReadLimits:
    """Upper bounds for one DICOM object.

    ``max_object_bytes``: decoded pixel bytes (rows x cols x frames x samples x bytes) of one
    object, and the most pixel data bytes a file may hold.
    ``max_frame_bytes``: bytes of one decoded frame, counting its float32 modality values
    (what display and inference hold of it).
    ``max_frame_pixels``: Rows x Columns of one frame (8192 x 8192 by default: the largest
    CR/DX/mammography detectors are under half of that; whole-slide images come in tiles).
    ``max_lut_entries``: entries of one palette, modality or VOI LUT, also while a segmented
    LUT (PS3.3 C.7.9.2) is expanded; 65536 is the most a LUT Descriptor can declare.
    ``max_inflated_bytes``: bytes a deflated dataset (PS3.5 A.5) may inflate to (it is held
    inflated while read: deflate is for structured reports and small objects, rarely images).
    ``max_sequence_depth``: how deeply sequences (SQ, PS3.5 7.5) may nest.
    ``max_elements``: data elements in one object, counting those inside sequence items.
    ``max_header_bytes``: total bytes of all values other than Pixel Data.
    ``max_frames``: Number of Frames (0028,0008) of one object.
    """

    max_object_bytes: int = 2 * GIB
    max_frame_bytes: int = 1 * GIB
    max_frame_pixels: int = 8192 * 8192
    max_lut_entries: int = 65536
    max_inflated_bytes: int = 256 * MIB
    max_sequence_depth: int = 16
    max_elements: int = 500_000
    max_header_bytes: int = 512 * MIB
    max_frames: int = 100_000

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` {value!r} should be a positive integer.")


DEFAULT_LIMITS = ReadLimits()
"""The documented budget (2 GiB of decoded pixels per object) for the library and the CLI."""

INTERACTIVE_OBJECT_MIB = 512
"""The GUI's default cap on one object's decoded pixels, in MiB (Preferences can raise it)."""


def interactive_limits(max_object_mib: int = INTERACTIVE_OBJECT_MIB) -> ReadLimits:
    """The GUI's budget: ``max_object_mib`` MiB of decoded pixels per object (the setting
    ``reading/max_object_mib``), frames and inflated data capped at half of that, at most the
    defaults; everything else as :data:`DEFAULT_LIMITS`."""
    object_bytes = max(1, int(max_object_mib)) * MIB
    return replace(
        DEFAULT_LIMITS,
        max_object_bytes=object_bytes,
        max_frame_bytes=min(DEFAULT_LIMITS.max_frame_bytes, max(object_bytes // 2, 64 * MIB)),
        max_inflated_bytes=min(DEFAULT_LIMITS.max_inflated_bytes, max(object_bytes // 2, MIB)),
    )


INTERACTIVE_LIMITS = interactive_limits()
"""The GUI's default budget: 512 MiB per object and 256 MiB per frame."""
