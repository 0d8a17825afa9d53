"""Pixel data of one object: checked geometry, lazy one-frame decoding, Modality LUT, Frame.

PS3.3 C.7.6.3 (Image Pixel module), PS3.5 8 and A.4 (native and encapsulated pixel data),
PS3.3 C.11.1 (Modality LUT). The public names are importable from here.

Modules (one job each):
- geometry: the Image Pixel attributes checked and the decoded size bounded before anything
  is allocated (PixelGeometry, has_pixel_data, number_of_frames).
- decode: one frame's stored values, read alone from the file (native by offset,
  encapsulated by its fragments) and decoded.
- rle: RLE Lossless header check and the pylibjpeg-rle fast path with its fallback.
- codestream: a compressed frame's own header, found wherever it sits, checked against Rows,
  Columns, samples and Bits Allocated before any decoder runs.
- palette: PALETTE COLOR -> RGB, segmented LUTs expanded within the entry limit.
- processing: stored values -> Frame (Modality LUT, palette colour, spacing, VOI), grayscale.
"""

from desktop_app.dicom.pixels.decode import decode_frame
from desktop_app.dicom.pixels.geometry import (
    PixelGeometry,
    has_pixel_data,
    number_of_frames,
    pixel_geometry,
)
from desktop_app.dicom.pixels.processing import (
    Frame,
    apply_modality_lut,
    frame_from_stored,
    grayscale,
    load_frame,
)
from desktop_app.dicom.pixels.rle import rle_header_ok

__all__ = [
    "Frame",
    "PixelGeometry",
    "apply_modality_lut",
    "decode_frame",
    "frame_from_stored",
    "grayscale",
    "has_pixel_data",
    "load_frame",
    "number_of_frames",
    "pixel_geometry",
    "rle_header_ok",
]
