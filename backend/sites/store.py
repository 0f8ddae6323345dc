"""The saved-sites store: ``$FERRY_HOME/sites.toml``, one ``[sites.NAME]`` table per site.

The file is meant to be read and edited by hand too, so it is handled with ``tomlkit``: every
edit changes only the keys it must, and comments, ordering and unknown keys a user added
survive. Every method re-reads the file (two Ferry processes never clobber each other's
edits); writes hold an advisory ``flock`` on a sidecar lock file, validate the whole file
first (a corrupt file is never overwritten) and replace it atomically, 0600 in a 0700 dir.

Secrets never live here: a ``password`` or ``passphrase`` key in a site table is refused with
a message pointing at the vault (see :mod:`backend.vault`).
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as _dt
import re
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, cast

import tomlkit
import tomlkit.exceptions
from tomlkit.items import Table

from backend import paths
from backend.errors import ConfigError
from backend.fsutil import atomic_write, exclusive_lock
from backend.sites.model import Site

# Keys that would hold a secret in clear; each maps to the CLI option that stores it properly.
SECRET_KEYS: dict[str, str] = {
    "password": "--password-stdin",
    "passwd": "--password-stdin",
    "passphrase": "--key-passphrase-stdin",
    "key_passphrase": "--key-passphrase-stdin",
}

_STR_FIELDS = {
    "host", "user", "auth", "cipher_profile", "remote_dir", "layout", "upload_mode", "temp_suffix",
    "server_profile",
}
_OPT_STR_FIELDS = {"key_file", "jump", "last_connected"}
_INT_FIELDS = {"port", "keepalive", "max_parallel"}
_BOOL_FIELDS = {"allow_exec", "encrypt_at_rest", "require_deidentified"}
SITE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Site) if f.name != "name")

_HEADER = (
    "Ferry saved sites: one [sites.NAME] table per site. Safe to edit by hand; Ferry keeps\n"
    "comments and unknown keys. Never put passwords here: use `ferry sites edit NAME\n"
    "--password-stdin`, which stores them in the encrypted vault."
)


class SiteStore:
    """Read and edit ``sites.toml``. Raises :class:`ConfigError` for every user-fixable fault."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else paths.sites_file()
        self._lock_path = self.path.with_name(f".{self.path.name}.lock")

    # ----------------------------------------------------------------- reading

    def list(self) -> list[Site]:
        """Every saved site, in file order."""
        _doc, sites = self._load()
        return list(sites.values())

    def names(self) -> builtins.list[str]:
        return [site.name for site in self.list()]

    def get(self, name: str) -> Site:
        _doc, sites = self._load()
        return _lookup(sites, name)

    def exists(self, name: str) -> bool:
        _doc, sites = self._load()
        return name in sites

    # ----------------------------------------------------------------- writing

    def add(self, site: Site) -> None:
        """Save a new site. Its name must be free and its jump host (if any) must exist."""
        site.validate()
        with self._editing() as (doc, sites):
            if site.name in sites:
                raise ConfigError(
                    f"a site named {site.name} already exists",
                    hint=f"pick another name or use 'ferry sites edit {site.name}'",
                )
            _check_jump(site, sites)
            table = tomlkit.table()
            _fill_table(table, site, SITE_FIELDS)
            _sites_table(doc)[site.name] = table

    def update(self, name: str, /, **changes: Any) -> Site:
        """Change fields of a saved site (``name=`` renames it). Returns the updated site.

        Renaming also repoints every other site that uses this one as its jump host.
        """
        unknown = set(changes) - set(SITE_FIELDS) - {"name"}
        if unknown:
            raise ConfigError(f"unknown site setting(s): {', '.join(sorted(unknown))}")
        with self._editing() as (doc, sites):
            old = _lookup(sites, name)
            new = Site(**{**_as_dict(old), **changes})
            new.validate()
            renamed = new.name != name
            if renamed and new.name in sites:
                raise ConfigError(f"cannot rename {name} to {new.name}: that name is taken")
            others = {k: v for k, v in sites.items() if k != name}
            if new.jump is not None:
                _check_jump(new, others)
            table = _sites_table(doc)
            item = table[name]
            _fill_table(item, new, [k for k in changes if k != "name"])
            if renamed:
                del table[name]
                table[new.name] = item
                for other_name, other in others.items():
                    if other.jump == name:
                        table[other_name]["jump"] = new.name
            return new

    def remove(self, name: str) -> Site:
        """Delete a saved site. Refused while another site uses it as its jump host."""
        with self._editing() as (doc, sites):
            site = _lookup(sites, name)
            users = [s.name for s in sites.values() if s.jump == name]
            if users:
                raise ConfigError(
                    f"site {name} is the jump host of {', '.join(users)}",
                    hint="change their --jump first",
                )
            del _sites_table(doc)[name]
            return site

    def pin_host_key(self, name: str, key_line: str) -> bool:
        """Pin an OpenSSH public-key line for a site. Returns False if it was already pinned."""
        line = normalise_key_line(key_line)
        with self._editing() as (doc, sites):
            site = _lookup(sites, name)
            if _key_body(line) in {_key_body(k) for k in site.host_keys}:
                return False
            site.host_keys.append(line)
            _fill_table(_sites_table(doc)[name], site, ["host_keys"])
            return True

    def replace_host_keys(self, name: str, lines: builtins.list[str]) -> None:
        """Replace a site's pinned host keys (e.g. after a deliberate re-trust)."""
        keys: list[str] = []
        for raw in lines:
            line = normalise_key_line(raw)
            if _key_body(line) not in {_key_body(k) for k in keys}:
                keys.append(line)
        with self._editing() as (doc, sites):
            site = _lookup(sites, name)
            site.host_keys = keys
            _fill_table(_sites_table(doc)[name], site, ["host_keys"])

    def record_connected(self, name: str) -> None:
        """Stamp the site's ``last_connected`` with the current UTC time (ISO 8601)."""
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        with self._editing() as (doc, sites):
            site = _lookup(sites, name)
            site.last_connected = now
            _fill_table(_sites_table(doc)[name], site, ["last_connected"])

    # ----------------------------------------------------------------- internals

    def _read_text(self) -> str | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{self.path}: not valid UTF-8 text; fix or move the file") from None

    def _load(self) -> tuple[tomlkit.TOMLDocument, dict[str, Site]]:
        text = self._read_text()
        if text is None:
            doc = tomlkit.document()
            for line in _HEADER.splitlines():
                doc.add(tomlkit.comment(line))
            doc.add(tomlkit.nl())
            return doc, {}
        try:
            doc = tomlkit.parse(text)
        except tomlkit.exceptions.ParseError as exc:
            raise ConfigError(
                f"{self.path}:{exc.line}: invalid TOML: {_parse_problem(exc)}",
                hint="fix the file by hand; Ferry left it untouched",
            ) from None
        except tomlkit.exceptions.TOMLKitError as exc:  # e.g. a key given twice in a table
            raise ConfigError(
                f"{self.path}: invalid TOML: {exc}",
                hint="fix the file by hand; Ferry left it untouched",
            ) from None
        return doc, self._sites_of(doc, text)

    def _sites_of(self, doc: tomlkit.TOMLDocument, text: str) -> dict[str, Site]:
        data = doc.unwrap()
        raw_sites = data.get("sites", {})
        if not isinstance(raw_sites, dict):
            raise self._error(text, None, None, "'sites' must be a table of [sites.NAME] tables")
        sites: dict[str, Site] = {}
        for name, table in raw_sites.items():
            if not isinstance(table, dict):
                raise self._error(text, name, None, f"sites.{name} must be a table")
            sites[name] = self._site_from(text, name, table)
        return sites

    def _site_from(self, text: str, name: str, table: dict[str, Any]) -> Site:
        for key in table:
            if key.lower() in SECRET_KEYS:
                raise self._error(
                    text, name, key,
                    f"site {name} has a {key!r} in clear text; remove that line and use "
                    f"'ferry sites edit {name} {SECRET_KEYS[key.lower()]}' (stored encrypted)",
                )
        if "host" not in table:
            raise self._error(text, name, None, f"site {name}: missing 'host'")
        kwargs: dict[str, Any] = {}
        for key in SITE_FIELDS:
            if key in table:
                kwargs[key] = self._typed(text, name, key, table[key])
        site = Site(name=name, **kwargs)
        try:
            site.validate()
        except ConfigError as exc:
            bad = _field_named_in(exc.message)
            raise self._error(text, name, bad, exc.message) from None
        return site

    def _typed(self, text: str, name: str, key: str, value: Any) -> Any:
        def bad(kind: str) -> ConfigError:
            return self._error(
                text, name, key, f"site {name}: {key} must be {kind}, got {_tname(value)}"
            )

        if key in _STR_FIELDS:
            if not isinstance(value, str):
                raise bad("a string")
        elif key in _OPT_STR_FIELDS:
            if key == "last_connected" and isinstance(value, _dt.datetime | _dt.date):
                return value.isoformat()
            if not isinstance(value, str):
                raise bad("a string")
        elif key in _INT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad("an integer")
        elif key in _BOOL_FIELDS:
            if not isinstance(value, bool):
                raise bad("true or false")
        elif key == "host_keys":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise bad("a list of strings")
            return list(value)
        elif key == "layout_folders":
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise bad("a table of strings")
            return dict(value)
        return value

    def _error(self, text: str, site: str | None, key: str | None, problem: str) -> ConfigError:
        line = _line_of(text, site, key) if site is not None else None
        where = f"{self.path}:{line}" if line else str(self.path)
        return ConfigError(
            f"{where}: {problem}", hint="fix the file by hand; Ferry left it untouched"
        )

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive_lock(self._lock_path)

    @contextlib.contextmanager
    def _editing(self) -> Iterator[tuple[tomlkit.TOMLDocument, dict[str, Site]]]:
        """Lock, load (refusing a corrupt file), let the caller edit, then write atomically."""
        with self._locked():
            doc, sites = self._load()
            yield doc, sites
            atomic_write(self.path, tomlkit.dumps(doc), mode=0o600)


