"""Hostile and malformed segmentation training inputs (NIfTI volumes, label images, dataset.json,
RTSTRUCT and SEG mask sources) are refused in one line naming the file, with memory and time
bounded whatever the file declares. Each file is built here in a fraction of a second; where
memory matters the reader runs in a child process under an address-space limit (as the hostile
corpus harness, tests/hostile/harness.py, does) and reports its peak RSS."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from desktop_app.infra.errors import DataError
from training.seglayouts import read_seg_layout
from training.segmasks import DicomMask, LabelImage, read_label_image, read_mask, read_volume

GIB = 1 << 30
AS_LIMIT = 3 * GIB // 2  # the hostile corpus's 1.5 GiB: the readers here import no torch
WALL_BOUND_S = 300.0  # a bound against hangs on a busy machine, not a benchmark
ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- builders


def nifti_bytes(
    shape: tuple[int, ...], dtype: str = "uint8", *, data: bytes | None = None,
    zooms: tuple[float, ...] | None = None, affine: np.ndarray | None = None,
    datatype: int | None = None, offset: float | None = None,
) -> bytes:  # fmt: skip
    """A NIfTI-1 single file whose header declares ``shape`` and ``dtype``, followed by
    ``data`` (default: a few bytes, whatever the shape says); ``datatype`` overrides the
    header's code (complex, RGB)."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.dtype(dtype))
    header.set_data_shape(tuple(max(1, s) for s in shape))
    header["dim"][1 : len(shape) + 1] = shape  # 0 or negative dims as written
    header.set_sform(np.eye(4) if affine is None else affine, code=1)
    if zooms is not None:
        header["pixdim"][1 : len(zooms) + 1] = zooms
    if datatype is not None:
        header["datatype"] = datatype
    header["vox_offset"] = 352 if offset is None else offset
    extension = b"\0" * 4 if offset is None else b"\1\0\0\0" + struct.pack("<ii", 1 << 30, 0)
    return header.binaryblock + extension + (data if data is not None else b"\0" * 64)


def write_nifti(path: Path, payload: bytes) -> Path:
    path.write_bytes(gzip.compress(payload, 1) if path.name.endswith(".gz") else payload)
    return path


