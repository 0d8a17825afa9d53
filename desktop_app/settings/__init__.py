"""The GUI's settings and shortcut tables as plain data, testable without Qt.

Modules (one job each):
- schema: the GUI settings' keys, types, defaults and coercion of stored values.
- shortcuts: the keyboard shortcut table (ids, labels, defaults, groups), conflicts, cheat-sheet.
"""
