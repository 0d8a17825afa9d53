"""The PySide6 GUI. The only package that imports Qt; all logic lives in desktop_app.core.

Modules:
- launch: `radassist [PATH ...]` — builds the QApplication, the main window, screenshot mode.
- theme: the dark reading-room palette and style sheet.
- images: the only place a numpy array becomes a QImage.
- canvas: ImageCanvas, the zoom/pan/rotate/window-level image view with overlays.
- main_window: MainWindow, menus, docks and the status bar.
"""
