"""``ferry serve`` and ``ferry share create|list|show|revoke|extend|add-recipient|events``.

``serve`` runs the share service in the foreground; every ``share`` command talks to it over
the admin API (:class:`backend.shares.client.ShareClient`). ``share create SITE:PATH`` streams
the remote file from SFTP straight into the service (no plaintext on local disk).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from backend.errors import RemoteNotFoundError, UsageError
from backend.names import display_name
from backend.shares.launch import ServeSpec, start_service
from backend.sites.model import local_user
from tui.cli.output import info, print_json, read_secret_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the share service (recipient pages + admin API)")
    p.add_argument("--listen", default="127.0.0.1:8750", help="HOST:PORT (default %(default)s)")
    p.add_argument("--public-url", help="base URL recipients use (e.g. https://files.example.org)")
    p.add_argument("--tls-cert", help="TLS certificate chain (PEM)")
    p.add_argument("--tls-key", help="TLS private key (PEM)")
    p.add_argument("--tls-self-signed", action="store_true",
                   help="generate a self-signed certificate into $FERRY_HOME/share-tls")
    p.add_argument("--trusted-proxy", nargs="+", default=[], metavar="CIDR",
                   help="reverse proxies (addresses or networks) whose forwarding header gives "
                        "the client address; nobody else's header is read")
    p.add_argument("--proxy-header", choices=["x-forwarded-for", "forwarded"],
                   default="x-forwarded-for",
                   help="which header the trusted proxy sets (default %(default)s)")
    p.add_argument("--trust-proxy", action="store_true",
                   help="old spelling of --trusted-proxy 127.0.0.0/8 ::1")
    p.add_argument("--database", metavar="URL",
                   help="scale out: shared PostgreSQL, postgresql://USER@HOST:PORT/DB (no "
                        "password here: FERRY_DATABASE_PASSWORD or a 0600 file)")
    p.add_argument("--blob-store", metavar="URL",
                   help="scale out: shared S3-compatible store, s3://BUCKET?endpoint=URL"
                        "&region=R (keys from AWS_* variables or a 0600 file)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--in-agent", action="store_true",
                       help="run it inside the Ferry agent (survives logout, restarts with the "
                            "agent); returns at once")
    where.add_argument("--stop", action="store_true",
                       help="stop the share service running inside the Ferry agent")
    p.set_defaults(func=cmd_serve)
    serve_sub = p.add_subparsers(dest="serve_command", metavar="SUBCOMMAND")
    m = serve_sub.add_parser(
        "migrate", help="move the embedded service's shares and audit chain to PostgreSQL + S3",
        description="Copy every share (with its recipients, counters, wrapped key and "
        "encrypted blob) and the whole audit chain from the embedded store to PostgreSQL and "
        "an S3-compatible store; the chain is verified after. Stop 'ferry serve' first.")
    m.add_argument("--to", required=True, metavar="URL", help="postgresql://USER@HOST:PORT/DB")
    m.add_argument("--blob-store", required=True, metavar="URL",
                   help="s3://BUCKET?endpoint=URL&region=R")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_migrate)

    parser = sub.add_parser("share", help="expiring password-protected links to files")
    group = parser.add_subparsers(dest="share_command", metavar="SUBCOMMAND")

    p = group.add_parser("create", help="share a local file or SITE:PATH")
    p.add_argument("source", metavar="PATH|SITE:PATH")
    p.add_argument("--to", action="append", default=[], metavar="EMAIL",
                   help="a recipient (repeat; each gets their own link)")
    p.add_argument("--expires", help="lifetime such as 3d, 12h (default: policy, 3d)")
    p.add_argument("--max-downloads", type=int, help="downloads allowed per link (0 = no limit)")
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--password-file", metavar="F", help="read the password from F ('-' = stdin)")
    pw.add_argument("--generate-password", action="store_true", help="generate a password")
    p.add_argument("--notify", action="store_true",
                   help="e-mail me (smtp.toml notify_to) when a recipient downloads")
    p.add_argument("--send-links", action="store_true",
                   help="e-mail each recipient their link (never the password)")
    p.add_argument("--message", default="", help="a note shown on the download page")
    p.add_argument("--name", help="file name recipients see (default: the source's name)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--deidentify", action="store_true", help=(
        "share a de-identified zip of a local study folder or zip (DICOM PS3.15 Annex E "
        "Basic Profile); the link to the original patient is kept in the vault"))
    p.add_argument("--allow-burned-in", action="store_true",
                   help="with --deidentify: share images that declare burned-in text")
    p.add_argument("--allow-identifiable", action="store_true", help=(
        "share identifying DICOM although the share policy or the site requires "
        "de-identified data (needs --reason)"))
    p.add_argument("--reason", default="", metavar="TEXT",
                   help="why --allow-identifiable is justified (written to the audit log)")
    p.set_defaults(func=cmd_create)

    p = group.add_parser("list", help="all shares with status and downloads")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = group.add_parser("show", help="one share in detail")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = group.add_parser("revoke", help="withdraw a share now (deletes the file)")
    p.add_argument("id")
    p.set_defaults(func=cmd_revoke)

    p = group.add_parser("extend", help="set a new expiry, counted from now")
    p.add_argument("id")
    p.add_argument("--expires", required=True, help="e.g. 2d")
    p.set_defaults(func=cmd_extend)

    p = group.add_parser("add-recipient", help="give one more person their own link")
    p.add_argument("id")
    p.add_argument("email")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_add_recipient)

    p = group.add_parser("events", help="print share events (downloads...) as they happen")
    p.add_argument("--since", type=int, default=0, help="only events after this id")
    p.add_argument("--follow", action="store_true", help="keep waiting for new events")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_events)


def _client() -> Any:
    from backend.shares.client import ShareClient

    return ShareClient()


# -- serve ------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    if args.in_agent or args.stop:
        return _serve_in_agent(args)
    return asyncio.run(_serve(args))


def _serve_in_agent(args: argparse.Namespace) -> int:
    """``--in-agent`` / ``--stop``: the share service as a job of the agent (docs/agent.md)."""
    from backend.agent import client as agent

    def absolute(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path else None

    spec = asdict(_spec(args)) | {"tls_cert": absolute(args.tls_cert),
                                  "tls_key": absolute(args.tls_key)}

    async def call() -> tuple[int, Any]:
        client = await agent.connect(start=args.in_agent, client="cli")
        try:
            if args.stop:
                return client.pid, await client.call("serve", stop=True)
            return client.pid, await client.call("serve", spec=spec)
        finally:
            await client.close()

    try:
        pid, result = asyncio.run(call())
    except agent.NotRunning:
        info("no Ferry agent is running, so no share service runs inside it")
        return 0
    if args.stop:
        info("stopped the share service inside the Ferry agent" if result["stopped"] else
             f"the Ferry agent (pid {pid}) was not running the share service")
        return 0
    info(f"ferry share service listening on {result['url']} inside the Ferry agent (pid {pid}; "
         f"links: {result['public_url']}/s/...); it keeps serving after you log out and when "
         "the agent restarts. Stop it with 'ferry serve --stop'")
    return 0


def _spec(args: argparse.Namespace) -> ServeSpec:
    return ServeSpec(listen=args.listen, public_url=args.public_url, tls_cert=args.tls_cert,
                     tls_key=args.tls_key, tls_self_signed=args.tls_self_signed,
                     trusted_proxies=args.trusted_proxy, proxy_header=args.proxy_header,
                     trust_proxy=args.trust_proxy, database=args.database,
                     blob_store=args.blob_store)


async def _serve(args: argparse.Namespace) -> int:
    from backend.shares.server import stop_share_service

    handle, url, backends = await start_service(_spec(args))
    where = f" on {backends.description}" if backends is not None else ""
    info(f"ferry share service listening on {url}{where} (links: {handle.public_url}/s/...)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await stop_share_service(handle)
        if backends is not None:
            backends.close()
    info("share service stopped")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from backend.shares.backends import load_storage, open_scaled_out
    from backend.shares.keys import ServerKey
    from backend.shares.migrate import migrate_embedded

    storage = load_storage(args.to, args.blob_store)
    target = open_scaled_out(storage, ServerKey.load_or_create())
    try:
        report = migrate_embedded(target)
    finally:
        target.close()
    if args.json:
        print_json(report.as_dict())
        return 0
    print(f"migrated {report.shares} share(s) ({report.records_only} purged: records only), "
          f"{report.recipients} recipient(s), {report.blobs} blob(s) "
          f"({report.blob_bytes} bytes), {report.audit_rows} audit row(s)")
    print("audit chain: verified in PostgreSQL" if report.audit_verified
          else "audit chain: NOT verified")
    info("Start every instance with the same --database and --blob-store, and copy "
         "share-server.key and share-admin.token from $FERRY_HOME to each.")
    return 0


# -- create -----------------------------------------------------------------------------------
def cmd_create(args: argparse.Namespace) -> int:
    password = read_secret_file(args.password_file) if args.password_file else None
    if password is not None:
        from backend.log import register_secret

        register_secret(password)
    result = asyncio.run(_create(args, password))
    links = result["links"]
    if args.json:
        print_json(result)
        return 0
    share = result["share"]
    print(f"share {share['id']}: {display_name(share['name'])}, expires {share['expires_at']}")
    for link in links:
        who = link["email"] or "anyone with the link"
        print(f"  {display_name(who)}: {link['url']}")
    if result.get("password"):
        print(f"password: {result['password']}")
        info("Send the password by a different channel than the link (phone, SMS).")
    for err in result.get("email_errors") or []:
        info(f"warning: {display_name(err)}")
    return 0


def _content_options(args: argparse.Namespace) -> Any:
    from backend.dicom.policy import ContentOptions

    return ContentOptions(deidentify=args.deidentify, allow_identifiable=args.allow_identifiable,
                          reason=args.reason, allow_burned_in=args.allow_burned_in).validate()


def _check_or_override(headers: Any, options: Any, *, who: str, source: str,
                       name: str) -> None:
    """The de-identification rule ``who`` applies to ``headers``: refuse, or audit the
    override (backend/shares/dicomcheck.py)."""
    from backend.dicom import policy
    from backend.shares import dicomcheck

    override = policy.check_identifiable(headers, who=who, options=options, what="shared")
    if override is not None:
        dicomcheck.audit_override(override, source=source, name=name, who=who)
        info(f"warning: identifying DICOM shared under an override (reason in the audit log): "
             f"{len(override.findings)} attribute(s)")


async def _create(args: argparse.Namespace, password: str | None) -> dict[str, Any]:
    from backend import remote
    from backend.shares.policy import load_policy

    options = _content_options(args)
    required = load_policy().require_deidentified
    spec = remote.parse_remote_spec(args.source)
    if spec is None:
        path = Path(args.source)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise RemoteNotFoundError(f"no such file: {args.source}") from None
        except OSError as exc:
            raise UsageError(f"cannot read {args.source}: {exc.strerror}") from None
        if not path.is_file() and not (args.deidentify and path.is_dir()):
            raise UsageError(f"{args.source} is not a regular file",
                             hint="--deidentify shares a de-identified zip of a study folder"
                             if path.is_dir() else None)
        if not os.access(path, os.R_OK):
            raise UsageError(f"cannot read {args.source}: permission denied")
        return await _create_local(args, password, path, st.st_size, options, required)
    return await _create_from_site(_client(), spec, _options(args, password), args, options,
                                   required)


def _options(args: argparse.Namespace, password: str | None) -> dict[str, Any]:
    return {
        "recipients": args.to, "expires": args.expires, "max_downloads": args.max_downloads,
        "password": password, "generate_password": args.generate_password,
        "message": args.message, "notify": args.notify, "sender": local_user(),
    }


async def _create_local(args: argparse.Namespace, password: str | None, path: Path, size: int,
                        options: Any, required: bool) -> dict[str, Any]:
    from backend.shares import dicomcheck
    from backend.shares.client import local_file_source

    name = args.name or path.name
    copy = None
    if options.deidentify or required:
        headers = await asyncio.to_thread(dicomcheck.local_headers, path)
        if options.deidentify:
            if headers is None:
                raise UsageError(f"{args.source} holds no DICOM to de-identify")
            from backend.dicom.mapping import MappingStore
            from tui.cli.connect import cli_session

            vault = await cli_session().vault(create=True)  # before anything is written
            assert vault is not None
            copy = await asyncio.to_thread(dicomcheck.deidentified_copy, path, headers,
                                           options)
            path, size = copy.path, copy.path.stat().st_size
            name = args.name or f"{Path(args.source).stem}-deidentified.zip"
        elif headers is not None:
            _check_or_override(headers, options, who="the share policy",
                               source=str(path.resolve()), name=name)
    client = _client()
    try:
        result = await client.create(local_file_source(path), send_links=args.send_links,
                                     name=name, size=size, **_options(args, password))
    finally:
        if copy is not None:
            with contextlib.suppress(OSError):
                copy.path.unlink()
    if copy is not None:
        share_id = result["share"]["id"]
        assert vault is not None  # unlocked with the de-identified copy above
        mappings = MappingStore(vault)
        for m in copy.mappings:
            mappings.add(m, case_id=share_id, site="share")
        mappings.save()
        for line in copy.left_out:
            info(f"warning: not shared: {line}")
        info(f"de-identified (DICOM PS3.15 Annex E Basic Profile); the link to the original "
             f"patient is in the vault under share {share_id}")
    return result


async def _create_from_site(client: Any, spec: tuple[str, str], options: dict[str, Any],
                            args: argparse.Namespace, content: Any,
                            required: bool) -> dict[str, Any]:
    import posixpath

    from backend import remote
    from backend.shares import dicomcheck
    from backend.shares.client import sftp_source
    from tui.cli.connect import sftp_for

    site_name, path = spec
    if content.deidentify:
        raise UsageError("--deidentify works on a local copy",
                         hint=f"download it first (ferry get {site_name}:{path} DIR), then "
                              "share the local copy with --deidentify")
    async with sftp_for(site_name) as (site, _conn, sftp):
        full = remote.resolve(site.remote_dir, path)
        entry = await remote.stat_path(sftp, full)
        if entry.kind != "file":
            raise UsageError(f"{site_name}:{path} is not a regular file")
        name = args.name or posixpath.basename(full)
        options.update(name=name, size=entry.size)
        if required or site.require_deidentified:
            label = f"{site.name}:{full}"
            with remote.sftp_errors(full):
                headers = await dicomcheck.remote_headers(sftp, full, entry.size or 0, label)
            if headers is not None:
                who = f"site {site.name}" if site.require_deidentified else "the share policy"
                _check_or_override(headers, content, who=who, source=label, name=name)

        async def source() -> AsyncIterator[bytes]:
            with remote.sftp_errors(full):
                async for chunk in sftp_source(sftp, full):
                    yield chunk

        return await client.create(source(), send_links=args.send_links, **options)


# -- list / show ------------------------------------------------------------------------------
def _short_time(value: str | None) -> str:
    return (value or "")[:16].replace("T", " ")


def cmd_list(args: argparse.Namespace) -> int:
    shares = asyncio.run(_client().list())
    if args.json:
        print_json(shares)
        return 0
    if not shares:
        print("no shares")
        return 0
    print(f"{'ID':<11} {'STATUS':<9} {'EXPIRES (UTC)':<16} {'DL':>3} {'RCPT':>4}  NAME")
    for s in shares:
        print(
            f"{s['id']:<11} {s['status']:<9} {_short_time(s['expires_at']):<16} "
            f"{s['downloads']:>3} {len(s['recipients']):>4}  {display_name(s['name'])}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    share = asyncio.run(_client().show(args.id))
    if args.json:
        print_json(share)
        return 0
    _print_share(share)
    return 0


def _print_share(s: dict[str, Any]) -> None:
    rows = [
        ("id", s["id"]), ("name", s["name"]), ("size", f"{s['size']} bytes"),
        ("sha256", s["sha256"]), ("status", s["status"]), ("created", s["created_at"]),
        ("expires", s["expires_at"]),
        ("max downloads", s["max_downloads"] or "unlimited"),
        ("password", "yes" if s["password_protected"] else "no"),
        ("notify", "yes" if s["notify"] else "no"), ("sender", s["sender"]),
    ]
    if s.get("purged_at"):
        rows.append(("purged", f"{s['purged_at']} ({s['purge_reason']})"))
    if s.get("message"):
        rows.append(("message", s["message"]))
    for key, value in rows:
        print(f"{key + ':':<15}{display_name(str(value))}")
    print("recipients:")
    for r in s["recipients"]:
        last = f", last {_short_time(r['last_download_at'])}" if r["last_download_at"] else ""
        print(display_name(
            f"  {r['email'] or '(link)'}: {r['downloads']} download(s){last}, "
            f"{r['failed_attempts']} failed password(s)"
        ))


# -- edits ------------------------------------------------------------------------------------
def cmd_revoke(args: argparse.Namespace) -> int:
    share = asyncio.run(_client().revoke(args.id, actor=local_user()))
    print(f"share {share['id']} revoked; status {share['status']}")
    return 0


def cmd_extend(args: argparse.Namespace) -> int:
    from backend.shares.policy import parse_duration

    parse_duration(args.expires)
    share = asyncio.run(_client().extend(args.id, args.expires, actor=local_user()))
    print(f"share {share['id']} now expires {share['expires_at']}")
    return 0


def cmd_add_recipient(args: argparse.Namespace) -> int:
    link = asyncio.run(_client().add_recipient(args.id, args.email, actor=local_user()))
    if args.json:
        print_json(link)
    else:
        print(f"{display_name(link['email'])}: {link['url']}")
        info("The share's password is unchanged; send it to them by a different channel.")
    return 0


# -- events -----------------------------------------------------------------------------------
def cmd_events(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_events(args))
    except KeyboardInterrupt:
        return 0


async def _events(args: argparse.Namespace) -> int:
    client = _client()
    since = args.since
    while True:
        events = await client.events(since, wait=30 if args.follow else 0)
        for e in events:
            since = max(since, int(e["id"]))
            if args.json:
                print(json.dumps(e, default=str), flush=True)
            else:
                fields = " ".join(f"{k}={v}" for k, v in sorted(e["fields"].items()))
                print(display_name(f"{e['id']:>6} {e['ts'][:19]}Z {e['event']} {fields}"),
                      flush=True)
        if not args.follow:
            return 0
        if not events:
            await asyncio.sleep(0)
