"""The hostile-file corpus: small DICOM files, each made from a seed, that try to exhaust memory or
time, break the decoders, or drive the terminal (issue 12).

``write_corpus(folder, seeds_per_class)`` writes ``<class>-<seed>.dcm`` for every class in
:data:`CLASSES`; the same seed always gives the same bytes. ``python -m tests.hostile.corpus DIR
[--seeds N]`` does the same from a shell. The first classes are the issue's; the rest are
mutations of pydicom's bundled test files and lies of our own.
"""

from __future__ import annotations

import argparse
import io
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
import pydicom.config
from PIL import Image
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
)

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
Maker = Callable[[random.Random], bytes]


def _uid(rng: random.Random) -> str:
    return f"2.25.{rng.getrandbits(96)}"


@contextmanager
def _lenient() -> Iterator[None]:
    """pydicom writes any value we ask for: the values are wrong on purpose."""
    settings = pydicom.config.settings
    saved = settings.reading_validation_mode, settings.writing_validation_mode
    settings.reading_validation_mode = settings.writing_validation_mode = pydicom.config.IGNORE
    try:
        yield
    finally:
        settings.reading_validation_mode, settings.writing_validation_mode = saved


def _image(
    rng: random.Random,
    rows: int = 8,
    cols: int = 8,
    frames: int | None = None,
    bits: int = 8,
    syntax: UID = ExplicitVRLittleEndian,
    pixels: bytes | None = None,
) -> Dataset:
    """A small monochrome secondary-capture image; the caller bends it out of shape."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop = _uid(rng)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop
    ds.Modality = "DX"  # the bundled model's intended input, so predict gets to the pixels
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientName = "Hostile^Corpus"
    ds.PatientID = f"H{rng.randrange(10**6)}"
    ds.StudyInstanceUID = _uid(rng)
    ds.SeriesInstanceUID = _uid(rng)
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    if frames is not None:
        ds.NumberOfFrames = frames
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if pixels is None:
        n = rows * cols * (frames or 1) * max(bits // 8, 1)
        pixels = bytes(rng.randrange(256) for _ in range(min(n, 4096))) * (n // 4096 + 1)
        pixels = pixels[:n]
    ds.PixelData = pixels + (b"\0" if len(pixels) % 2 else b"")
    ds["PixelData"].VR = "OB" if bits <= 8 else "OW"
    return ds


def _save(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    with _lenient():
        ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _read(name: str) -> Dataset:
    with _lenient():
        return pydicom.dcmread(TEST_FILES / name)


def _jpeg(rng: random.Random, size: int = 8) -> bytes:
    buf = io.BytesIO()
    shade = rng.randrange(256)
    Image.new("L", (size, size), shade).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _patch_sof(jpeg: bytes, rows: int, cols: int, markers: tuple[int, ...]) -> bytes:
    """Overwrite the frame size in the first SOF marker (``markers``) of a JPEG codestream."""
    data = bytearray(jpeg)
    for i in range(2, len(data) - 8):
        if data[i] == 0xFF and data[i + 1] in markers:
            struct.pack_into(">HH", data, i + 5, rows, cols)
            return bytes(data)
    raise ValueError("no SOF marker")


def _encapsulated(ds: Dataset, frames: list[bytes], syntax: UID) -> bytes:
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return _save(ds)


# --------------------------------------------------------------------------- the classes


def huge_frame_count(rng: random.Random) -> bytes:
    """NumberOfFrames of 10 million or 2^32-1 in a file of a few hundred bytes."""
    ds = _image(rng, rows=1, cols=1, pixels=b"\0\0")
    ds.NumberOfFrames = rng.choice([10_000_000, 2**32 - 1, 2**31, 99_999_999])
    return _save(ds)


def jpeg_sof_after_app(rng: random.Random) -> bytes:
    """A JPEG whose SOF sits after 128 KiB of APP segments and declares 65535 x 65535."""
    jpeg = _jpeg(rng)
    apps = b"".join(
        b"\xff" + bytes([0xE1 + k % 14]) + struct.pack(">H", 65535) + bytes(65533)
        for k in range(2 + rng.randrange(2))
    )
    lie = _patch_sof(jpeg[:2] + apps + jpeg[2:], 65535, 65535, (0xC0, 0xC1))
    ds = _image(rng, rows=65535, cols=65535, pixels=b"")
    return _encapsulated(ds, [lie], JPEGBaseline8Bit)


def jpeg_consistent_huge(rng: random.Random) -> bytes:
    """A 1 KB JPEG whose header and dataset agree on 20000 x 20000."""
    size = rng.choice([20000, 30000, 40000])
    ds = _image(rng, rows=size, cols=size, pixels=b"")
    return _encapsulated(ds, [_patch_sof(_jpeg(rng), size, size, (0xC0,))], JPEGBaseline8Bit)


def segmented_palette(rng: random.Random) -> bytes:
    """PALETTE COLOR with segmented LUTs of 3,000 linear segments of 65,535 entries each."""
    ds = _image(rng, rows=16, cols=16)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    n = 3000 + rng.randrange(1000)
    segments = [0, 1, rng.randrange(65536)]
    for _ in range(n):
        segments += [1, 65535, rng.randrange(65536)]
    data = struct.pack(f"<{len(segments)}H", *segments)
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [0, 0, 16])
        setattr(ds, f"Segmented{colour}PaletteColorLookupTableData", data)
    return _save(ds)


def deflate_bomb(rng: random.Random) -> bytes:
    """Deflated Explicit VR Little Endian whose pixel data inflates ~1000-fold to 0.25-0.5 GiB."""
    side = rng.choice([16384, 23170])
    ds = _image(rng, rows=side, cols=side, pixels=b"\0\0")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    body = Dataset()
    for elem in ds:
        if elem.tag != 0x7FE00010:
            body.add(elem)
    with _lenient():
        enc = pydicom.filebase.DicomBytesIO()
        enc.is_little_endian, enc.is_implicit_VR = True, False
        pydicom.filewriter.write_dataset(enc, body)
    length = side * side
    plain_head = enc.getvalue() + struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, length)
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = [comp.compress(plain_head)]
    chunk = bytes(1 << 20)
    for _ in range(length >> 20):
        out.append(comp.compress(chunk))
    out.append(comp.compress(bytes(length & ((1 << 20) - 1))))
    out.append(comp.flush())
    head = io.BytesIO()
    with _lenient():
        pydicom.filewriter.write_file_meta_info(head, ds.file_meta)
    return bytes(128) + b"DICM" + head.getvalue() + b"".join(out)


def tiny_frames(rng: random.Random) -> bytes:
    """100,000 frames of 1 x 1 pixel."""
    return _save(_image(rng, rows=1, cols=1, frames=100_000))


def small_frames(rng: random.Random) -> bytes:
    """20,000 frames of 4 x 4 pixels."""
    return _save(_image(rng, rows=4, cols=4, frames=20_000))


def truncated_frames(rng: random.Random) -> bytes:
    """100,000 frames of 64 x 64 declared, the file cut after ~100 KB of pixel data."""
    kept = 100_000 + 2 * rng.randrange(64)
    data = bytearray(_save(_image(rng, rows=64, cols=64, frames=100_000, pixels=bytes(kept))))
    px = data.rfind(b"\xe0\x7f\x10\x00OB")
    struct.pack_into("<I", data, px + 8, 64 * 64 * 100_000)
    return bytes(data)


def preamble_only(rng: random.Random) -> bytes:
    """Only the 128-byte preamble and "DICM"."""
    return bytes(rng.randrange(256) if rng.random() < 0.5 else 0 for _ in range(128)) + b"DICM"


def file_meta_only(rng: random.Random) -> bytes:
    """A valid file meta group and no dataset after it."""
    ds = _image(rng)
    data = _save(ds)
    return data[: _meta_end(data)]


_HOSTILE_TEXT = [
    "\x1b]0;owned\x07Doe^John",
    "\x1b[2J\x1b[31mRED",
    "line1\nline2\rline3",
    "nul\x00byte",
    "\x9b31mC1\x85next",
    "bidi\u202eevil\u2066",
    "\x1bP+q\x1b\\",
]


def control_characters(rng: random.Random) -> bytes:
    """ESC/OSC/CSI, newlines, NUL, C1 and bidi overrides in every printed text tag."""
    ds = _image(rng)
    utf8 = rng.random() < 0.7
    ds.SpecificCharacterSet = "ISO_IR 192" if utf8 else "ISO_IR 100"
    texts = [t for t in _HOSTILE_TEXT if utf8 or max(map(ord, t)) < 0x100]
    for keyword in (
        "PatientName",
        "PatientID",
        "StudyDescription",
        "SeriesDescription",
        "InstitutionName",
        "Manufacturer",
        "BodyPartExamined",
        "StudyID",
        "AccessionNumber",
        "ReferringPhysicianName",
        "ImageComments",
    ):
        setattr(ds, keyword, rng.choice(texts))
    return _save(ds)


def absurd_values(rng: random.Random) -> bytes:
    """Finite but absurd VOI and rescale values: windows of 1e300, slopes of 1e-300, width 0."""
    ds = _image(rng, bits=16, rows=16, cols=16)
    ds.WindowCenter = rng.choice(["1e300", "-1e300", "0", "1e-300"])
    ds.WindowWidth = rng.choice(["0", "-5", "1e-300", "1e300"])
    ds.RescaleSlope = rng.choice(["1e300", "1e-300", "-1e300", "0"])
    ds.RescaleIntercept = rng.choice(["-1e308", "1e308", "9" * 16])
    ds.PixelSpacing = [rng.choice(["-1", "0", "1e308"]), "1e-308"]
    return _save(ds)


# --------------------------------------------------------------------------- our own


def _test_file_bytes(rng: random.Random) -> bytes:
    names = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "SC_rgb_jpeg.dcm"]
    return (TEST_FILES / rng.choice(names)).read_bytes()


def truncation(rng: random.Random) -> bytes:
    """A pydicom test file cut at a random byte."""
    data = _test_file_bytes(rng)
    return data[: rng.randrange(132, len(data))]


def length_past_eof(rng: random.Random) -> bytes:
    """An element's 4-byte length field (OB/OW/SQ/UN/UT) rewritten to run past the end."""
    data = bytearray(_test_file_bytes(rng))
    spots = [
        i
        for i in range(132, len(data) - 12)
        if data[i + 4 : i + 6] in (b"OB", b"OW", b"SQ", b"UN", b"UT")
        and data[i + 6 : i + 8] == b"\0\0"
    ]
    if spots:
        i = rng.choice(spots)
        struct.pack_into("<I", data, i + 8, rng.choice([0xFFFFFFFE, 0x7FFFFFFF, len(data) * 3]))
    else:  # implicit VR: bend the first length after the meta
        struct.pack_into("<I", data, 400, 0xFFFFFFF0)
    return bytes(data)


