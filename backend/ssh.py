"""The one SSH connection factory: host-key pinning, auth, algorithm profiles, timeouts, jumps.

Every SSH connection Ferry opens — listing, transfers, share sources, case workflows, the TUI —
comes from :func:`connect`. It

* verifies the server's host key against the site's pinned keys (unknown keys go to a
  :data:`~backend.hostkeys.HostKeyPrompt` or fail closed; changed keys always fail);
* authenticates with ssh-agent, then the site's key file, then a vault-held password;
* restricts algorithms to the site's cipher profile (``modern`` or ``aes256``);
* sets connect timeout and keepalive (the site's, capped by its server profile preset:
  :func:`backend.sites.profile.keepalive_for`);
* SFTP channels get receive windows sized to the measured round trip
  (:mod:`backend.sshtuning`: 16 MiB on a WAN, where 2 MiB halves throughput,
  docs/architecture.md §5; 2 MiB on a fast link, where a big one makes sshd slower);
* reaches the host through another saved site when ``Site.jump`` is set;
* maps every failure to a typed :mod:`backend.errors` error with a one-line message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncssh

from backend import hostkeys
from backend.errors import (
    AuthError,
    CancelledByUser,
    ConfigError,
    ConnectError,
    FerryError,
    HostKeyChangedError,
    HostKeyUnknownError,
)
from backend.hostkeys import HostKeyPrompt, PresentedKey, TrustDecision
from backend.keys import check_key_mode
from backend.names import display_name
from backend.sites.model import Site
from backend.sites.profile import keepalive_for
from backend.sshtuning import WINDOW_MIN, skip_ignore_packets, slice_reads, start_sftp

log = logging.getLogger("ferry.ssh")

MAX_PKTSIZE = 32768  # what OpenSSH uses; larger packets gain nothing measurable
CONNECT_TIMEOUT = 20.0
KEEPALIVE_COUNT_MAX = 3

_KEX = [
    "mlkem768x25519-sha256",
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "curve448-sha512",
    "ecdh-sha2-nistp521",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp256",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
]
_WEAK_SIG = {"ssh-rsa", "ssh-dss", "ssh-rsa-sha224@ssh.com"}

PROFILES: dict[str, dict[str, list[str]]] = {
    "modern": {
        # AES-GCM first: asyncssh runs it in OpenSSL per packet, while its chacha20-poly1305
        # does per-packet key setup in Python (about half the throughput on bulk transfers)
        "encryption_algs": [
            "aes256-gcm@openssh.com",
            "aes128-gcm@openssh.com",
            "chacha20-poly1305@openssh.com",
            "aes256-ctr",
            "aes192-ctr",
            "aes128-ctr",
        ],
        "mac_algs": [
            "hmac-sha2-256-etm@openssh.com",
            "hmac-sha2-512-etm@openssh.com",
            "umac-128-etm@openssh.com",
            "hmac-sha2-256",
            "hmac-sha2-512",
            "umac-128@openssh.com",
        ],
        "kex_algs": _KEX,
    },
    "aes256": {
        "encryption_algs": ["aes256-gcm@openssh.com", "aes256-ctr"],
        "mac_algs": ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"],
        "kex_algs": _KEX,
    },
}


def _supported(names: list[str], available: list[bytes]) -> list[str]:
    have = {a.decode() for a in available}
    return [n for n in names if n in have]


def algorithm_options(profile: str) -> dict[str, list[str]]:
    """asyncssh keyword options restricting algorithms to a cipher profile."""
    from asyncssh.encryption import get_encryption_algs
    from asyncssh.kex import get_kex_algs
    from asyncssh.mac import get_mac_algs

    try:
        spec = PROFILES[profile]
    except KeyError:
        raise ConfigError(f"unknown cipher profile {profile!r}: use modern or aes256") from None
    return {
        "encryption_algs": _supported(spec["encryption_algs"], get_encryption_algs()),
        "mac_algs": _supported(spec["mac_algs"], get_mac_algs()),
        "kex_algs": _supported(spec["kex_algs"], get_kex_algs()),
    }


def host_key_algs(pinned: list[asyncssh.SSHKey]) -> list[str]:
    """Signature algorithms to offer: the pinned keys' own (so the server shows a pinned key),
    else every default one except SHA-1 RSA and DSA."""
    from asyncssh.public_key import get_default_public_key_algs

    if pinned:
        algs: list[str] = []
        for key in pinned:
            for alg in key.sig_algorithms:
                name = alg.decode()
                if name not in _WEAK_SIG and name not in algs:
                    algs.append(name)
        return algs
    return [a.decode() for a in get_default_public_key_algs() if a.decode() not in _WEAK_SIG]


@dataclass
class Credentials:
    """Secrets for one connection, fetched by the caller (from the vault or a prompt)."""

    password: str | None = None
    key_passphrase: str | None = None


class _RecordingClient(asyncssh.SSHClient):
    """Remembers the host key the server presented when it was not among the pinned ones."""

    def __init__(self) -> None:
        self.presented: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.presented = key
        return False


def _is_passphrase_missing(exc: Exception) -> bool:
    return "passphrase" in str(exc).lower()


def _load_client_key(site: Site, creds: Credentials) -> asyncssh.SSHKey | None:
    if not site.key_file:
        return None
    check_key_mode(site.key_file)
    try:
        return asyncssh.read_private_key(site.key_file, creds.key_passphrase)
    except FileNotFoundError:
        raise ConfigError(
            f"site {site.name}: key file {site.key_file} does not exist",
            hint=f"ferry sites edit {site.name} --key FILE",
        ) from None
    except PermissionError:
        raise ConfigError(f"site {site.name}: cannot read key file {site.key_file}") from None
    except asyncssh.KeyEncryptionError:
        if creds.key_passphrase is None:
            raise AuthError(
                f"key file {site.key_file} is encrypted and no passphrase is stored",
                hint=f"ferry sites edit {site.name} --key-passphrase-stdin",
            ) from None
        raise AuthError(f"wrong passphrase for key file {site.key_file}") from None
    except asyncssh.KeyImportError as exc:
        if _is_passphrase_missing(exc):
            raise AuthError(
                f"key file {site.key_file} is encrypted and no passphrase is stored",
                hint=f"ferry sites edit {site.name} --key-passphrase-stdin",
            ) from None
        raise ConfigError(
            f"site {site.name}: {site.key_file} is not a private key: {exc}"
        ) from None


def _options(
    site: Site, creds: Credentials, pinned: list[asyncssh.SSHKey], timeout: float
) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "host": site.host,
        "port": site.port,
        "username": site.user,
        "config": None,  # sites are explicit; ~/.ssh/config is imported, never read implicitly
        "known_hosts": (pinned, [], []),
        "server_host_key_algs": host_key_algs(pinned),
        "connect_timeout": timeout,
        "keepalive_interval": keepalive_for(site) or None,
        "keepalive_count_max": KEEPALIVE_COUNT_MAX,
        "window": WINDOW_MIN,  # SFTP channels grow theirs to the link (sshtuning)
        "max_pktsize": MAX_PKTSIZE,
        "password": creds.password,
        "preferred_auth": "publickey,keyboard-interactive,password",
        **algorithm_options(site.cipher_profile),
    }
    key = _load_client_key(site, creds)
    if key is not None:
        opts["client_keys"] = [key]
        opts["agent_path"] = ()
    elif site.auth == "agent":
        opts["client_keys"] = ()  # agent keys (and default ~/.ssh keys, as OpenSSH does)
    else:
        opts["client_keys"] = None
        opts["agent_path"] = None
    if site.auth == "password" and creds.password is None:
        raise AuthError(
            f"site {site.name} uses password auth but no password is stored",
            hint=f"ferry sites edit {site.name} --password-stdin",
        )
    return opts


def _translate(site: Site, exc: BaseException) -> FerryError:
    """Map a connection failure to a typed error with a message a user can act on."""
    where = f"{site.host}:{site.port}"
    if isinstance(exc, FerryError):
        return exc
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"cannot resolve host {site.host!r}", hint="check the host name")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(f"connection refused by {where}", hint="is the SSH server running?")
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return ConnectError(f"timed out connecting to {where}", hint="check host, port, firewall")
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthError(
            f"authentication failed for {site.user}@{where}",
            hint="check the user, key, agent or password",
        )
    if isinstance(exc, asyncssh.KeyExchangeFailed):
        return ConnectError(
            f"no common algorithms with {where} for cipher profile {site.cipher_profile!r}: "
            f"{display_name(str(exc.reason))}"
        )
    if isinstance(exc, asyncssh.ConnectionLost) and site.cipher_profile != "modern":
        # OpenSSH hangs up on a client whose algorithms it shares none of; when that happens
        # before its own list reached us, all there is to see is the hang-up
        return ConnectError(
            f"{where} closed the connection: {display_name(str(exc.reason))}",
            hint=f"if it does so every time, it may offer none of cipher profile "
                 f"{site.cipher_profile!r}'s algorithms; try --cipher-profile modern")
    if isinstance(exc, asyncssh.DisconnectError):
        return ConnectError(f"{where} closed the connection: {display_name(str(exc.reason))}")
    if isinstance(exc, OSError):
        return ConnectError(f"cannot connect to {where}: {exc.strerror or exc}")
    return ConnectError(f"cannot connect to {where}: {display_name(str(exc))}")


SiteLookup = Callable[[str], Site]
PinHostKey = Callable[[str, str], object]
"""``pin(site_name, key_line)`` saves an accepted host key (its result is not used)."""


async def connect(
    site: Site,
    *,
    credentials: Credentials | None = None,
    prompt: HostKeyPrompt | None = None,
    pin: PinHostKey | None = None,
    lookup: SiteLookup | None = None,
    jump_credentials: Callable[[Site], Credentials] | None = None,
    timeout: float = CONNECT_TIMEOUT,
    _depth: int = 0,
) -> asyncssh.SSHClientConnection:
    """Open an authenticated SSH connection to ``site``.

    ``prompt`` decides about an unknown host key (absent: fail closed); ``pin(site_name,
    key_line)`` saves an accepted key; ``lookup(name)`` resolves ``site.jump``.
    """
    creds = credentials or Credentials()
    pinned = hostkeys.parse_pinned(site.name, site.host_keys)
    tunnel = None
    if site.jump:
        if _depth >= 3:
            raise ConfigError(f"site {site.name}: jump hosts nest too deep (or loop)")
        if lookup is None:
            raise ConfigError(f"site {site.name}: jump host {site.jump} cannot be resolved here")
        jump_site = lookup(site.jump)
        tunnel = await connect(
            jump_site,
            credentials=jump_credentials(jump_site) if jump_credentials else None,
            prompt=prompt,
            pin=pin,
            lookup=lookup,
            jump_credentials=jump_credentials,
            timeout=timeout,
            _depth=_depth + 1,
        )
    try:
        conn = await _connect_checked(site, creds, pinned, prompt, pin, tunnel, timeout)
    except BaseException:
        if tunnel is not None:
            tunnel.close()
        raise
    if tunnel is not None:
        _close_with(conn, tunnel)
    log.info("connected to %s (%s)", site.name, site.address)
    return conn


def _close_with(conn: asyncssh.SSHClientConnection, tunnel: asyncssh.SSHClientConnection) -> None:
    async def _watch() -> None:
        with contextlib.suppress(Exception):
            await conn.wait_closed()
        tunnel.close()

    task = asyncio.get_running_loop().create_task(_watch())
    conn._ferry_jump_watch = task  # type: ignore[attr-defined]  # keep a reference


async def _connect_checked(
    site: Site,
    creds: Credentials,
    pinned: list[asyncssh.SSHKey],
    prompt: HostKeyPrompt | None,
    pin: PinHostKey | None,
    tunnel: asyncssh.SSHClientConnection | None,
    timeout: float,
) -> asyncssh.SSHClientConnection:
    client = _RecordingClient()
    opts = _options(site, creds, pinned, timeout)
    if tunnel is not None:
        opts["tunnel"] = tunnel
    try:
        conn, _ = await asyncssh.create_connection(lambda: client, **opts)
        slice_reads(conn)
        skip_ignore_packets(conn)
        return conn
    except asyncssh.HostKeyNotVerifiable:
        key = client.presented
        if key is None:
            raise ConnectError(f"{site.host}:{site.port} presented no usable host key") from None
        shown = hostkeys.presented(key)
    except Exception as exc:
        raise _translate(site, exc) from None

    if pinned:
        raise HostKeyChangedError(
            f"HOST KEY CHANGED for {site.name} ({site.host}:{site.port}): "
            f"pinned {', '.join(hostkeys.fingerprint(k) for k in pinned)}, server now shows "
            f"{shown.key_type} {shown.fingerprint}. Someone may be intercepting the connection "
            "(man-in-the-middle); refusing to connect",
            old_fingerprints=[hostkeys.fingerprint(k) for k in pinned],
            new_fingerprint=shown.fingerprint,
            key_type=shown.key_type,
            hint=f"only if the server's admin confirms the new key: ferry sites trust {site.name} "
            f"--fingerprint {shown.fingerprint}",
        )
    decision = await prompt(site.name, shown) if prompt is not None else None
    if decision is None:
        raise unknown_host_key_error(site, shown)
    if decision is TrustDecision.CANCEL:
        raise CancelledByUser(f"host key of {site.name} not accepted; not connected")
    if decision is TrustDecision.ACCEPT_AND_SAVE and pin is not None:
        pin(site.name, shown.line)
    # Reconnect trusting exactly the key the user accepted; any other key now fails as changed.
    trusted = site_with_keys(site, [shown.line])
    return await _connect_checked(
        trusted, creds, hostkeys.parse_pinned(site.name, [shown.line]), None, None, tunnel, timeout
    )


def unknown_host_key_error(site: Site, shown: PresentedKey) -> HostKeyUnknownError:
    return HostKeyUnknownError(
        f"unknown host key for {site.name} ({site.host}:{site.port}): "
        f"{shown.key_type} {shown.fingerprint}",
        fingerprint=shown.fingerprint,
        key_type=shown.key_type,
        hint=f"if that fingerprint is right: ferry sites trust {site.name} "
        f"--fingerprint {shown.fingerprint}",
    )


def site_with_keys(site: Site, lines: list[str]) -> Site:
    from dataclasses import replace

    return replace(site, host_keys=list(lines))


async def fetch_host_key(
    site: Site, *, lookup: SiteLookup | None = None, timeout: float = CONNECT_TIMEOUT
) -> PresentedKey:
    """Connect far enough to see the host key the server presents (no authentication)."""
    tunnel = None
    try:
        if site.jump:
            if lookup is None:
                raise ConfigError(f"site {site.name}: jump host {site.jump} cannot be resolved")
            tunnel = await connect(lookup(site.jump), lookup=lookup, timeout=timeout)
        key = await asyncio.wait_for(
            asyncssh.get_server_host_key(
                site.host,
                site.port,
                tunnel=tunnel or (),
                config=None,
                server_host_key_algs=host_key_algs([]),
                kex_algs=algorithm_options(site.cipher_profile)["kex_algs"],
            ),
            timeout,
        )
    except FerryError:
        raise
    except Exception as exc:
        raise _translate(site, exc) from None
    finally:
        if tunnel is not None:
            tunnel.close()
    if key is None:
        raise ConnectError(f"{site.host}:{site.port} presented no host key")
    return hostkeys.presented(key)


def negotiated(conn: asyncssh.SSHClientConnection) -> dict[str, str]:
    """The algorithms a live connection negotiated (for ``ferry sites show``)."""
    info = {
        "cipher (client->server)": conn.get_extra_info("send_cipher"),
        "cipher (server->client)": conn.get_extra_info("recv_cipher"),
        "mac (client->server)": conn.get_extra_info("send_mac"),
        "mac (server->client)": conn.get_extra_info("recv_mac"),
        "compression": conn.get_extra_info("send_compression"),
        "server version": conn.get_extra_info("server_version"),
    }
    # no key exchange line: asyncssh's public API does not expose the negotiated one
    # (get_extra_info documents ciphers, MACs, compression and versions only; docs/tui.md)
    host_key = conn.get_server_host_key()
    if host_key is not None:
        info["host key"] = f"{host_key.get_algorithm()} {hostkeys.fingerprint(host_key)}"
    return {k: display_name(str(v)) for k, v in info.items() if v}


@contextlib.asynccontextmanager
async def sftp_session(
    site: Site, **connect_kwargs: Any
) -> AsyncIterator[tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]]:
    """``async with sftp_session(site, ...) as (conn, sftp)``: a connection and its SFTP client."""
    conn = await connect(site, **connect_kwargs)
    async with sftp_on(conn, site) as sftp:
        yield conn, sftp


@contextlib.asynccontextmanager
async def sftp_on(
    conn: asyncssh.SSHClientConnection, site: Site
) -> AsyncIterator[asyncssh.SFTPClient]:
    """An SFTP client on an open connection; closes both when the block ends."""
    try:
        try:
            sftp = await start_sftp(conn)
        except asyncssh.Error as exc:
            raise ConnectError(
                f"{site.name}: the server refused the SFTP subsystem: {display_name(str(exc))}"
            ) from None
        try:
            yield sftp
        finally:
            sftp.exit()
    finally:
        conn.close()
        with contextlib.suppress(Exception):
            await conn.wait_closed()
