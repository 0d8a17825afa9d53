"""One decode budget for every pixel path (issue 12): each hostile file, a few kilobytes that
declare or expand to gigabytes, is refused in one line, before anything large is allocated,
or decoded within the budget."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pydicom.pixels
import pytest

from desktop_app.dicom import dicomfile, display, pixels
from desktop_app.dicom.limits import (
    DEFAULT_LIMITS,
    GIB,
    INTERACTIVE_LIMITS,
    MIB,
    ReadLimits,
    interactive_limits,
)
from desktop_app.dicom.pixels.codestream import codestream_header
from desktop_app.dicom.pixels.palette import expand_segmented_lut
from desktop_app.infra.errors import LimitExceededError, PixelDecodeError
from desktop_app.settings import schema
from tests.dicom import budget_files
from tests.helpers.dicomfiles import image_dataset, raw_file, save

REPO = Path(__file__).resolve().parents[2]


def open_and_render(path: Path, limits: ReadLimits = DEFAULT_LIMITS) -> np.ndarray:
    """What ``inspect`` does with a file: header, frame 0, display."""
    ds = dicomfile.read_header(path, limits=limits)
    return display.render(pixels.load_frame(path, 0, ds=ds, limits=limits))


def traced_peak(fn: Callable[..., object], *args: object) -> tuple[BaseException | None, int]:
    """(the exception ``fn(*args)`` raised or None, peak bytes traced while it ran)."""
    tracemalloc.start()
    try:
        fn(*args)
        raised = None
    except Exception as err:
        raised = err
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return raised, peak


CHILD = """
import resource, sys
cap = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
from desktop_app.dicom import dicomfile, display, pixels
try:
    ds = dicomfile.read_header(sys.argv[1])
    print("decoded", display.render(pixels.load_frame(sys.argv[1], 0, ds=ds)).shape)
except Exception as err:
    print(type(err).__name__, err)
"""


def in_bounded_child(path: Path, address_space: int = 1 * GIB) -> str:
    """The inspect path in a subprocess whose address space is capped (RLIMIT_AS): what it
    printed (one line). A decoder that allocated what the file declares would fail there."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(path), str(address_space)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,  # a bound, not a benchmark
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


class TestReadLimits:
    def test_defaults_keep_the_documented_budget(self) -> None:
        assert DEFAULT_LIMITS.max_object_bytes == 2 * GIB
        assert DEFAULT_LIMITS.max_frame_pixels == 8192 * 8192
        assert DEFAULT_LIMITS.max_lut_entries == 65536
        assert DEFAULT_LIMITS.max_inflated_bytes == 256 * MIB

    def test_interactive_budget_is_lower_and_follows_the_setting(self) -> None:
        assert INTERACTIVE_LIMITS.max_object_bytes == 512 * MIB
        assert INTERACTIVE_LIMITS.max_frame_bytes == 256 * MIB
        raised = interactive_limits(2048)
        assert raised.max_object_bytes == DEFAULT_LIMITS.max_object_bytes
        assert raised.max_frame_bytes == DEFAULT_LIMITS.max_frame_bytes
        assert interactive_limits(64).max_frame_bytes == 64 * MIB

    def test_setting_spans_the_interactive_default_up_to_the_documented_cap(self) -> None:
        spec = schema.spec("reading/max_object_mib")
        assert spec.default == 512 and spec.maximum == 2048
        assert schema.coerce(spec.key, "1024") == 1024
        assert schema.coerce(spec.key, "99999") == 512  # out of range: the default

    @pytest.mark.parametrize("name", ["max_frame_bytes", "max_frame_pixels", "max_lut_entries"])
    def test_new_fields_are_validated(self, name: str) -> None:
        with pytest.raises(ValueError, match=f"`{name}` 0 should be a positive integer"):
            ReadLimits(**{name: 0})


