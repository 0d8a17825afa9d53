"""RadAssist desktop app: a research-use DICOM viewer that runs CNNs and shows their findings.

``core/`` is Qt-free (DICOM I/O, display transforms, inference, review, exports);
``qt/`` holds every widget, window and worker.
"""

import logging

__version__ = "0.1.0"

RESEARCH_USE_NOTICE = "Research use only — not for diagnosis"

logging.getLogger("desktop_app").addHandler(logging.NullHandler())
