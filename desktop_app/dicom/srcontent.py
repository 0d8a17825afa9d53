"""Structured report content as a readable tree, and the image regions it draws (bounded).

An SR document (PS3.3 C.17.3) is a tree of content items: each has a Value Type (0040,A040),
a concept name (Concept Name Code Sequence, 0040,A043) and, below the root, a Relationship
Type (0040,A010) to its parent; children sit in Content Sequence (0040,A730). This module
turns it into :class:`ContentNode` rows, one line of text each, for any SR (this app's TID
1500 Measurement Report and anyone else's):

- CONTAINER: its concept name; TEXT, PNAME, DATE, TIME, DATETIME, UIDREF: the value;
- CODE: the code's meaning (PS3.3 C.18.3); NUM: the value with its UCUM unit (C.18.1);
- IMAGE, COMPOSITE, WAVEFORM: the referenced object (C.18.4) and frames;
- SCOORD: the graphic type and points; with its "selected from" IMAGE child it is a region
  drawn over that image (C.18.6); SCOORD3D and TCOORD are listed, not drawn;
- a by-reference relationship (Referenced Content Item Identifier) names the item it points
  at by its position ("1.2.3").

Bounds, against hostile input: the walk is iterative (no recursion), stops descending at
:data:`MAX_DEPTH` levels and after :data:`MAX_NODES` items (the document says it was cut),
and each value is cut to :data:`VALUE_LIMIT` characters. Text is kept as stored; whoever
shows it escapes control characters (``desktop_app.infra.safetext``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.uid import UID

from desktop_app.dicom.graphics import Graphic, make_graphic
from desktop_app.dicom.gsps import ImageRef

log = logging.getLogger(__name__)

SR_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."  # PS3.4 B.5: the SR storage SOP classes
MAX_DEPTH = 32
MAX_NODES = 20_000
VALUE_LIMIT = 1024
NAME_LIMIT = 128


def is_structured_report(sop_class_uid: str) -> bool:
    return str(sop_class_uid).startswith(SR_CLASS_PREFIX)


@dataclass
class ContentNode:
    """One content item. ``position`` is its place in the tree ("1", "1.3", "1.3.2"), the
    numbering by-reference relationships use (PS3.3 C.17.3.2.5)."""

    position: str
    depth: int
    relationship: str
    value_type: str
    name: str
    value: str = ""
    image: ImageRef | None = None
    graphic: Graphic | None = None
    children: list[ContentNode] = field(default_factory=list)

    def line(self) -> str:
        """``Name: value`` as one line (a container is its name alone)."""
        if not self.value:
            return self.name or self.value_type
        return f"{self.name}: {self.value}" if self.name else self.value


@dataclass(frozen=True)
class SrRegion:
    """A SCOORD drawn over the image it was selected from. ``label``: what it marks (the
    measurement group's finding or tracking identifier, else the SCOORD's concept name)."""

    graphic: Graphic
    image: ImageRef
    label: str
    position: str


@dataclass
class SrDocument:
    """What the panel shows of one SR and the regions the viewer draws."""

    sop_instance_uid: str
    sop_class_uid: str
    title: str
    root: ContentNode
    completion: str = ""
    verification: str = ""
    template: str = ""
    date: str = ""
    series_description: str = ""
    manufacturer: str = ""
    regions: list[SrRegion] = field(default_factory=list)
    node_count: int = 0
    truncated: bool = False

    @property
    def kind(self) -> str:
        return _uid_name(self.sop_class_uid) or "Structured Report"

    def nodes(self) -> Iterator[ContentNode]:
        """Every node, depth first, in document order (iterative)."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def regions_on(self, sop_instance_uid: str, frame: int = 1) -> list[SrRegion]:
        """The regions drawn on ``frame`` (1-based) of ``sop_instance_uid``."""
        return [r for r in self.regions if r.image.matches(sop_instance_uid, frame)]

    def text_lines(self, indent: str = "  ") -> list[str]:
        """The tree as indented lines (relationship in brackets), for a text view or the CLI."""
        lines = []
        for node in self.nodes():
            rel = f"[{node.relationship}] " if node.relationship else ""
            lines.append(f"{indent * node.depth}{rel}{node.line()}")
        if self.truncated:
            lines.append(f"… cut at {self.node_count} items or {MAX_DEPTH} levels")
        return lines


