"""The reader's truth per label beside the model's findings, kept per study and saved atomically.

Modules (one job each):
- state: review state per study (the reader's present/absent/uncertain per label, reasons, notes, boxes, missed findings, live thresholds; agreement derived).
- lesionreview: a segmentation's lesions under review per series (LesionReview: accept/reject, brush/eraser edits, reader-drawn lesions, measured again on their bounding box); ReviewState's lesion methods.
- lesionfiles: saving a series' lesions: verdicts as JSON, the edited label volume as a bounds-checked .npz (no pickle).
- annotations: the reader's ROIs (area, mean, SD, min, max over modality values), angles, arrows with text and key-image flags; their JSON and undo history.
- migrate: review files of earlier schemas upgraded to the current one (schema 1: accepted/rejected on the model's call).
- store: one review file per study, named by a hash, written atomically (0o600) under a lock; the previous model's review kept beside it first; unreadable ones moved aside; killed saves' temporary files cleaned on open.
- writer: saves and audit records on one background thread, in order.
- sitecal: a model's site calibration (manifest ``site_calibration``) as one line per label.
- runner: the GUI's inference seam (SeriesRunner, RunOutput) and EngineRunner: the engine's findings as findings to review.
"""
