"""Server profiles: what a site's SFTP server can really do, detected, remembered, and applied.

Three things live here (docs/transfers.md, "Server profiles"):

* :class:`ServerProfile`, the facts :func:`detect` finds by trying them: exec usable (a real
  ``sha256sum``/``openssl`` answer, not only "the channel opened"), writes, rename,
  posix-rename, reopening an existing file to write at an offset (what resume needs), writes
  out of order (what multi-lane uploads need), fsync, setstat, hardlink, ``limits@openssh.com``
  and its sizes, the SFTP version and name encoding. Every probe works in a scratch folder
  ``.ferry-probe-<random>`` under the site's ``remote_dir`` and removes everything it made;
  nothing else on the server is touched. A fact that could not be tried is ``None``
  ("unknown"), never a guess.
* Remembering it: one JSON file per site under the state folder (``server-profiles/NAME.json``,
  written atomically), with the time of detection and the address it was detected at (a
  profile of another host is never applied).
* :data:`PRESETS` a user picks (``Site.server_profile``) and :func:`profile_policy`, which
  merges the preset with what was detected into what Ferry does: may exec be tried, may one
  upload use several lanes, is resume a restart from zero, how many sessions one connection
  may hold, the keepalive. The transfer pool, the copier and the SSH connection ask it.

The CLI (``ferry sites test``/``show``) and the TUI's Test dialog both call
:func:`redetect` and :func:`report_lines` / :func:`report_json`: one backend face for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import json
import logging
import posixpath
import secrets
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import asyncssh

from backend import paths
from backend.errors import ConnectError
from backend.fsutil import atomic_write
from backend.names import display_name
from backend.sites.model import SERVER_PROFILES, Site

log = logging.getLogger("ferry.sites")

PROBE_PREFIX = ".ferry-probe-"
EXEC_TIMEOUT = 10.0
PROBE_TIMEOUT = 30.0
CLEANUP_TIMEOUT = 10.0
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
# sha256 of nothing, by coreutils (prints "<hex>  -") or, failing that, OpenSSL ("<hex> *stdin")
EXEC_PROBE = "sha256sum </dev/null 2>/dev/null || openssl dgst -sha256 -r </dev/null"
_NAME_PROBE = b"name-\xc3\xa9"  # "name-é" in UTF-8
_SAFE_LIMIT = 16 * 1024  # asyncssh's read/write size when the server states no limits


# --------------------------------------------------------------------- the facts


@dataclass
class ServerProfile:
    """Detected facts about one site's server. ``None`` means "unknown" (not tried, or the
    answer was ambiguous); ``notes`` says why for the facts that have a reason."""

    address: str = ""
    remote_dir: str = ""
    detected_at: str = ""  # ISO 8601, UTC
    exec_usable: bool | None = None
    exec_tool: str | None = None  # "sha256sum" or "openssl"
    writable: bool | None = None
    rename: bool | None = None
    posix_rename: bool | None = None
    append: bool | None = None  # reopen an existing file and write at an offset
    random_write: bool | None = None  # writes out of order on one handle
    fsync: bool | None = None
    setstat: bool | None = None
    hardlink: bool | None = None
    limits: bool | None = None
    max_read: int | None = None
    max_write: int | None = None
    sftp_version: int | None = None
    session_limit: int | None = None  # not probed (it would cost many sessions): presets say
    name_encoding: str | None = None  # "utf-8" or "other"
    check_file: list[str] | None = None  # asyncssh exposes no public extension list
    notes: dict[str, str] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)  # probe names that could not be removed

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerProfile:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# (field, label) in the order they are shown; labels are what the CLI and the TUI print
FACTS: tuple[tuple[str, str], ...] = (
    ("exec_usable", "exec"),
    ("writable", "writes"),
    ("rename", "rename"),
    ("posix_rename", "posix-rename"),
    ("append", "append/reopen at offset"),
    ("random_write", "out-of-order writes"),
    ("fsync", "fsync"),
    ("setstat", "setstat (mtime)"),
    ("hardlink", "hardlink"),
    ("limits", "limits@openssh.com"),
    ("sftp_version", "sftp version"),
    ("session_limit", "session limit"),
    ("name_encoding", "name encoding"),
    ("check_file", "check-file"),
)


def _word(value: object) -> str:
    if value is None:
        return "unknown"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


# --------------------------------------------------------------------- presets and policy


@dataclass(frozen=True)
class Preset:
    """What a named server profile means. ``None``: take what detection found."""

    name: str
    meaning: str
    exec: bool | None = None
    multi_lane_uploads: bool | None = None
    append: bool | None = None
    max_sessions: int | None = None
    keepalive_max: int | None = None  # seconds; keepalive is on and at most this


PRESETS: dict[str, Preset] = {
    "auto": Preset("auto", "what detection found ('ferry sites test'); Ferry's defaults "
                   "for what it has not"),
    "openssh": Preset("openssh", "a full OpenSSH account: exec allowed, every extension used",
                      exec=True, multi_lane_uploads=True, append=True),
    "aws-transfer-s3": Preset(
        "aws-transfer-s3",
        "AWS Transfer Family on S3: no exec, in-order single-channel uploads, resume "
        "restarts from zero, at most 10 sessions per connection, keepalive at most 60 s",
        exec=False, multi_lane_uploads=False, append=False, max_sessions=10,
        keepalive_max=60),
    "proftpd": Preset("proftpd", "ProFTPD mod_sftp: no exec", exec=False),
    "sftp-only": Preset("sftp-only", "an SFTP-only account (ForceCommand internal-sftp, "
                        "chroot): no exec", exec=False),
}
assert tuple(PRESETS) == SERVER_PROFILES


@dataclass(frozen=True)
class ProfilePolicy:
    """What Ferry does on a site, from its preset and its remembered profile."""

    preset: str
    exec_ok: bool | None  # False: never try exec; None: try and see; True: known to work
    multi_lane_uploads: bool  # False: one lane per file, writes strictly in order
    restart_from_zero: bool  # True: the server cannot reopen a file to append; resume = redo
    max_sessions: int | None  # SSH sessions one connection may hold (None: the pool's default)
    keepalive: int  # seconds between keepalives (0: off)
    detected_at: str | None  # when the profile it used was detected (None: not used/none)

    def summary(self) -> str:
        exec_word = {False: "never tried", True: "used", None: "tried when needed"}
        lanes = ("may split over several lanes" if self.multi_lane_uploads
                 else "on one lane, in order")
        parts = [
            f"uploads {lanes}",
            "resume restarts from zero" if self.restart_from_zero else "resume appends",
            f"exec {exec_word[self.exec_ok]}",
            f"keepalive {self.keepalive} s" if self.keepalive else "keepalive off",
        ]
        if self.max_sessions is not None:
            parts.append(f"at most {self.max_sessions} sessions per connection")
        return "; ".join(parts)


def _preset(site: Site) -> Preset:
    return PRESETS.get(getattr(site, "server_profile", "auto"), PRESETS["auto"])


def keepalive_for(site: Site) -> int:
    """The keepalive interval the connection uses (the preset caps it, and keeps it on)."""
    cap = _preset(site).keepalive_max
    if cap is None:
        return site.keepalive
    return min(site.keepalive, cap) if site.keepalive else cap


_UNSET: Any = object()


def profile_policy(site: Site, profile: ServerProfile | None = _UNSET) -> ProfilePolicy:
    """The site's preset over its remembered profile (loaded when not given)."""
    if profile is _UNSET:
        profile = load_profile(site)
    preset = _preset(site)

    def pick(fixed: bool | None, detected: bool | None) -> bool | None:
        return fixed if fixed is not None else detected

    found = profile or ServerProfile()
    exec_ok = pick(preset.exec, found.exec_usable)
    if not site.allow_exec:
        exec_ok = False
    multi = pick(preset.multi_lane_uploads, found.random_write)
    append = pick(preset.append, found.append)
    return ProfilePolicy(
        preset=preset.name,
        exec_ok=exec_ok,
        multi_lane_uploads=multi is not False,
        restart_from_zero=append is False,
        max_sessions=preset.max_sessions or found.session_limit,
        keepalive=keepalive_for(site),
        detected_at=profile.detected_at if profile is not None else None,
    )