def gzip_bomb(path: Path, shape: tuple[int, ...], decompressed: int) -> Path:
    """A .nii.gz whose header declares ``shape`` (uint8) and whose gzip stream inflates to
    ``decompressed`` bytes of zeros: one 16 MiB member compressed once and repeated (a gzip
    file may hold several members), so building 1 GiB takes a few milliseconds."""
    chunk = 16 << 20
    member = gzip.compress(b"\0" * chunk, 9)
    with path.open("wb") as fh:
        fh.write(gzip.compress(nifti_bytes(shape, data=b""), 9))
        for _ in range(decompressed // chunk):
            fh.write(member)
    return path


def png_bytes(width: int, height: int, *, bit_depth: int = 1, colour: int = 0,
              rows: int = 4) -> bytes:  # fmt: skip
    """A PNG that declares ``width`` x ``height`` but holds ``rows`` rows of zeros (a
    decompression bomb's header: Pillow trusts the IHDR until it decodes)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    row = b"\0" * (1 + (width * bit_depth + 7) // 8)
    body = chunk(b"IHDR", ihdr)
    if colour == 3:
        body += chunk(b"PLTE", b"\0\0\0\xff\xff\xff")
    body += chunk(b"IDAT", zlib.compress(row * rows, 9)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def msd_folder(root: Path, label: Path | None = None, image: Path | None = None,
               dataset_json: bytes | None = None) -> Path:  # fmt: skip
    """An MSD folder with one case: ``image`` / ``label`` (a benign 8x8x4 volume when None)."""
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    benign = nifti_bytes((8, 8, 4), data=bytes(8 * 8 * 4))
    for folder, name, given in (("imagesTr", "case_0000.nii.gz", image),
                                ("labelsTr", "case.nii.gz", label)):  # fmt: skip
        target = root / folder / name
        if given is None:
            write_nifti(target, benign)
        else:
            given.replace(target)
    if dataset_json is not None:
        (root / "dataset.json").write_bytes(dataset_json)
    return root


def _child_peak(code: str, tmp_path: Path, limit: int = AS_LIMIT) -> tuple[str, int]:
    """Run ``code`` in a fresh interpreter limited to ``limit`` bytes of address space; its
    last stdout line and its peak RSS in bytes (VmHWM)."""
    report = tmp_path / "status.txt"
    child = (
        "import atexit, pathlib, resource\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
        f"out = pathlib.Path({str(report)!r})\n"
        "atexit.register(lambda: out.write_text(pathlib.Path('/proc/self/status').read_text()))\n"
        + code
    )
    done = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, cwd=ROOT,
        timeout=WALL_BOUND_S, env=dict(os.environ, PYTHONWARNINGS="error"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    hwm = next(line for line in report.read_text().splitlines() if line.startswith("VmHWM"))
    return done.stdout.strip().splitlines()[-1], int(hwm.split()[1]) * 1024


REFUSE = (
    "from pathlib import Path\n"
    "from desktop_app.infra.errors import DataError\n"
    "try:\n"
    "    {call}\n"
    "    print('read')\n"
    "except DataError as err:\n"
    "    print(err.one_line())\n"
)

# --------------------------------------------------------------------------- NIfTI headers

NAN_AFFINE = np.eye(4)
NAN_AFFINE[0, 0] = np.nan

NIFTI_CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "huge dims": (lambda: nifti_bytes((32000, 32000, 1000)), "declares 1024000000000 voxels"),
    "over the voxel budget": (lambda: nifti_bytes((2048, 1024, 1024)), "over the limit of"),
    "NaN voxel size": (
        lambda: nifti_bytes((4, 4, 4), data=bytes(64), zooms=(np.nan,) * 3),
        "voxel size nan",
    ),
    "absurd voxel size": (
        lambda: nifti_bytes((4, 4, 4), data=bytes(64), zooms=(1e30,) * 3),
        "voxel size 1e\\+30",
    ),
    "NaN affine": (
        lambda: nifti_bytes((4, 4, 4), data=bytes(64), affine=NAN_AFFINE),
        "affine .* not finite",
    ),
    "a zero dim": (lambda: nifti_bytes((0, 4, 4)), "declares dimensions 0x4x4"),
    "a negative dim": (lambda: nifti_bytes((-5, 4, 4)), "declares dimensions -5x4x4"),
    "5-D": (lambda: nifti_bytes((4, 4, 4, 2, 3), data=bytes(384)), "NIfTI of 5 dimensions"),
    "7-D": (lambda: nifti_bytes((2,) * 7, data=bytes(128)), "NIfTI of 7 dimensions"),
    "complex": (
        lambda: nifti_bytes((4, 4, 4), "complex64", data=bytes(512)),
        "data type complex64",
    ),
    "RGB": (lambda: nifti_bytes((4, 4, 4), data=bytes(192), datatype=128), "data type RGB"),
    "huge extensions": (lambda: nifti_bytes((4, 4, 4), offset=2e9), "starts at byte 2000000000"),
}


class TestNiftiHeaders:
    @pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
    @pytest.mark.parametrize("case", list(NIFTI_CASES))
    def test_refused_in_one_line_before_reading(
        self, case: str, suffix: str, tmp_path: Path
    ) -> None:
        build, message = NIFTI_CASES[case]
        path = write_nifti(tmp_path / f"x{suffix}", build())
        with pytest.raises(DataError, match=message) as caught:
            read_volume(path)
        line = caught.value.one_line()
        assert str(path) in line and "\n" not in line

    def test_a_label_image_nifti_is_checked_too(self, tmp_path: Path) -> None:
        path = write_nifti(tmp_path / "mask.nii.gz", nifti_bytes((32000, 32000, 2)))
        with pytest.raises(DataError, match="over the limit of"):
            read_label_image(LabelImage(path))

    def test_a_benign_volume_still_reads(self, tmp_path: Path) -> None:
        path = write_nifti(tmp_path / "ok.nii.gz", nifti_bytes((8, 6, 4), data=bytes(192)))
        volume, spacing = read_volume(path)
        assert volume.shape == (4, 6, 8) and spacing == (1.0, 1.0)

    def test_a_zero_voxel_size_is_mended_without_a_line_on_the_terminal(
        self, tmp_path: Path, capfd: pytest.CaptureFixture[str]
    ) -> None:
        path = write_nifti(
            tmp_path / "zero.nii", nifti_bytes((4, 4, 4), data=bytes(64), zooms=(0.0,) * 3)
        )
        volume, spacing = read_volume(path)
        assert volume.shape == (4, 4, 4) and spacing == (1.0, 1.0)  # nibabel's rule: 0 -> 1
        assert capfd.readouterr().err == ""

    def test_a_gzip_bomb_is_refused_by_its_header_in_bounded_memory(self, tmp_path: Path) -> None:
        path = gzip_bomb(tmp_path / "bomb.nii.gz", (2048, 1024, 1024), 1 << 30)
        assert path.stat().st_size < 4 << 20  # 1 GiB of zeros in a few MiB
        line, peak = _child_peak(
            REFUSE.format(
                call=f"__import__('training.segmasks').segmasks.read_volume(Path({str(path)!r}))"
            ),
            tmp_path,
        )
        assert line.startswith(f"{path}: NIfTI volume 2048x1024x1024"), line
        assert peak < 400 << 20, peak

    def test_a_volume_in_budget_but_not_in_memory_is_one_line(self, tmp_path: Path) -> None:
        path = gzip_bomb(tmp_path / "bomb.nii.gz", (1024, 1024, 1024), 1 << 30)
        call = f"__import__('training.segmasks').segmasks.read_volume(Path({str(path)!r}))"
        line, _ = _child_peak(REFUSE.format(call=call), tmp_path, limit=GIB)
        assert line.startswith(f"{path}: not enough memory to read the NIfTI volume"), line

    def test_the_msd_layout_refuses_a_huge_volume_in_bounded_memory(self, tmp_path: Path) -> None:
        huge = nifti_bytes((32000, 32000, 1000))
        root = msd_folder(
            tmp_path / "msd",
            label=write_nifti(tmp_path / "a.nii.gz", huge),
            image=write_nifti(tmp_path / "b.nii.gz", huge),
        )
        call = f"__import__('training.seglayouts').seglayouts.read_seg_layout(Path({str(root)!r}), 'msd')"
        line, peak = _child_peak(REFUSE.format(call=call), tmp_path)
        assert "declares 1024000000000 voxels" in line and line.startswith(str(root)), line
        assert peak < 400 << 20, peak


class TestVolumes3D:
    @pytest.mark.parametrize(
        ("zooms", "dtype", "message"),
        [
            ((np.nan,) * 3, "uint8", "voxel size nan"),
            ((1e30,) * 3, "uint8", "voxel size 1e\\+30"),
            ((1.0,) * 3, "complex64", "data type complex64"),
        ],
    )
    def test_load_volume_data_refuses_a_bad_header(
        self, zooms: tuple[float, ...], dtype: str, message: str, tmp_path: Path
    ) -> None:
        from training.seg3ddata import load_volume_data

        payload = nifti_bytes((4, 4, 4), dtype, data=bytes(64 * np.dtype(dtype).itemsize),
                              zooms=zooms)  # fmt: skip
        root = msd_folder(
            tmp_path / "msd",
            label=write_nifti(tmp_path / "a.nii.gz", payload),
            image=write_nifti(tmp_path / "b.nii.gz", payload),
        )
        with pytest.raises(DataError, match=message):
            load_volume_data(root)


# --------------------------------------------------------------------------- label images


class TestLabelImages:
    @pytest.mark.parametrize(
        ("size", "bit_depth", "colour", "message"),
        [
            (50000, 1, 0, "DecompressionBombError"),  # 2.5 G pixels of 1 bit in a few hundred bytes
            (12000, 8, 3, "DecompressionBombWarning"),  # paletted, between Pillow's two limits
            (14000, 16, 0, "DecompressionBombError"),
        ],
    )
    def test_a_png_bomb_is_refused_before_decoding(
        self, size: int, bit_depth: int, colour: int, message: str, tmp_path: Path
    ) -> None:
        path = tmp_path / "mask.png"
        path.write_bytes(png_bytes(size, size, bit_depth=bit_depth, colour=colour))
        assert path.stat().st_size < 64 << 10
        with pytest.raises(DataError, match=message) as caught:
            read_label_image(LabelImage(path))
        assert str(path) in caught.value.one_line()


# --------------------------------------------------------------------------- dataset.json


class TestDatasetJson:
    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
            (b"\xff\xfe not json", "can't be read"),
            (b'{"labels": "tumour"', "can't be read"),
            (b'{"labels": {"tumour": Infinity}}', "inf is not a label value"),
            (b'{"labels": {"tumour": 1e400}}', "inf is not a label value"),
            (b'{"labels": {"tumour": 123456789012345678901234567890}}', "is not a label value"),
            (b'{"labels": {"tumour": -7}}', "-7 is not a label value"),
            (b'{"labels": {"tumour": 1.5}}', "1.5 is not a label value"),
            (b'{"labels": {"whole": [1, {"a": 2}]}}', "is not a label value"),
        ],
    )
    def test_refused_in_one_line(self, body: bytes, message: str, tmp_path: Path) -> None:
        root = msd_folder(tmp_path / "msd", dataset_json=body)
        with pytest.raises(DataError, match=message) as caught:
            read_seg_layout(root, "msd")
        assert str(root / "dataset.json") in caught.value.one_line()

    def test_a_huge_file_is_refused_by_its_size(self, tmp_path: Path) -> None:
        root = msd_folder(tmp_path / "msd")
        with (root / "dataset.json").open("wb") as fh:
            fh.truncate(4 << 30)  # sparse: 4 GiB declared, nothing written
        with pytest.raises(DataError, match="4294967296 bytes, over the limit"):
            read_seg_layout(root, "msd")

    def test_labels_as_msd_and_nnunet_still_read(self, tmp_path: Path) -> None:
        for k, body in enumerate((b'{"labels": {"0": "background", "1": "tumour"}}',
                                  b'{"labels": {"background": 0, "tumour": 1.0}}')):  # fmt: skip
            data = read_seg_layout(msd_folder(tmp_path / f"m{k}", dataset_json=body), "msd")
            assert data.data.labels == ("tumour",)


# --------------------------------------------------------------------------- SEG / RTSTRUCT


@pytest.fixture(scope="module")
def ct_objects(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """The CT sample's slices (z-sorted paths) with a SEG and an RTSTRUCT beside them."""
    import pydicom

    from tests.helpers.segobjects import copy_ct, ct_slices, write_rtstruct, write_seg

    folder = tmp_path_factory.mktemp("ct")
    files = copy_ct(folder / "images")
    slices = ct_slices(files)
    by_uid = {str(pydicom.dcmread(p).SOPInstanceUID): p for p in files}
    write_seg(folder, slices)
    write_rtstruct(folder, slices)
    return folder, [by_uid[str(d.SOPInstanceUID)] for d in slices]


def _mask_of(source: Path, kind: str, image: Path) -> np.ndarray:
    from desktop_app.dicom.pixels import load_frame

    shape = load_frame(image, 0).values.shape
    return read_mask(DicomMask(source, kind), image, (shape[0], shape[1]))


class TestDicomMaskSources:
    @pytest.mark.parametrize(
        ("declared", "data"),
        [
            (10_000_000, None),  # 10 million points declared, 24 given
            (None, [1e300, 0.0, 0.0] * 24),  # absurd coordinates
            (None, [float("nan")] * 72),
            (None, [0.5] * 3 * 20_001),  # more points than one contour may hold
        ],
    )
    def test_a_hostile_rtstruct_contour_is_dropped(
        self, declared: int | None, data: list[float] | None,
        ct_objects: tuple[Path, list[Path]], tmp_path: Path,
    ) -> None:  # fmt: skip
        import pydicom
        from pydicom.uid import ImplicitVRLittleEndian

        from tests.helpers.segobjects import NODULE_SLICES

        folder, images = ct_objects

        ds = pydicom.dcmread(folder / "rtstruct.dcm")
        contour = ds.ROIContourSequence[0].ContourSequence[0]  # on the first nodule slice
        if declared is not None:
            contour.NumberOfContourPoints = declared
        if data is not None:
            contour.ContourData = [f"{v:.6g}"[:16] for v in data]
        path = tmp_path / "hostile-rtstruct.dcm"
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian  # a value over 64 KiB
        ds.save_as(path, enforce_file_format=True)
        first, middle = images[NODULE_SLICES[0]], images[NODULE_SLICES[2]]
        assert not _mask_of(path, "rtstruct", first).any()  # the bad contour is not drawn
        assert _mask_of(path, "rtstruct", middle).any()  # the others still are

    def test_a_seg_declaring_frames_it_lacks_is_refused(
        self, ct_objects: tuple[Path, list[Path]], tmp_path: Path
    ) -> None:
        import pydicom

        folder, images = ct_objects
        ds = pydicom.dcmread(folder / "seg.dcm")
        ds.NumberOfFrames = 100_000
        path = tmp_path / "hostile-seg.dcm"
        ds.save_as(path)
        with pytest.raises(DataError, match="SEG can't be read") as caught:
            _mask_of(path, "seg", images[20])
        assert str(path) in caught.value.one_line()


# --------------------------------------------------------------------------- the CLI

CT_MODEL = ROOT / "resources" / "models" / "radassist-ct-nodule-lite0.safetensors"


@pytest.mark.parametrize("command", ["fit", "evaluate"])
def test_fit_and_evaluate_print_one_line_and_exit_non_zero(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from training import cli

    root = msd_folder(
        tmp_path / "msd",
        label=gzip_bomb(tmp_path / "a.nii.gz", (2048, 1024, 1024), 1 << 30),
        image=gzip_bomb(tmp_path / "b.nii.gz", (2048, 1024, 1024), 1 << 30),
    )
    if command == "fit":
        args = ["fit", "--task", "segmentation", "--data", str(root), "--out",
                str(tmp_path / "out"), "--epochs", "1", "--quiet"]  # fmt: skip
    else:
        args = ["evaluate", "--model", str(CT_MODEL), "--data", str(root)]
    code = cli.main(args)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"{root / 'imagesTr' / 'case_0000.nii.gz'}: NIfTI volume 2048x1024x1024" in lines[0]
