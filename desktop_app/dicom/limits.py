"""Safety limits applied before anything is read into memory or allocated.

A hostile or broken file can declare sizes far beyond what it holds (huge Rows/Columns,
element lengths past the end of the file, sequences nested thousands deep). Every reader in
the core checks the declared numbers against these limits first and refuses the file with a
:class:`~desktop_app.infra.errors.LimitExceededError` instead of allocating or recursing.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class ReadLimits:
    """Upper bounds for one DICOM object.

    ``max_object_bytes``: decoded pixel bytes (rows x cols x frames x samples x bytes) of one
    object, and the most pixel data bytes a file may hold.
    ``max_sequence_depth``: how deeply sequences (SQ, PS3.5 7.5) may nest.
    ``max_elements``: data elements in one object, counting those inside sequence items.
    ``max_header_bytes``: total bytes of all values other than Pixel Data.
    ``max_frames``: Number of Frames (0028,0008) of one object.
    """

    max_object_bytes: int = 2 * GIB
    max_sequence_depth: int = 16
    max_elements: int = 500_000
    max_header_bytes: int = 512 * MIB
    max_frames: int = 100_000

    def __post_init__(self) -> None:
        for name in (
            "max_object_bytes",
            "max_sequence_depth",
            "max_elements",
            "max_header_bytes",
            "max_frames",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` {value!r} should be a positive integer.")


DEFAULT_LIMITS = ReadLimits()
