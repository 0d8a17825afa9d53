"""The PySide6 GUI. The only package that imports Qt; all logic lives in the Qt-free packages beside it.

Modules:
- launch: `radassist [PATH ...]` — builds the QApplication, the main window, screenshot mode.
- main_window: MainWindow — docks, toolbar, menus, status bar; wires widgets to the core.
- viewer: ViewerWidget — one series: slice slider, lazy slices, window/level, cine, readout.
- canvas: ImageCanvas — zoom/pan/rotate/flip, heatmap, outlines, boxes (editable), rulers.
- study_browser: StudyBrowserWidget — patient → study → series tree with worker thumbnails.
- tag_viewer: TagViewerWidget — the shown image's DICOM header as a searchable tree.
- findings_panel: FindingsPanelWidget — per-label cards with live thresholds; the review box.
- inference: InferenceController — the model in a worker (supersede, cancel, warm-up).
- engine_runner: the core InferenceEngine behind the controller's Runner seam.
- dialogs: settings (with shortcut rebinding), shortcut cheat-sheet, model card.
- app_settings: typed QSettings access through desktop_app.settings.schema.
- workers: TaskChannel — generation-numbered, cancellable jobs on a thread pool.
- errors: the hook that catches, logs and shows unhandled exceptions in any thread.
- screenshot: `--screenshot FILE.png [--run-inference]` for docs and checks.
- theme: the dark reading-room palette and style sheet.
- images: the only place a numpy array becomes a QImage.
"""