class TestFrameBudget:
    def test_consistent_20000_square_jpeg_is_refused_before_decoding(self, tmp_path: Path) -> None:
        path = budget_files.huge_consistent_jpeg(tmp_path / "big.dcm")
        assert path.stat().st_size < 4096
        raised, peak = traced_peak(open_and_render, path)
        assert isinstance(raised, LimitExceededError)
        assert str(raised) == (
            f"{path}: declares frames of 20000x20000 = 400000000 pixels, over the limit "
            "of 67108864 pixels per frame (a safety limit for untrusted files "
            "(ReadLimits.max_frame_pixels); the file is not read)"
        )
        assert peak < 8 * MIB
        with pytest.raises(LimitExceededError, match="over the limit of 536870912"):
            open_and_render(path, INTERACTIVE_LIMITS)  # its float32 frame is over 512 MiB

    def test_8192_square_frames_are_within_the_budget(self, tmp_path: Path) -> None:
        for bits, limits in ((16, DEFAULT_LIMITS), (16, INTERACTIVE_LIMITS), (8, DEFAULT_LIMITS)):
            ds = image_dataset(np.zeros((2, 2), np.uint16), bits_allocated=16)
            ds.Rows = ds.Columns = 8192
            ds.BitsAllocated = ds.BitsStored = bits
            ds.PixelData = b"\x00" * (8192 * 8192 * bits // 8)
            geometry = pixels.pixel_geometry(ds, None, limits)
            assert (geometry.rows, geometry.columns) == (8192, 8192)

    def test_large_colour_frame_is_over_the_interactive_frame_bytes(self) -> None:
        ds = image_dataset(np.zeros((2, 2, 3), np.uint8), bits_allocated=8, photometric="RGB")
        ds.Rows = ds.Columns = 6000
        ds.PixelData = b"\x00" * (6000 * 6000 * 3)
        assert pixels.pixel_geometry(ds, None, DEFAULT_LIMITS).samples == 3
        with pytest.raises(
            LimitExceededError,
            match=re.escape(
                "declares frames of 6000x6000 pixels x 3 samples = 432000000 bytes decoded, "
                "over the limit of 268435456 bytes per frame (if the file is trusted, raise "
                "Settings > Largest image to open in the app (ReadLimits.max_frame_bytes))"
            ),
        ):
            pixels.pixel_geometry(ds, None, INTERACTIVE_LIMITS)

    def test_object_budget_follows_the_setting(self, tmp_path: Path) -> None:
        ds = image_dataset(np.zeros((3, 2, 2), np.uint16), frames=3)
        ds.Rows = ds.Columns = 4096
        ds.NumberOfFrames = 40  # 40 x 32 MiB = 1280 MiB
        ds.PixelData = b"\x00" * 2
        with pytest.raises(LimitExceededError, match="over the limit of 536870912"):
            pixels.pixel_geometry(ds, None, INTERACTIVE_LIMITS)
        with pytest.raises(PixelDecodeError, match="holds 2 bytes"):  # past the budget
            pixels.pixel_geometry(ds, None, interactive_limits(2048))


class TestCodestreamHeader:
    def test_sof_after_128_kib_of_app_data_is_found(self) -> None:
        jpeg = budget_files.small_jpeg(seed=3)
        frame = budget_files.with_app_padding(jpeg, 128 * 1024)
        assert len(frame) > 128 * 1024
        header = codestream_header(budget_files.with_dimensions(frame, 65535, 65535))
        assert header is not None
        assert (header.rows, header.columns, header.components) == (65535, 65535, 1)

    def test_late_sof_that_disagrees_is_refused_before_decoding(self, tmp_path: Path) -> None:
        path = budget_files.late_sof_jpeg(tmp_path / "late.dcm", seed=4)
        assert 128 * 1024 < path.stat().st_size < 256 * 1024
        raised, peak = traced_peak(open_and_render, path)
        assert isinstance(raised, PixelDecodeError)
        assert "compressed frame declares 65535x65535 pixels but Rows x Columns are 16x16" in (
            str(raised)
        )
        assert peak < 8 * MIB

    def test_late_sof_that_agrees_still_decodes(self, tmp_path: Path) -> None:
        frame = budget_files.with_app_padding(budget_files.small_jpeg(seed=5), 128 * 1024)
        path = budget_files.jpeg_file(tmp_path / "ok.dcm", frame, 16, 16)
        assert open_and_render(path).shape == (16, 16)

    def test_jpeg_without_a_frame_header_is_refused(self, tmp_path: Path) -> None:
        jpeg = budget_files.small_jpeg(seed=6)
        sof = jpeg.index(b"\xff\xc0")
        (length,) = struct.unpack(">H", jpeg[sof + 2 : sof + 4])
        path = budget_files.jpeg_file(
            tmp_path / "nosof.dcm", jpeg[:sof] + jpeg[sof + 2 + length :], 16, 16
        )
        with pytest.raises(PixelDecodeError, match="has no JPEG/JPEG-LS frame header"):
            open_and_render(path)

    def test_jp2_size_is_read_past_its_boxes(self) -> None:
        siz = struct.pack(">HHH8LH", 0xFF51, 41, 0, 300, 200, 0, 0, 300, 200, 0, 0, 3)
        siz += bytes((7, 1, 1)) * 3
        box = b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00\x02\x00\x08xml " + b"\x00" * (200 << 10)
        header = codestream_header(box + b"\xff\x4f" + siz)
        assert header is not None
        assert (header.kind, header.rows, header.columns) == ("JPEG 2000", 200, 300)
        assert (header.components, header.precision, header.tiles) == (3, 8, 1)


class TestSegmentedPalette:
    def test_3000_segments_expand_within_the_entry_limit(self, tmp_path: Path) -> None:
        path = budget_files.segmented_palette(tmp_path / "seg.dcm", seed=7)
        assert path.stat().st_size < 64 * 1024
        raised, peak = traced_peak(open_and_render, path)
        assert raised is None
        assert peak < 16 * MIB
        assert open_and_render(path).shape == (8, 8, 3)

    def test_expansion_matches_pydicom(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(8)
        words = [0, 3, 10, 2000, 3000, 1, 100, 60000, 2, 1, 0, 0, 1, 50, 5]
        ds = image_dataset(
            rng.integers(0, 256, (16, 16), dtype=np.uint8),
            bits_allocated=8,
            photometric="PALETTE COLOR",
        )
        data = struct.pack(f"<{len(words)}H", *words)
        for colour in ("Red", "Green", "Blue"):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [156, 0, 16])
            setattr(ds, f"Segmented{colour}PaletteColorLookupTableData", data)
        path = save(ds, tmp_path / "pal.dcm")
        frame = pixels.load_frame(path)
        expected = pydicom.pixels.apply_color_lut(ds.pixel_array, pydicom.dcmread(path))
        assert np.array_equal(frame.values, expected)

    def test_entries_over_the_limit_are_refused(self, tmp_path: Path) -> None:
        path = budget_files.segmented_palette(tmp_path / "seg.dcm", segments=4, seed=9)
        with pytest.raises(
            LimitExceededError, match="palette LUT declares 65536 entries, over the limit of 256"
        ):
            open_and_render(path, ReadLimits(max_lut_entries=256))

    def test_indirect_segments_that_loop_are_refused(self) -> None:
        with pytest.raises(PixelDecodeError, match="nests indirect segments over 64 deep"):
            expand_segmented_lut([0, 1, 5, 2, 2, 3, 0], 65536)

    def test_expansion_stops_at_the_cap(self) -> None:
        assert len(expand_segmented_lut([0, 1, 0, *([1, 65535, 7] * 100)], 1000)) == 1000


class TestDeflate:
    def test_bomb_is_refused_while_streaming(self, tmp_path: Path) -> None:
        inner = struct.pack("<HH2sHL", 0x0009, 0x1010, b"OB", 0, 64 << 20)
        packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = packer.compress(inner + b"\x00" * (64 << 20)) + packer.flush()
        path = raw_file(tmp_path / "bomb.dcm", body, pydicom.uid.DeflatedExplicitVRLittleEndian)
        limits = ReadLimits(max_inflated_bytes=8 << 20)
        raised, peak = traced_peak(lambda: dicomfile.read_header(path, limits=limits))
        assert isinstance(raised, LimitExceededError)
        assert f"deflated data ({len(body)} bytes) inflates to more than 8388608 bytes" in str(
            raised
        )
        assert "(ReadLimits.max_inflated_bytes); the file is not read" in str(raised)
        assert peak < 16 * MIB

    def test_default_budget_refuses_a_bomb_in_bounded_memory(self, tmp_path: Path) -> None:
        path = budget_files.deflate_bomb(tmp_path / "bomb.dcm", inflated=300 << 20)
        assert path.stat().st_size < 2 * MIB
        line = in_bounded_child(path, address_space=1 * GIB)
        assert line.startswith(f"LimitExceededError {path}: deflated data")
        assert "inflates to more than 268435456 bytes" in line

    def test_deflated_image_within_the_budget_decodes(self, tmp_path: Path) -> None:
        arr = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
        ds = image_dataset(arr, transfer_syntax=pydicom.uid.DeflatedExplicitVRLittleEndian)
        path = save(ds, tmp_path / "dfl.dcm")
        ds = dicomfile.read_header(path)
        assert np.array_equal(pixels.decode_frame(path, 0, ds=ds), arr)


class TestInBoundedProcess:
    """The same files through the inspect path in a child limited to 1 GiB of address space."""

    @pytest.mark.parametrize(
        ("build", "expected"),
        [
            (budget_files.huge_consistent_jpeg, "LimitExceededError"),
            (budget_files.late_sof_jpeg, "PixelDecodeError"),
            (budget_files.segmented_palette, "decoded (8, 8, 3)"),
        ],
        ids=["jpeg-20000", "late-sof", "segmented-palette"],
    )
    def test_refused_or_decoded(
        self, tmp_path: Path, build: Callable[[Path], Path], expected: str
    ) -> None:
        path = build(tmp_path / "hostile.dcm")
        line = in_bounded_child(path)
        assert line.startswith(expected), line
        assert "\n" not in line
