"""The PySide6 GUI. The only package that imports Qt; all logic lives in the Qt-free packages beside it.

Modules:
- launch: `radassist [PATH ...]` — builds the QApplication, the main window, screenshot mode.
- main_window: MainWindow — a thin window: builds the docks, menus, toolbar and status bar and hands them to the controllers.
- controllers: one controller per area (studies, view, overlays, review, runs, exports, preferences) plus the status-bar feedback.
- actions: every menu/toolbar action as data (id, handler, menu and toolbar placement) and the builders that make QActions from it.
- viewer: ViewerWidget — one series: slice slider, lazy slices, window/level, cine, readout.
- viewports: ViewportGrid — the 1×1 / 1×2 / 2×2 viewports (viewer widgets), the active one, series dropped from the browser.
- canvas: ImageCanvas — zoom/pan/rotate/flip, heatmap, outlines, boxes (editable, or drawn for a missed finding), rulers.
- study_browser: StudyBrowserWidget — patient → study → series tree with worker thumbnails.
- sr_panel: SrPanelWidget — an SR's content (or a presentation state's annotations) as a readable tree.
- dicom_graphics: DicomGraphicsLayer — overlay planes, GSPS graphics/text and SR regions painted on the canvas.
- lesion_overlay: LesionLayer — a segmentation's lesion masks (fill, contour, "L1" label per lesion) through the SEG mask drawing; where each lesion lies.
- lesion_strip: LesionStripWidget — per-slice lesion marks along the slice slider; a click goes to the slice.
- lesion_rows: LesionListWidget — one findings-panel row per lesion (measurements, Accept / Reject, verdict).
- tag_viewer: TagViewerWidget — the shown image's DICOM header as a searchable tree.
- findings_panel: FindingsPanelWidget — per-label cards with live thresholds, the reader's verdict and its agreement, site calibration; the review box.
- inference: InferenceController — the model in a worker (supersede, cancel, warm-up), behind review.runner's seam.
- reader_dialog: ReaderNameDialog — asks once for the reader's name that verdicts and audit records carry.
- dialogs: settings (with shortcut rebinding), shortcut cheat-sheet, model card.
- annotation_tools: the reader's ROI, angle, arrow and key-image tools on the canvas (drawing, editing, undo), saved with the review.
- mask_tools: MaskToolController — the lesion brush, eraser and Add lesion on the shown slice (one undoable step per stroke), painted into the review's lesion masks.
- export_dialog: ExportDialog — File ▸ Export…: formats, de-identification, PACS destination, folder (default the data folder's exports/).
- pacs_dialog: PacsDialog — File ▸ Query/Retrieve: node picker, study search, retrieve.
- pacs_nodes: NodeEditor — add or edit a PACS node.
- pacs_jobs: the PACS workers' pool and the multi-study retrieve (RetrieveSummary).
- app_settings: typed QSettings access through desktop_app.settings.schema.
- workers: TaskChannel — generation-numbered, cancellable jobs on a thread pool.
- errors: the hook that catches, logs and shows unhandled exceptions in any thread.
- screenshot: `--screenshot FILE.png [--run-inference]` for docs and checks.
- theme: the dark reading-room palette and style sheet.
- images: the only place a numpy array becomes a QImage.
- plaintext: text from files, peers and model files escaped for labels, items and tooltips (never rich text).
"""
