"""AppSettings: typed access to QSettings through the core's settings schema.

QSettings stores; ``desktop_app.settings.schema`` says what each key is and coerces what
comes back (an INI file returns text). Shortcut overrides live under ``shortcuts/<action id>``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings

from desktop_app.settings import schema as settings_model
from desktop_app.settings import shortcuts
from desktop_app.settings.schema import SHORTCUT_PREFIX

MAX_RECENT = 10


class AppSettings:
    """The app's settings in one QSettings (tests pass an INI file of their own)."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings()

    def get(self, key: str) -> Any:
        return settings_model.coerce(key, self.q.value(key))

    def set(self, key: str, value: Any) -> None:
        value = settings_model.coerce(key, value)
        self.q.setValue(key, value)

    def sync(self) -> None:
        self.q.sync()

    # ------------------------------------------------------------------ shortcuts
    def shortcut_overrides(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for spec in shortcuts.DEFAULT_SHORTCUTS:
            if not spec.configurable:
                continue
            value = self.q.value(SHORTCUT_PREFIX + spec.id)
            if value is not None and not isinstance(value, (list, tuple)):
                out[spec.id] = str(value)
        return out

    def shortcut_table(self) -> dict[str, str]:
        return shortcuts.effective(self.shortcut_overrides())

    def set_shortcuts(self, table: dict[str, str]) -> None:
        """Store the keys that differ from the defaults; forget the rest."""
        for spec in shortcuts.DEFAULT_SHORTCUTS:
            if not spec.configurable:
                continue
            key = SHORTCUT_PREFIX + spec.id
            value = table.get(spec.id, spec.default)
            if shortcuts.normalize(value) == shortcuts.normalize(spec.default):
                self.q.remove(key)
            else:
                self.q.setValue(key, value)

    # ------------------------------------------------------------------ recent files
    def recent_paths(self) -> list[str]:
        value = self.q.value("recent/paths", [])
        if isinstance(value, str):  # an INI file gives a single path back as text
            return [value]
        return [str(v) for v in value] if isinstance(value, (list, tuple)) else []

    def remember_recent(self, text: str) -> list[str]:
        recent = [p for p in self.recent_paths() if p != text]
        recent.insert(0, text)
        recent = recent[:MAX_RECENT]
        self.q.setValue("recent/paths", recent)
        return recent
