"""desktop_app.inference.lesions: connected components of a mask measured as lesions."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from desktop_app.inference.findings import FindingsFormatError
from desktop_app.inference.lesions import (
    SCHEMA_NAME,
    LesionTable,
    MaskGeometry,
    find_lesions,
)
from desktop_app.infra.errors import ConfigError, DataError
from desktop_app.phantoms.studies import Lesion as PhantomLesion
from desktop_app.phantoms.studies import write_ct_series
from desktop_app.studies.index import index_paths
from desktop_app.studies.series import assemble


def ellipsoid(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    semi: tuple[float, float, float],
    center: tuple[float, float, float] = (0.0, 0.0, 0.0),
    z: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A (slices, rows, cols) mask of an ellipsoid with semi-axes (z, y, x) mm, and slice z."""
    dz, dy, dx = spacing
    s, r, c = shape
    zs = (np.arange(s) - (s - 1) / 2) * dz if z is None else z
    ys = (np.arange(r) - (r - 1) / 2) * dy
    xs = (np.arange(c) - (c - 1) / 2) * dx
    inside = (
        ((zs[:, None, None] - center[0]) / semi[0]) ** 2
        + ((ys[None, :, None] - center[1]) / semi[1]) ** 2
        + ((xs[None, None, :] - center[2]) / semi[2]) ** 2
    ) <= 1.0
    return inside, zs


class TestSpheresAndEllipsoids:
    @pytest.mark.parametrize(
        ("spacing", "radius"),
        [
            ((1.0, 1.0, 1.0), 8.0),
            ((2.5, 0.7, 0.8), 10.0),  # anisotropic in-plane and thick slices
            ((5.0, 1.48, 1.48), 12.0),  # the CT sample's grid
            ((0.6, 0.6, 0.6), 4.0),
        ],
    )
    def test_sphere_volume_and_diameter(
        self, spacing: tuple[float, float, float], radius: float
    ) -> None:
        shape = tuple(int(2.6 * radius / d) + 4 for d in spacing)
        mask, z = ellipsoid(shape, spacing, (radius,) * 3, center=(0.31, -0.17, 0.23))  # type: ignore[arg-type]
        table = find_lesions(mask, MaskGeometry(spacing[1:], slice_positions=tuple(z)))
        (lesion,) = table.lesions
        analytic = 4.0 / 3.0 * math.pi * radius**3
        assert lesion.volume_mm3 == pytest.approx(analytic, rel=0.04)
        assert lesion.volume_mm3 == pytest.approx(mask.sum() * math.prod(spacing))
        assert abs(lesion.longest_diameter_mm - 2 * radius) <= max(spacing[1:])
        assert lesion.first_slice == int(np.flatnonzero(mask.any(axis=(1, 2)))[0])
        assert lesion.slice_count == int(mask.any(axis=(1, 2)).sum())
        assert table.dimension == 3

    def test_ellipsoid_long_and_short_axes(self) -> None:
        spacing = (1.25, 0.6, 0.9)
        mask, z = ellipsoid((30, 70, 50), spacing, (7.0, 9.0, 16.0))
        (lesion,) = find_lesions(mask, MaskGeometry(spacing[1:], slice_positions=tuple(z))).lesions
        assert lesion.volume_mm3 == pytest.approx(4 / 3 * math.pi * 7 * 9 * 16, rel=0.03)
        assert abs(lesion.longest_diameter_mm - 32.0) <= 0.9
        assert abs(lesion.short_axis_mm - 18.0) <= 0.9
        x0, y0, x1, y1 = lesion.diameter_line
        assert math.hypot((x1 - x0) * 0.9, (y1 - y0) * 0.6) == pytest.approx(
            lesion.longest_diameter_mm
        )
        assert abs(y1 - y0) * 0.6 < 0.1 * abs(x1 - x0) * 0.9  # the long axis runs along x

    def test_uneven_slice_spacing_counts_each_slab(self) -> None:
        z = np.concatenate([np.arange(0, 20, 1.0), np.arange(20, 60, 2.0)]) - 30.0
        mask, _ = ellipsoid((len(z), 50, 50), (1.0, 1.0, 1.0), (12.0,) * 3, z=z)
        table = find_lesions(mask, MaskGeometry((1.0, 1.0), slice_positions=tuple(z)))
        assert table.lesions[0].volume_mm3 == pytest.approx(4 / 3 * math.pi * 12**3, rel=0.03)
        assert any("uneven slice spacing" in note for note in table.notes)
        naive = mask.sum() * 1.0
        assert abs(naive - 4 / 3 * math.pi * 12**3) > 0.2 * naive  # voxel count alone is wrong

    def test_descending_positions_and_thickness_only(self) -> None:
        mask, z = ellipsoid((20, 30, 30), (2.0, 1.0, 1.0), (8.0,) * 3)
        by_position = find_lesions(mask, MaskGeometry((1.0, 1.0), slice_positions=tuple(-z)))
        by_thickness = find_lesions(mask, MaskGeometry((1.0, 1.0), slice_thickness=2.0))
        assert by_position.lesions[0].volume_mm3 == pytest.approx(
            by_thickness.lesions[0].volume_mm3
        )


