"""The window's actions as data — what each one calls, where it sits in the menus and the
toolbar — and the builders that turn the tables into QActions (napari's ``qactions`` way).

Labels and default keys come from ``desktop_app.settings.shortcuts`` (the same table the
settings dialog and the cheat-sheet read). A handler is a dotted path from the window
(``"review.accept_selected"``, ``"canvas.zoom_by"``), called with ``args``; a ``toggled``
action also passes its new checked state last. In the menu and toolbar layouts, ``"-"`` is a
separator and ``"@name"`` a place the window fills (a submenu, a widget, dock toggles).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QMenuBar, QToolBar, QWidget

from desktop_app.settings import shortcuts

SEPARATOR = "-"


@dataclass(frozen=True)
class ActionSpec:
    """One action. An ``id`` in the shortcut table gives its label and configurable key; an id
    outside it (Help ▸ About) has no configurable key and names its ``text``."""

    id: str
    handler: str
    args: tuple[object, ...] = ()
    toggled: bool = False  # call the handler on toggled(on), not on triggered
    checkable: bool = False
    group: str = ""  # actions with the same group are exclusive (the mouse tools)
    checked: bool = False
    enabled: bool = True
    text: str | None = None  # instead of the shortcut table's label
    toolbar_text: str | None = None

    @property
    def label(self) -> str:
        return self.text if self.text is not None else shortcuts.BY_ID[self.id].label


@dataclass(frozen=True)
class MenuSpec:
    title: str
    items: tuple[str, ...] = ()
    filler: str = ""  # a handler that refills the menu each time it opens


def _toggle(action_id: str, handler: str, *args: object, toolbar: str | None = None) -> ActionSpec:
    return ActionSpec(action_id, handler, args, toggled=True, checkable=True, toolbar_text=toolbar)


def _layout(action_id: str, name: str, checked: bool = False) -> ActionSpec:
    return ActionSpec(action_id, "layouts.set_layout", (name,), checkable=True, group="layout",
                      checked=checked)  # fmt: skip


def _tool(action_id: str, tool: str, toolbar: str, checked: bool = False) -> ActionSpec:
    return ActionSpec(action_id, "view.set_tool", (tool,), checkable=True, group="tools",
                      checked=checked, toolbar_text=toolbar)  # fmt: skip


def _draw(action_id: str, kind: str, toolbar: str) -> ActionSpec:
    """A reader-annotation tool (``annotations.set_tool``), exclusive with the mouse tools."""
    return ActionSpec(action_id, "annotations.set_tool", (kind,), checkable=True, group="tools",
                      toolbar_text=toolbar)  # fmt: skip


def _mask(action_id: str, kind: str, toolbar: str) -> ActionSpec:
    """A lesion-mask tool (``masks.set_tool``: brush, eraser), exclusive with the mouse tools."""
    return ActionSpec(action_id, "masks.set_tool", (kind,), checkable=True, group="tools",
                      toolbar_text=toolbar)  # fmt: skip


ACTIONS: tuple[ActionSpec, ...] = (
    # File
    ActionSpec("open_file", "studies.open_file_dialog"),
    ActionSpec("open_folder", "studies.open_folder_dialog", toolbar_text="Open"),
    ActionSpec("close_study", "studies.close_study"),
    ActionSpec("export", "exports.export_current_study", text="&Export…"),  # SR, SC, PDF, JSON
    ActionSpec("pacs", "exports.open_pacs_dialog", text="&Query/Retrieve (PACS)…"),
    ActionSpec("settings", "preferences.open_settings"),
    ActionSpec("quit", "close"),
    # Navigation
    ActionSpec("cine_play", "viewer.toggle_cine", checkable=True, toolbar_text="▶ Cine"),
    ActionSpec("cine_faster", "view.step_fps", (2,)),
    ActionSpec("cine_slower", "view.step_fps", (-2,)),
    # View
    ActionSpec("fit", "viewports.on_active", ("canvas.fit",), toolbar_text="Fit"),
    ActionSpec("zoom_in", "viewports.on_active", ("canvas.zoom_by", 1.25), toolbar_text="+"),
    ActionSpec("zoom_out", "viewports.on_active", ("canvas.zoom_by", 0.8), toolbar_text="−"),
    ActionSpec("rotate_right", "viewports.on_active", ("canvas.rotate_by", 90), toolbar_text="⟳"),
    ActionSpec("rotate_left", "viewports.on_active", ("canvas.rotate_by", -90), toolbar_text="⟲"),
    ActionSpec("flip_h", "viewports.on_active", ("canvas.toggle_flip", True), toolbar_text="Flip"),
    ActionSpec("flip_v", "viewports.on_active", ("canvas.toggle_flip", False)),
    _toggle("invert", "viewer.set_invert", toolbar="Invert"),
    ActionSpec("reset_view", "view.reset_view", toolbar_text="Reset"),
    ActionSpec("toggle_tags", "view.toggle_tags"),
    # DICOM overlays, presentation states and SR regions: shown from the start
    ActionSpec("toggle_dicom_graphics", "presentation.set_visible", (), True, True, checked=True),
    _toggle("smooth_zoom", "view.set_smooth"),
    _toggle("hide_identifiers", "view.set_hide_identifiers"),
    _toggle("axial_feet_first", "view.set_feet_first"),
    # Layout (the layouts controller; View actions above act on the active viewport)
    _layout("layout_1x1", "1x1", checked=True),
    _layout("layout_1x2", "1x2"),
    _layout("layout_2x2", "2x2"),
    _toggle("sync_scroll", "layouts.set_sync", "scroll"),
    _toggle("sync_zoom", "layouts.set_sync", "zoom"),
    _toggle("sync_wl", "layouts.set_sync", "wl"),
    ActionSpec("compare_prior", "layouts.compare_with_prior"),
    # Window/level
    ActionSpec("wl_reset", "viewports.on_active", ("reset_window",)),
    # Tools
    _tool("tool_pan", "pan", "Pan", checked=True),
    _tool("tool_ruler", "ruler", "Ruler"),
    _tool("tool_edit", "edit", "Edit"),
    ActionSpec("clear_rulers", "viewports.on_active", ("clear_rulers",)),
    _draw("tool_ellipse", "ellipse", "Ellipse"),
    _draw("tool_rectangle", "rectangle", "Rect"),
    _draw("tool_angle", "angle", "Angle"),
    _draw("tool_arrow", "arrow", "Arrow"),
    ActionSpec("key_image", "annotations.toggle_key_image", toolbar_text="★ Key"),
    ActionSpec("annotation_text", "annotations.edit_text"),
    ActionSpec("delete_annotation", "annotations.delete_selected"),
    ActionSpec("undo_annotation", "masks.undo"),  # a stroke while a mask tool is in hand,
    ActionSpec("redo_annotation", "masks.redo"),  # else the annotations' undo
    _mask("tool_brush", "brush", "Brush"),
    _mask("tool_eraser", "eraser", "Eraser"),
    ActionSpec("brush_bigger", "masks.grow", (1,)),
    ActionSpec("brush_smaller", "masks.grow", (-1,)),
    # Inference
    ActionSpec("run_inference", "runs.run_inference", toolbar_text="▶ Run model"),
    ActionSpec("cancel_inference", "runs.cancel_inference", enabled=False, toolbar_text="■ Cancel"),
    ActionSpec("model_info", "runs.show_model_info"),
    # Overlays
    _toggle("toggle_heatmap", "overlays.set_layer", "heatmap", toolbar="Heatmap"),
    _toggle("toggle_outline", "overlays.set_layer", "outline", toolbar="Outline"),
    _toggle("toggle_box", "overlays.set_layer", "box", toolbar="Box"),
    _toggle("toggle_labels", "overlays.set_layer", "text", toolbar="Labels"),
    _toggle("hide_overlays", "overlays.hide_all", toolbar="Raw"),
    # Review
    ActionSpec("next_finding", "review.step_finding", (1,)),
    ActionSpec("prev_finding", "review.step_finding", (-1,)),
    ActionSpec("next_lesion", "lesions.step_lesion", (1,)),
    ActionSpec("prev_lesion", "lesions.step_lesion", (-1,)),
    ActionSpec("accept", "review.accept_selected"),
    ActionSpec("reject", "review.reject_selected"),
    ActionSpec("uncertain", "review.uncertain_selected"),
    ActionSpec("clear_verdict", "review.clear_selected"),
    ActionSpec("add_finding", "review.start_add_finding", text="&Add finding…"),
    ActionSpec("all_absent", "review.mark_remaining_absent"),
    ActionSpec("add_lesion", "masks.start_add_lesion"),
    _toggle("negative_heatmap", "overlays.set_negative_heatmap"),
    ActionSpec("note", "findings.focus_note"),
    ActionSpec("go_to_finding", "runs.go_to_finding"),
    # Help
    ActionSpec("shortcuts", "preferences.show_shortcuts"),
    ActionSpec("about", "preferences.show_about", text="&About RadAssist"),
)

MENUS: tuple[MenuSpec, ...] = (
    MenuSpec("&File", ("open_file", "open_folder", "@recent", "close_study", "-", "export",
                       "pacs", "-", "settings", "-", "quit")),
    MenuSpec("&View", ("fit", "zoom_in", "zoom_out", "-", "rotate_right", "rotate_left",
                       "flip_h", "flip_v", "invert", "reset_view", "-", "cine_play",
                       "cine_faster", "cine_slower", "-", "smooth_zoom", "hide_identifiers",
                       "axial_feet_first", "-", "@docks", "toggle_tags",
                       "toggle_dicom_graphics")),
    MenuSpec("&Layout", ("layout_1x1", "layout_1x2", "layout_2x2", "-", "sync_scroll",
                         "sync_zoom", "sync_wl", "-", "compare_prior")),
    MenuSpec("&Window/Level", filler="view.fill_window_menu"),
    MenuSpec("&Tools", ("tool_pan", "tool_ruler", "tool_edit", "clear_rulers", "-",
                        "tool_ellipse", "tool_rectangle", "tool_angle", "tool_arrow", "key_image",
                        "annotation_text", "delete_annotation", "-", "tool_brush", "tool_eraser",
                        "brush_bigger", "brush_smaller", "-", "undo_annotation",
                        "redo_annotation")),
    MenuSpec("&Inference", ("run_inference", "cancel_inference", "model_info")),
    MenuSpec("&Overlays", ("toggle_heatmap", "toggle_outline", "toggle_box", "toggle_labels",
                           "-", "hide_overlays")),
    MenuSpec("&Review", ("next_finding", "prev_finding", "go_to_finding", "next_lesion",
                         "prev_lesion", "-", "accept", "reject",
                         "uncertain", "clear_verdict", "-", "add_finding", "all_absent",
                         "add_lesion", "-",
                         "negative_heatmap", "note", "tool_edit")),
    MenuSpec("&Help", ("shortcuts", "about")),
)  # fmt: skip

TOOLBAR: tuple[str, ...] = (
    "open_folder", "-", "tool_pan", "tool_ruler", "tool_edit", "tool_ellipse", "tool_rectangle",
    "tool_angle", "tool_arrow", "key_image", "tool_brush", "tool_eraser", "-", "fit", "zoom_in",
    "zoom_out", "rotate_left", "rotate_right", "flip_h", "invert", "reset_view", "@layout", "-",
    "@presets", "-", "cine_play", "@fps", "-", "run_inference", "cancel_inference", "-",
    "toggle_heatmap", "toggle_outline", "toggle_box", "toggle_labels", "@opacity",
    "hide_overlays",
)  # fmt: skip


def resolve(root: object, handler: str) -> Callable[..., object]:
    """The callable at dotted path ``handler`` from ``root`` (the window)."""
    fn = operator.attrgetter(handler)(root)
    if not callable(fn):
        raise TypeError(f"action handler {handler!r} is not callable: {fn!r}")
    return fn  # type: ignore[no-any-return]


def build_actions(host: QWidget, specs: Sequence[ActionSpec] = ACTIONS) -> dict[str, QAction]:
    """One QAction per spec, connected to its handler on ``host``. Actions with a shortcut are
    added to ``host`` too, so their keys work even when the menu bar is hidden."""
    acts: dict[str, QAction] = {}
    groups: dict[str, QActionGroup] = {}
    for spec in specs:
        act = QAction(spec.label, host)
        fn = resolve(host, spec.handler)
        if spec.id in shortcuts.BY_ID:
            act.setObjectName(f"act_{spec.id}")
            host.addAction(act)
        act.setCheckable(spec.checkable)
        if spec.toggled:
            act.toggled.connect(lambda on, fn=fn, args=spec.args: fn(*args, on))
        else:
            act.triggered.connect(lambda _c=False, fn=fn, args=spec.args: fn(*args))
        if spec.group:
            groups.setdefault(spec.group, QActionGroup(host)).addAction(act)
        if spec.checked:
            act.setChecked(True)
        if not spec.enabled:
            act.setEnabled(False)
        if spec.toolbar_text is not None:
            act.setIconText(spec.toolbar_text)
        acts[spec.id] = act
    return acts


def build_menus(
    bar: QMenuBar,
    acts: Mapping[str, QAction],
    places: Mapping[str, Callable[[QMenu], object]],
    root: object,
    specs: Sequence[MenuSpec] = MENUS,
) -> dict[str, QMenu]:
    """The menu bar from ``specs``, ``places`` filling the ``@`` items of a menu; returns the
    menus by title (without the ``&``)."""
    menus: dict[str, QMenu] = {}
    for spec in specs:
        menu = bar.addMenu(spec.title)
        for item in spec.items:
            if item == SEPARATOR:
                menu.addSeparator()
            elif item.startswith("@"):
                places[item[1:]](menu)
            else:
                menu.addAction(acts[item])
        if spec.filler:
            filler = resolve(root, spec.filler)
            menu.aboutToShow.connect(lambda m=menu, f=filler: f(m))
            filler(menu)
        menus[spec.title.replace("&", "")] = menu
    return menus


def build_toolbar(
    bar: QToolBar,
    acts: Mapping[str, QAction],
    widgets: Mapping[str, QWidget],
    items: Sequence[str] = TOOLBAR,
) -> None:
    """The toolbar from ``items``; an ``@`` item is one of ``widgets`` (e.g. the preset list)."""
    for item in items:
        if item == SEPARATOR:
            bar.addSeparator()
        elif item.startswith("@"):
            bar.addWidget(widgets[item[1:]])
        else:
            bar.addAction(acts[item])
