"""Running the share service: listen address, TLS, admin token, purge loop, embedding.

``start_share_service(...)`` starts the aiohttp app on the running event loop and returns
``(handle, url)``; ``stop_share_service(handle)`` stops it. ``ferry serve`` and ``ferry demo``
both use these. Plain HTTP is allowed only on a loopback address (a reverse proxy in front);
anywhere else TLS is required: a certificate/key pair, or a self-signed one generated into
``$FERRY_HOME/share-tls/``. While running, ``$FERRY_HOME/state/share-service.json`` tells the
admin client (CLI, TUI) where to connect and which certificate to trust.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import os
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from backend.errors import ConfigError, ShareError
from backend.fsutil import atomic_write, ensure_private_dir
from backend.netaddr import is_loopback
from backend.shares import notify
from backend.shares.limits import GuardedSite, Limits
from backend.shares.service import ShareService
from backend.shares.web import OPTIONS, build_app
from backend.tasks import ended

log = logging.getLogger("ferry.shares.server")

DEFAULT_LISTEN = "127.0.0.1:8750"


class _ClientErrorFilter(logging.Filter):
    """aiohttp logs every malformed request (a client's fault, answered 400) as an ERROR with
    a traceback; make it one INFO line so the log keeps tracebacks for real faults."""

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and (exc.code or 400) < 500:
            first = (exc.message or "").strip().splitlines()
            record.msg = "refused a malformed request from %s: %s"
            args = record.args if isinstance(record.args, tuple) else ()
            record.args = (args[0] if args else "?", first[0] if first else "")
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


http_log = logging.getLogger("ferry.shares.http")
http_log.addFilter(_ClientErrorFilter())
PURGE_INTERVAL = 300.0


def admin_token_file() -> Path:
    from backend.paths import ferry_home

    return ferry_home() / "share-admin.token"


def service_info_file() -> Path:
    from backend.paths import state_dir

    return state_dir() / "share-service.json"


def tls_dir() -> Path:
    from backend.paths import ferry_home

    return ensure_private_dir(ferry_home() / "share-tls")


def load_or_create_admin_token(path: Path | None = None) -> str:
    path = path or admin_token_file()
    if not path.exists():
        atomic_write(path, secrets.token_urlsafe(32) + "\n", mode=0o600)
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} is readable by other users", hint=f"chmod 600 {path}")
    return path.read_text(encoding="utf-8").strip()


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"invalid listen address {text!r}", hint="use HOST:PORT")
    host = host.strip("[]")
    return host, int(port)


def self_signed_cert(hosts: list[str]) -> tuple[Path, Path]:
    """A self-signed EC certificate for ``hosts`` in ``share-tls/`` (key 0600); reused."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = tls_dir()
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    names = sorted(set(hosts) | {"localhost", "127.0.0.1"})
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        have = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
            str(v) for v in san.get_values_for_type(x509.IPAddress)
        }
        try:
            leaf = not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            leaf = False
        if (leaf and set(names) <= have
                and cert.not_valid_after_utc > dt.datetime.now(dt.UTC)):
            return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for h in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            alt.append(x509.DNSName(h))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Ferry share service")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        # a leaf, not a CA: it cannot be used to sign other certificates if trusted
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    atomic_write(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        mode=0o600,
    )
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert_path, key_path


@dataclass
class ServiceHandle:
    """A running service: stop it with :func:`stop_share_service`."""

    runner: web.AppRunner
    service: ShareService
    url: str
    public_url: str
    admin_token: str
    cafile: str | None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    info_file: Path | None = None


async def _refusals_loop(service: ShareService) -> None:
    """Write the aggregated counts of refused requests once their minute has ended."""
    while True:
        await asyncio.sleep(5)
        try:
            service.refusals.flush()
        except Exception:
            log.exception("could not write refused-request counts")


async def _purge_loop(service: ShareService, interval: float) -> None:
    while True:
        try:
            purged = await service.purge()
            if purged:
                log.info("purged %d share(s)", len(purged))
        except Exception:
            log.exception("purge failed")
        await asyncio.sleep(interval)


def open_service(storage: Any) -> tuple[ShareService, Any]:
    """The service on the storage ``storage`` names (``backend/shares/backends.py``): the
    embedded default, or PostgreSQL + S3 (then also returns the Backends to close)."""
    if not storage.scaled_out:
        return ShareService(public_url="http://placeholder"), None
    from backend.shares.backends import open_scaled_out
    from backend.shares.keys import ServerKey

    key = ServerKey.load_or_create()
    backends = open_scaled_out(storage, key)
    service = ShareService(public_url="http://placeholder", store=backends.store,
                           blobs=backends.blobs, audit=backends.audit, server_key=key)
    if storage.lease_seconds:
        service.lease_seconds = storage.lease_seconds
    return service, backends


