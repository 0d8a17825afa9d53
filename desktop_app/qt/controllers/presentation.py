"""PresentationController: what other tools wrote, shown — the shown image's overlay planes,
presentation-state annotations, SR regions, segmentation masks and structure-set contours on
the images they reference, and the SR panel for the structured report or presentation state
chosen in the study browser (a SEG or RTSTRUCT chosen there shows the image it is drawn on)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDockWidget, QWidget

from desktop_app.dicom.dicomfile import read_dataset, read_header
from desktop_app.dicom.graphics import make_graphic
from desktop_app.dicom.gsps import PresentationState, is_presentation_state, read_presentation_state
from desktop_app.dicom.imageplane import ImagePlane
from desktop_app.dicom.limits import ReadLimits, interactive_limits
from desktop_app.dicom.overlay_planes import overlay_planes, overlay_rgba
from desktop_app.dicom.rtstruct import StructureSet, is_rt_structure_set, read_structure_set
from desktop_app.dicom.segread import (
    SegmentationObject,
    is_segmentation,
    mask_edges,
    read_segmentation,
)
from desktop_app.dicom.srcontent import SrDocument, is_structured_report, read_sr
from desktop_app.infra.errors import FATAL, RadAssistError, describe
from desktop_app.qt.app_settings import AppSettings
from desktop_app.qt.controllers.feedback import Feedback
from desktop_app.qt.controllers.shown import Shown
from desktop_app.qt.controllers.studies import StudyController
from desktop_app.qt.dicom_graphics import (
    GSPS_COLOR,
    OVERLAY_COLOR,
    SR_COLOR,
    DicomGraphicsLayer,
    GraphicsScene,
    MaskItem,
    TextItem,
    VectorItem,
    bitmap,
)
from desktop_app.qt.sr_panel import SrPanelWidget
from desktop_app.qt.viewer import ViewerWidget
from desktop_app.qt.workers import TaskChannel
from desktop_app.studies.series import SliceStack
from desktop_app.studies.volume import SeriesVolume

log = logging.getLogger(__name__)

MAX_OBJECTS = 500  # SR/PR/SEG/RTSTRUCT objects read per opened set (the rest stay listed)
MASK_ALPHA = 90  # a segment's fill: the image stays readable under it
MASK_CACHE = 64  # slices whose mask fills and outlines are kept
Drawn = SegmentationObject | StructureSet
Document = SrDocument | PresentationState | Drawn
# (RGBA, x, y) per overlay plane of one frame, and the planes that can't be shown
OverlayResult = tuple[tuple[str, int], list[tuple[object, int, int]], list[str]]


def read_objects(
    jobs: list[tuple[str, Path]], limits: ReadLimits, stop: threading.Event
) -> dict[str, Document | str]:
    """Each object's parsed content, or the one line that says why it can't be read."""
    out: dict[str, Document | str] = {}
    for key, path in jobs:
        if stop.is_set():
            break
        try:
            header = read_header(path, limits=limits)
            if is_segmentation(str(header.get("SOPClassUID", ""))):
                out[key] = read_segmentation(path, limits=limits, header=header)
                continue
            ds = read_dataset(path, limits=limits)
            sop_class = str(ds.get("SOPClassUID", ""))
            if is_rt_structure_set(sop_class):
                out[key] = read_structure_set(ds)
            elif is_structured_report(sop_class):
                out[key] = read_sr(ds)
            elif is_presentation_state(sop_class):
                out[key] = read_presentation_state(ds)
            else:
                out[key] = f"{path.name}: not an SR, presentation state, SEG or RTSTRUCT"
        except FATAL:
            raise
        except RadAssistError as err:
            out[key] = err.one_line()
        except Exception as err:  # a hostile file is that file's problem, not the app's
            out[key] = f"{path.name}: {describe(err)}"
    return out


def frame_overlays(
    volume: SeriesVolume, index: int, frame: int, limits: ReadLimits
) -> OverlayResult:
    """The overlay bitmaps of slice ``index`` (image frame ``frame``, 0-based) of ``volume``."""
    ref = volume.stack.slices[index]
    key = (ref.instance.sop_instance_uid, frame)
    try:
        header = volume.header(index)
    except RadAssistError as err:
        return key, [], [err.one_line()]
    planes, problems = overlay_planes(header, limits)
    bitmaps: list[tuple[object, int, int]] = []
    for plane in planes:
        rgba = overlay_rgba(plane, frame, OVERLAY_COLOR)
        if rgba is not None:
            x, y = plane.top_left
            bitmaps.append((rgba, x, y))
    return key, bitmaps, problems


def _hex(rgb: tuple[int, int, int] | None, default: str) -> str:
    return default if rgb is None else "#{:02x}{:02x}{:02x}".format(*rgb)


def plane_of(stack: SliceStack, index: int) -> ImagePlane:
    """Slice ``index`` of ``stack`` as an ImagePlane (what SEG and RTSTRUCT are matched to)."""
    ref = stack.slices[index]
    inst = ref.instance
    orientation = inst.image_orientation or stack.orientation
    if inst.frame_orientations and ref.frame < len(inst.frame_orientations):
        orientation = inst.frame_orientations[ref.frame] or orientation
    return ImagePlane(
        sop_instance_uid=inst.sop_instance_uid,
        frame=ref.frame + 1,
        rows=stack.rows,
        columns=stack.columns,
        position=ref.position or inst.image_position,
        orientation=orientation,
        pixel_spacing=stack.pixel_spacing or inst.pixel_spacing,
        series_instance_uid=stack.series_instance_uid,
        slice_spacing=stack.slice_spacing,
    )


def mask_items(document: SegmentationObject, plane: ImagePlane) -> list[MaskItem]:
    """Each segment's mask on ``plane``: a translucent fill and its outline, in its colour."""
    items = []
    for segment, mask in document.masks_on(plane):
        rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
        rgba[mask] = (*segment.color, MASK_ALPHA)
        color = _hex(segment.color, SR_COLOR)
        items.append(MaskItem(bitmap(rgba), mask_edges(mask), color, segment.label))
    return items


