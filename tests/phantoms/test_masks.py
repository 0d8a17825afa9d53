"""The phantoms' finding masks: chest nodules and effusions, CT nodules in 3-D."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from desktop_app.inference.lesions import MaskGeometry, find_lesions
from desktop_app.phantoms.ct import ct_phantom
from desktop_app.phantoms.studies import Lesion, make_chest_xr, write_ct_series


class TestChestMasks:
    @pytest.mark.parametrize("seed", [1, 7, 42, 2024])
    def test_nodule_mask_covers_the_drawn_nodule(self, seed: int) -> None:
        image, ann = make_chest_xr(seed, rows=256, cols=240, findings=["nodule"])
        mask = ann.masks["nodule"]
        assert mask.shape == image.shape and mask.dtype == bool
        info = ann.details["nodule"]
        cx, cy = info["center_px"]
        radius = info["radius_px"]
        rows, cols = np.nonzero(mask)
        # Centred on the drawn nodule, as wide as its diameter (lobulation: +-36 % at most).
        assert rows.mean() == pytest.approx(cy, abs=1.5 + 0.15 * radius)
        assert cols.mean() == pytest.approx(cx, abs=1.5 + 0.15 * radius)
        area = mask.sum()
        assert 0.45 * math.pi * radius**2 <= area <= 1.9 * math.pi * radius**2
        assert np.hypot(rows - cy, cols - cx).max() <= 1.36 * radius + 1.5
        # The truth box (where the nodule adds over a tenth of its peak) lies inside the mask's
        # bounding box, which adds at most its faint one-pixel rim.
        box = ann.boxes["nodule"]
        assert rows.min() <= box.y and rows.max() >= box.y + box.height - 1
        assert cols.min() <= box.x and cols.max() >= box.x + box.width - 1
        assert area - mask[box.slices()].sum() <= 2 * math.pi * (radius + 1)
        spacing = ann.pixel_spacing_mm
        assert 2 * radius * spacing == pytest.approx(info["diameter_mm"], rel=1e-5)

    def test_mask_is_where_the_nodule_brightens_the_image(self) -> None:
        params = {"nodule": {"diameter_mm": 24.0, "contrast": 1.2}}
        with_nodule, ann = make_chest_xr(3, rows=256, findings=["nodule"], finding_params=params)
        without, _ = make_chest_xr(3, rows=256)
        mask = ann.masks["nodule"]
        brighter = with_nodule.astype(int) - without.astype(int)
        assert brighter[mask].mean() > 5 * abs(brighter[~mask].mean()) + 20

    @pytest.mark.parametrize("seed", [2, 5, 11])
    def test_effusion_mask_is_in_a_lung_base(self, seed: int) -> None:
        _, ann = make_chest_xr(seed, rows=256, findings=["effusion"])
        mask = ann.masks["effusion"]
        assert mask.any()
        rows, cols = np.nonzero(mask)
        # Lower part of the image, on the effusion's side (side -1 is the image left).
        assert rows.mean() > 0.55 * ann.rows
        side = ann.details["effusion"]["side"]
        assert (cols.mean() - ann.cols / 2) * side > 0.1 * ann.cols
        # Covers the costophrenic angle: the mask's lowest row is near the box's bottom.
        box = ann.boxes["effusion"]
        assert rows.max() >= box.y + 0.6 * box.height
        assert mask[box.slices()].sum() == mask.sum()

    def test_findings_without_outline_have_no_mask(self) -> None:
        _, ann = make_chest_xr(4, rows=128, findings=["cardiomegaly", "nodule"])
        assert set(ann.masks) == {"nodule"}

    def test_masks_do_not_change_the_pixels(self) -> None:
        a, ann = make_chest_xr(9, rows=128, findings=["nodule", "effusion"])
        b, _ = make_chest_xr(9, rows=128, findings=["nodule", "effusion"])
        assert np.array_equal(a, b)
        assert ann == ann  # masks are left out of equality (arrays have no truth value)


class TestCtMasks:
    LESIONS = (
        Lesion((-72.0, -10.0, 8.0), 9.0),
        Lesion((70.0, 15.0, -12.0), 5.5),
    )

    def phantom(self, thickness: float = 1.25, slices: int = 48):  # type: ignore[no-untyped-def]
        return ct_phantom(
            3,
            slices=slices,
            rows=192,
            cols=None,
            pixel_spacing_mm=None,
            slice_thickness_mm=thickness,
            tilt_deg=0.0,
            lesions=list(self.LESIONS),
            noise_hu=12.0,
        )

    def test_mask_extent_matches_radius_and_position(self) -> None:
        phantom = self.phantom()
        g = phantom.geometry
        labels = phantom.mask_volume()
        z = np.array([p[2] for p in g.positions])
        for k, lesion in enumerate(self.LESIONS, start=1):
            s, r, c = np.nonzero(labels == k)
            x_mm = phantom.x[c]
            y_mm = phantom.y[r]
            z_mm = z[s]
            cx, cy, cz = lesion.center_mm
            assert x_mm.mean() == pytest.approx(cx, abs=g.pixel_spacing[1])
            assert y_mm.mean() == pytest.approx(cy, abs=g.pixel_spacing[0])
            assert z_mm.mean() == pytest.approx(cz, abs=g.slice_thickness)
            distance = np.sqrt((x_mm - cx) ** 2 + (y_mm - cy) ** 2 + (z_mm - cz) ** 2)
            assert distance.max() <= lesion.radius_mm  # every voxel centre inside the sphere
            assert distance.max() >= lesion.radius_mm - max(g.pixel_spacing[0], g.slice_thickness)
            assert np.ptp(z_mm) >= 2 * lesion.radius_mm - 2 * g.slice_thickness

    def test_truth_slices_and_box_match_the_mask(self) -> None:
        phantom = self.phantom()
        labels = phantom.mask_volume()
        for k, truth in enumerate(phantom.truth(), start=1):
            slices = np.flatnonzero((labels == k).any(axis=(1, 2)))
            assert (slices[0], slices[-1]) == (truth.first_slice, truth.last_slice)
            _, r, c = np.nonzero(labels == k)
            assert (c.min(), r.min()) == (truth.box.x, truth.box.y)
            assert (c.max() - c.min() + 1, r.max() - r.min() + 1) == (
                truth.box.width,
                truth.box.height,
            )

    def test_mask_is_where_the_lesion_is_painted(self) -> None:
        phantom = self.phantom()
        k = phantom.truth()[0].largest_slice
        mask = phantom.lesion_mask(k) == 1
        hu = phantom.slice(k)
        assert abs(float(np.median(hu[mask])) - 45.0) < 10.0

    @pytest.mark.parametrize(("thickness", "slices"), [(1.25, 48), (2.5, 24)])
    def test_measured_volume_matches_the_nodule(self, thickness: float, slices: int) -> None:
        phantom = self.phantom(thickness, slices)
        g = phantom.geometry
        geometry = MaskGeometry(
            g.pixel_spacing,
            slice_positions=tuple(-p[2] for p in g.positions),
            image_positions=g.positions,
            orientation=g.orientation,
        )
        volume = phantom.mask_volume()
        table = find_lesions(volume, geometry, values=phantom.volume(), value_unit="HU")
        assert len(table) == 2
        for lesion, truth in zip(table.lesions, self.LESIONS, strict=True):
            assert lesion.volume_mm3 == pytest.approx(truth.volume_mm3, rel=0.10)
            assert abs(lesion.longest_diameter_mm - 2 * truth.radius_mm) <= 2 * g.pixel_spacing[0]
            assert lesion.centroid_mm == pytest.approx(truth.center_mm, abs=g.slice_thickness)
            assert lesion.mean_value == pytest.approx(45.0, abs=5.0)

    def test_write_ct_series_writes_mask_pngs(self, tmp_path: Path) -> None:
        series = write_ct_series(
            tmp_path / "ct",
            3,
            slices=10,
            rows=64,
            slice_thickness_mm=5.0,
            lesions=[Lesion((-70.0, 0.0, 0.0), 8.0)],
            shuffle_names=True,
            mask_folder=tmp_path / "masks",
        )
        assert len(series.mask_paths) == 10
        assert [p.stem for p in series.mask_paths] == [p.stem for p in series.paths]
        stack = np.stack([np.asarray(Image.open(p)) for p in series.mask_paths])
        truth = series.lesions[0]
        on = np.flatnonzero(stack.any(axis=(1, 2)))
        assert (on[0], on[-1]) == (truth.first_slice, truth.last_slice)
        assert set(np.unique(stack)) == {0, 1}
        assert not any(p.suffix == ".png" for p in (tmp_path / "ct").iterdir())