# --------------------------------------------------------------------- helpers


def normalise_key_line(key_line: str) -> str:
    """Check an OpenSSH public-key line (``type base64 [comment]``) and return it stripped."""
    import asyncssh

    line = (key_line or "").strip()
    if not line or "\n" in line or "\r" in line or "\x00" in line:
        raise ConfigError("a pinned host key must be one OpenSSH public-key line")
    try:
        asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ConfigError(f"not an OpenSSH public key line: {exc}") from None
    return line


def _key_body(line: str) -> str:
    """``type base64`` without the comment, to compare keys."""
    return " ".join(line.split()[:2])


def _lookup(sites: dict[str, Site], name: str) -> Site:
    try:
        return sites[name]
    except KeyError:
        known = ", ".join(sites) or "none"
        raise ConfigError(
            f"no site named {name}; known: {known}", hint="ferry sites list"
        ) from None


def _check_jump(site: Site, others: dict[str, Site]) -> None:
    if site.jump is None:
        return
    if site.jump not in others:
        raise ConfigError(
            f"site {site.name}: jump host {site.jump} is not a saved site",
            hint="add it first with 'ferry sites add'",
        )
    chain = {**others, site.name: site}
    seen = {site.name}
    hop: str | None = site.jump
    while hop is not None and hop in chain:
        if hop in seen:
            raise ConfigError(f"site {site.name}: jump hosts form a loop through {hop}")
        seen.add(hop)
        hop = chain[hop].jump


