"""desktop_app.inference.overlays: peak regions and outlines, the burned-in overlay."""

from __future__ import annotations

import numpy as np
import pytest

from desktop_app.inference import overlays as O


def _blob(shape: tuple[int, int], centre: tuple[float, float], sigma: float) -> np.ndarray:
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    return np.exp(-((rr - centre[0]) ** 2 + (cc - centre[1]) ** 2) / (2 * sigma**2)).astype(
        np.float32
    )


class TestPeakRegion:
    def test_a_block_gives_its_exact_box_and_outline(self) -> None:
        h = np.zeros((40, 60), np.float32)
        h[10:20, 30:45] = 1.0
        h[14, 37] = 1.0  # the peak
        region = O.peak_region(h)
        assert region is not None
        assert region.box == (30.0, 10.0, 15.0, 10.0)
        assert region.outline == ((30.0, 10.0), (45.0, 10.0), (45.0, 20.0), (30.0, 20.0))
        assert region.area == 150.0
        assert region.peak == (30.5, 10.5)  # the first maximum in raster order

    def test_only_the_component_around_the_peak(self) -> None:
        h = 0.9 * _blob((64, 64), (16, 16), 3.0) + _blob((64, 64), (48, 40), 3.0)
        region = O.peak_region(h, level=0.5)
        assert region is not None
        x, y, w, h_ = region.box
        assert region.peak == (40.5, 48.5)
        assert x <= 40 < x + w and y <= 48 < y + h_
        assert x > 20 and y > 20  # the other blob is not part of it

    def test_holes_are_filled_and_the_outline_is_the_outer_boundary(self) -> None:
        h = np.zeros((20, 20), np.float32)
        h[5:15, 5:15] = 1.0
        h[8:12, 8:12] = 0.0  # a hole
        region = O.peak_region(h)
        assert region is not None
        assert region.outline == ((5.0, 5.0), (15.0, 5.0), (15.0, 15.0), (5.0, 15.0))
        assert region.area == 100.0

    @pytest.mark.parametrize("seed", range(8))
    def test_outline_encloses_exactly_the_filled_component(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        mask = rng.random((24, 24)) < 0.55
        r, c = np.argwhere(mask)[0]
        component = O.fill_holes(O.connected_component(mask, int(r), int(c)))
        outline = O.trace_outline(component)
        assert O.polygon_area(outline) == component.sum()
        # every vertex is a pixel corner on the component's boundary box
        rows, cols = np.nonzero(component)
        for x, y in outline:
            assert cols.min() <= x <= cols.max() + 1 and rows.min() <= y <= rows.max() + 1

    def test_diagonal_pixels_are_not_connected(self) -> None:
        mask = np.zeros((4, 4), bool)
        mask[1, 1] = mask[2, 2] = True
        assert O.connected_component(mask, 1, 1).sum() == 1

    def test_large_heatmaps_are_bounded_on_a_coarse_grid(self) -> None:
        h = np.zeros((1024, 1000), np.float32)
        h[500:600, 300:361] = 1.0
        region = O.peak_region(h, max_side=256)  # 4-pixel cells
        assert region is not None
        x, y, w, hh = region.box
        # on the 4-pixel grid of the block means: within one cell of the truth on each side
        assert abs(x - 300) < 4 and abs(y - 500) < 4
        assert abs(x + w - 361) < 4 and abs(y + hh - 600) < 4
        assert x % 4 == 0 and y % 4 == 0
        assert all(0 <= px <= 1000 and 0 <= py <= 1024 for px, py in region.outline)

    def test_no_positive_value_gives_none(self) -> None:
        assert O.peak_region(np.zeros((5, 5), np.float32)) is None

    def test_bad_level(self) -> None:
        with pytest.raises(ValueError, match="level 0 must be in"):
            O.peak_region(np.ones((3, 3), np.float32), level=0)


class TestRenderOverlay:
    def test_marks_are_burned_in_where_they_belong(self) -> None:
        image = np.full((200, 300), 100, np.uint8)
        heat = np.zeros((200, 300), np.float32)
        heat[80:120, 140:180] = 1.0
        mark = O.OverlayMark(
            text="nodule 0.93",
            colour=(0, 255, 255),
            heatmap=heat,
            outline=((140.0, 80.0), (180.0, 80.0), (180.0, 120.0), (140.0, 120.0)),
            box=(130.0, 70.0, 60.0, 60.0),
        )
        out = O.render_overlay(image, [mark], opacity=0.5, line_width=2)
        assert out.shape == (200, 300, 3) and out.dtype == np.uint8
        assert tuple(out[100, 130]) == (0, 255, 255)  # left edge of the box
        assert tuple(out[100, 140]) == (0, 255, 255)  # left edge of the outline
        inside = out[100, 160].astype(int)
        assert inside[0] != inside[2]  # tinted by the heatmap (colour, not grey)
        assert tuple(out[10, 290]) == (100, 100, 100)  # far away: untouched
        plate = out[40:69, 130:200].astype(int)
        assert (plate == 0).all(axis=2).any()  # dark plate above the box
        cyan = (plate[..., 0] < 60) & (plate[..., 1] > 200) & (plate[..., 2] > 200)
        assert cyan.any()  # text in the mark's colour (antialiased)

    def test_title_and_rgb_input(self) -> None:
        image = np.full((100, 400, 3), 50, np.uint8)
        out = O.render_overlay(image, [], title="Research use only")
        assert out.shape == (100, 400, 3)
        assert (out[0, :60] == 0).all()  # the title's plate
        assert (out[:20, :200] > 200).all(axis=2).any()  # white text
        assert (image == 50).all()  # the input is not modified

    @pytest.mark.parametrize(
        ("image", "message"),
        [
            (np.zeros((4, 4), np.uint16), "must be uint8"),
            (np.zeros((4, 4, 4), np.uint8), "must be \\(H, W\\) or \\(H, W, 3\\)"),
        ],
    )
    def test_bad_images(self, image: np.ndarray, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            O.render_overlay(image, [])

    def test_heatmap_size_must_match(self) -> None:
        mark = O.OverlayMark("x", heatmap=np.ones((5, 5), np.float32))
        with pytest.raises(ValueError, match="differ in size"):
            O.render_overlay(np.zeros((4, 4), np.uint8), [mark])

    def test_marks_from_findings_keep_label_colours(self) -> None:
        class F:
            def __init__(self, label: str, p: float, positive: bool) -> None:
                self.label, self.probability, self.positive = label, p, positive
                self.heatmap = self.outline = self.box = None

        marks = O.marks_from_findings(
            [F("effusion", 0.81, True), F("nodule", 0.2, False)], ["nodule", "effusion"]
        )
        assert [(m.text, m.colour) for m in marks] == [("effusion 0.81", O.label_colour(1))]


def test_blend_is_alpha_compositing() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    rgba = rng.integers(0, 256, (16, 16, 4)).astype(np.uint8)
    a = rgba[..., 3:4] / 255.0
    expected = rgb * (1 - a) + rgba[..., :3] * a
    assert np.abs(O.blend(rgb, rgba).astype(float) - expected).max() <= 1.0
    rgba[..., 3] = 0
    assert np.array_equal(O.blend(rgb, rgba), rgb)
