"""The share service on real PostgreSQL and SeaweedFS (S3): the same behaviour as embedded, plus
what only the scaled-out stores have (schema versions, the shared audit chain, migration from
the embedded default, secrets kept off argv)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import aiohttp
import psycopg
import pytest

from backend.audit import AuditLog
from backend.shares.backends import load_storage, open_scaled_out
from backend.shares.client import ShareClient, local_file_source
from backend.shares.keys import ServerKey
from backend.shares.server import open_service, start_share_service, stop_share_service

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


async def _start(database: str, blob_store: str):
    service, backends = open_service(load_storage(database, blob_store))
    handle, url = await start_share_service("127.0.0.1:0", purge_interval=3600,
                                            service=service, write_info=False)
    return handle, backends, ShareClient(url=url, token=handle.admin_token)


async def _stop(handle, backends) -> None:
    await stop_share_service(handle)
    backends.close()


async def _share(client: ShareClient, tmp_path: Path, size: int, **options) -> tuple[dict, bytes]:
    path = tmp_path / f"scan-{size}.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    options.setdefault("name", path.name)
    options.setdefault("password", PASSWORD)
    return await client.create(local_file_source(path), size=size, **options), data


async def _get(url: str, password: str = PASSWORD, headers: dict | None = None):
    async with aiohttp.ClientSession() as s, s.post(
            url + "/download", data={"password": password}, headers=headers or {}) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


def _on(url: str, client: ShareClient) -> str:
    """A link pointed at another instance (links carry the public URL, here per port)."""
    return client.url + "/s/" + url.rsplit("/s/", 1)[1]


def _ferry(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "tui", *args], cwd=ROOT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


async def test_share_download_range_and_revoke_on_postgres_and_s3(ferry_home, pg_url, s3_url,
                                                                  seaweed, tmp_path):
    handle, backends, client = await _start(pg_url, s3_url)
    try:
        size = 20 * 1024 * 1024 + 123  # larger than two parts: a multipart upload
        created, data = await _share(client, tmp_path, size, max_downloads=3)
        share_id = created["share"]["id"]
        blob_id = backends.store.get_share(share_id).blob_id
        bucket = s3_url.split("//")[1].split("?")[0]
        head = seaweed.client().head_object(Bucket=bucket, Key=f"{blob_id}.fcx")
        assert "-" in head["ETag"], head["ETag"]  # the ETag of a multipart object
        raw = seaweed.client().get_object(Bucket=bucket, Key=f"{blob_id}.fcx")["Body"].read()
        assert data[:4096] not in raw  # encrypted before it left the service
        url = created["links"][0]["url"]
        status, body, _ = await _get(url)
        assert status == 200 and body == data
        status, body, _ = await _get(url, headers={"Range": "bytes=15000000-15000999"})
        assert status == 206 and body == data[15_000_000:15_001_000]
        shown = await client.show(share_id)
        assert shown["downloads"] == 1
        await client.revoke(share_id)
        assert backends.store.get_share(share_id).purged_at is not None
        assert not backends.blobs.exists(blob_id)  # deleted from the object store
        status, _, _ = await _get(url)
        assert status == 410
        events = [r.event for r in backends.audit.query(event="share.*")]
        assert events[0] == "share.created" and "share.purged" in events
        assert backends.audit.verify().ok
        assert AuditLog().query(event="share.*") == []  # nothing went to the local log
    finally:
        await _stop(handle, backends)


async def test_a_missing_object_marks_the_share_broken_before_headers(ferry_home, pg_url, s3_url,
                                                                     seaweed, tmp_path):
    handle, backends, client = await _start(pg_url, s3_url)
    try:
        created, _ = await _share(client, tmp_path, 300_000)
        share = backends.store.get_share(created["share"]["id"])
        bucket = s3_url.split("//")[1].split("?")[0]
        seaweed.client().delete_object(Bucket=bucket, Key=f"{share.blob_id}.fcx")
        status, body, _ = await _get(created["links"][0]["url"])
        assert status == 410 and b"missing or damaged" in body
        assert (await client.show(share.id))["status"] == "broken"
        assert [r.event for r in backends.audit.query(event="share.broken")] == ["share.broken"]
        # a truncated object is caught by its size before the first byte, too
        created, _ = await _share(client, tmp_path, 300_001)
        share = backends.store.get_share(created["share"]["id"])
        key = f"{share.blob_id}.fcx"
        whole = seaweed.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        seaweed.client().put_object(Bucket=bucket, Key=key, Body=whole[:-100])
        status, body, _ = await _get(created["links"][0]["url"])
        assert status == 410 and (await client.show(share.id))["status"] == "broken"
    finally:
        await _stop(handle, backends)


def test_a_database_from_a_newer_ferry_is_refused(ferry_home, pg_url, s3_url):
    backends = open_scaled_out(load_storage(pg_url, s3_url), ServerKey.load_or_create())
    backends.store._exec("UPDATE schema_version SET version = 99 WHERE component = 'shares'")
    backends.close()
    code, _, err = _ferry("serve", "--listen", "127.0.0.1:0", "--database", pg_url,
                          "--blob-store", s3_url)
    assert code == 3, err
    assert "schema version 99" in err and "newer Ferry" in err
    assert "Traceback" not in err


def test_secrets_on_argv_are_refused_and_files_must_be_private(ferry_home, pg_cluster, s3_url,
                                                              tmp_path, monkeypatch):
    monkeypatch.delenv("FERRY_DATABASE_PASSWORD", raising=False)
    with_pw = f"postgresql://ferry:{pg_cluster.password}@127.0.0.1:{pg_cluster.port}/postgres"
    code, _, err = _ferry("serve", "--database", with_pw, "--blob-store", s3_url)
    assert code == 2 and "must not carry a password" in err
    assert pg_cluster.password not in err
    assert len(err.strip().splitlines()) == 1
    # the password from a file: refused while others can read it, used once it is 0600
    pwfile = tmp_path / "db.password"
    pwfile.write_text(pg_cluster.password + "\n")
    pwfile.chmod(0o644)
    url = pg_cluster.url(pg_cluster.new_database())
    env = {"FERRY_DATABASE_PASSWORD_FILE": str(pwfile), "FERRY_DATABASE_PASSWORD": ""}
    code, _, err = _ferry("serve", "--database", url, "--blob-store", s3_url, env=env)
    assert code == 3 and "readable by other users" in err, err
    # a wrong password: one line, exit 6
    code, _, err = _ferry("serve", "--database", url, "--blob-store", s3_url,
                          env={"FERRY_DATABASE_PASSWORD": "wrong"})
    assert code == 6 and "refused the login" in err and "Traceback" not in err, err
    pwfile.chmod(0o600)
    cfg = load_storage(url, s3_url)
    monkeypatch.setenv("FERRY_DATABASE_PASSWORD_FILE", str(pwfile))
    backends = open_scaled_out(cfg, ServerKey.load_or_create())
    assert backends.store.check_version() == 1
    backends.close()


def test_audit_chain_in_postgres_detects_a_deleted_tail(ferry_home, pg_url, s3_url):
    backends = open_scaled_out(load_storage(pg_url, s3_url), ServerKey.load_or_create())
    try:
        for i in range(5):
            backends.audit.append("share.test", actor="t", n=i)
        assert backends.audit.verify().ok
        backends.store._exec("DELETE FROM audit WHERE id = 5")
        result = backends.audit.verify()
        assert not result.ok and result.kind == "truncated"
        backends.audit.append("share.test", actor="t", n=6)  # an append records the tamper
        assert backends.audit.verify().kind == "tamper-recorded"
    finally:
        backends.close()


async def test_migrate_moves_live_shares_and_the_audit_chain(ferry_home, pg_url, s3_url,
                                                             tmp_path):
    # an embedded service with a downloaded share, a revoked one and a fresh one
    handle, _ = await start_share_service("127.0.0.1:0", purge_interval=3600)
    client = ShareClient()
    try:
        kept, data = await _share(client, tmp_path, 2 * 1024 * 1024 + 5, max_downloads=2)
        status, body, _ = await _get(kept["links"][0]["url"])
        assert status == 200 and body == data
        gone, _ = await _share(client, tmp_path, 1000)
        await client.revoke(gone["share"]["id"])
        fresh, fresh_data = await _share(client, tmp_path, 5000, recipients=["a@example.org"])
    finally:
        await stop_share_service(handle)
    local_rows = len(AuditLog().query())
    code, out, err = _ferry("serve", "migrate", "--to", pg_url, "--blob-store", s3_url,
                            "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["shares"] == 3 and report["blobs"] == 2 and report["records_only"] == 1
    assert report["audit_rows"] == local_rows and report["audit_verified"]
    # a second run refuses: the target is no longer empty
    code, _, err = _ferry("serve", "migrate", "--to", pg_url, "--blob-store", s3_url)
    assert code == 3 and "already holds" in err
    # the scaled-out service serves the migrated links with their counters
    handle, backends, client = await _start(pg_url, s3_url)
    try:
        assert backends.audit.verify().ok
        rows = backends.audit.query()
        assert len(rows) == local_rows + 1 and rows[-1].event == "audit.migrated"
        shown = await client.show(kept["share"]["id"])
        assert shown["downloads"] == 1 and shown["status"] == "active"
        status, body, _ = await _get(_on(kept["links"][0]["url"], client))
        assert status == 200 and body == data
        status, _, _ = await _get(_on(kept["links"][0]["url"], client))
        assert status == 410  # the second (last) allowed download was the one above
        status, body, _ = await _get(_on(fresh["links"][0]["url"], client))
        assert status == 200 and body == fresh_data
        assert (await client.show(gone["share"]["id"]))["status"] == "purged"
    finally:
        await _stop(handle, backends)


async def test_purge_runs_on_one_instance_at_a_time(ferry_home, pg_url, s3_url):
    b1 = open_scaled_out(load_storage(pg_url, s3_url), ServerKey.load_or_create())
    b2 = open_scaled_out(load_storage(pg_url, s3_url), ServerKey.load_or_create())
    try:
        one, two = b1.store.advisory_lock("purge"), b2.store.advisory_lock("purge")
        assert one.acquire()
        assert not two.acquire()  # the other instance skips this round
        assert not await asyncio.to_thread(two.acquire, True, 0.3)  # a revoke waits, bounded
        one.release()
        assert two.acquire()
        two.release()
    finally:
        b1.close()
        b2.close()


def test_statements_are_refused_by_a_connection_without_the_password(pg_cluster):
    """The cluster the tests use really asks for the password over TCP."""
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"host=127.0.0.1 port={pg_cluster.port} user=ferry dbname=postgres"
                        " password=nope connect_timeout=5")