def _sites_table(doc: tomlkit.TOMLDocument) -> Table:
    if "sites" not in doc:
        doc.add("sites", tomlkit.table(is_super_table=True))
    # tomlkit types an item lookup as Item | Container; a [sites] super-table is a Table
    return cast(Table, doc["sites"])


def _as_dict(site: Site) -> dict[str, Any]:
    out = {f.name: getattr(site, f.name) for f in fields(Site)}
    out["host_keys"] = list(site.host_keys)
    out["layout_folders"] = dict(site.layout_folders)
    return out


def _fill_table(table: Any, site: Site, keys: Any) -> None:
    """Write ``keys`` of ``site`` into a tomlkit table, leaving every other key as it was."""
    for key in keys:
        value = getattr(site, key)
        if value is None:
            if key in table:
                del table[key]
            continue
        if key == "host_keys":
            arr = tomlkit.array()
            arr.extend(value)
            arr.multiline(bool(value))
            value = arr
        elif key == "layout_folders":
            if not value:
                if key in table:
                    del table[key]
                continue
            inline = tomlkit.inline_table()
            inline.update(value)
            value = inline
        table[key] = value


def _line_of(text: str, site: str, key: str | None) -> int | None:
    """1-based line of ``[sites.SITE]`` (or of ``key = ...`` inside it), when it can be found."""
    quoted = re.escape(site)
    header = re.compile(
        rf"^\s*\[\s*sites\s*\.\s*(?:{quoted}|\"{quoted}\"|'{quoted}')\s*\]\s*(#.*)?$"
    )
    lines = text.splitlines()
    for idx, line in enumerate(lines):
        if header.match(line):
            if key is None:
                return idx + 1
            key_re = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\")\s*=")
            for j in range(idx + 1, len(lines)):
                if lines[j].lstrip().startswith("["):
                    break
                if key_re.match(lines[j]):
                    return j + 1
            return idx + 1
    return None


def _field_named_in(message: str) -> str | None:
    for key in SITE_FIELDS:
        if re.search(rf"\b{key.replace('_', '[_ ]')}\b", message):
            return key
    return None


def _parse_problem(exc: tomlkit.exceptions.ParseError) -> str:
    text = str(exc)
    return re.sub(r"\s+at line \d+ col \d+$", "", text)


def _tname(value: Any) -> str:
    return {
        str: "a string", int: "an integer", bool: "true/false", float: "a number",
        list: "a list", dict: "a table",
    }.get(type(value), type(value).__name__)