def nested_sequences(rng: random.Random) -> bytes:
    """Content Sequences of undefined length nested thousands deep (a recursion bomb)."""
    depth = rng.choice([2000, 5000, 20000])
    data = _save(_image(rng))
    opening = struct.pack(
        "<HH2sHIHHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF, 0xFFFE, 0xE000, 0xFFFFFFFF
    )
    closing = struct.pack("<HHIHHI", 0xFFFE, 0xE00D, 0, 0xFFFE, 0xE0DD, 0)
    inner = struct.pack("<HH2sH", 0x0008, 0x0100, b"SH", 2) + b"X "
    at = data.rfind(b"\xe0\x7f\x10\x00OB")
    return data[:at] + opening * depth + inner + closing * depth + data[at:]


def bad_transfer_syntax(rng: random.Random) -> bytes:
    """A Transfer Syntax UID that is unknown, empty, 64+ characters or has control characters;
    the dataset after it is Explicit VR Little Endian."""
    ds = _image(rng)
    data = _save(ds)
    body = data[_meta_end(data) :]
    ds.file_meta.TransferSyntaxUID = rng.choice(
        ["1.2.3.4.5.6", "", "1." * 40 + "1", "1.2.840.10008.1.2.4.50\x1b[2J", "not-a-uid"]
    )
    meta = io.BytesIO()
    pydicom.filewriter.write_file_meta_info(meta, ds.file_meta, enforce_standard=False)
    return bytes(128) + b"DICM" + meta.getvalue() + body


