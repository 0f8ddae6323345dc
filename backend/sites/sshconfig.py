"""Import sites from an OpenSSH client config (``~/.ssh/config``), treating it as hostile input.

Every literal ``Host`` alias becomes a candidate site whose settings are resolved the way ssh
does it: every ``Host`` block whose patterns match the alias contributes, the first value of
each keyword wins (``Host *`` defaults at the end of the file apply too). Mapped keywords:
HostName, Port, User, IdentityFile (→ auth "key"; else "agent"), ProxyJump (→ ``jump``),
ServerAliveInterval (→ ``keepalive``). ``Include`` is followed (relative paths against the
config's folder, globs allowed) with a depth limit, a file budget and loop detection.

Never crashes and never runs anything: ``ProxyCommand`` hosts, ``Match`` blocks, wildcard
patterns, unsupported ``%`` tokens, invalid names or ports, over-long lines, NUL bytes,
over-sized files — each is reported in :attr:`ImportResult.skipped` with a reason.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from backend.errors import ConfigError
from backend.sites.model import Site, default_user
from backend.sites.store import SiteStore

MAX_FILE_BYTES = 1 << 20
MAX_LINE_CHARS = 4096
MAX_INCLUDE_DEPTH = 16
MAX_FILES = 64
MAX_SITES = 1000
_KEYWORD_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*)\s*(?:=\s*|\s+|$)(.*)$")
_JUMP_RE = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s]+)(?::(?P<port>\d+))?$")


@dataclass
class ImportResult:
    """Sites to import (jump hosts before the sites that use them) and what was left out."""

    sites: list[Site] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Block:
    patterns: list[str] | None  # None: a Match block, which never applies
    options: list[tuple[str, list[str], str]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # lines of this block that were ignored


class _Unsupported(Exception):
    pass


class _Parser:
    def __init__(self, base_dir: Path, result: ImportResult) -> None:
        self.base_dir = base_dir
        self.result = result
        self.blocks: list[_Block] = []
        self.aliases: list[str] = []
        self.files_read = 0
        self._alias_seen: set[str] = set()

    def skip(self, what: str, why: str) -> None:
        self.result.skipped.append((what, why))

    def parse_file(
        self, path: Path, patterns: list[str] | None, depth: int, stack: tuple[Path, ...]
    ) -> None:
        text = self._read(path)
        if text is None:
            return
        block = _Block(patterns)
        self.blocks.append(block)
        for number, line in enumerate(text.split("\n"), start=1):
            where = f"{path}:{number}"
            if len(line) > MAX_LINE_CHARS:
                self.skip(where, f"line longer than {MAX_LINE_CHARS} characters ignored")
                block.unreadable.append(where)
                continue
            if "\x00" in line:
                self.skip(where, "line contains a NUL byte; ignored")
                block.unreadable.append(where)
                continue
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            match = _KEYWORD_RE.match(stripped)
            if not match:
                self.skip(where, "not a 'Keyword value' line; ignored")
                block.unreadable.append(where)
                continue
            keyword, rest = match.group(1).lower(), match.group(2)
            try:
                args = _split_args(rest)
            except ValueError:
                self.skip(where, "unbalanced quotes; line ignored")
                block.unreadable.append(where)
                continue
            if keyword == "host":
                block = _Block(self._host_patterns(args, where))
                self.blocks.append(block)
            elif keyword == "match":
                self.skip(f"Match {' '.join(args)}"[:80], "Match blocks are conditional; "
                          "Ferry does not import them (their settings are ignored)")
                block = _Block(None)
                self.blocks.append(block)
            elif keyword == "include":
                self._include(args, block.patterns, depth, stack, where)
                block = _Block(block.patterns)
                self.blocks.append(block)
            else:
                block.options.append((keyword, args, where))

    def _read(self, path: Path) -> str | None:
        self.files_read += 1
        if self.files_read > MAX_FILES:
            self.skip(str(path), f"more than {MAX_FILES} config files; not read")
            return None
        try:
            if not path.is_file():
                self.skip(str(path), "not a regular file; not read")
                return None
            with open(path, "rb") as fh:
                data = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            self.skip(str(path), f"cannot read: {exc.strerror}")
            return None
        if len(data) > MAX_FILE_BYTES:
            self.skip(str(path), "file larger than 1 MiB; not read")
            return None
        return data.decode("utf-8", "replace").replace("\r\n", "\n")

    def _host_patterns(self, args: list[str], where: str) -> list[str]:
        if not args:
            self.skip(where, "Host line without a name")
        for pattern in args:
            if pattern.startswith("!") or any(c in pattern for c in "*?"):
                self.skip(f"Host {pattern}", "wildcard or negated pattern: not a site "
                          "(its settings apply to the hosts it matches)")
                continue
            if pattern in self._alias_seen:
                self.result.notes.append(
                    (pattern, "appears in more than one Host block; merged as ssh does "
                              "(the first value of each setting wins)")
                )
                continue
            self._alias_seen.add(pattern)
            self.aliases.append(pattern)
        return args

    def _include(
        self,
        args: list[str],
        patterns: list[str] | None,
        depth: int,
        stack: tuple[Path, ...],
        where: str,
    ) -> None:
        if depth + 1 > MAX_INCLUDE_DEPTH:
            self.skip(where, f"Include nested deeper than {MAX_INCLUDE_DEPTH}; not followed")
            return
        for arg in args:
            expanded = os.path.expanduser(arg)
            if not os.path.isabs(expanded):
                expanded = str(self.base_dir / expanded)
            matches = sorted(glob.glob(expanded))
            if not matches:
                self.result.notes.append((where, f"Include {arg}: no such file"))
            for match in matches:
                target = Path(match).resolve()
                if target in stack:
                    self.skip(where, f"Include {arg} loops back to {target}; not followed")
                    continue
                self.parse_file(target, patterns, depth + 1, (*stack, target))


def _split_args(rest: str) -> list[str]:
    lexer = shlex.shlex(rest, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def _matches(patterns: list[str] | None, name: str) -> bool:
    if patterns is None:
        return False
    name = name.lower()
    positive = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pat = pattern[1:] if negated else pattern
        if fnmatch.fnmatchcase(name, pat.lower()):
            if negated:
                return False
            positive = True
    return positive


def _expand(value: str, tokens: dict[str, str], setting: str) -> str:
    if "${" in value:
        raise _Unsupported(f"{setting} uses ${{...}} environment variables")
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char != "%":
            out.append(char)
            i += 1
            continue
        code = value[i + 1 : i + 2]
        if code == "%":
            out.append("%")
        elif code and code in tokens:
            out.append(tokens[code])
        else:
            raise _Unsupported(f"{setting} uses the unsupported token %{code}")
        i += 2
    return "".join(out)


class _Resolver:
    """Turns the parsed blocks into sites, resolving settings per alias as ssh does."""

    def __init__(self, parser: _Parser) -> None:
        self.parser = parser
        self.result = parser.result
        self.local_user = default_user()
        self.home = str(Path.home())

    def options(self, alias: str) -> dict[str, list[str]]:
        """Settings for ``alias``; raises _Unsupported if a block that applies had a bad line."""
        opts: dict[str, list[str]] = {}
        identity: list[str] = []
        for block in self.parser.blocks:
            if not _matches(block.patterns, alias):
                continue
            if block.unreadable:
                first = block.unreadable[0]
                raise _Unsupported(f"its settings include an unreadable line ({first})")
            for keyword, args, _where in block.options:
                if keyword == "identityfile":
                    identity.extend(args[:1])
                elif keyword not in opts:
                    opts[keyword] = args
        if identity:
            opts["identityfile"] = identity
        return opts

    def site_for(self, alias: str) -> tuple[Site, str | None]:
        """A validated site for ``alias`` and its raw ProxyJump; raises ConfigError/_Unsupported."""
        opts = self.options(alias)
        command = (opts.get("proxycommand") or ["none"])[0]
        if command.lower() != "none":
            raise _Unsupported("uses ProxyCommand, which Ferry never runs (use ProxyJump)")
        hostname = _expand((opts.get("hostname") or [alias])[0], {"h": alias}, "HostName")
        port_text = (opts.get("port") or ["22"])[0]
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise _Unsupported(f"port {port_text[:20]!r} is not 1-65535")
        port = int(port_text)
        user = _expand((opts.get("user") or [self.local_user])[0], {"u": self.local_user}, "User")
        keepalive = 30
        alive = (opts.get("serveraliveinterval") or [""])[0]
        if alive.isdigit() and int(alive) <= 86400:
            keepalive = int(alive)
        key_file = None
        identities = [v for v in opts.get("identityfile", []) if v.lower() != "none"]
        if identities:
            tokens = {
                "d": self.home, "u": self.local_user, "h": hostname, "r": user,
                "p": str(port), "n": alias,
            }
            raw = _expand(identities[0], tokens, "IdentityFile")
            path = os.path.expanduser(raw)
            key_file = path if os.path.isabs(path) else os.path.join(self.home, path)
        site = Site(
            name=alias, host=hostname, port=port, user=user,
            auth="key" if key_file else "agent", key_file=key_file, keepalive=keepalive,
        )
        site.validate()
        jumps = opts.get("proxyjump")
        jump = jumps[0] if jumps else None
        if jump is not None and jump.lower() == "none":
            jump = None
        return site, jump

    def resolve(self) -> None:
        sites: dict[str, Site] = {}
        jumps: dict[str, str] = {}
        for alias in self.parser.aliases[:MAX_SITES]:
            self._try_add(alias, sites, jumps)
        if len(self.parser.aliases) > MAX_SITES:
            self.parser.skip("(rest)", f"more than {MAX_SITES} hosts; the rest were not read")
        queue = list(jumps)
        while queue:
            name = queue.pop(0)
            if name not in sites:
                continue
            try:
                target = self._jump_target(name, jumps[name], sites, jumps, queue)
            except (_Unsupported, ConfigError) as exc:
                self._drop(name, sites, _reason(exc))
                continue
            sites[name].jump = target
        self._drop_broken_chains(sites)
        self.result.sites.extend(_dependencies_first(sites))

    def _try_add(self, alias: str, sites: dict[str, Site], jumps: dict[str, str]) -> bool:
        try:
            site, jump = self.site_for(alias)
        except (_Unsupported, ConfigError) as exc:
            self.parser.skip(alias, _reason(exc))
            return False
        sites[alias] = site
        if jump is not None:
            jumps[alias] = jump
        return True

    def _jump_target(
        self, name: str, spec: str, sites: dict[str, Site], jumps: dict[str, str],
        queue: list[str],
    ) -> str:
        if "," in spec:
            raise _Unsupported(f"ProxyJump {spec[:60]} has several hops; Ferry keeps one "
                               "jump per site (add the hops as sites and chain them with --jump)")
        match = _JUMP_RE.match(spec)
        if spec.startswith("ssh://") or not match:
            raise _Unsupported(f"ProxyJump {spec[:60]!r} is not a form Ferry can import")
        host, user, port = match.group("host"), match.group("user"), match.group("port")
        if host == name:
            raise _Unsupported("its ProxyJump points at itself")
        if host in self.parser.aliases:
            target = sites.get(host)
            if target is None:
                raise _Unsupported(f"its jump host {host} was not imported")
            if (user and user != target.user) or (port and int(port) != target.port):
                raise _Unsupported(f"ProxyJump {spec} overrides the user or port of Host "
                                   f"{host}; add that jump host as its own site")
            return host
        if host in sites:  # a jump host created earlier for another site
            existing = sites[host]
            if (user and user != existing.user) or (port and int(port) != existing.port):
                raise _Unsupported(f"ProxyJump {spec} conflicts with jump host {host} "
                                   "used by another site")
            return host
        if len(sites) >= MAX_SITES or not self._try_add(host, sites, jumps):
            raise _Unsupported(f"its jump host {host} could not be imported")
        jump_site = sites[host]
        if user:
            jump_site.user = user
        if port:
            jump_site.port = int(port)
        jump_site.validate()
        self.result.notes.append((host, f"added as the jump host of {name}"))
        if host in jumps:
            queue.append(host)
        return host

    def _drop(self, name: str, sites: dict[str, Site], reason: str) -> None:
        sites.pop(name, None)
        self.parser.skip(name, reason)

    def _drop_broken_chains(self, sites: dict[str, Site]) -> None:
        changed = True
        while changed:
            changed = False
            for name in list(sites):
                site = sites[name]
                if site.jump is not None and site.jump not in sites:
                    self._drop(name, sites, f"its jump host {site.jump} was not imported")
                    changed = True
                elif _in_loop(name, sites):
                    self._drop(name, sites, "its ProxyJump chain loops")
                    changed = True


def _in_loop(name: str, sites: dict[str, Site]) -> bool:
    seen: set[str] = set()
    hop: str | None = name
    while hop is not None and hop in sites:
        if hop in seen:
            return True
        seen.add(hop)
        hop = sites[hop].jump
    return False


def _dependencies_first(sites: dict[str, Site]) -> list[Site]:
    ordered: list[Site] = []
    placed: set[str] = set()

    def place(name: str) -> None:
        if name in placed:
            return
        placed.add(name)
        jump = sites[name].jump
        if jump is not None:
            place(jump)
        ordered.append(sites[name])

    for name in sites:
        place(name)
    return ordered


def _reason(exc: Exception) -> str:
    return exc.message if isinstance(exc, ConfigError) else str(exc)


def parse_ssh_config(path: Path | str | None = None) -> ImportResult:
    """Parse an OpenSSH client config into sites (default ``~/.ssh/config``).

    Raises :class:`ConfigError` only when the file itself cannot be read; every problem inside
    it is reported in the result.
    """
    path = Path(os.path.expanduser(str(path))) if path else Path.home() / ".ssh" / "config"
    if not path.is_file():
        raise ConfigError(f"no ssh config at {path}", hint="give the file: "
                          "'ferry sites import-ssh-config FILE'")
    result = ImportResult()
    parser = _Parser(path.resolve().parent, result)
    # Lines before the first Host apply to every host, like "Host *".
    parser.parse_file(path.resolve(), ["*"], 0, (path.resolve(),))
    _Resolver(parser).resolve()
    return result


def import_into_store(
    result: ImportResult, store: SiteStore
) -> tuple[list[Site], list[tuple[str, str]]]:
    """Add the parsed sites to a :class:`~backend.sites.store.SiteStore`, never overwriting.

    Returns (added, skipped): names already in the store are skipped with a reason.
    """
    added: list[Site] = []
    skipped: list[tuple[str, str]] = []
    existing = set(store.names())
    for site in result.sites:
        if site.name in existing:
            skipped.append((site.name, "a site with this name already exists; not overwritten"))
            continue
        try:
            store.add(site)
        except ConfigError as exc:
            skipped.append((site.name, exc.message))
            continue
        added.append(site)
        existing.add(site.name)
    return added, skipped
