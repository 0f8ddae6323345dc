"""The command palette (ctrl+p): every action of the current screen and the app.

Built from the live bindings (``Screen.active_bindings``: the focused widget's, the screen's
and the app's), so it always matches what the keys do, including user remaps; each entry shows
the key it is bound to.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

Command = Callable[[], object]
"""What an entry runs (an action, or setting the theme)."""


class FerryCommands(Provider):
    """One palette entry per binding that has a description."""

    def _commands(self) -> list[tuple[str, str, Command]]:
        seen: set[tuple[str, str]] = set()
        out: list[tuple[str, str, Command]] = []
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.description or not active.enabled:
                continue
            if binding.action in {"command_palette", "app.command_palette"}:
                continue
            ident = (binding.action, binding.description)
            if ident in seen:
                continue
            seen.add(ident)
            shown_key = self.app.get_key_display(binding) if key else ""
            help_text = f"{shown_key}  ({binding.id})" if binding.id else shown_key
            callback = partial(self.app.run_action, binding.action, active.node)
            out.append((binding.description, help_text, callback))
        return sorted(out, key=lambda item: item[0].lower())

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class ThemeCommands(Provider):
    """F9: every theme, the one in use marked ``● … (current)``."""

    def _themes(self) -> list[tuple[str, str, Command]]:
        current = self.app.theme
        out: list[tuple[str, str, Command]] = []
        for name in sorted(self.app.available_themes):
            mark = "● " if name == current else "  "
            out.append((name, mark + name, partial(setattr, self.app, "theme", name),))
        return out

    async def discover(self) -> Hits:
        for name, shown, callback in self._themes():
            current = name == self.app.theme
            yield DiscoveryHit(shown, callback, text=name,
                               help="current theme" if current else None)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, shown, callback in self._themes():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(shown), callback, text=name,
                          help="current theme" if name == self.app.theme else None)
