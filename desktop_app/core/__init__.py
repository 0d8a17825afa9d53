"""Qt-free core of RadAssist: everything below the GUI.

Modules (one job each):
- errors: the project's exceptions; each carries the path and a one-line reason.
"""