class TestConnectivity:
    def test_corner_touching_cubes(self) -> None:
        mask = np.zeros((6, 6, 6), dtype=bool)
        mask[0:2, 0:2, 0:2] = True
        mask[2:4, 2:4, 2:4] = True
        geometry = MaskGeometry((1.0, 1.0), slice_spacing=1.0)
        assert len(find_lesions(mask, geometry, connectivity=26)) == 1
        assert len(find_lesions(mask, geometry, connectivity=6)) == 2

    def test_face_touching_blobs_are_one(self) -> None:
        mask = np.zeros((4, 10, 10), dtype=bool)
        mask[1:3, 2:5, 2:5] = True
        mask[1:3, 5:8, 2:5] = True
        assert len(find_lesions(mask, MaskGeometry((1, 1), slice_spacing=1), connectivity=6)) == 1

    def test_separate_blobs_sorted_by_size(self) -> None:
        big, _ = ellipsoid((30, 40, 80), (1, 1, 1), (6, 6, 6), center=(0, 0, -20))
        small, _ = ellipsoid((30, 40, 80), (1, 1, 1), (3, 3, 3), center=(0, 0, 20))
        table = find_lesions(big | small, MaskGeometry((1, 1), slice_spacing=1), with_labels=True)
        assert [les.id for les in table.lesions] == [1, 2]
        assert table.lesions[0].voxels == big.sum()
        assert table.lesions[1].voxels == small.sum()
        assert table.lesions[0].centroid[1] < table.lesions[1].centroid[1]  # big one on the left
        assert table.labels is not None and table.labels.dtype == np.uint16
        assert np.array_equal(table.labels == 1, big)
        assert np.array_equal(table.labels == 2, small)

    @pytest.mark.parametrize("connectivity", [6, 26])
    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_matches_scipy_on_random_masks(self, connectivity: int, seed: int) -> None:
        ndimage = pytest.importorskip("scipy.ndimage")
        rng = np.random.default_rng(seed)
        mask = rng.random((12, 40, 40)) < 0.3
        structure = ndimage.generate_binary_structure(3, 1 if connectivity == 6 else 3)
        reference, count = ndimage.label(mask, structure=structure)
        table = find_lesions(
            mask,
            MaskGeometry((1, 1), slice_spacing=1),
            connectivity=connectivity,
            with_labels=True,
            max_lesions=10**6,
        )
        assert len(table) == count
        assert table.labels is not None
        # Same partition: each of our labels maps to exactly one of scipy's, and back.
        pairs = np.unique(np.stack([table.labels[mask], reference[mask]]), axis=1)
        assert pairs.shape[1] == count
        sizes = sorted(np.bincount(reference[mask])[1:], reverse=True)
        assert [les.voxels for les in table.lesions] == sizes

    def test_spiral_is_one_lesion(self) -> None:
        # A long winding path: label propagation by neighbours would need thousands of rounds.
        mask = np.zeros((1, 201, 201), dtype=bool)
        mask[0, ::2, :] = True  # a serpentine: full rows joined alternately at each end
        mask[0, 1::4, -1] = True
        mask[0, 3::4, 0] = True
        table = find_lesions(mask[0], MaskGeometry((1, 1)), connectivity=4)
        assert len(table) == 1
        assert table.lesions[0].voxels == mask.sum()