def _uid_name(uid: str) -> str:
    try:
        name = UID(uid).name
    except Exception:
        return ""
    return "" if name == uid else str(name)


def _get(ds: Dataset, keyword: str) -> object:
    try:
        return ds.get(keyword)
    except Exception:  # a value pydicom cannot convert
        return None


def _str(ds: Dataset, keyword: str, limit: int = VALUE_LIMIT) -> str:
    value = _get(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        value = "\\".join(str(v) for v in list(value)[:64])  # type: ignore[call-overload]
    return str(value)[:limit]


def _first(ds: Dataset, keyword: str) -> Dataset | None:
    seq = _get(ds, keyword)
    if seq is None:
        return None
    try:
        item = seq[0]  # type: ignore[index]
    except (IndexError, TypeError, KeyError):
        return None
    return item if isinstance(item, Dataset) else None


def _children(ds: Dataset) -> list[Dataset]:
    seq = _get(ds, "ContentSequence")
    if seq is None:
        return []
    try:
        return [item for item in list(seq) if isinstance(item, Dataset)]  # type: ignore[call-overload]
    except TypeError:
        return []


def code_meaning(item: Dataset | None) -> str:
    """A code sequence item as shown: its meaning, else ``scheme:value``."""
    if item is None:
        return ""
    meaning = _str(item, "CodeMeaning", NAME_LIMIT)
    if meaning:
        return meaning
    value = _str(item, "CodeValue", 64) or _str(item, "LongCodeValue", 64)
    scheme = _str(item, "CodingSchemeDesignator", 16)
    return f"{scheme}:{value}" if value else ""


def unit_text(unit: Dataset | None) -> str:
    """A UCUM unit as shown: none for "1" (unitless), the code for simple ones (mm, mm2, %),
    else its meaning ("Hounsfield unit" for [hnsf'U])."""
    if unit is None:
        return ""
    value = _str(unit, "CodeValue", 32)
    if value == "1":
        return ""
    if value and all(c.isalnum() or c in "%/." for c in value):
        return value
    return _str(unit, "CodeMeaning", 64) or value


def _image_ref(ds: Dataset) -> ImageRef | None:
    ref = _first(ds, "ReferencedSOPSequence")
    if ref is None:
        return None
    uid = _str(ref, "ReferencedSOPInstanceUID", 64).strip()
    if not uid:
        return None
    raw = _get(ref, "ReferencedFrameNumber")
    try:
        values = [] if raw is None else ([raw] if isinstance(raw, int | str) else list(raw))  # type: ignore[call-overload]
        frames = tuple(int(v) for v in values[:10_000])
    except (TypeError, ValueError):
        frames = ()
    return ImageRef(uid, frames)


def _value(ds: Dataset, value_type: str) -> tuple[str, ImageRef | None, Graphic | None]:
    """The item's value as text, its image reference and its 2-D graphic."""
    if value_type == "TEXT":
        return _str(ds, "TextValue"), None, None
    if value_type == "CODE":
        return code_meaning(_first(ds, "ConceptCodeSequence")), None, None
    if value_type == "NUM":
        measured = _first(ds, "MeasuredValueSequence")
        if measured is None:
            qualifier = code_meaning(_first(ds, "NumericValueQualifierCodeSequence"))
            return qualifier or "(no value)", None, None
        number = _str(measured, "NumericValue", 64)
        unit = unit_text(_first(measured, "MeasurementUnitsCodeSequence"))
        return f"{number} {unit}".strip(), None, None
    simple = {"DATETIME": "DateTime", "DATE": "Date", "TIME": "Time", "UIDREF": "UID",
              "PNAME": "PersonName"}  # fmt: skip
    if value_type in simple:
        return _str(ds, simple[value_type]), None, None
    if value_type in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        ref = _image_ref(ds)
        if ref is None:
            return "(no reference)", None, None
        sop_class = _str(
            _first(ds, "ReferencedSOPSequence") or Dataset(), "ReferencedSOPClassUID", 64
        )
        what = _uid_name(sop_class) or value_type.lower()
        frames = f", frame {', '.join(map(str, ref.frames[:8]))}" if ref.frames else ""
        return f"{what} …{ref.sop_instance_uid[-12:]}{frames}", ref, None
    if value_type == "SCOORD":
        graphic = make_graphic(_get(ds, "GraphicType"), _get(ds, "GraphicData"))
        kind = _str(ds, "GraphicType", 16) or "?"
        if graphic is None:
            return f"{kind} (invalid graphic data)", None, None
        return f"{kind}, {len(graphic.points)} point(s)", None, graphic
    if value_type == "SCOORD3D":
        return f"{_str(ds, 'GraphicType', 16)} in 3-D (not drawn)", None, None
    if value_type == "TCOORD":
        return f"{_str(ds, 'TemporalRangeType', 16)} (time range)", None, None
    if value_type == "CONTAINER":
        return "", None, None
    return "", None, None


def _node(ds: Dataset, position: str, depth: int) -> ContentNode:
    reference = _get(ds, "ReferencedContentItemIdentifier")
    relationship = _str(ds, "RelationshipType", 32)
    if reference is not None:
        try:
            target = ".".join(str(int(v)) for v in list(reference)[:MAX_DEPTH])  # type: ignore[call-overload]
        except (TypeError, ValueError):
            target = "?"
        return ContentNode(position, depth, relationship, "REF", "", f"→ see item {target}")
    value_type = _str(ds, "ValueType", 16).strip().upper()
    name = code_meaning(_first(ds, "ConceptNameCodeSequence"))
    value, image, graphic = _value(ds, value_type)
    return ContentNode(position, depth, relationship, value_type, name, value, image, graphic)


def _region_label(siblings: list[ContentNode], scoord: ContentNode) -> str:
    """What a region marks: its group's "Finding" code, else its tracking identifier, else
    the SCOORD's own name."""
    for wanted in ("Finding", "Tracking Identifier"):
        for node in siblings:
            if node.name == wanted and node.value:
                return node.value
    return scoord.name or "Region"


def read_sr(ds: Dataset) -> SrDocument:
    """The document in ``ds`` as a tree with its regions (see the module docstring). Never
    raises for what a file holds: an unreadable item becomes an empty row."""
    root = _node(ds, "1", 0)
    root.relationship = ""
    doc = SrDocument(
        sop_instance_uid=_str(ds, "SOPInstanceUID", 64),
        sop_class_uid=_str(ds, "SOPClassUID", 64),
        title=root.name or "Structured report",
        root=root,
        completion=_str(ds, "CompletionFlag", 16),
        verification=_str(ds, "VerificationFlag", 16),
        date=_str(ds, "ContentDate", 16),
        series_description=_str(ds, "SeriesDescription", NAME_LIMIT),
        manufacturer=_str(ds, "Manufacturer", NAME_LIMIT),
    )
    template = _first(ds, "ContentTemplateSequence")
    if template is not None:
        tid = _str(template, "TemplateIdentifier", 16)
        doc.template = f"TID {tid}" if tid else ""
    count = 1
    stack: list[tuple[Dataset, ContentNode]] = [(ds, root)]
    while stack:
        item, node = stack.pop()
        children = _children(item)
        if children and node.depth + 1 > MAX_DEPTH:
            doc.truncated = True
            continue
        pending: list[tuple[Dataset, ContentNode]] = []
        for k, child in enumerate(children, start=1):
            if count >= MAX_NODES:
                doc.truncated = True
                break
            count += 1
            child_node = _node(child, f"{node.position}.{k}", node.depth + 1)
            node.children.append(child_node)
            pending.append((child, child_node))
        stack.extend(reversed(pending))
    doc.node_count = count
    _collect_regions(doc)
    if doc.truncated:
        log.info("SR content cut at %d items", count)
    return doc


def _collect_regions(doc: SrDocument) -> None:
    """Each SCOORD with a "selected from" IMAGE child becomes a region (PS3.3 C.18.6.1)."""
    for node in doc.nodes():
        for child in node.children:
            if child.graphic is None:
                continue
            image = next((c.image for c in child.children if c.image is not None), None)
            if image is None:
                continue
            label = _region_label(node.children, child)
            doc.regions.append(SrRegion(child.graphic, image, label, child.position))


__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "ContentNode",
    "SrDocument",
    "SrRegion",
    "code_meaning",
    "is_structured_report",
    "read_sr",
    "unit_text",
]
