"""Per-site pools of SSH connections and SFTP channels ("lanes") for the transfer engine.

One :class:`SitePool` per site opens connections through the engine's connector (the one
connection factory, :func:`backend.ssh.connect`, behind it) and SFTP channels on them, lazily:
a new lane only when every open one is busy. At most ``site.max_parallel`` connections with
:data:`LANES_PER_CONN` channels each (OpenSSH's sshd allows 10 sessions per connection).
Several lanes matter for speed: OpenSSH gives each channel a 2 MiB window, so one big upload
is split over several lanes, and many small files spread round trips over all of them.

The site's server profile (:func:`backend.sites.profile.profile_policy`: its preset over what
``ferry sites test`` detected) seeds the pool when the first connection opens: no exec at all
when it says so (:attr:`SitePool.exec_ok` False before any is tried), and a session cap per
connection (AWS Transfer: 10) that the lanes, the hashing shells and the stream stay within.

A lane whose connection broke is dropped with its connection (:meth:`SitePool.broken`); the
next :meth:`SitePool.lane` reconnects. Back-off between attempts is the engine's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncssh

from backend.errors import ConnectError, FerryError
from backend.names import display_name
from backend.sites.model import Site
from backend.sites.profile import ProfilePolicy, profile_policy
from backend.sshtuning import start_sftp
from backend.tasks import cancel_and_wait

log = logging.getLogger("ferry.transfers")

Connector = Callable[[str], Awaitable[tuple[Site, asyncssh.SSHClientConnection]]]

LANES_PER_CONN = 4
LANE_BUSY = 16  # files on a lane before another is worth opening (each costs sshd a login shell)
# sessions a connection may need besides its lanes when exec is used: the hashing shells
# (verify.EXEC_AT_ONCE) and one streaming hash (streamhash.STREAMS_PER_CONNECTION)
EXEC_SESSIONS = 4 + 1


@dataclass(eq=False)
class _Conn:
    conn: asyncssh.SSHClientConnection
    lanes: list[Lane] = field(default_factory=list)
    dead: bool = False
    opening: int = 0  # lanes being opened on it right now


@dataclass(eq=False)
class Lane:
    """One SFTP channel. ``load`` counts the transfers using it right now."""

    sftp: asyncssh.SFTPClient
    owner: _Conn
    load: int = 0

    @property
    def conn(self) -> asyncssh.SSHClientConnection:
        return self.owner.conn

    @property
    def dead(self) -> bool:
        return self.owner.dead

    @property
    def max_read(self) -> int:
        return int(self.sftp.limits.max_read_len)

    @property
    def max_write(self) -> int:
        return int(self.sftp.limits.max_write_len)


class SitePool:
    """Connections and lanes to one site."""

    def __init__(self, name: str, connector: Connector) -> None:
        self.name = name
        self._connector = connector
        self.site: Site | None = None
        self._conns: list[_Conn] = []
        self._lock = asyncio.Lock()
        self.exec_ok: bool | None = None  # None until an exec was tried
        self.policy: ProfilePolicy | None = None  # the site's server profile, once connected
        # learnt by the copier this session (None: not tried yet): may a file be read back
        # over SFTP (read-back verification), may a partial upload be reopened to append
        self.readback_ok: bool | None = None
        self.append_ok: bool | None = None
        self.closed = False
        # warm() opens lanes without holding the lock: work that can use a lane already open
        # goes ahead; work that needs one more waits (for the next lane to open, or warm() to
        # end) instead of opening its own
        self._warming = False
        self._changed = asyncio.Event()  # replaced by a fresh one at each change
        self._early: asyncio.Task[None] | None = None

    def _announce(self) -> None:
        """A lane opened or warm() ended: wake whoever waits for one."""
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def max_conns(self) -> int:
        return self.site.max_parallel if self.site is not None else 4

    @property
    def lanes_per_conn(self) -> int:
        """Lanes on one connection: :data:`LANES_PER_CONN`, fewer when the server profile caps
        sessions per connection and exec would need some of them."""
        cap = self.policy.max_sessions if self.policy is not None else None
        if cap is None:
            return LANES_PER_CONN
        others = 0 if self.exec_ok is False else EXEC_SESSIONS
        return max(1, min(LANES_PER_CONN, cap - others))

    @property
    def max_lanes(self) -> int:
        return self.max_conns * self.lanes_per_conn

    def _lanes(self) -> list[Lane]:
        return [lane for c in self._conns if not c.dead for lane in c.lanes]

    async def ensure_site(self, lanes: int = 1) -> Site:
        """Connect once (if nothing is open yet) so the site's settings are known, and have
        a lane open. With ``lanes`` > 1 that many start opening at once (a big upload will
        use them); this returns as soon as the first is open."""
        if self.site is None or not self._lanes():
            if lanes > 1 and not self._warming:
                async with self._lock:
                    if not any(not c.dead for c in self._conns):
                        await self._open_conn()
                    self._warming = True  # before lane() below looks
                    self._early = asyncio.ensure_future(
                        self._warm_open(min(lanes, self.max_lanes) - len(self._lanes())))
            lane = await self.lane()
            self.release(lane)
        assert self.site is not None
        return self.site

    async def _open_conn(self) -> _Conn:
        site, conn = await self._connector(self.name)
        self.site = site
        self._seed(site)
        entry = _Conn(conn)
        self._conns.append(entry)
        return entry

    def _seed(self, site: Site) -> None:
        """Take what the server profile knows, at each new connection (a re-detection in
        between counts). What the verification code found out (exec refused) is kept."""
        self.policy = profile_policy(site)
        if self.policy.exec_ok is False and self.exec_ok is None:
            self.exec_ok = False  # no exec is even tried (sftp-only, ProFTPD, AWS Transfer)
        if self.policy.restart_from_zero and self.append_ok is None:
            self.append_ok = False  # resume restarts from zero: the copier tries no reopen

    async def _open_lanes(self, count: int) -> list[Lane]:
        """Open ``count`` new lanes at once (each SFTP channel costs the server a process
        start and several round trips, so they are opened concurrently, not one by one).
        Returns the ones that opened; raises only when none did."""
        live = [c for c in self._conns if not c.dead]
        per_conn = self.lanes_per_conn
        room = {id(c): per_conn - len(c.lanes) - c.opening for c in live}
        targets: list[_Conn | None] = []
        for _ in range(max(0, min(count, self.max_lanes - len(self._lanes())))):
            conn = next((c for c in live if room[id(c)] > 0), None)
            if conn is not None:
                room[id(conn)] -= 1
            targets.append(conn)
        new_conns = (targets.count(None) + per_conn - 1) // per_conn
        new_conns = min(new_conns, self.max_conns - len(live))
        opened = await asyncio.gather(*(self._open_conn() for _ in range(new_conns)),
                                      return_exceptions=True)
        fresh = [c for c in opened if isinstance(c, _Conn)]
        slots = [c for c in fresh for _ in range(per_conn)]
        targets = [t if t is not None else (slots.pop(0) if slots else None) for t in targets]
        results = await asyncio.gather(*(self._start_lane(t) for t in targets if t is not None),
                                       return_exceptions=True)
        lanes = [r for r in results if isinstance(r, Lane)]
        if not lanes:
            errors = [e for e in (*opened, *results) if isinstance(e, BaseException)]
            if errors:
                raise errors[0]
            raise ConnectError(f"{self.name}: cannot open an SFTP channel")
        return lanes

    async def _start_lane(self, target: _Conn) -> Lane:
        target.opening += 1
        try:
            sftp = await start_sftp(target.conn)
        except (asyncssh.Error, OSError) as exc:
            self._kill(target)
            raise ConnectError(
                f"{self.name}: cannot open an SFTP channel: {display_name(str(exc))}"
            ) from None
        finally:
            target.opening -= 1
        lane = Lane(sftp=sftp, owner=target)
        target.lanes.append(lane)
        self._announce()
        return lane

    async def lane(self) -> Lane:
        """The least-loaded lane (a new one when all are busy and the limit allows)."""
        while True:
            if self.closed:
                raise ConnectError(f"{self.name}: transfers are stopping")
            async with self._lock:
                lanes = self._lanes()
                best = min(lanes, key=lambda ln: ln.load, default=None)
                grow = best is None or (best.load >= LANE_BUSY and len(lanes) < self.max_lanes)
                if not grow or not self._warming:
                    if grow:
                        try:
                            best = (await self._open_lanes(1))[0]
                        except FerryError:
                            if best is None:
                                raise
                    assert best is not None
                    best.load += 1
                    return best
                changed = self._changed
            await changed.wait()

    async def more_lanes(self, have: list[Lane], count: int) -> list[Lane]:
        """Up to ``count`` lanes other than ``have`` (opening new ones as allowed), for one
        big file already moving on ``have``. Raises only when none could be had."""
        while True:
            async with self._lock:
                others = sorted((ln for ln in self._lanes() if ln not in have),
                                key=lambda ln: ln.load)
                missing = min(count, self.max_lanes - len(have)) - len(others)
                if missing <= 0 or not self._warming:
                    if missing > 0:
                        with contextlib.suppress(FerryError):
                            others += await self._open_lanes(missing)
                    chosen = others[:count]
                    if not chosen:
                        raise ConnectError(f"{self.name}: no other SFTP channel is available")
                    for lane in chosen:
                        lane.load += 1
                    return chosen
                changed = self._changed
            await changed.wait()

    async def warm(self, count: int) -> None:
        """Open lanes up to ``count`` in all, at once, before work needs them (a job that will
        use several lanes then does not open them one by one). The lock is not held while
        they open, so a transfer can start on a lane already open; one that needs more lanes
        waits for these. Failures are left for the transfers themselves to meet."""
        if self.closed:
            return
        async with self._lock:
            missing = min(count, self.max_lanes) - len(self._lanes())
            if missing <= 0 or self._warming:
                return
            self._warming = True
        await self._warm_open(missing)

    async def _warm_open(self, count: int) -> None:
        """The body of :meth:`warm` (``_warming`` already set by the caller)."""
        try:
            with contextlib.suppress(FerryError):
                await self._open_lanes(count)
        finally:
            self._warming = False
            self._announce()

    def retire(self, lane: Lane) -> None:
        """Stop using ``lane`` (its server process may be stuck); its connection stays."""
        if lane in lane.owner.lanes:
            lane.owner.lanes.remove(lane)
        with contextlib.suppress(Exception):
            lane.sftp.exit()

    def release(self, lane: Lane) -> None:
        lane.load = max(0, lane.load - 1)

    def connection(self) -> asyncssh.SSHClientConnection | None:
        live = [c for c in self._conns if not c.dead]
        return live[0].conn if live else None

    def broken(self, lane: Lane | None) -> None:
        """Drop ``lane``'s connection (it failed); the next request reconnects."""
        if lane is not None:
            self._kill(lane.owner)

    def prune(self) -> None:
        """After a connection-level failure: drop closed connections, or all when none is
        visibly closed (a half-dead link), so the next request reconnects."""
        closed = [c for c in self._conns if c.conn.is_closed()]
        for entry in closed or list(self._conns):
            self._kill(entry)

    def _kill(self, entry: _Conn) -> None:
        if entry.dead:
            return
        entry.dead = True
        with contextlib.suppress(Exception):
            entry.conn.close()
        if entry in self._conns:
            self._conns.remove(entry)
        log.info("%s: dropped a broken connection", self.name)

    async def close(self) -> None:
        self.closed = True
        if self._early is not None and not self._early.done():
            await cancel_and_wait(self._early)
        conns, self._conns = self._conns, []
        for entry in conns:
            entry.dead = True
            for lane in entry.lanes:
                with contextlib.suppress(Exception):
                    lane.sftp.exit()
            with contextlib.suppress(Exception):
                entry.conn.close()
        for entry in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(entry.conn.wait_closed(), 5)