class TestValuesAndConfidence:
    def test_mean_and_max_hu_and_probability(self) -> None:
        mask, z = ellipsoid((10, 20, 20), (2, 1, 1), (5, 5, 5))
        hu = np.where(mask, 40, -800).astype(np.int16)
        hu[5, 10, 10] = 300
        prob = np.where(mask, 0.8, 0.1).astype(np.float32)
        prob[5, 10, 10] = 0.99
        table = find_lesions(
            prob, MaskGeometry((1, 1), slice_positions=tuple(z)), values=hu, value_unit="HU"
        )
        (lesion,) = table.lesions
        n = int(mask.sum())
        assert lesion.max_value == 300
        assert lesion.mean_value == pytest.approx((40 * (n - 1) + 300) / n)
        assert lesion.max_probability == pytest.approx(0.99)
        assert lesion.mean_probability == pytest.approx((0.8 * (n - 1) + 0.99) / n, rel=1e-6)
        assert table.threshold == 0.5 and table.value_unit == "HU"

    def test_threshold_and_binary_masks(self) -> None:
        prob = np.zeros((3, 10, 10), dtype=np.float32)
        prob[1, 2:5, 2:5] = 0.6
        geometry = MaskGeometry((1, 1), slice_spacing=1)
        assert len(find_lesions(prob, geometry, threshold=0.7)) == 0
        binary = find_lesions(prob > 0, geometry)
        assert binary.threshold is None
        assert binary.lesions[0].mean_probability is None
        labels_mask = find_lesions((prob > 0).astype(np.uint8) * 3, geometry)
        assert labels_mask.lesions[0].voxels == 9

    def test_min_size_in_voxels_and_mm3(self) -> None:
        mask = np.zeros((5, 20, 20), dtype=bool)
        mask[1:4, 2:8, 2:8] = True  # 108 voxels, 108 * 2 = 216 mm3
        mask[2, 15, 15] = True  # one voxel
        geometry = MaskGeometry((1, 1), slice_spacing=2.0)
        assert len(find_lesions(mask, geometry)) == 2
        assert len(find_lesions(mask, geometry, min_voxels=2)) == 1
        assert len(find_lesions(mask, geometry, min_size=216.0)) == 1
        assert len(find_lesions(mask, geometry, min_size=216.5)) == 0

    def test_centroid_in_patient_coordinates(self) -> None:
        mask = np.zeros((3, 10, 10), dtype=bool)
        mask[1, 4, 6] = True
        positions = tuple((-10.0, -20.0, 30.0 - 2.0 * k) for k in range(3))
        geometry = MaskGeometry(
            (0.5, 0.8),
            slice_positions=tuple(p[2] for p in positions),
            image_positions=positions,
            orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        )
        (lesion,) = find_lesions(mask, geometry).lesions
        assert lesion.centroid == (1.0, 6.5, 4.5)
        assert lesion.centroid_mm == pytest.approx((-10.0 + 6 * 0.8, -20.0 + 4 * 0.5, 28.0))


class TestTwoDimensional:
    def test_disc_area_and_diameter(self) -> None:
        dy, dx = 0.143, 0.168
        rows, cols = 400, 360
        y = (np.arange(rows) - 190.3)[:, None] * dy
        x = (np.arange(cols) - 170.7)[None, :] * dx
        disc = x**2 + y**2 <= 11.0**2
        table = find_lesions(disc, MaskGeometry((dy, dx)))
        (lesion,) = table.lesions
        assert table.dimension == 2 and table.connectivity == 8
        assert lesion.volume_mm3 is None
        assert lesion.area_mm2 == pytest.approx(math.pi * 11.0**2, rel=0.01)
        assert abs(lesion.longest_diameter_mm - 22.0) <= dx
        assert lesion.slice_count == 1

    def test_single_slice_stack_without_thickness_is_2d(self) -> None:
        mask = np.zeros((1, 8, 8), dtype=bool)
        mask[0, 2:4, 2:4] = True
        assert find_lesions(mask, MaskGeometry((1, 1))).dimension == 2
        thick = find_lesions(mask, MaskGeometry((1, 1), slice_thickness=3.0))
        assert thick.dimension == 3 and thick.lesions[0].volume_mm3 == pytest.approx(12.0)

    def test_one_pixel(self) -> None:
        mask = np.zeros((5, 5), dtype=bool)
        mask[2, 3] = True
        (lesion,) = find_lesions(mask, MaskGeometry((2.0, 2.0))).lesions
        assert lesion.longest_diameter_mm == pytest.approx(2.0)
        assert lesion.box == (3, 2, 1, 1)


class TestJson:
    def test_round_trip(self) -> None:
        mask, z = ellipsoid((10, 30, 30), (2, 1, 1), (6, 6, 6))
        positions = tuple((0.0, 0.0, float(v)) for v in z)
        geometry = MaskGeometry(
            (1.0, 1.0),
            slice_positions=tuple(z),
            image_positions=positions,
            orientation=(1, 0, 0, 0, 1, 0),
        )
        table = find_lesions(mask.astype(np.float32) * 0.9, geometry, values=mask * 40.0)
        text = json.dumps(table.to_json())
        again = LesionTable.from_json(json.loads(text))
        assert again == table
        assert json.loads(text)["schema"] == SCHEMA_NAME

    def test_empty_mask(self) -> None:
        table = find_lesions(np.zeros((4, 16, 16), bool), MaskGeometry((1, 1), slice_spacing=1))
        assert len(table) == 0
        assert LesionTable.from_json(table.to_json()) == table

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"schema": "other"}, "not a radassist-lesions"),
            ({"schema_version": "2.0"}, "not readable"),
            ({"lesions": {}}, "bad field"),
            ({"shape": [1, 2]}, "bad field"),
        ],
    )
    def test_refuses_bad_documents(self, change: dict[str, object], message: str) -> None:
        table = find_lesions(np.ones((2, 3, 3), bool), MaskGeometry((1, 1), slice_spacing=1))
        data = {**table.to_json(), **change}
        with pytest.raises(FindingsFormatError, match=message):
            LesionTable.from_json(data)

    def test_refuses_a_bad_lesion(self) -> None:
        table = find_lesions(np.ones((2, 3, 3), bool), MaskGeometry((1, 1), slice_spacing=1))
        data = table.to_json()
        del data["lesions"][0]["voxels"]
        with pytest.raises(FindingsFormatError, match="lesion 1: bad field"):
            LesionTable.from_json(data)