async def start_share_service(
    listen: str = DEFAULT_LISTEN,
    *,
    public_url: str | None = None,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
    tls_self_signed: bool = False,
    trust_proxy: bool = False,
    trusted_proxies: list[str] | tuple[str, ...] = (),
    proxy_header: str = "x-forwarded-for",
    limits: Limits | None = None,
    purge_interval: float = PURGE_INTERVAL,
    write_info: bool = True,
    service: ShareService | None = None,
) -> tuple[ServiceHandle, str]:
    """Start the share service on the running loop. ``listen`` may use port 0 (any free port).

    Returns ``(handle, url)`` where ``url`` is the base URL it listens on. ``trusted_proxies``
    are the networks (CIDR) whose forwarding header (``proxy_header``) gives the client
    address; ``trust_proxy`` is the old spelling of "the loopback networks".
    """
    host, port = parse_listen(listen)
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if tls_cert and tls_self_signed:
        raise ConfigError("choose --tls-cert/--tls-key or --tls-self-signed, not both")
    use_tls = bool(tls_cert or tls_self_signed)
    if not use_tls and not is_loopback(host):
        raise ConfigError(
            f"refusing plain HTTP on {host}: TLS is required off loopback",
            hint="pass --tls-cert F --tls-key F or --tls-self-signed, or listen on 127.0.0.1",
        )
    ssl_ctx = None
    cafile = None
    if use_tls:
        if tls_self_signed:
            hosts = [host]
            if public_url:
                from urllib.parse import urlsplit

                hosts.append(urlsplit(public_url).hostname or host)
            tls_cert, tls_key = self_signed_cert(hosts)
            cafile = str(tls_cert)
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ssl_ctx.load_cert_chain(str(tls_cert), str(tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the TLS certificate/key: {exc}") from None

    token = load_or_create_admin_token()
    smtp = notify.load_smtp()
    if service is None:
        service = ShareService(public_url=public_url or "http://placeholder")
    limits = limits or Limits()
    app = build_app(service, token, trust_proxy=trust_proxy, trusted_proxies=trusted_proxies,
                    proxy_header=proxy_header, smtp=smtp, limits=limits)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10.0,
                           logger=http_log,
                           keepalive_timeout=limits.header_timeout * 2)  # backstop
    await runner.setup()
    site = GuardedSite(runner, host, port, limits=limits, proxies=app[OPTIONS]["proxies"],
                       guards=app[OPTIONS]["guards"], ssl_context=ssl_ctx, backlog=256)
    site.on_refused = lambda peer: service.refusals.refused("share.connection_refused", peer)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ShareError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = runner.addresses[0][1] if runner.addresses else port
    shown = f"[{host}]" if ":" in host else host
    url = f"{'https' if use_tls else 'http'}://{shown}:{bound}"
    service.public_url = (public_url or url).rstrip("/")
    handle = ServiceHandle(runner, service, url, service.public_url, token, cafile)
    with contextlib.suppress(OSError):
        service.blobs.cleanup_partial()
    handle.tasks.append(asyncio.create_task(_purge_loop(service, purge_interval)))
    handle.tasks.append(asyncio.create_task(_refusals_loop(service)))
    if write_info:
        handle.info_file = service_info_file()
        atomic_write(
            handle.info_file,
            json.dumps({"url": url, "public_url": service.public_url, "pid": os.getpid(),
                        "cafile": cafile}),
            mode=0o600,
        )
    return handle, url


async def stop_share_service(handle: ServiceHandle) -> None:
    handle.runner.app[OPTIONS]["closing"].set()
    pending = list(handle.runner.app[OPTIONS]["tasks"])
    if pending:  # e-mails being sent: give them a moment to finish
        await asyncio.wait(pending, timeout=5)
    for task in handle.tasks:
        task.cancel()
    for task in handle.tasks:
        await ended(task)
    await handle.runner.cleanup()
    handle.service.refusals.flush(force=True)
    if handle.info_file is not None:
        with contextlib.suppress(OSError):
            data = json.loads(handle.info_file.read_text())
            if data.get("url") == handle.url and data.get("pid") == os.getpid():
                handle.info_file.unlink()
