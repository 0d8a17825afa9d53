"""Reading one DICOM object: bounded header walk, values, pixels and display transforms.

Modules (one job each):
- limits: ReadLimits, the decode budget checked before reading or allocating (object, frame,
  LUT, inflate sizes, depth, counts); the GUI's lower interactive budget.
- structure: what the structure walks share: tags, VRs, ScanResult, PixelDataInfo, TopLevel.
- walk: the full, non-recursive structure walk (scan_file): lengths and limits checked first.
- headerscan: scan_header: the walk plus raw top-level values; a quick walk for the common file.
- dicomfile: safe header/dataset reading through pydicom, after the walk (read_header, read_dataset).
- dsvalues: tolerant reading of numeric/text values and functional groups from a Dataset (never raises).
- headerinfo: one header -> InstanceInfo (geometry, pixel layout), from raw bytes or pydicom.
- pixels (package): pixel-module checks, lazy one-frame decoding (RLE fast path), Modality LUT,
  palette/colour, Frame.
- voi: VOI windows and LUTs, LUT lookup, auto window, CT presets.
- display: a Frame rendered to uint8 (VOI, then MONOCHROME1 inverted).
- viewing: viewer arithmetic: window/level drags, ruler lengths in mm, cursor readouts (HU).
- uids: UIDs checked against PS3.5 9.1; valid derived stand-ins for invalid ones (UidRepairs).
- tags: a dataset flattened into tag-viewer rows (nested sequences), and the search filter.
- orientation: edge letters from direction cosines or Patient Orientation; screen-space rotate/flip.
- cornertext: the viewer's patient/study/series corner lines from a header; identifiers hideable.
- graphics: Graphic Data of presentation states and SR SCOORDs checked into drawable graphics.
- overlay_planes: overlay planes (60xx): checked, placed, unpacked one frame at a time.
- gsps: presentation states: referenced images, graphic and text annotations (PIXEL/DISPLAY).
- srcontent: SR content as a bounded tree of readable rows, and the regions it draws on images.
- imageplane: ImagePlane, one image's place in patient space; patient mm mapped to its pixels.
- segread: DICOM SEG (binary, fractional, label map): segments and per-frame masks mapped to images.
- rtstruct: RT Structure Sets: ROIs, colours and contours mapped onto the images they lie on.
"""
