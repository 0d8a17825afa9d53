"""Reading one DICOM object: bounded header walk, values, pixels and display transforms.

Modules (one job each):
- limits: ReadLimits, the safety caps checked before reading or allocating (sizes, depth, counts).
- dicomfile: safe header/dataset reading; a non-recursive structure walk checks lengths and limits first.
- dsvalues: tolerant reading of numeric/text values and functional groups from a Dataset (never raises).
- headerinfo: one header -> InstanceInfo (geometry, pixel layout), from raw bytes or pydicom.
- pixels: pixel-module checks, lazy one-frame decoding, Modality LUT, palette/colour, Frame.
- display: VOI windows and LUTs, auto window, rendering to uint8 (MONOCHROME1 inverted), CT presets.
- viewing: viewer arithmetic: window/level drags, ruler lengths in mm, cursor readouts (HU).
- tags: a dataset flattened into tag-viewer rows (nested sequences), and the search filter.
"""
