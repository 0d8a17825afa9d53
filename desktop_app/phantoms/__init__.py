"""Seeded synthetic studies for tests, demos and training data: no patient data.

Modules (one job each):
- studies: seeded synthetic studies written as DICOM (chest radiographs, CT series); the entry point.
- chest_xr: chest-radiograph phantom arrays, finding renderers by name, ground-truth boxes.
- ct: CT phantom volumes in HU, slice by slice, with spherical lesions and their truth.
- dicomwrite: builds DX/CR and CT datasets with seeded UIDs and writes them atomically.
"""