def contour_items(document: StructureSet, plane: ImagePlane) -> list[VectorItem]:
    """Each contour on ``plane`` as a graphic (closed ones filled), with its ROI's name."""
    items = []
    for roi, contour, pixels in document.polygons_on(plane):
        points = pixels if not contour.closed else np.vstack([pixels, pixels[:1]])
        kind = "POINT" if contour.kind == "POINT" else "POLYLINE"
        flat = (points[:1] if kind == "POINT" else points).ravel().tolist()
        graphic = make_graphic(kind, flat, contour.closed)
        if graphic is not None:
            items.append(VectorItem(graphic, _hex(roi.color, SR_COLOR), roi.name))
    return items


class PresentationController(QObject):
    """Reads the SRs and presentation states the browser lists (in a worker), draws what
    applies to the shown slice, and fills the SR panel when one is chosen."""

    def __init__(
        self,
        host: QWidget,
        shown: Shown,
        prefs: AppSettings,
        viewer: ViewerWidget,
        studies: StudyController,
        panel: SrPanelWidget,
        dock: QDockWidget,
        feedback: Feedback,
    ) -> None:
        super().__init__(host)
        self.shown = shown
        self.prefs = prefs
        self.viewer = viewer
        self.studies = studies
        self.browser = studies.browser
        self.panel = panel
        self.dock = dock
        self.feedback = feedback
        self.layer = DicomGraphicsLayer(viewer.canvas)
        self.documents: dict[str, Document] = {}
        self.errors: dict[str, str] = {}
        self._pending: str | None = None  # asked for before it was read
        self._current: tuple[str, int] | None = None  # (SOP Instance UID, 0-based frame) shown
        self._bitmaps: list[tuple[object, int, int]] = []
        self._bitmap_key: tuple[str, int] | None = None
        self._reported: set[str] = set()
        self._plane: ImagePlane | None = None
        self._mask_cache: dict[tuple[str, str, int], list[MaskItem]] = {}
        self.read_channel = TaskChannel("sr-gsps", self)
        self.read_channel.finished.connect(self._on_read)
        self.read_channel.failed.connect(feedback.show_error)
        self.overlay_channel = TaskChannel("overlay-planes", self)
        self.overlay_channel.finished.connect(self._on_overlays)
        self.browser.objectActivated.connect(self.show_object)
        studies.indexReady.connect(self.on_index_ready)
        viewer.frameShown.connect(self._on_frame)
        panel.imageRequested.connect(self.go_to_image)

    def _limits(self) -> ReadLimits:
        return interactive_limits(int(self.prefs.get("reading/max_object_mib")))

    # ------------------------------------------------------------------ objects
    def on_index_ready(self, _index: object = None) -> None:
        """Read every SR and presentation state the browser now lists (up to MAX_OBJECTS);
        with no images at all, the first one opens in the panel."""
        objects = list(self.browser.objects.values())
        jobs = [(o.key, o.instance.path) for o in objects[:MAX_OBJECTS]]
        self.documents = {k: v for k, v in self.documents.items() if k in self.browser.objects}
        jobs = [(k, p) for k, p in jobs if k not in self.documents]
        if len(objects) > MAX_OBJECTS:
            self.feedback.message(
                f"Only the first {MAX_OBJECTS} SR/PR/SEG/RTSTRUCT objects are read", 8000
            )
        if objects and not self.browser.entries:
            self._pending = objects[0].key
            self.show_object(objects[0].key)
        if jobs:
            limits = self._limits()
            self.read_channel.submit(lambda _p, stop: read_objects(jobs, limits, stop))
        else:
            self._redraw()

    def _on_read(self, result: dict[str, Document | str]) -> None:
        for key, value in result.items():
            if isinstance(value, str):
                self.errors[key] = value
            else:
                self.documents[key] = value
        log.info("read %d SR/PR/SEG objects (%d not readable)", len(result), len(self.errors))
        self._mask_cache.clear()
        self._redraw()
        pending, self._pending = self._pending, None
        if pending is not None:
            self.show_object(pending)

    def show_object(self, key: str) -> None:
        """Show the SR or presentation state ``key`` (an ObjectEntry key) in the panel; for a
        SEG or RTSTRUCT, the first image it is drawn on."""
        entry = self.browser.objects.get(key)
        document = self.documents.get(key)
        if isinstance(document, Drawn) or (entry is not None and entry.kind in ("SEG", "RTSTRUCT")):
            self.browser.select(key)
            self._show_drawn(key, document)
            return
        self.dock.show()
        self.dock.raise_()
        self.browser.select(key)
        if isinstance(document, SrDocument | PresentationState):
            self.panel.show_document(document)
        elif key in self.errors:
            self.panel.show_document(None, f"Can't show this object: {self.errors[key]}")
        elif entry is not None:
            self._pending = key
            self.panel.show_document(None, "Reading…")

    def _show_drawn(self, key: str, document: Document | None) -> None:
        if not isinstance(document, Drawn):
            if key in self.errors:
                self.feedback.message(f"Can't show this object: {self.errors[key]}", 8000)
            else:
                self._pending = key
                self.feedback.message("Reading…", 3000)
            return
        if not self.layer.visible:
            self.feedback.message("DICOM objects are hidden (Shift+O shows them)", 6000)
        found = self._first_drawn_image(document)
        if found is None:
            self.feedback.message(
                f"{document.kind}: none of the images it references is open", 8000
            )
            return
        stack_key, index = found
        self.studies.show_stack(stack_key)
        self.viewer.set_index(index)
        problems = f" · ⚠ {'; '.join(document.problems)[:200]}" if document.problems else ""
        self.feedback.message(f"{document.kind}: {document.summary()}{problems}", 10000)

    def _first_drawn_image(self, document: Drawn) -> tuple[str, int] | None:
        """(stack key, slice index) of the first open slice ``document`` draws on."""
        for key, entry in self.browser.entries.items():
            stack = entry.stack
            for i in range(len(stack)):
                plane = plane_of(stack, i)
                if isinstance(document, SegmentationObject):
                    if any(document.frame_applies(f, plane) for f in document.frames):
                        return key, i
                elif document.polygons_on(plane):
                    return key, i
        return None

    # ------------------------------------------------------------------ drawing
    def set_visible(self, on: bool) -> None:
        self.layer.set_visible(on)

    def _on_frame(self, index: int) -> None:
        entry, volume = self.shown.entry, self.shown.volume
        if entry is None or volume is None or not 0 <= index < len(entry.stack):
            self._current = None
            self._plane = None
            self.layer.set_scene(GraphicsScene())
            return
        ref = entry.stack.slices[index]
        self._current = (ref.instance.sop_instance_uid, ref.frame)
        self._plane = plane_of(entry.stack, index)
        if self._bitmap_key != self._current:
            self._bitmaps = []
            self._bitmap_key = None
            limits = self._limits()
            frame = ref.frame
            self.overlay_channel.submit(lambda _p, _s: frame_overlays(volume, index, frame, limits))
        self._redraw()

    def _on_overlays(self, result: OverlayResult) -> None:
        key, bitmaps, problems = result
        if key != self._current:
            return
        self._bitmap_key = key
        self._bitmaps = [(bitmap(rgba), x, y) for rgba, x, y in bitmaps]  # type: ignore[arg-type]
        for problem in problems:
            if problem not in self._reported:
                self._reported.add(problem)
                self.feedback.message(f"⚠ {problem}", 8000)
        self._redraw()

    def _redraw(self) -> None:
        self.layer.set_scene(self.scene_for_current())

    def scene_for_current(self) -> GraphicsScene:
        """What applies to the shown slice: its overlay bitmaps, the graphics and texts of the
        presentation states that reference it, and the SR regions on it."""
        scene = GraphicsScene()
        size = self.viewer.canvas.image_size()
        if self._current is None or size is None:
            return scene
        sop, frame0 = self._current
        columns, rows = size
        if self._bitmap_key == self._current:
            scene.bitmaps = list(self._bitmaps)  # type: ignore[arg-type]
        for document in self.documents.values():
            if isinstance(document, PresentationState):
                graphics, texts = document.annotations_for(sop, frame0 + 1, rows, columns)
                for graphic, layer in graphics:
                    color = _hex(document.layer_colors.get(layer), GSPS_COLOR)
                    scene.vectors.append(VectorItem(graphic, color))
                for text, layer in texts:
                    color = _hex(document.layer_colors.get(layer), GSPS_COLOR)
                    scene.texts.append(TextItem(text, color))
            elif isinstance(document, SrDocument):
                for region in document.regions_on(sop, frame0 + 1):
                    scene.vectors.append(VectorItem(region.graphic, SR_COLOR, region.label))
        self._add_drawn(scene)
        return scene

    def _add_drawn(self, scene: GraphicsScene) -> None:
        """The masks of the SEGs and the contours of the structure sets on the shown slice."""
        plane = self._plane
        if plane is None:
            return
        for key, document in self.documents.items():
            if isinstance(document, StructureSet):
                scene.vectors.extend(contour_items(document, plane))
            elif isinstance(document, SegmentationObject):
                cache_key = (key, plane.sop_instance_uid, plane.frame)
                items = self._mask_cache.get(cache_key)
                if items is None:
                    items = mask_items(document, plane)
                    if len(self._mask_cache) >= MASK_CACHE:
                        self._mask_cache.pop(next(iter(self._mask_cache)))
                    self._mask_cache[cache_key] = items
                scene.masks.extend(items)

    # ------------------------------------------------------------------ navigation
    def go_to_image(self, sop_instance_uid: str, frame: int) -> None:
        """Show the stack holding ``sop_instance_uid`` (frame ``frame``, 1-based; 0: any) at
        that image; says so when no open series has it."""
        for key, entry in self.browser.entries.items():
            for i, ref in enumerate(entry.stack.slices):
                if ref.instance.sop_instance_uid != sop_instance_uid:
                    continue
                if frame and ref.frame != frame - 1:
                    continue
                self.studies.show_stack(key)
                self.viewer.set_index(i)
                return
        self.feedback.message("The referenced image is not among the open series", 6000)

    def shutdown(self) -> None:
        self.read_channel.shutdown()
        self.overlay_channel.shutdown()


__all__ = [
    "PresentationController",
    "contour_items",
    "frame_overlays",
    "mask_items",
    "plane_of",
    "read_objects",
]
