"""Shown: the series on screen now — the studies controller writes it, the others read it."""

from __future__ import annotations

from dataclasses import dataclass

from desktop_app.qt.study_browser import StackEntry
from desktop_app.studies.volume import SeriesVolume


@dataclass
class Shown:
    """The shown series' browser entry and its decoded volume (both None before one is)."""

    entry: StackEntry | None = None
    volume: SeriesVolume | None = None

    @property
    def key(self) -> str | None:
        return self.entry.key if self.entry is not None else None

    @property
    def study_uid(self) -> str | None:
        return self.entry.study_uid if self.entry is not None else None

    def clear(self) -> None:
        self.entry = None
        self.volume = None
