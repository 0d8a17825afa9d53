"""The seeded phantoms: determinism, ground truth that matches the pixels, valid DICOM."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    RLELossless,
)

from desktop_app.infra.errors import ConfigError
from desktop_app.phantoms import chest_findings
from desktop_app.phantoms.boxes import box_of
from desktop_app.phantoms.chest_findings import FindingLayer
from desktop_app.phantoms.ct import CtPhantom, ct_geometry
from desktop_app.phantoms.dicomwrite import CR_IMAGE, DX_FOR_PRESENTATION
from desktop_app.phantoms.studies import (
    Lesion,
    available_findings,
    make_chest_xr,
    make_ct_volume,
    register_finding,
    write_chest_xr,
    write_ct_series,
)

SIZE = 160


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.astype(np.int32) - b.astype(np.int32)


class TestMakeChestXr:
    def test_same_seed_gives_identical_pixels_and_boxes(self) -> None:
        a, ann_a = make_chest_xr(3, rows=SIZE, findings=["nodule", "effusion"])
        b, ann_b = make_chest_xr(3, rows=SIZE, findings=["nodule", "effusion"])
        assert np.array_equal(a, b)
        assert ann_a == ann_b

    def test_different_seed_gives_a_different_body(self) -> None:
        a, ann_a = make_chest_xr(3, rows=SIZE)
        b, ann_b = make_chest_xr(4, rows=SIZE)
        assert np.count_nonzero(a != b) > a.size // 2
        assert ann_a.cardiothoracic_ratio != ann_b.cardiothoracic_ratio

    def test_acquisition_seed_changes_the_picture_not_the_patient(self) -> None:
        a, ann_a = make_chest_xr(3, rows=SIZE, findings=["cardiomegaly"])
        b, ann_b = make_chest_xr(3, rows=SIZE, findings=["cardiomegaly"], acquisition_seed=99)
        assert not np.array_equal(a, b)
        assert ann_a.cardiothoracic_ratio == ann_b.cardiothoracic_ratio
        assert ann_b.acquisition_seed == 99

    def test_is_12_bit_unsigned(self) -> None:
        image, _ = make_chest_xr(0, rows=SIZE)
        assert image.dtype == np.uint16
        assert image.shape == (SIZE, SIZE)
        assert int(image.max()) <= 4095
        assert int(image.max()) - int(image.min()) > 2000  # a real dynamic range

    @pytest.mark.parametrize("rows, cols", [(192, 144), (128, 200), (96, 96)])
    def test_non_square_shapes(self, rows: int, cols: int) -> None:
        image, ann = make_chest_xr(5, rows=rows, cols=cols, findings=["nodule"])
        assert image.shape == (rows, cols)
        box = ann.boxes["nodule"]
        assert box.x >= 0 and box.x + box.width <= cols
        assert box.y >= 0 and box.y + box.height <= rows

    def test_anatomy_looks_like_a_chest(self) -> None:
        image, _ = make_chest_xr(8, rows=256)
        img = image.astype(np.float64)
        outside = img[:, :8].mean()  # air beside the body
        lung = np.median(img[96:150, 60:90])  # the right lung field (image left)
        abdomen = np.median(img[230:250, 100:156])
        assert outside < lung < abdomen

    @pytest.mark.parametrize(
        "finding",
        ["nodule", "effusion", "consolidation", "pneumothorax", "line", "faint_nodule", "diffuse"],
    )
    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_box_holds_what_the_finding_changed(self, finding: str, seed: int) -> None:
        without, _ = make_chest_xr(seed, rows=SIZE)
        with_, ann = make_chest_xr(seed, rows=SIZE, findings=[finding])
        box = ann.boxes[finding]
        assert box.width > 0 and box.height > 0
        assert box.x >= 0 and box.y >= 0
        assert box.x + box.width <= SIZE and box.y + box.height <= SIZE
        change = np.abs(_diff(with_, without))
        strong = change > 0.25 * change.max()
        inside = np.zeros_like(strong)
        inside[box.slices()] = True
        assert strong.any()
        assert not (strong & ~inside).any()  # nothing strong outside the box

    @pytest.mark.parametrize(
        "finding", ["nodule", "effusion", "consolidation", "line", "faint_nodule", "diffuse"]
    )
    def test_opacities_are_brighter(self, finding: str) -> None:
        without, _ = make_chest_xr(11, rows=SIZE)
        with_, ann = make_chest_xr(11, rows=SIZE, findings=[finding])
        box = ann.boxes[finding].slices()
        assert _diff(with_[box], without[box]).mean() > 0

    @pytest.mark.parametrize("seed", range(4))
    def test_the_line_is_thin_and_the_faint_nodule_small(self, seed: int) -> None:
        """The recipe benchmark's hard findings stay as described (boxes at 512 px, 0.84 mm
        per pixel): a line 2-4 mm thick whatever its angle, a nodule of 8-14 mm."""
        without, _ = make_chest_xr(seed, rows=512)
        image, line = make_chest_xr(seed, rows=512, findings=["line"])
        box = line.boxes["line"]
        assert max(box.width, box.height) >= 30  # 35-70 mm long (tapered ends)
        change = np.abs(_diff(image, without))
        area_mm2 = (change > 0.25 * change.max()).sum() * line.pixel_spacing_mm**2
        assert 20 <= area_mm2 <= 4 * 70  # at most 4 mm by 70 mm
        _, nodule = make_chest_xr(seed, rows=512, findings=["faint_nodule"])
        b = nodule.boxes["faint_nodule"]
        assert 7 <= max(b.width, b.height) <= 20

    @pytest.mark.parametrize("seed", range(6))
    def test_cardiomegaly_ratio(self, seed: int) -> None:
        _, normal = make_chest_xr(seed, rows=96)
        _, big = make_chest_xr(seed, rows=96, findings=["cardiomegaly"])
        assert 0.38 <= normal.cardiothoracic_ratio <= 0.48
        assert 0.55 <= big.cardiothoracic_ratio <= 0.66
        assert "cardiomegaly" not in normal.boxes
        heart = big.boxes["cardiomegaly"]
        assert heart.x + heart.width / 2 > 96 / 2 - 8  # the heart sits left (image right)

    def test_cardiomegaly_box_is_the_heart(self) -> None:
        image, ann = make_chest_xr(4, rows=256, findings=["cardiomegaly"])
        heart = ann.boxes["cardiomegaly"]
        rows, cols = heart.slices()
        core = image[rows, cols][
            heart.height // 3 : heart.height // 2, heart.width // 3 : -heart.width // 3
        ]
        lung = image[96:150, 60:90]
        assert np.median(core) > np.median(lung) + 500  # soft tissue, not aerated lung

    def test_findings_do_not_move_each_other(self) -> None:
        _, one = make_chest_xr(21, rows=SIZE, findings=["nodule"])
        _, two = make_chest_xr(21, rows=SIZE, findings=["effusion", "nodule"])
        assert one.boxes["nodule"] == two.boxes["nodule"]

    def test_labels(self) -> None:
        _, ann = make_chest_xr(2, rows=96, findings=["effusion"])
        assert ann.labels() == {"nodule": 0, "effusion": 1, "cardiomegaly": 0}
        assert ann.findings == ("effusion",)

    def test_finding_params_fix_the_nodule(self) -> None:
        _, ann = make_chest_xr(
            2, rows=256, findings=["nodule"], finding_params={"nodule": {"diameter_mm": 20.0}}
        )
        mm = ann.boxes["nodule"].width * ann.pixel_spacing_mm
        assert 15.0 < mm < 26.0
        assert ann.details["nodule"]["diameter_mm"] == 20.0

    def test_pixel_spacing_follows_the_field_of_view(self) -> None:
        _, ann = make_chest_xr(0, rows=200, cols=100, fov_mm=300.0)
        assert ann.pixel_spacing_mm == pytest.approx(3.0)


class TestFindingRegistry:
    def test_builtin_findings(self) -> None:
        assert {"nodule", "effusion", "cardiomegaly"} <= set(available_findings())

    def test_unknown_finding(self) -> None:
        with pytest.raises(ConfigError, match=r"unknown finding 'mass' \(available: nodule, "):
            make_chest_xr(0, rows=64, findings=["mass"])

    def test_params_for_a_finding_that_is_not_drawn(self) -> None:
        with pytest.raises(ConfigError, match="finding_params names 'nodule', which is not in"):
            make_chest_xr(0, rows=64, findings=[], finding_params={"nodule": {}})

    def test_register_a_new_finding(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(chest_findings, "_REGISTRY", dict(chest_findings._REGISTRY))

        @register_finding("marker")
        def _marker(cv, rng, params):  # type: ignore[no-untyped-def]
            layer = cv.zeros()
            layer[40:50, 20:35] = 0.5  # over the right lung
            return FindingLayer(layer, layer)

        assert "marker" in available_findings()
        without, _ = make_chest_xr(1, rows=96)
        with_, ann = make_chest_xr(1, rows=96, findings=["marker"])
        assert ann.boxes["marker"].as_tuple() == (20, 40, 15, 10)
        assert (_diff(with_, without)[40:50, 20:35] > 0).all()

    @pytest.mark.parametrize("name", ["Bad", "", "has space"])
    def test_bad_names(self, name: str) -> None:
        with pytest.raises(ConfigError, match="must be lower-case letters, digits or '_'"):
            register_finding(name)

    def test_box_of_empty_region(self) -> None:
        assert box_of(np.zeros((4, 4), np.float32)) is None


class TestBadArguments:
    @pytest.mark.parametrize("rows", [0, 8, 10_000])
    def test_size(self, rows: int) -> None:
        with pytest.raises(ConfigError, match=rf"`rows` {rows} should be an integer between 32"):
            make_chest_xr(0, rows=rows)

    def test_negative_seed(self) -> None:
        with pytest.raises(ConfigError, match="seed -1 must be a non-negative integer"):
            make_chest_xr(-1, rows=64)


def _read(path: Path) -> pydicom.Dataset:
    ds = pydicom.dcmread(path)  # no force: preamble, DICM and file meta must be right
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    return ds


class TestWriteChestXr:
    def test_valid_dx(self, tmp_path: Path) -> None:
        path, ann = write_chest_xr(tmp_path / "a.dcm", 7, rows=128, cols=112, findings=["nodule"])
        ds = _read(path)
        assert ds.SOPClassUID == DX_FOR_PRESENTATION
        assert ds.Modality == "DX"
        assert (ds.Rows, ds.Columns) == (128, 112)
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (
            16,
            12,
            11,
            0,
        )
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.PresentationLUTShape == "IDENTITY"
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx(
            [ann.pixel_spacing_mm] * 2, rel=1e-5
        )
        assert [float(v) for v in ds.ImagerPixelSpacing] == pytest.approx(
            [ann.pixel_spacing_mm] * 2, rel=1e-5
        )
        assert ds.PatientName == "PHANTOM^0007"
        assert float(ds.WindowWidth) > 0
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        image, _ = make_chest_xr(7, rows=128, cols=112, findings=["nodule"])
        assert np.array_equal(ds.pixel_array, image)
        assert not list(tmp_path.glob("*.tmp"))  # atomic write left nothing behind

    def test_uids_are_seeded(self, tmp_path: Path) -> None:
        a = _read(write_chest_xr(tmp_path / "a.dcm", 5, rows=64)[0])
        b = _read(write_chest_xr(tmp_path / "b.dcm", 5, rows=64)[0])
        c = _read(write_chest_xr(tmp_path / "c.dcm", 6, rows=64)[0])
        for tag in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            assert a[tag].value == b[tag].value
            assert a[tag].value != c[tag].value
        assert (tmp_path / "a.dcm").read_bytes() == (tmp_path / "b.dcm").read_bytes()

    def test_second_study_of_one_patient(self, tmp_path: Path) -> None:
        a = _read(write_chest_xr(tmp_path / "a.dcm", 5, rows=64, patient_number=12)[0])
        b = _read(
            write_chest_xr(tmp_path / "b.dcm", 5, rows=64, patient_number=12, acquisition_seed=1)[0]
        )
        assert a.PatientID == b.PatientID == "PH000012"
        assert a.StudyInstanceUID != b.StudyInstanceUID
        assert a.SOPInstanceUID != b.SOPInstanceUID

    def test_monochrome1_is_inverted(self, tmp_path: Path) -> None:
        m2 = _read(write_chest_xr(tmp_path / "m2.dcm", 9, rows=96)[0])
        m1 = _read(write_chest_xr(tmp_path / "m1.dcm", 9, rows=96, photometric="MONOCHROME1")[0])
        assert m1.PhotometricInterpretation == "MONOCHROME1"
        assert m1.PresentationLUTShape == "INVERSE"
        assert np.array_equal(
            m1.pixel_array.astype(np.int32), 4095 - m2.pixel_array.astype(np.int32)
        )
        assert float(m1.WindowCenter) == 4095 - float(m2.WindowCenter)
        assert int(m1.PixelIntensityRelationshipSign) == -int(m2.PixelIntensityRelationshipSign)

    @pytest.mark.parametrize(
        "compression, syntax",
        [("rle", RLELossless), ("deflate", DeflatedExplicitVRLittleEndian)],
    )
    @pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
    def test_compressed_decodes_identically(
        self, tmp_path: Path, compression: str, syntax: str, photometric: str
    ) -> None:
        plain = _read(
            write_chest_xr(tmp_path / "p.dcm", 4, rows=96, cols=80, photometric=photometric)[0]  # type: ignore[arg-type]
        )
        packed = _read(
            write_chest_xr(
                tmp_path / "c.dcm",
                4,
                rows=96,
                cols=80,
                photometric=photometric,  # type: ignore[arg-type]
                compression=compression,  # type: ignore[arg-type]
            )[0]
        )
        assert packed.file_meta.TransferSyntaxUID == syntax
        assert packed.SOPInstanceUID == plain.SOPInstanceUID
        assert np.array_equal(packed.pixel_array, plain.pixel_array)

    def test_cr(self, tmp_path: Path) -> None:
        ds = _read(write_chest_xr(tmp_path / "cr.dcm", 1, rows=64, modality="CR")[0])
        assert ds.SOPClassUID == CR_IMAGE
        assert ds.Modality == "CR"

    def test_unknown_compression(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"compression 'jpeg' is not supported \(use one of"):
            write_chest_xr(tmp_path / "x.dcm", 1, rows=64, compression="jpeg")  # type: ignore[arg-type]
        assert not list(tmp_path.iterdir())


class TestCtPhantom:
    def test_tissue_values(self) -> None:
        hu, _, _ = make_ct_volume(2, slices=8, rows=128, slice_thickness_mm=20.0, noise_hu=0.0)
        assert hu.dtype == np.int16
        assert (hu[:, :2, :2] == -1000).all()  # air in the corners
        values, counts = np.unique(hu, return_counts=True)
        present = dict(zip(values.tolist(), counts.tolist(), strict=True))
        for tissue in (-100, 40, 250, 800):  # fat, soft tissue, cancellous bone, rib
            assert present.get(tissue, 0) > 10, tissue
        lung = hu[(hu > -950) & (hu < -600)]
        assert lung.size > hu.size // 20
        assert -850 < float(np.median(lung)) < -790
        assert hu.max() >= 700

    def test_same_seed_same_volume(self) -> None:
        a, ga, _ = make_ct_volume(3, slices=4, rows=64)
        b, gb, _ = make_ct_volume(3, slices=4, rows=64)
        c, _, _ = make_ct_volume(4, slices=4, rows=64)
        assert np.array_equal(a, b)
        assert ga == gb
        assert not np.array_equal(a, c)

    def test_lesion_truth_matches_pixels(self) -> None:
        lesion = Lesion(center_mm=(-75.0, -10.0, 0.0), radius_mm=10.0, hu=123.0)
        hu, _, truth = make_ct_volume(
            1, slices=11, rows=128, slice_thickness_mm=3.0, lesions=[lesion], noise_hu=0.0
        )
        (t,) = truth
        assert (t.first_slice, t.last_slice) == (2, 8)  # |z| < 10 mm at 3 mm steps
        assert t.largest_slice == 5
        marked = hu == 123
        assert not marked[: t.first_slice].any() and not marked[t.last_slice + 1 :].any()
        rows, cols = t.box.slices()
        assert marked[:, rows, cols].sum() == marked.sum()  # every lesion pixel is in the box
        assert marked[t.largest_slice, rows, cols][[0, -1], :].any()  # and the box is tight
        assert marked[t.largest_slice, rows, cols][:, [0, -1]].any()

    def test_random_lesions_lie_in_the_scan(self) -> None:
        _, geometry, truth = make_ct_volume(5, slices=20, rows=64, lesions=3)
        assert len(truth) == 3
        for t in truth:
            assert 0 <= t.first_slice <= t.last_slice < geometry.slices

    @pytest.mark.parametrize("tilt", [0.0, 15.0])
    def test_geometry(self, tilt: float) -> None:
        g = ct_geometry(0, 5, 64, 48, slice_thickness_mm=2.0, tilt_deg=tilt)
        row, col = np.array(g.orientation[:3]), np.array(g.orientation[3:])
        assert np.dot(row, col) == pytest.approx(0.0, abs=1e-7)
        assert np.linalg.norm(col) == pytest.approx(1.0, abs=1e-7)
        along = [float(np.dot(g.normal, p)) for p in g.positions]
        steps = np.diff(along)
        assert np.allclose(np.abs(steps), g.spacing_between_slices, atol=1e-3)
        assert np.all(steps < 0)  # head first: each slice one step lower
        assert g.spacing_between_slices == pytest.approx(2.0 * np.cos(np.radians(tilt)))

    def test_bad_geometry(self) -> None:
        with pytest.raises(ConfigError, match=r"`tilt_deg` 60\.0 should be between -45 and 45"):
            ct_geometry(0, 5, 64, 64, tilt_deg=60.0)

    def test_lesion_outside_the_scan(self) -> None:
        geometry = ct_geometry(0, 3, 64, 64)
        phantom = CtPhantom(0, geometry, [Lesion((0.0, 0.0, 500.0), 5.0)])
        with pytest.raises(
            ConfigError, match=r"cuts no slice \(move it inside the scanned range\)"
        ):
            phantom.truth()


class TestWriteCtSeries:
    def test_series_reads_back(self, tmp_path: Path) -> None:
        series = write_ct_series(
            tmp_path, 6, slices=6, rows=64, lesions=1, shuffle_names=True, compression="rle"
        )
        names = [p.name for p in series.paths]
        assert sorted(names) != names  # file names do not follow the slices
        datasets = [_read(p) for p in series.paths]
        assert {ds.SOPClassUID for ds in datasets} == {CTImageStorage}
        assert [int(ds.InstanceNumber) for ds in datasets] == list(range(1, 7))
        assert len({ds.SOPInstanceUID for ds in datasets}) == 6
        assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
        phantom = CtPhantom(6, series.geometry, [t.lesion for t in series.lesions])
        for i, ds in enumerate(datasets):
            assert ds.file_meta.TransferSyntaxUID == RLELossless
            assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
            assert ds.BitsStored == 12 and ds.PixelRepresentation == 0
            assert [float(v) for v in ds.ImagePositionPatient] == pytest.approx(
                series.geometry.positions[i]
            )
            hu = ds.pixel_array.astype(np.int32) - 1024
            assert np.array_equal(hu, np.clip(phantom.slice(i), -1024, 3071))

    def test_signed_and_tilted(self, tmp_path: Path) -> None:
        series = write_ct_series(tmp_path, 2, slices=3, rows=48, tilt_deg=12.0, signed=True)
        ds = _read(series.paths[1])
        assert ds.PixelRepresentation == 1 and ds.BitsStored == 16
        assert float(ds.GantryDetectorTilt) == 12.0
        assert [float(v) for v in ds.ImageOrientationPatient][3:] != [0.0, 1.0, 0.0]
        expected = CtPhantom(2, series.geometry).slice(1)
        assert np.array_equal(ds.pixel_array.astype(np.int32) - 1024, expected)

    def test_series_uids(self, tmp_path: Path) -> None:
        def uids(folder: str, **kwargs: object) -> tuple[str, str, str]:
            series = write_ct_series(tmp_path / folder, 4, slices=2, rows=32, **kwargs)  # type: ignore[arg-type]
            ds = _read(series.paths[0])
            return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID

        plain, again, tilted = uids("a"), uids("b"), uids("c", tilt_deg=10.0)
        assert plain == again
        assert tilted[0] == plain[0]  # one study per seed
        assert tilted[1] != plain[1] and tilted[2] != plain[2]

    def test_progress_and_stop(self, tmp_path: Path) -> None:
        stop = threading.Event()
        seen: list[tuple[int, int]] = []

        def progress(done: int, total: int) -> None:
            seen.append((done, total))
            if done == 2:
                stop.set()

        series = write_ct_series(tmp_path, 1, slices=5, rows=32, progress=progress, stop=stop)
        assert series.stopped
        assert seen == [(1, 5), (2, 5)]
        assert len(series.paths) == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == ["CT0001.dcm", "CT0002.dcm"]