def _meta_end(data: bytes) -> int:
    """Where the dataset starts after a file meta group (its group length says)."""
    return 128 + 4 + 12 + struct.unpack_from("<I", data, 128 + 4 + 8)[0]


def odd_lengths(rng: random.Random) -> bytes:
    """Odd value lengths: Rows of 3 bytes, pixel data one byte short or long."""
    data = bytearray(_save(_image(rng)))
    rows_at = data.find(b"\x28\x00\x10\x00US")
    mode = rng.randrange(3)
    if mode == 0 and rows_at > 0:
        struct.pack_into("<H", data, rows_at + 6, 3)
    elif mode == 1:
        px = data.rfind(b"\xe0\x7f\x10\x00OB")
        struct.pack_into("<I", data, px + 8, struct.unpack_from("<I", data, px + 8)[0] - 1)
    else:
        px = data.rfind(b"\xe0\x7f\x10\x00OB")
        struct.pack_into("<I", data, px + 8, struct.unpack_from("<I", data, px + 8)[0] + 1)
        data += b"\0"
    return bytes(data)


def _patch_marker(codestream: bytes, marker: bytes, offset: int, fmt: str, *values: int) -> bytes:
    data = bytearray(codestream)
    at = data.find(marker)
    if at < 0:
        raise ValueError(f"no {marker.hex()} marker")
    struct.pack_into(fmt, data, at + offset, *values)
    return bytes(data)


