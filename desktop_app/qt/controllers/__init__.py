"""The main window's controllers: each holds one area's logic and talks to its widgets and to
the Qt-free packages; the window builds the widgets and hands each controller what it needs.

Modules (each imports only those listed above it):
- shown: Shown — the series on screen now (written by studies, read by the others).
- feedback: Feedback — the status bar: messages, errors, progress, cancel, device badge.
- view: ViewController — mouse tools, window/level presets, cine speed, corner text, tags.
- overlays: OverlayController — the findings' shapes and heatmap on the shown slice.
- review: ReviewController — review state per study: select, accept, reject, notes, boxes.
- studies: StudyController — opening paths (index in a worker), recent files, showing a series.
- runs: RunController — running the model on the shown series and taking in its findings.
- presentation: PresentationController — overlay planes, GSPS and SR regions on the shown slice; the SR panel.
- lesions: LesionController — a segmentation's lesions: masks on the slice, the slider's marker strip, next/previous lesion, lesion rows and verdicts.
- layout: LayoutController — viewport layouts, series into viewports, scroll/zoom/W/L sync, compare with prior, AI flicker.
- exports: ExportController — File ▸ Export… and the PACS query/retrieve dialog.
- preferences: PreferencesController — settings, shortcut rebinding, the cheat-sheet, About.
"""
