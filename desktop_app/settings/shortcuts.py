"""The keyboard shortcut table: every action's id, label, default key and group (Qt-free data).

The GUI's action table (``desktop_app.qt.actions``) takes its labels and keys from this table,
and the user can rebind the configurable ones (settings); the cheat-sheet (Help ▸ Keyboard shortcuts, or ``?``) is rendered from it too, so
the two can never disagree. Key sequences use Qt's portable text form (``"Ctrl+Shift+O"``);
this module only normalises their spelling to find conflicts, it never interprets them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

GROUPS = (
    "File",
    "Navigation",
    "View",
    "Layout",
    "Window/level",
    "Tools",
    "Inference",
    "Overlays",
    "Review",
    "Help",
)


@dataclass(frozen=True)
class ShortcutSpec:
    """One action. ``configurable=False`` marks keys handled directly by the viewer."""

    id: str
    label: str
    default: str
    group: str
    configurable: bool = True


DEFAULT_SHORTCUTS: tuple[ShortcutSpec, ...] = (
    # File
    ShortcutSpec("open_file", "Open file…", "Ctrl+O", "File"),
    ShortcutSpec("open_folder", "Open folder or DICOMDIR…", "Ctrl+Shift+O", "File"),
    ShortcutSpec("close_study", "Close study (the shown one)", "Ctrl+W", "File"),
    ShortcutSpec("export", "Export… (SR, secondary captures, PDF, JSON)", "Ctrl+E", "File"),
    ShortcutSpec("pacs", "Query/Retrieve (PACS)…", "Ctrl+Shift+P", "File"),
    ShortcutSpec("settings", "Settings…", "Ctrl+,", "File"),
    ShortcutSpec("quit", "Quit", "Ctrl+Q", "File"),
    # Navigation (the viewer handles these keys itself)
    ShortcutSpec("slice_prev", "Previous slice", "Up", "Navigation", False),
    ShortcutSpec("slice_next", "Next slice", "Down", "Navigation", False),
    ShortcutSpec("slice_page_up", "Back 10% of the series", "PgUp", "Navigation", False),
    ShortcutSpec("slice_page_down", "Forward 10% of the series", "PgDown", "Navigation", False),
    ShortcutSpec("slice_first", "First slice", "Home", "Navigation", False),
    ShortcutSpec("slice_last", "Last slice", "End", "Navigation", False),
    ShortcutSpec("cine_play", "Cine play / pause", "Space", "Navigation"),
    ShortcutSpec("cine_faster", "Cine faster", "]", "Navigation"),
    ShortcutSpec("cine_slower", "Cine slower", "[", "Navigation"),
    # View
    ShortcutSpec("fit", "Fit to window", "F", "View"),
    ShortcutSpec("zoom_in", "Zoom in", "+", "View"),
    ShortcutSpec("zoom_out", "Zoom out", "-", "View"),
    ShortcutSpec("rotate_right", "Rotate right", "R", "View"),
    ShortcutSpec("rotate_left", "Rotate left", "Shift+R", "View"),
    ShortcutSpec("flip_h", "Flip horizontal", "Shift+H", "View"),
    ShortcutSpec("flip_v", "Flip vertical", "Shift+V", "View"),
    ShortcutSpec("invert", "Invert", "I", "View"),
    ShortcutSpec("reset_view", "Reset view", "Ctrl+0", "View"),
    ShortcutSpec("toggle_tags", "DICOM tags panel", "Ctrl+T", "View"),
    ShortcutSpec("toggle_dicom_graphics", "DICOM overlays, GSPS, SR, SEG, RT", "Shift+O", "View"),
    ShortcutSpec("smooth_zoom", "Smooth magnification (off: nearest neighbour)", "Shift+S", "View"),
    ShortcutSpec(
        "hide_identifiers", "Hide identifiers (name, ID, birth date, accession)", "Shift+I", "View"
    ),
    ShortcutSpec("axial_feet_first", "Axial stacks feet to head (default head first)", "", "View"),
    # Layout (several viewports; a click makes one active, View actions act on it)
    ShortcutSpec("layout_1x1", "One viewport", "Ctrl+1", "Layout"),
    ShortcutSpec("layout_1x2", "Two viewports side by side", "Ctrl+2", "Layout"),
    ShortcutSpec("layout_2x2", "Four viewports (2×2)", "Ctrl+4", "Layout"),
    ShortcutSpec(
        "sync_scroll",
        "Sync scrolling (mm, else index; an offset set while off is kept)",
        "Ctrl+Shift+S",
        "Layout",
    ),
    ShortcutSpec("sync_zoom", "Sync zoom and pan", "Ctrl+Shift+F", "Layout"),
    ShortcutSpec("sync_wl", "Sync window/level (same modality)", "Ctrl+Shift+W", "Layout"),
    ShortcutSpec(
        "compare_prior", "Compare with prior (previous study, same patient)", "Shift+P", "Layout"
    ),
    ShortcutSpec("ai_flicker", "Hold: hide the AI overlays, any viewport", "V", "Layout", False),
    ShortcutSpec("series_drop", "Show a series in a viewport", "Drag a series", "Layout", False),
    # Window/level
    ShortcutSpec("wl_reset", "Window: file / auto", "Ctrl+R", "Window/level"),
    ShortcutSpec(
        "wl_presets", "Window presets (CT: lung, mediastinum, …)", "1…5", "Window/level", False
    ),
    ShortcutSpec("wl_drag", "Window/level", "Right-drag", "Window/level", False),
    # Tools
    ShortcutSpec("tool_pan", "Pan tool", "P", "Tools"),
    ShortcutSpec("tool_ruler", "Ruler tool (mm)", "M", "Tools"),
    ShortcutSpec("tool_edit", "Edit box tool", "E", "Tools"),
    ShortcutSpec("clear_rulers", "Clear rulers on slice", "Shift+M", "Tools"),
    ShortcutSpec("tool_ellipse", "Ellipse ROI (area, mean, SD, min/max)", "Shift+E", "Tools"),
    ShortcutSpec("tool_rectangle", "Rectangle ROI (area, mean, SD, min/max)", "Shift+B", "Tools"),
    ShortcutSpec("tool_angle", "Angle (drag one arm, click the other's end)", "Shift+A", "Tools"),
    ShortcutSpec("tool_arrow", "Arrow with text (drag from the point shown)", "Shift+T", "Tools"),
    ShortcutSpec("key_image", "Flag / unflag the image as a key image", "Shift+K", "Tools"),
    ShortcutSpec("annotation_text", "Text of the selected annotation", "Shift+C", "Tools"),
    ShortcutSpec("delete_annotation", "Delete the selected annotation", "Del", "Tools"),
    ShortcutSpec("undo_annotation", "Undo (annotations, lesion strokes)", "Ctrl+Z", "Tools"),
    ShortcutSpec("redo_annotation", "Redo (annotations, lesion strokes)", "Ctrl+Shift+Z", "Tools"),
    ShortcutSpec("annotation_drag", "Move or reshape an annotation", "Left-drag", "Tools", False),
    ShortcutSpec("tool_brush", "Lesion brush (paint into the selected lesion)", "W", "Tools"),
    ShortcutSpec("tool_eraser", "Lesion eraser (any lesion on the slice)", "Shift+W", "Tools"),
    ShortcutSpec("brush_bigger", "Bigger brush", "Alt+]", "Tools"),
    ShortcutSpec("brush_smaller", "Smaller brush", "Alt+[", "Tools"),
    ShortcutSpec("brush_size_wheel", "Brush size (brush or eraser)", "Ctrl+Wheel", "Tools", False),
    # Inference
    ShortcutSpec("run_inference", "Run the model on this series", "Ctrl+Return", "Inference"),
    ShortcutSpec("cancel_inference", "Cancel inference", "Esc", "Inference"),
    ShortcutSpec("model_info", "Model information", "Ctrl+Shift+I", "Inference"),
    # Overlays
    ShortcutSpec("toggle_heatmap", "Heatmap (segmentation: lesion fill)", "H", "Overlays"),
    ShortcutSpec("toggle_outline", "Outlines (segmentation: lesion contours)", "O", "Overlays"),
    ShortcutSpec("toggle_box", "Boxes", "B", "Overlays"),
    ShortcutSpec("toggle_labels", "Label text", "T", "Overlays"),
    ShortcutSpec("hide_overlays", "Hide all overlays (raw image)", "X", "Overlays"),
    # Review
    ShortcutSpec("next_finding", "Next finding", "J", "Review"),
    ShortcutSpec("prev_finding", "Previous finding", "K", "Review"),
    ShortcutSpec("next_lesion", "Next lesion (its largest slice)", "Alt+Down", "Review"),
    ShortcutSpec("prev_lesion", "Previous lesion", "Alt+Up", "Review"),
    ShortcutSpec("accept", "Agree with the model's call", "A", "Review"),
    ShortcutSpec("reject", "Disagree with the model's call (with a reason)", "D", "Review"),
    ShortcutSpec("uncertain", "Uncertain", "Q", "Review"),
    ShortcutSpec("clear_verdict", "Clear verdict", "U", "Review"),
    ShortcutSpec("add_finding", "Add a finding the model missed (draw its box)", "N", "Review"),
    ShortcutSpec("all_absent", "Normal: all remaining labels absent", "Shift+N", "Review"),
    ShortcutSpec("add_lesion", "Add a lesion the model missed (paint it)", "Shift+L", "Review"),
    ShortcutSpec(
        "negative_heatmap", "Heatmap of the selected label, also when negative", "L", "Review"
    ),
    ShortcutSpec("note", "Note on finding", "C", "Review"),
    ShortcutSpec("go_to_finding", "Go to finding (offered when a run ends)", "G", "Review"),
    # Help
    ShortcutSpec("shortcuts", "Keyboard shortcuts", "?", "Help"),
)

BY_ID: dict[str, ShortcutSpec] = {s.id: s for s in DEFAULT_SHORTCUTS}

_MODIFIERS = ("ctrl", "alt", "shift", "meta")


def normalize(sequence: str) -> str:
    """A canonical spelling for comparing key sequences: modifiers in a fixed order, keys
    upper-cased (``"shift+ctrl+o"`` -> ``"Ctrl+Shift+O"``). Empty means "no shortcut"."""
    text = (sequence or "").strip()
    if not text:
        return ""
    if text == "+":
        return "+"
    raw = [*text[:-1].split("+"), "+"] if text.endswith("++") else text.split("+")
    parts = [p.strip() for p in raw]
    parts = [p for p in parts if p]
    mods = sorted({p.lower() for p in parts if p.lower() in _MODIFIERS}, key=_MODIFIERS.index)
    keys = [p for p in parts if p.lower() not in _MODIFIERS]
    keys = [k.upper() if len(k) == 1 else k[:1].upper() + k[1:] for k in keys]
    return "+".join([m.capitalize() for m in mods] + keys)


def effective(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each action's key: the user's override where one is set for a configurable action,
    else the default. Unknown ids in ``overrides`` are ignored (and logged)."""
    table = {s.id: s.default for s in DEFAULT_SHORTCUTS}
    for action_id, seq in (overrides or {}).items():
        spec = BY_ID.get(action_id)
        if spec is None:
            log.info("ignoring a shortcut for unknown action %r", action_id)
            continue
        if spec.configurable:
            table[action_id] = str(seq or "").strip()
    return table


def conflicts(table: Mapping[str, str]) -> dict[str, list[str]]:
    """Key sequences bound to more than one action: ``{sequence: [action ids]}``."""
    seen: dict[str, list[str]] = {}
    for action_id, seq in table.items():
        key = normalize(seq)
        if key:
            seen.setdefault(key, []).append(action_id)
    return {k: sorted(v) for k, v in seen.items() if len(v) > 1}


def cheat_sheet(table: Mapping[str, str] | None = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """The shortcuts by group, in table order: ``[(group, [(key, label), ...]), ...]``."""
    keys = effective() if table is None else dict(table)
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for group in GROUPS:
        rows = [
            (keys.get(s.id, s.default) or "—", s.label)
            for s in DEFAULT_SHORTCUTS
            if s.group == group
        ]
        if rows:
            out.append((group, rows))
    return out
