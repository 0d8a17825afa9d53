"""The actions table (desktop_app.qt.actions): one action per configurable shortcut, every
handler and menu/toolbar item resolves, and the window's menus follow the table."""

from __future__ import annotations

import pytest

from desktop_app.qt.actions import ACTIONS, MENUS, SEPARATOR, TOOLBAR, resolve
from desktop_app.settings import shortcuts

ACTION_IDS = {spec.id for spec in ACTIONS}


def test_every_configurable_shortcut_has_one_action_in_table_order() -> None:
    configurable = [s.id for s in shortcuts.DEFAULT_SHORTCUTS if s.configurable]
    assert [s.id for s in ACTIONS if s.id in shortcuts.BY_ID] == configurable
    assert len(ACTION_IDS) == len(ACTIONS)


@pytest.mark.parametrize(
    "items",
    [spec.items for spec in MENUS] + [TOOLBAR],
    ids=[spec.title.replace("&", "") for spec in MENUS] + ["toolbar"],
)
def test_menu_and_toolbar_items_name_actions(items: tuple[str, ...]) -> None:
    unknown = [i for i in items if i != SEPARATOR and not i.startswith("@") and i not in ACTION_IDS]
    assert not unknown


def test_handlers_resolve_on_the_window(make_window) -> None:
    window = make_window()
    for spec in ACTIONS:
        assert callable(resolve(window, spec.handler)), spec.id
    with pytest.raises(AttributeError, match="no_such_method"):
        resolve(window, "review.no_such_method")


def test_window_menus_follow_the_table(make_window) -> None:
    window = make_window()
    titles = [a.text() for a in window.menuBar().actions()]
    assert titles == [spec.title for spec in MENUS]
    review = next(spec for spec in MENUS if spec.title == "&Review")
    texts = [a.text() for a in window.menus["Review"].actions() if not a.isSeparator()]
    assert texts == [window.acts[i].text() for i in review.items if i != SEPARATOR]
    assert window.acts["export"].text() == "&Export…"
    assert window.acts["tool_pan"].isChecked() and not window.acts["cancel_inference"].isEnabled()
    assert window.acts["accept"].toolTip() == "Agree with the model's call  (A)"
    toolbar = [a.iconText() for a in window.toolbar.actions() if not a.isSeparator()][:3]
    assert toolbar == ["Open", "Pan", "Ruler"]