def jpegls_lies(rng: random.Random) -> bytes:
    """A JPEG-LS codestream whose SOF55 declares 65535 x 65535 (dataset agrees, or not)."""
    ds = _read("MR_small_jpeg_ls_lossless.dcm")
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    size = rng.choice([65535, 40000])
    frame = _patch_marker(frame, b"\xff\xf7", 5, ">HH", size, size)
    if rng.random() < 0.5:
        ds.Rows = ds.Columns = size
    return _encapsulated(ds, [frame], JPEGLSLossless)


def j2k_lies(rng: random.Random) -> bytes:
    """A J2K codestream whose SIZ declares an image of 2^31 x 2^31 or 65535 x 65535."""
    ds = _read("MR_small_jp2klossless.dcm")
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    size = rng.choice([65535, 2**31 - 1, 2**32 - 1])
    frame = _patch_marker(frame, b"\xff\x51", 6, ">II", size, size)
    ds.Rows = ds.Columns = min(size, 65535)
    return _encapsulated(ds, [frame], JPEG2000Lossless)


def rle_offsets(rng: random.Random) -> bytes:
    """An RLE frame whose header has segment offsets past the end or 15 segments of nothing."""
    ds = _read("MR_small_RLE.dcm")
    frame = bytearray(next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1)))
    mode = rng.randrange(3)
    if mode == 0:
        struct.pack_into("<I", frame, 8, 0xFFFFFFF0)
    elif mode == 1:
        struct.pack_into("<16I", frame, 0, 15, *[64 + k for k in range(15)])
    else:
        struct.pack_into("<I", frame, 0, 0xFFFFFFFF)
    return _encapsulated(ds, [bytes(frame)], RLELossless)


def bits_allocated(rng: random.Random) -> bytes:
    """Bits Allocated of 0, 64, 7 or 33; Bits Stored above it; High Bit out of range."""
    ds = _image(rng, rows=8, cols=8)
    ds.BitsAllocated = rng.choice([0, 64, 7, 33, 65535])
    ds.BitsStored = rng.choice([0, 8, 64, 65535])
    ds.HighBit = rng.choice([0, 7, 200])
    return _save(ds)


