"""Shared test fixtures. No patient data: pydicom's and pydicom-data's public files, or seeded
synthetic images."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
