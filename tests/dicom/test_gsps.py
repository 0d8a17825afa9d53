"""Presentation states (PS3.3 A.33, C.10.5): referenced images, graphic and text objects in
PIXEL and DISPLAY units, layer colours, and bounds on hostile content."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from desktop_app.dicom import gsps
from desktop_app.dicom.graphics import make_graphic
from desktop_app.dicom.gsps import ImageRef, _lab_to_rgb, read_presentation_state
from tests.helpers.presentation import gsps_for, mr_image


def _state(**kw) -> tuple[Dataset, Dataset]:
    image = mr_image(overlay=False)
    return image, gsps_for([image], **kw)


class TestReadPresentationState:
    def test_applies_only_to_referenced_images(self) -> None:
        image, ds = _state(graphics=[("POINT", [3.0, 4.0], "PIXEL")])
        state = read_presentation_state(ds)
        sop = str(image.SOPInstanceUID)
        assert state.images == (ImageRef(sop),) and state.label == "ANNOTATED"
        graphics, _ = state.annotations_for(sop, 1, 64, 64)
        assert [(g.kind, g.points) for g, _layer in graphics] == [("POINT", ((3.0, 4.0),))]
        assert state.annotations_for("1.2.3", 1, 64, 64) == ([], [])

    def test_frames_narrow_the_reference(self) -> None:
        image, ds = _state(graphics=[("POINT", [1.0, 1.0], "PIXEL")])
        ds.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedFrameNumber = [2, 3]
        state = read_presentation_state(ds)
        sop = str(image.SOPInstanceUID)
        assert not state.applies_to(sop, 1) and state.applies_to(sop, 3)

    def test_display_units_are_fractions_of_the_displayed_area(self) -> None:
        image, ds = _state(
            graphics=[("POLYLINE", [0.0, 0.0, 1.0, 0.5], "DISPLAY")],
            texts=[("note", (0.5, 0.5, 1.0, 1.0), None, "DISPLAY")],
        )
        sop = str(image.SOPInstanceUID)
        graphics, texts = read_presentation_state(ds).annotations_for(sop, 1, 64, 128)
        assert graphics[0][0].points == ((0.0, 0.0), (128.0, 32.0))
        assert texts[0][0].box == (64.0, 32.0, 128.0, 64.0)
        area = Dataset()
        area.DisplayedAreaTopLeftHandCorner = [11, 21]  # column, row; 1-based
        area.DisplayedAreaBottomRightHandCorner = [30, 40]
        area.PresentationSizeMode = "SCALE TO FIT"
        ds.DisplayedAreaSelectionSequence = [area]
        graphics, _ = read_presentation_state(ds).annotations_for(sop, 1, 64, 128)
        assert graphics[0][0].points == ((10.0, 20.0), (30.0, 30.0))

    def test_text_objects_and_layer_colour(self) -> None:
        image, ds = _state(
            texts=[("12 mm", None, (24.0, 56.0), "PIXEL")], layer_lab=(65535, 32896, 32896)
        )
        state = read_presentation_state(ds)
        _, texts = state.annotations_for(str(image.SOPInstanceUID), 1, 64, 64)
        [(text, layer)] = texts
        assert (text.text, text.anchor, text.anchor_visible, layer) == (
            "12 mm",
            (24.0, 56.0),
            True,
            "LAYER1",
        )
        assert state.layer_colors["LAYER1"] == (255, 255, 255)

    def test_an_annotation_item_can_name_its_own_images(self) -> None:
        image, ds = _state(graphics=[("POINT", [1.0, 1.0], "PIXEL")])
        other = Dataset()
        other.ReferencedSOPClassUID = image.SOPClassUID
        other.ReferencedSOPInstanceUID = "1.2.3.4"
        ds.GraphicAnnotationSequence[0].ReferencedImageSequence = [other]
        state = read_presentation_state(ds)
        assert state.annotations_for(str(image.SOPInstanceUID), 1, 64, 64) == ([], [])

    @pytest.mark.parametrize(
        ("kind", "data"),
        [
            ("CIRCLE", [1.0, 2.0]),  # needs two points
            ("ELLIPSE", [1.0, 2.0, 3.0, 4.0]),  # needs four
            ("POLYLINE", [1.0, 2.0, 3.0]),  # odd count
            ("POLYLINE", [1.0, float("nan"), 3.0, 4.0]),
            ("POLYLINE", [1.0, 1e300, 3.0, 4.0]),
            ("SPLINE", [1.0, 2.0, 3.0, 4.0]),  # no such type
        ],
    )
    def test_invalid_graphics_are_left_out_and_counted(self, kind: str, data: list[float]) -> None:
        image, ds = _state(graphics=[(kind, data, "PIXEL"), ("POINT", [1.0, 1.0], "PIXEL")])
        state = read_presentation_state(ds)
        graphics, _ = state.annotations_for(str(image.SOPInstanceUID), 1, 64, 64)
        assert [g.kind for g, _ in graphics] == ["POINT"]
        assert state.problems == ["1 annotation(s) with invalid graphic data not shown"]

    def test_the_number_of_annotations_is_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(gsps, "MAX_ITEMS", 5)
        image, ds = _state(graphics=[("POINT", [float(k), 1.0], "PIXEL") for k in range(9)])
        state = read_presentation_state(ds)
        graphics, _ = state.annotations_for(str(image.SOPInstanceUID), 1, 64, 64)
        assert len(graphics) == 5 and "more than 5" in state.problems[0]

    def test_nothing_referenced(self) -> None:
        state = read_presentation_state(Dataset())
        assert state.images == () and state.problems == ["references no images"]


class TestGraphics:
    def test_circle_and_ellipse_outlines(self) -> None:
        circle = make_graphic("CIRCLE", [10, 10, 10, 4])
        assert circle is not None and circle.closed
        line = circle.outline()
        assert np.allclose(np.hypot(line[:, 0] - 10, line[:, 1] - 10), 6)
        ellipse = make_graphic("ELLIPSE", [0, 5, 20, 5, 10, 2, 10, 8])
        assert ellipse is not None and ellipse.bounds() == pytest.approx((0, 2, 20, 8))

    def test_polyline_closed_only_when_it_returns(self) -> None:
        assert not make_graphic("POLYLINE", [0, 0, 1, 1, 2, 0]).closed  # type: ignore[union-attr]
        assert make_graphic("POLYLINE", [0, 0, 1, 1, 2, 0, 0, 0]).closed  # type: ignore[union-attr]

    def test_lab_colours(self) -> None:
        assert _lab_to_rgb((0, 32896, 32896)) == (0, 0, 0)
        red = _lab_to_rgb((34866, 53484, 50171))  # L 53.2, a 80.1, b 67.2: sRGB red
        assert red[0] > 240 and red[1] < 20 and red[2] < 20