def size_overflow(rng: random.Random) -> bytes:
    """Rows x Columns x Samples x Frames past 2^31 and 2^63, with a few bytes of pixel data."""
    ds = _image(rng, rows=65535, cols=65535, pixels=b"\0" * 64)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = 32
    ds.BitsStored = 32
    ds.HighBit = 31
    ds.NumberOfFrames = rng.choice([2**31 - 1, 2**32, 1])
    return _save(ds)


def pixel_spacing(rng: random.Random) -> bytes:
    """Negative, zero, huge, one-valued and non-numeric Pixel Spacing and slice geometry."""
    ds = _image(rng, rows=16, cols=16)
    spacing = rng.choice([b"-1\\-1", b"0\\0", b"1e308\\1e308", b"1 ", b"a\\b ", b"nan\\inf "])
    _raw(ds, 0x00280030, "DS", spacing)
    _raw(ds, 0x00180050, "DS", rng.choice([b"-1e308", b"0 ", b"x "]))
    ds.ImagePositionPatient = ["1e308", "-1e308", "0"]
    ds.ImageOrientationPatient = ["0", "0", "0", "0", "0", "0"]
    return _save(ds)


def _raw(ds: Dataset, tag: int, vr: str, value: bytes) -> None:
    """Store ``value`` as the element's bytes, unparsed (pydicom would refuse to parse it)."""
    ds[tag] = RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)


def offset_table_lies(rng: random.Random) -> bytes:
    """A Basic Offset Table with offsets past the end and a frame count it doesn't match."""
    ds = _image(rng, rows=8, cols=8, pixels=b"")
    ds.NumberOfFrames = rng.choice([3, 1000])
    frames = [_jpeg(rng) for _ in range(3)]
    data = bytearray(_encapsulated(ds, frames, JPEGBaseline8Bit))
    bot = data.find(b"\xfe\xff\x00\xe0", data.rfind(b"\xe0\x7f\x10\x00"))
    count = struct.unpack_from("<I", data, bot + 4)[0] // 4
    for k in range(count):
        struct.pack_into("<I", data, bot + 8 + 4 * k, rng.choice([0xFFFFFFF0, 7, 10**9]))
    return bytes(data)


CLASSES: dict[str, Maker] = {
    "huge-frame-count": huge_frame_count,
    "jpeg-sof-after-app": jpeg_sof_after_app,
    "jpeg-consistent-huge": jpeg_consistent_huge,
    "segmented-palette": segmented_palette,
    "deflate-bomb": deflate_bomb,
    "tiny-frames": tiny_frames,
    "small-frames": small_frames,
    "truncated-frames": truncated_frames,
    "preamble-only": preamble_only,
    "file-meta-only": file_meta_only,
    "control-characters": control_characters,
    "absurd-values": absurd_values,
    "truncation": truncation,
    "length-past-eof": length_past_eof,
    "nested-sequences": nested_sequences,
    "bad-transfer-syntax": bad_transfer_syntax,
    "odd-lengths": odd_lengths,
    "jpegls-lies": jpegls_lies,
    "j2k-lies": j2k_lies,
    "rle-offsets": rle_offsets,
    "bits-allocated": bits_allocated,
    "size-overflow": size_overflow,
    "pixel-spacing": pixel_spacing,
    "offset-table-lies": offset_table_lies,
}


def write_corpus(folder: Path, seeds_per_class: int = 1, first_seed: int = 0) -> list[Path]:
    """Write ``seeds_per_class`` files of every class into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, make in CLASSES.items():
        for seed in range(first_seed, first_seed + seeds_per_class):
            path = folder / f"{name}-{seed}.dcm"
            if not path.exists():
                with _lenient():
                    data = make(random.Random(f"{name}-{seed}"))
                path.write_bytes(data)
            paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seeds", type=int, default=1, help="files per class")
    args = parser.parse_args()
    paths = write_corpus(args.folder, args.seeds)
    print(f"{len(paths)} files in {args.folder}")


if __name__ == "__main__":
    main()
