"""Checking the user's ``[keymap]`` (settings.toml) before Textual applies it.

Textual applies any keymap silently: a key given to one action that another action in the same
place already uses makes one of them unreachable (the docs' old example ``"ferry.browser.copy"
= "f5,c"`` took ``c`` from *Cases*, and pressing ``c`` then copied a whole inbox), and an id
that matches no binding does nothing. :func:`check_keymap` refuses every such key — the action
keeps its other keys, or its default ones — and reports unknown ids; the App shows all of it in
one notification (tui/app.py).

Two bindings clash when both can be active at once: on the same screen, in a widget of that
screen (:data:`WIDGET_SCREENS`), in the App (everywhere), or in a dialog and its base class.
A user key is refused when it would take the key from the other action (same class, or the
other binding is further from the focus: Textual asks the focused widget first, then its
screen, then the App); when the other action is nearer the focus and keeps the key there, the
user's binding only loses in that place, which is reported but applied. Ferry's own defaults
are never refused.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from textual.binding import Binding
from textual.keys import KEY_NAME_REPLACEMENTS
from textual.screen import Screen

# Which screens a widget class with its own bindings is shown in (its keys and the screen's
# are active together). A widget not named here is checked against the App's keys only.
WIDGET_SCREENS: dict[str, tuple[str, ...]] = {
    "FileTable": ("BrowserScreen",),
    "FilterInput": ("BrowserScreen",),
    "QueueTable": ("BrowserScreen",),
    "ListTable": ("SitesScreen", "CasesScreen", "SharesScreen", "AuditScreen", "QueueTable"),
}


@dataclass(frozen=True)
class _Bound:
    binding_id: str
    description: str
    owner: str  # class name
    default: frozenset[str]


def key_name(key: str) -> str:
    """A key as Textual names it: ``?`` -> ``question_mark``, ``/`` -> ``slash``."""
    key = key.strip()
    if len(key) != 1 or key.isalnum():
        return key
    try:
        name = unicodedata.name(key).lower().replace("-", "_").replace(" ", "_")
    except ValueError:
        return key
    return KEY_NAME_REPLACEMENTS.get(name, name)


def _keys(text: str) -> list[str]:
    return [key_name(k) for k in text.split(",") if k.strip()]


def _owners(classes: list[type]) -> dict[str, list[Binding]]:
    out: dict[str, list[Binding]] = {}
    for cls in classes:
        for item in cls.__dict__.get("BINDINGS", []):
            if isinstance(item, Binding) and item.id:
                out.setdefault(cls.__name__, []).append(item)
    return out


def _together(classes: list[type], app_name: str) -> dict[str, set[str]]:
    """For each class name, the class names whose bindings are active at the same time."""
    names = {cls.__name__ for cls in classes}
    groups: list[set[str]] = []
    for cls in classes:
        chain = {c.__name__ for c in cls.__mro__ if c.__name__ in names}
        screens = WIDGET_SCREENS.get(cls.__name__)
        if screens is None:
            groups.append(chain | {app_name})
            continue
        for screen in screens:
            host_chain: set[str] = set()
            for host in (screen, *WIDGET_SCREENS.get(screen, ())):  # a widget in a widget
                host_cls = next((c for c in classes if c.__name__ == host), None)
                if host_cls is not None:
                    host_chain |= {c.__name__ for c in host_cls.__mro__ if c.__name__ in names}
            groups.append(chain | host_chain | {app_name})
    together: dict[str, set[str]] = {}
    for group in groups:
        for name in group:
            together.setdefault(name, set()).update(group)
    for name in names:
        together.setdefault(name, {name, app_name}).add(app_name)
    together[app_name] = names
    return together


def check_keymap(
    keymap: dict[str, str], app_class: type, classes: list[type]
) -> tuple[dict[str, str], list[str]]:
    """The part of ``keymap`` that is safe to apply, and one line per problem.

    ``classes``: every Screen / Widget class with bindings (tui/screens/help.py
    ``binding_classes``); ``app_class``: the App (its bindings are active everywhere).
    """
    all_classes = [app_class, *[c for c in classes if c is not app_class]]
    bound: dict[str, list[_Bound]] = {}
    for owner, bindings in _owners(all_classes).items():
        for b in bindings:
            bound.setdefault(b.id or "", []).append(
                _Bound(b.id or "", b.description or b.action, owner, frozenset(_keys(b.key)))
            )
    together = _together(all_classes, app_class.__name__)
    problems: list[str] = []
    unknown = [i for i in keymap if i not in bound]
    if unknown:
        problems.append(
            "keymap: no binding has the id " + ", ".join(repr(i) for i in unknown)
            + " (the Help screen, ?, lists every id)"
        )
    wanted = {i: _keys(k) for i, k in keymap.items() if i in bound}
    order = list(wanted)
    refused: dict[str, list[str]] = {}
    noted: list[str] = []
    rank = {cls.__name__: _rank(cls, app_class) for cls in all_classes}
    for _ in range(len(order) + 1):  # refusing a key can bring a default back: re-check
        changed = False
        for index, binding_id in enumerate(order):
            if binding_id not in wanted:
                continue
            earlier = set(order[:index])

            def keys_of(other: str, earlier: set[str] = earlier) -> frozenset[str]:
                if other in wanted:  # a later user binding is checked against this one
                    return frozenset(wanted[other]) if other in earlier else frozenset()
                return bound[other][0].default

            mine = {e.owner for e in bound[binding_id]}
            near = set().union(*(together.get(o, {o}) for o in mine))
            for key in list(wanted[binding_id]):
                clash = next(
                    (e for other, entries in bound.items() if other != binding_id
                     and key in keys_of(other) for e in entries if e.owner in near),
                    None,
                )
                if clash is None:
                    continue
                if rank[min(mine, key=rank.__getitem__)] < rank[clash.owner]:
                    # the other binding is nearer the focus: ours only loses there
                    noted.append(f'keymap: "{key}" for {binding_id} stays {clash.description} '
                                 f"({clash.binding_id}) where that is active")
                    continue
                refused.setdefault(binding_id, []).append(
                    f'"{key}" for {binding_id} is already {clash.description} '
                    f"({clash.binding_id})"
                )
                wanted[binding_id].remove(key)
                changed = True
            if not wanted[binding_id]:
                del wanted[binding_id]
        if not changed:
            break
        noted.clear()  # noted again by the next pass
    for binding_id, lines in refused.items():
        fallback = (
            ",".join(wanted[binding_id]) if binding_id in wanted
            else ",".join(sorted(bound[binding_id][0].default))
        )
        problems.append(f"keymap: {'; '.join(lines)}: not used ({binding_id} keeps {fallback})")
    problems += dict.fromkeys(noted)  # once each, in order
    return {i: ",".join(k) for i, k in wanted.items()}, problems


def _rank(cls: type, app_class: type) -> int:
    """How near the focus a class's bindings are checked: the focused widget's first, then its
    screen's, the App's last (Textual's binding chain)."""
    if issubclass(cls, app_class) or cls is app_class:
        return 0
    return 1 if issubclass(cls, Screen) else 2


def binding_table(app: Any) -> tuple[type, list[type]]:
    """The App class and every Ferry class with bindings (imported lazily: all screens)."""
    from tui.screens.help import binding_classes

    return type(app), binding_classes()
