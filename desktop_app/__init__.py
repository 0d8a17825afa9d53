"""RadAssist desktop app: a research-use DICOM viewer that runs CNNs and shows their findings.

Packages by domain, each importing only the ones below it (checked by import-linter):
- infra: errors, atomic files, locks, user folders, hashed paths, the stop/progress types, CPUs.
- dicom: one DICOM object: bounded reading, values, pixels, display transforms.
- studies: many files as studies: index, DICOMDIR, series, lazy volumes, inspection.
- phantoms: seeded synthetic studies (no patient data) for tests, demos and training.
- model: the model-file format, preprocessing and architectures, shared with training.
- inference: the engine, fast CPU path, heatmaps, findings and overlays.
- review: the reader's verdicts per study, saved atomically; the GUI's engine runner.
- privacy: de-identification and the audit trail.
- pacs: DIMSE with a PACS (pynetdicom) and the local store.
- exports: DICOM SR, secondary captures, PDF and JSON.
- settings: the GUI's settings and shortcut tables as plain data.
- commands: the `radassist` CLI; qt: the PySide6 GUI (the only package that imports Qt).
"""

import logging

__version__ = "0.1.0"

RESEARCH_USE_NOTICE = "Research use only — not for diagnosis"

logging.getLogger("desktop_app").addHandler(logging.NullHandler())
