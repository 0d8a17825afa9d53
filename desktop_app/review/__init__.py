"""The reader's verdicts on a model's findings, kept per study and saved atomically.

Modules (one job each):
- state: review state per study (verdicts, reasons, notes, edited boxes, live thresholds).
- store: one review file per study, named by a hash, written atomically (0o600) under a lock; the previous model's review kept beside it first; unreadable ones moved aside; killed saves' temporary files cleaned on open.
- writer: saves and audit records on one background thread, in order.
- runner: the GUI's inference seam (SeriesRunner, RunOutput) and EngineRunner: the engine's findings as findings to review.
"""
