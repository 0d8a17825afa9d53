"""Lazy series volumes: on-demand decoding, the native fast path, background loading."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, generate_uid

from desktop_app.infra.errors import DicomReadError, PixelDecodeError
from desktop_app.phantoms.studies import write_ct_series
from desktop_app.studies import volume as volume_module
from desktop_app.studies.index import InstanceInfo, index_paths
from desktop_app.studies.series import SliceStack, assemble
from desktop_app.studies.volume import (
    SeriesVolume,
    instance_frame,
    native_layout,
    read_native_frame,
)
from tests.helpers.dicomfiles import image_dataset, pydicom_test_files, save


def only_stack(paths: list[Path] | Path) -> SliceStack:
    index = index_paths(paths if isinstance(paths, list) else [paths])
    assert index.problems == []
    ((_, _, series),) = list(index.iter_series())
    (stack,) = assemble(series).stacks
    return stack


def only_instance(path: Path) -> InstanceInfo:
    (info,) = list(index_paths([path]).iter_instances())
    return info


@pytest.fixture(scope="module")
def ct_series(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SliceStack]:
    folder = tmp_path_factory.mktemp("ct")
    write_ct_series(folder, 3, slices=9, rows=32, shuffle_names=True)
    return folder, only_stack(folder)


def stored_by_pydicom(stack: SliceStack) -> np.ndarray:
    return np.stack([pydicom.dcmread(r.instance.path).pixel_array for r in stack.slices])


class TestNativeFastPath:
    @pytest.mark.parametrize(
        ("bits_allocated", "bits_stored", "signed", "values"),
        [
            (16, 12, False, [0, 1, 4095, 0xF000 | 7, 0xFFFF]),  # junk above bit 11 is cleared
            (16, 12, True, [0, 1, 2047, 0x0800, 0x0FFF]),  # 12-bit negatives sign-extend
            (16, 16, True, [0, 1, 32767, 0x8000, 0xFFFF]),
            (8, 8, False, [0, 1, 127, 128, 255]),
            (8, 7, False, [0, 1, 127, 128, 255]),
            (32, 32, True, [0, 1, 2**31 - 1, 2**31, 2**32 - 1]),
            (32, 20, False, [0, 1, 2**20 - 1, 2**20, 2**32 - 1]),
        ],
    )
    def test_matches_pydicom(
        self, tmp_path: Path, bits_allocated: int, bits_stored: int, signed: bool, values: list[int]
    ) -> None:
        raw = np.array(values * 4, dtype=f"<u{bits_allocated // 8}")[:20].reshape(4, 5)
        arr = raw.view(f"<{'i' if signed else 'u'}{bits_allocated // 8}")
        path = save(
            image_dataset(
                arr, bits_allocated=bits_allocated, bits_stored=bits_stored, signed=signed
            ),
            tmp_path / "x.dcm",
        )
        info = only_instance(path)
        assert native_layout(info) is not None
        ours = read_native_frame(info, 0)
        expected = pydicom.dcmread(path).pixel_array
        assert ours is not None
        assert ours.dtype == expected.dtype
        np.testing.assert_array_equal(ours, expected)

    def test_multiframe_frames_match_pydicom(self, tmp_path: Path) -> None:
        frames = np.arange(3 * 4 * 6, dtype=np.int16).reshape(3, 4, 6) - 30
        path = save(image_dataset(frames, frames=3), tmp_path / "mf.dcm")
        info = only_instance(path)
        expected = pydicom.dcmread(path).pixel_array
        for k in range(3):
            np.testing.assert_array_equal(read_native_frame(info, k), expected[k])
        with pytest.raises(PixelDecodeError, match="frame 3 is out of range"):
            read_native_frame(info, 3)

    @pytest.mark.parametrize(
        ("kwargs", "transfer_syntax"),
        [
            ({"photometric": "RGB"}, None),
            ({}, ExplicitVRBigEndian),
        ],
    )
    def test_other_layouts_take_the_pydicom_path(
        self, tmp_path: Path, kwargs: dict[str, Any], transfer_syntax: str | None
    ) -> None:
        extra = {"transfer_syntax": transfer_syntax} if transfer_syntax else {}
        path = save(image_dataset(**kwargs, **extra), tmp_path / "o.dcm")
        info = only_instance(path)
        assert native_layout(info) is None
        assert read_native_frame(info, 0) is None

    def test_implicit_vr_is_native_too(self, tmp_path: Path) -> None:
        path = save(
            image_dataset(
                np.arange(12, dtype=np.uint16).reshape(3, 4), transfer_syntax=ImplicitVRLittleEndian
            ),
            tmp_path / "i.dcm",
        )
        info = only_instance(path)
        np.testing.assert_array_equal(read_native_frame(info, 0), pydicom.dcmread(path).pixel_array)

    def test_a_file_changed_since_indexing_falls_back(self, tmp_path: Path) -> None:
        path = save(image_dataset(np.full((4, 4), 7, dtype=np.uint16)), tmp_path / "c.dcm")
        info = only_instance(path)
        save(
            image_dataset(np.full((4, 4), 9, dtype=np.uint16), InstitutionName="longer header"),
            path,
        )
        assert read_native_frame(info, 0) is None

    @pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's own notes on odd files
    def test_every_native_corpus_file_matches_pydicom(self) -> None:
        checked = 0
        for path in pydicom_test_files():
            index = index_paths([path])
            for info in index.iter_instances():
                if native_layout(info) is None:
                    continue
                try:
                    expected = pydicom.dcmread(path).pixel_array
                except Exception:  # no reference to compare with (e.g. Number of Frames "1A")
                    continue
                first = expected if info.number_of_frames == 1 else expected[0]
                np.testing.assert_array_equal(read_native_frame(info, 0), first, err_msg=path.name)
                checked += 1
        assert checked >= 5


class TestSeriesVolume:
    def test_nothing_is_read_until_asked(self, ct_series: tuple[Path, SliceStack]) -> None:
        _, stack = ct_series
        vol = SeriesVolume(stack)
        assert vol.loaded_count == 0
        assert len(vol) == 9
        vol.stored(4)
        assert vol.loaded_count == 1 and vol.is_loaded(4) and not vol.is_loaded(3)

    def test_stored_values_in_slice_order(self, ct_series: tuple[Path, SliceStack]) -> None:
        _, stack = ct_series
        vol = SeriesVolume(stack)
        expected = stored_by_pydicom(stack)
        for i in (0, 8, 4):
            np.testing.assert_array_equal(vol.stored(i), expected[i])
        assert not vol.stored(0).flags.writeable

    def test_frame_applies_the_modality_lut(self, ct_series: tuple[Path, SliceStack]) -> None:
        _, stack = ct_series
        vol = SeriesVolume(stack)
        frame = vol.frame(vol.middle())
        ds = pydicom.dcmread(stack.slices[vol.middle()].instance.path)
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert frame.values.dtype == np.float32
        np.testing.assert_allclose(frame.values, hu)
        assert frame.windows and frame.windows[0].center == 40

    def test_background_load_fills_everything(self, ct_series: tuple[Path, SliceStack]) -> None:
        _, stack = ct_series
        vol = SeriesVolume(stack)
        calls: list[tuple[int, int]] = []
        lock = threading.Lock()

        def progress(done: int, total: int) -> None:
            with lock:
                calls.append((done, total))

        handle = vol.start_background_load(progress, first=2, workers=3)
        assert handle.wait(timeout=30)
        assert vol.loaded_count == 9 and vol.errors == {}
        assert sorted(calls) == [(i, 9) for i in range(1, 10)]
        arr = vol.load_all()
        np.testing.assert_array_equal(arr, stored_by_pydicom(stack))
        assert vol.nbytes == 9 * 32 * 32 * 2  # raw voxel bytes, nothing more

    def test_load_order_is_nearest_first(self, ct_series: tuple[Path, SliceStack]) -> None:
        _, stack = ct_series
        vol = SeriesVolume(stack)
        assert vol.load_order() == [4, 5, 3, 6, 2, 7, 1, 8, 0]
        assert vol.load_order(first=0) == list(range(9))

    def test_stop_before_start_loads_nothing(self, ct_series: tuple[Path, SliceStack]) -> None:
        _, stack = ct_series
        vol = SeriesVolume(stack)
        stop = threading.Event()
        stop.set()
        with pytest.raises(DicomReadError, match="loading was stopped before every slice"):
            vol.load_all(stop=stop)
        assert vol.loaded_count == 0

    def test_each_slice_is_decoded_once_under_contention(
        self, ct_series: tuple[Path, SliceStack], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _, stack = ct_series
        calls: list[int] = []
        real = volume_module.read_native_frame

        def counting(inst: InstanceInfo, frame: int, out: np.ndarray | None = None) -> Any:
            calls.append(1)
            return real(inst, frame, out)

        monkeypatch.setattr(volume_module, "read_native_frame", counting)
        vol = SeriesVolume(stack)
        results: list[np.ndarray] = []
        barrier = threading.Barrier(8)

        def reader() -> None:
            barrier.wait()
            results.append(vol.stored(3))

        threads = [threading.Thread(target=reader) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(calls) == 1
        assert all(np.array_equal(r, results[0]) for r in results)

    def test_a_bad_slice_is_remembered_and_the_rest_load(
        self, tmp_path: Path, ct_series: tuple[Path, SliceStack]
    ) -> None:
        folder, _ = ct_series
        copy = tmp_path / "copy"
        copy.mkdir()
        for f in sorted(folder.iterdir()):
            (copy / f.name).write_bytes(f.read_bytes())
        stack = only_stack(copy)
        victim = stack.slices[5].instance.path
        victim.write_bytes(victim.read_bytes()[:-100])  # truncated after indexing
        vol = SeriesVolume(stack)
        vol.start_background_load().wait()
        assert list(vol.errors) == [5]
        assert vol.loaded_count == 8
        with pytest.raises(DicomReadError) as err:
            vol.frame(5)
        assert err.value.path == victim
        with pytest.raises(DicomReadError):
            vol.load_all()

    def test_keep_false_caches_nothing(self, ct_series: tuple[Path, SliceStack]) -> None:
        _, stack = ct_series
        vol = SeriesVolume(stack, keep=False)
        for i in range(len(vol)):
            vol.frame(i)
        assert vol.loaded_count == 0 and vol.nbytes == 0

    def test_compressed_series_goes_through_decode_frame(self, tmp_path: Path) -> None:
        write_ct_series(tmp_path, 4, slices=3, rows=16, compression="rle", signed=True)
        stack = only_stack(tmp_path)
        assert native_layout(stack.slices[0].instance) is None
        arr = SeriesVolume(stack).load_all(workers=2)
        np.testing.assert_array_equal(arr, stored_by_pydicom(stack))

    def test_multiframe_volume(self, tmp_path: Path) -> None:
        frames = (np.arange(4 * 3 * 5, dtype=np.uint16) * 7).reshape(4, 3, 5)
        path = save(
            image_dataset(frames, frames=4, SeriesInstanceUID=generate_uid()), tmp_path / "m.dcm"
        )
        vol = SeriesVolume(only_stack(path))
        np.testing.assert_array_equal(vol.load_all(), frames)

    def test_colour_volume(self, tmp_path: Path) -> None:
        rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
        path = save(image_dataset(rgb, photometric="RGB", bits_allocated=8), tmp_path / "rgb.dcm")
        vol = SeriesVolume(only_stack(path))
        np.testing.assert_array_equal(vol.stored(0), rgb)
        assert vol.frame(0).is_color

    def test_out_of_range(self, ct_series: tuple[Path, SliceStack]) -> None:
        _, stack = ct_series
        with pytest.raises(IndexError, match=r"slice 9 is out of range 0\.\.8"):
            SeriesVolume(stack).stored(9)


def test_instance_frame_previews_one_image(ct_series: tuple[Path, SliceStack]) -> None:
    _, stack = ct_series
    info = stack.slices[0].instance
    frame = instance_frame(info)
    assert frame.values.shape == (32, 32)
    assert frame.values.dtype == np.float32
