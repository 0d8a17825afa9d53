"""The reader's verdicts on a model's findings, kept per study and saved atomically.

Modules (one job each):
- state: review state per study (verdicts, reasons, notes, edited boxes, live thresholds), its atomic store and background writer.
"""