def upload_lanes(site: Site | None, size: int, *, split_at: int, lanes: int) -> int:
    """How many lanes one upload of ``size`` bytes may use (the copier asks): ``lanes`` for a
    file of ``split_at`` bytes or more, unless the server needs writes in order."""
    if size < split_at:
        return 1
    if site is not None and not profile_policy(site).multi_lane_uploads:
        return 1
    return lanes


# --------------------------------------------------------------------- remembering


def profile_path(site_name: str) -> Path:
    return paths.state_dir() / "server-profiles" / f"{site_name}.json"


_cache: dict[Path, tuple[int, ServerProfile | None]] = {}


def load_profile(site: Site) -> ServerProfile | None:
    """The remembered profile of ``site``, or None (never detected, unreadable, or detected
    at another ``user@host:port``: it says nothing about this server)."""
    path = profile_path(site.name)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        found = cached[1]
    else:
        try:
            found = ServerProfile.from_json(json.loads(path.read_text("utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring the unreadable server profile %s: %s", path, exc)
            found = None
        _cache[path] = (stamp, found)
    if found is None or found.address != site.address:
        return None
    return found


def save_profile(site: Site, profile: ServerProfile) -> Path:
    path = profile_path(site.name)
    atomic_write(path, json.dumps(profile.to_json(), indent=2, sort_keys=True) + "\n")
    _cache.pop(path, None)
    return path


def forget_profile(site_name: str) -> None:
    """Drop a site's remembered profile (the site was removed)."""
    with contextlib.suppress(FileNotFoundError):
        profile_path(site_name).unlink()


def rename_profile(old: str, new: str) -> None:
    """Keep a renamed site's remembered profile."""
    if old != new:
        with contextlib.suppress(FileNotFoundError):
            profile_path(old).replace(profile_path(new))


# --------------------------------------------------------------------- detection


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _why(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return display_name(str(reason))[:120]


async def _exec_probe(conn: asyncssh.SSHClientConnection, site: Site,
                      out: ServerProfile) -> None:
    preset = _preset(site)
    if not site.allow_exec:
        out.notes["exec_usable"] = "not tried: the site forbids exec (allow_exec = false)"
        return
    if preset.exec is False:
        out.exec_usable = False
        out.notes["exec_usable"] = f"not tried: preset {preset.name} has no exec"
        return
    try:
        result = await asyncio.wait_for(
            conn.run(EXEC_PROBE, check=False, input="", encoding=None), EXEC_TIMEOUT)
    except asyncssh.ChannelOpenError as exc:
        if conn.is_closed():
            raise ConnectError(f"{site.name}: connection lost while detecting") from None
        out.exec_usable = False
        out.notes["exec_usable"] = f"the server refused the exec channel: {_why(exc)}"
        return
    except (TimeoutError, asyncssh.Error, OSError) as exc:
        if conn.is_closed():
            raise ConnectError(f"{site.name}: connection lost while detecting") from None
        out.notes["exec_usable"] = f"no answer in time: {_why(exc)}"
        return
    stdout = result.stdout if isinstance(result.stdout, bytes) else b""
    stderr = result.stderr if isinstance(result.stderr, bytes) else b""
    first = stdout.strip().split(b"\n", 1)[0]
    if first[:64].decode("ascii", "replace") == EMPTY_SHA256 and result.exit_status == 0:
        out.exec_usable = True
        out.exec_tool = "openssl" if b"stdin" in first else "sha256sum"
        return
    out.exec_usable = False
    said = (stderr or stdout).strip().split(b"\n", 1)[0].decode("utf-8", "replace")
    out.notes["exec_usable"] = (
        f"exec ran but gave no sha256 (exit {result.exit_status}"
        + (f': "{display_name(said)[:100]}"' if said else "") + ")")


def _lost(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection is gone (not an answer from the server)."""
    return isinstance(exc, (asyncssh.SFTPConnectionLost, asyncssh.ConnectionLost,
                            asyncssh.DisconnectError, ConnectionError))


async def _try(coro: Any) -> tuple[bool | None, str | None]:
    """Run one probe step: (True, None) if it worked, (False, why) if the server refused it,
    (None, why) for any other answer. Connection loss propagates."""
    try:
        await coro
    except asyncssh.SFTPConnectionLost:
        raise
    except (asyncssh.SFTPOpUnsupported, asyncssh.SFTPPermissionDenied,
            asyncssh.SFTPFailure) as exc:
        return False, _why(exc)
    except asyncssh.SFTPError as exc:
        return None, _why(exc)
    return True, None


async def _write_file(sftp: asyncssh.SFTPClient, path: bytes, writes: list[tuple[int, bytes]],
                      *, flags: int, fsync: bool = False) -> bool | None:
    """Open ``path`` with ``flags``, do ``writes`` (offset, data) one after the other, and
    close. With ``fsync``, returns whether fsync worked (None: not reached)."""
    fh = await sftp.open(path, flags, block_size=0, encoding=None)
    synced: bool | None = None
    try:
        for offset, data in writes:
            await fh.write(data, offset)
        if fsync:
            synced, _ = await _try(fh.fsync())
    finally:
        with contextlib.suppress(asyncssh.SFTPError):
            await fh.close()
    return synced


# every name the probes may create inside their own folder (cleanup removes exactly these)
PROBE_NAMES: tuple[bytes, ...] = (b"a", b"b", b"b2", b"p", b"q", b"h", b"h2", b"r", _NAME_PROBE)


async def _sftp_probes(sftp: asyncssh.SFTPClient, out: ServerProfile, folder: bytes) -> None:
    """The write probes inside ``folder`` (already made), two rounds of requests at once."""
    join = posixpath.join
    create = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC

    async def fresh(name: bytes, writes: list[tuple[int, bytes]], **kw: Any) -> bool | None:
        return await _write_file(sftp, join(folder, name), writes, flags=create, **kw)

    # round 1: files to work on, fsync, out-of-order writes and a UTF-8 name, at once
    first = await asyncio.gather(
        fresh(b"a", [(0, b"0123")], fsync=True),
        fresh(b"b", []), fresh(b"p", []), fresh(b"q", []), fresh(b"h", []),
        _try(fresh(b"r", [(4, b"4567"), (0, b"0123")])),
        _try(fresh(_NAME_PROBE, [])),
        return_exceptions=True,
    )
    for got in first:
        if isinstance(got, BaseException) and (_lost(got) or not isinstance(
                got, asyncssh.SFTPError)):
            raise got
    for got in first[:5]:
        if isinstance(got, BaseException):
            out.writable = False
            out.notes["writable"] = f"creating a file failed: {_why(got)}"
            return
    out.writable = True
    # gather(return_exceptions=True) of differently typed probes; the exceptions went above
    out.fsync = first[0]  # type: ignore[assignment]
    if out.fsync is False:
        out.notes["fsync"] = "fsync@openssh.com is not offered or was refused"
    out.random_write, why = first[5]  # type: ignore[misc]  # the 6th probe: (ok, why)
    if why:
        out.notes["random_write"] = why

    # round 2: reopen-at-offset, rename, posix-rename, hardlink, setstat, at once
    mtime = 1_000_000_000

    async def append() -> None:
        await _write_file(sftp, join(folder, b"a"), [(4, b"4567")],
                          flags=asyncssh.FXF_WRITE | asyncssh.FXF_CREAT)
        size = (await sftp.stat(join(folder, b"a"))).size
        if size != 8:
            raise asyncssh.SFTPFailure(f"the file has {size} bytes after writing at offset 4")

    async def setstat() -> None:
        await sftp.utime(join(folder, b"h"), (mtime, mtime))
        got = (await sftp.stat(join(folder, b"h"))).mtime
        if got != mtime:
            raise asyncssh.SFTPFailure("the server accepted setstat but kept its own mtime")

    async def names() -> None:
        name_made = first[6]
        if isinstance(name_made, tuple) and name_made[0]:
            listed = {entry.filename for entry in await sftp.readdir(folder)}
            out.name_encoding = "utf-8" if _NAME_PROBE in listed else "other"
            if out.name_encoding == "other":
                out.notes["name_encoding"] = "a UTF-8 name came back as other bytes"
        elif isinstance(name_made, tuple):
            out.name_encoding = "other"
            out.notes["name_encoding"] = f"a UTF-8 name was refused: {name_made[1]}"

    second = await asyncio.gather(
        _try(append()),
        _try(sftp.rename(join(folder, b"b"), join(folder, b"b2"))),
        _try(sftp.posix_rename(join(folder, b"p"), join(folder, b"q"))),
        _try(sftp.link(join(folder, b"h"), join(folder, b"h2"))),
        _try(setstat()),
        _try(names()),
        return_exceptions=True,
    )
    for name, got in zip(("append", "rename", "posix_rename", "hardlink", "setstat", None),
                         second, strict=True):
        if isinstance(got, BaseException):
            raise got
        value, why = got
        if name is None:  # the listing for the name encoding
            if why:
                out.notes["name_encoding"] = f"listing the probe folder failed: {why}"
            continue
        setattr(out, name, value)
        if why:
            out.notes[name] = why


async def _cleanup(sftp: asyncssh.SFTPClient, folder: bytes, out: ServerProfile) -> None:
    """Remove the names the probes may have made in their own folder, then the folder.
    Whatever cannot be removed is listed in ``out.leftovers``."""

    async def rm(name: bytes) -> None:
        path = posixpath.join(folder, name)
        try:
            await sftp.remove(path)
        except asyncssh.SFTPNoSuchFile:
            pass
        except asyncssh.SFTPError as exc:
            if _lost(exc):
                raise
            out.leftovers.append(path.decode("utf-8", "surrogateescape"))

    results = await asyncio.gather(*(rm(n) for n in PROBE_NAMES), return_exceptions=True)
    for got in results:
        if isinstance(got, BaseException):
            raise got
    try:
        await sftp.rmdir(folder)
    except asyncssh.SFTPNoSuchFile:
        return
    except asyncssh.SFTPError as exc:
        if _lost(exc):
            raise
        out.leftovers.append(folder.decode("utf-8", "surrogateescape"))
        out.notes["leftovers"] = f"could not remove the probe folder: {_why(exc)}"


async def detect(conn: asyncssh.SSHClientConnection, sftp: asyncssh.SFTPClient,
                 site: Site) -> ServerProfile:
    """Probe ``site``'s server (see the module docstring) and return what was found.

    The exec probe runs beside the SFTP ones; the SFTP probes take about six round trips.
    Raises :class:`~backend.errors.ConnectError` only when the connection is lost.
    """
    out = ServerProfile(address=site.address, remote_dir=site.remote_dir, detected_at=_now())
    out.sftp_version = sftp.version
    limits = sftp.limits
    out.max_read, out.max_write = int(limits.max_read_len), int(limits.max_write_len)
    out.limits = (out.max_read, out.max_write) != (_SAFE_LIMIT, _SAFE_LIMIT)
    if not out.limits:
        out.notes["limits"] = "not offered or refused: 16 KiB requests"
    out.check_file = None
    out.notes["check_file"] = "not probed: asyncssh exposes no list of the server's extensions"
    out.notes["session_limit"] = "not probed (it would cost many sessions); presets set it"

    base = (site.remote_dir or ".").encode("utf-8", "surrogateescape")
    folder = posixpath.join(base, (PROBE_PREFIX + secrets.token_hex(6)).encode())

    async def sftp_side() -> None:
        try:
            await sftp.mkdir(folder)
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
            out.notes["writable"] = f"the folder {site.remote_dir or '.'} does not exist"
            return
        except asyncssh.SFTPError as exc:
            out.writable = False
            out.notes["writable"] = f"creating a folder failed: {_why(exc)}"
            return
        made.append(shown)
        try:
            await _sftp_probes(sftp, out, folder)
        finally:
            try:  # also after a timeout or Ctrl-C: the scratch folder must not stay behind
                await asyncio.wait_for(_cleanup(sftp, folder, out), CLEANUP_TIMEOUT)
                if not out.leftovers:
                    made.clear()
            except TimeoutError:
                out.leftovers.append(shown)
                out.notes["leftovers"] = "the server did not answer the cleanup in time"

    shown = display_name(folder.decode("utf-8", "surrogateescape"))
    made: list[str] = []
    exec_side = asyncio.ensure_future(_exec_probe(conn, site, out))
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            await sftp_side()
            await exec_side
    except (asyncssh.SFTPConnectionLost, asyncssh.ConnectionLost, asyncssh.DisconnectError,
            ConnectionError) as exc:  # the same classes as _lost()
        raise ConnectError(f"{site.name}: connection lost while detecting: {_why(exc)}"
                           + _check_for(made)) from None
    except TimeoutError:
        raise ConnectError(f"{site.name}: the server did not answer the probes within "
                           f"{PROBE_TIMEOUT:.0f} s" + _check_for(made)) from None
    finally:
        if not exec_side.done():
            exec_side.cancel()
            await asyncio.wait([exec_side])
    return out


def _check_for(made: list[str]) -> str:
    return f"; check for a leftover folder {made[0]}" if made else ""


async def redetect(conn: asyncssh.SSHClientConnection, site: Site) -> ServerProfile:
    """Detect on an open connection (its own SFTP channel) and remember the result: what
    ``ferry sites test``, ``sites show --detect`` and the TUI's Test dialog call."""
    from backend.sshtuning import start_sftp

    try:
        sftp = await start_sftp(conn)
    except asyncssh.Error as exc:
        raise ConnectError(f"{site.name}: the server refused the SFTP subsystem: "
                           f"{_why(exc)}") from None
    try:
        profile = await detect(conn, sftp, site)
    finally:
        sftp.exit()
    save_profile(site, profile)
    return profile


# --------------------------------------------------------------------- showing


def report_lines(site: Site, profile: ServerProfile | None = _UNSET) -> list[str]:
    """The profile as lines of text, the same in the CLI and the TUI."""
    if profile is _UNSET:
        profile = load_profile(site)
    policy = profile_policy(site, profile)
    preset = PRESETS[policy.preset]
    lines = [f"server profile: {preset.name} ({preset.meaning})"]
    if profile is None:
        lines.append(f"detected: never (run 'ferry sites test {site.name}')")
    else:
        when = profile.detected_at.replace("T", " ").replace("+00:00", " UTC")
        lines.append(f"detected: {when} "
                     f"in {profile.remote_dir or 'the login folder'}")
        for name, label in FACTS:
            value = getattr(profile, name)
            text = _word(value)
            if name == "exec_usable" and profile.exec_tool:
                text += f" ({profile.exec_tool})"
            if name == "limits" and value:
                text += f" (read {profile.max_read}, write {profile.max_write})"
            note = profile.notes.get(name)
            lines.append(f"{label}: {text}" + (f" — {note}" if note and not value else ""))
        if profile.leftovers:
            lines.append(f"left on the server: {', '.join(profile.leftovers)} "
                         f"({profile.notes.get('leftovers', 'remove by hand')})")
    lines.append(f"policy: {policy.summary()}")
    return lines


def report_json(site: Site, profile: ServerProfile | None = _UNSET) -> dict[str, Any]:
    """The profile for ``--json``: facts as true/false/null, the policy in effect."""
    if profile is _UNSET:
        profile = load_profile(site)
    policy = profile_policy(site, profile)
    return {
        "preset": policy.preset,
        "detected": profile.to_json() if profile is not None else None,
        "policy": asdict(policy),
    }