class TestRefusals:
    def test_over_the_voxel_limit(self) -> None:
        mask = np.zeros((4, 100, 100), dtype=bool)
        with pytest.raises(DataError, match=r"40,000 voxels .* over the limit of 10,000"):
            find_lesions(mask, MaskGeometry((1, 1), slice_spacing=1), max_voxels=10_000)

    def test_too_fragmented(self) -> None:
        checker = (np.indices((4, 64, 64)).sum(axis=0) % 2).astype(bool)
        with pytest.raises(DataError, match="over 1,000 runs"):
            find_lesions(checker, MaskGeometry((1, 1), slice_spacing=1), max_runs=1000)

    def test_only_the_largest_lesions_are_measured(self) -> None:
        mask = np.zeros((1, 40, 40), dtype=bool)
        mask[0, ::2, ::2] = True  # 400 single-pixel components
        mask[0, 10:13, 10:16] = True
        table = find_lesions(mask, MaskGeometry((1, 1), slice_spacing=1), max_lesions=5)
        assert len(table) == 5
        assert table.lesions[0].voxels > 1
        assert any("the 5 largest are measured" in note for note in table.notes)

    @pytest.mark.parametrize(
        ("geometry", "message"),
        [
            (MaskGeometry((1, 1)), "needs slice positions, spacing or thickness"),
            (MaskGeometry((1, 1), slice_positions=(0, 1, 1, 2)), "not strictly monotonic"),
            (MaskGeometry((1, 1), slice_positions=(0, 1, 2)), "3 slice positions"),
            (MaskGeometry((0, 1), slice_spacing=1), "pixel spacing"),
            (MaskGeometry((1, 1), slice_spacing=-2), "slice spacing -2"),
        ],
    )
    def test_bad_geometry(self, geometry: MaskGeometry, message: str) -> None:
        with pytest.raises(DataError, match=message):
            find_lesions(np.ones((4, 3, 3), bool), geometry)

    def test_bad_inputs(self) -> None:
        geometry = MaskGeometry((1, 1), slice_spacing=1)
        with pytest.raises(DataError, match="should be"):
            find_lesions(np.ones((2, 2, 2, 2), bool), geometry)
        with pytest.raises(DataError, match="do not match"):
            find_lesions(np.ones((2, 3, 3), bool), geometry, values=np.ones((2, 3, 4)))
        with pytest.raises(ConfigError, match="connectivity 10"):
            find_lesions(np.ones((2, 3, 3), bool), geometry, connectivity=10)

    def test_large_full_volume_in_a_subprocess(self, tmp_path: Path) -> None:
        # A whole 160x512x512 foreground (42 M voxels): one lesion, bounded memory and time.
        code = (
            "import numpy as np\n"
            "from desktop_app.inference.lesions import find_lesions, MaskGeometry\n"
            "m = np.ones((160, 512, 512), bool)\n"
            "t = find_lesions(m, MaskGeometry((0.7, 0.7), slice_spacing=1.0), values=None)\n"
            "assert len(t) == 1 and t.lesions[0].voxels == m.size\n"
            # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forked pytest parent
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "print(int(hwm.split()[1]) // 1024)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert int(done.stdout.split()[-1]) < 1500  # MB peak, including the 42 MB mask


class TestFromStack:
    def test_geometry_of_a_written_ct_series(self, tmp_path: Path) -> None:
        series = write_ct_series(
            tmp_path,
            5,
            slices=12,
            rows=64,
            slice_thickness_mm=2.5,
            lesions=[PhantomLesion((-70.0, 0.0, 0.0), 6.0)],
            shuffle_names=True,
        )
        index = index_paths([tmp_path])
        ((_, _, info),) = list(index.iter_series())
        (stack,) = assemble(info).stacks
        geometry = MaskGeometry.from_stack(stack)
        assert geometry.pixel_spacing == pytest.approx(series.geometry.pixel_spacing)
        assert geometry.slice_positions is not None
        assert np.abs(np.diff(geometry.slice_positions)) == pytest.approx(np.full(11, 2.5))
        assert geometry.slice_thickness == pytest.approx(2.5)
        point = geometry.patient_point(0.0, 0.0, 0.0)
        assert point == pytest.approx(stack.slices[0].position)
