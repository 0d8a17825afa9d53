"""Seeded synthetic studies for tests, demos and training data: no patient data.

Modules (one job each):
- studies: seeded synthetic studies written as DICOM (chest radiographs, CT series); the entry point.
- chest_xr: chest-radiograph phantoms and their ground truth (make_chest_xr); the entry point for arrays.
- chest_body: the seeded body and acquisition, the canvas from body units to pixels, lung-field geometry.
- chest_anatomy: draws normal chest anatomy as attenuation and exposes it as 12-bit pixels.
- chest_findings: finding renderers in a registry by name (nodule, effusion, cardiomegaly, ...).
- seeds: one seeded random stream per named purpose.
- boxes: ground-truth boxes in pixels.
- ct: CT phantom volumes in HU, slice by slice, with spherical lesions and their truth.
- dicomwrite: builds DX/CR and CT datasets with seeded UIDs and writes them atomically.
"""
