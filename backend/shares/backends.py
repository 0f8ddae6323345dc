"""Where the share service keeps its state: embedded (SQLite + blob folder, the default) or
scaled out (PostgreSQL + an S3-compatible store), from ``--database`` / ``--blob-store`` or the
service file ``$FERRY_HOME/share-service.toml``.

URLs name places, never secrets: a password in a ``postgresql://`` URL or keys in an ``s3://``
URL given on the command line are refused (argv is visible to every local user in ``ps``).
Credentials come from the environment or from files only their owner can read:

* PostgreSQL: ``FERRY_DATABASE_PASSWORD``, or a 0600 file named by ``database_password_file``
  (service file) or ``FERRY_DATABASE_PASSWORD_FILE``; otherwise libpq's own ``PGPASSWORD`` /
  ``~/.pgpass``.
* S3: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (or the rest of boto3's chain: profile,
  instance role), or a 0600 TOML file with ``access_key_id`` and ``secret_access_key`` named by
  ``s3_credentials_file`` or ``FERRY_S3_CREDENTIALS_FILE``.

Service file (every key optional)::

    database = "postgresql://ferry@db.internal:5432/ferry?sslmode=verify-full"
    database_password_file = "/etc/ferry/db.password"
    blob_store = "s3://ferry-shares?endpoint=https://s3.internal&region=eu-west-2&prefix=p/"
    s3_credentials_file = "/etc/ferry/s3.toml"
    lease_seconds = 30
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import tomlkit

from backend.errors import ConfigError, UsageError


def service_file() -> Path:
    from backend.paths import ferry_home

    return ferry_home() / "share-service.toml"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _private_text(path: str | Path, what: str) -> str:
    p = Path(path).expanduser()
    try:
        st = p.stat()
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} file {p}: {exc.strerror}") from None
    if st.st_mode & 0o077:
        raise ConfigError(f"{p} ({what}) is readable by other users", hint=f"chmod 600 {p}")
    return text


@dataclass
class StorageConfig:
    database: str | None = None
    blob_store: str | None = None
    database_password_file: str | None = None
    s3_credentials_file: str | None = None
    lease_seconds: float | None = None
    source: dict[str, str] = field(default_factory=dict)  # which setting came from where

    @property
    def scaled_out(self) -> bool:
        return bool(self.database or self.blob_store)


def check_argv_url(url: str, option: str) -> str:
    """Refuse secrets in a URL given on the command line (one line, exit 2)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UsageError(f"{option}: not a URL") from None
    query = {k.lower() for k in parse_qs(parts.query)}
    if parts.password is not None or query & {"password", "secret", "secret_access_key",
                                              "access_key_id", "aws_secret_access_key"}:
        raise UsageError(
            f"{option} must not carry a password or key on the command line (other users see "
            "it in ps)",
            hint="set FERRY_DATABASE_PASSWORD / AWS_SECRET_ACCESS_KEY, or name a 0600 file in "
                 "$FERRY_HOME/share-service.toml (docs/sharing.md \"Deployment\")",
        )
    return url


def load_storage(database: str | None = None, blob_store: str | None = None,
                 path: Path | None = None) -> StorageConfig:
    """The storage settings: command-line values (checked for secrets) over the service
    file's. The service file may hold a password URL only if it is 0600."""
    path = path or service_file()
    cfg = StorageConfig()
    if path.exists():
        text = path.read_text(encoding="utf-8")
        try:
            doc: dict[str, Any] = tomlkit.parse(text).unwrap()
        except Exception as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        known = {"database", "blob_store", "database_password_file", "s3_credentials_file",
                 "lease_seconds"}
        unknown = set(doc) - known
        if unknown:
            raise ConfigError(f"{path}: unknown setting {sorted(unknown)[0]!r}",
                              hint=f"known settings: {', '.join(sorted(known))}")
        for name in ("database", "blob_store"):
            if doc.get(name) and urlsplit(str(doc[name])).password is not None:
                _private_text(path, "share service")  # refuses a world-readable file
        cfg.database = doc.get("database")
        cfg.blob_store = doc.get("blob_store")
        cfg.database_password_file = doc.get("database_password_file")
        cfg.s3_credentials_file = doc.get("s3_credentials_file")
        if doc.get("lease_seconds") is not None:
            cfg.lease_seconds = float(doc["lease_seconds"])
        for name in known & set(doc):
            cfg.source[name] = str(path)
    if database:
        cfg.database = check_argv_url(database, "--database")
        cfg.source["database"] = "--database"
    if blob_store:
        cfg.blob_store = check_argv_url(blob_store, "--blob-store")
        cfg.source["blob_store"] = "--blob-store"
    if bool(cfg.database) != bool(cfg.blob_store):
        raise UsageError(
            "--database and --blob-store go together: every instance needs both the shared "
            "database and the shared object store",
            hint="give both, or neither for the embedded default",
        )
    return cfg


def database_password(cfg: StorageConfig) -> str | None:
    env = os.environ.get("FERRY_DATABASE_PASSWORD")
    if env:
        return env
    file = cfg.database_password_file or os.environ.get("FERRY_DATABASE_PASSWORD_FILE")
    if file:
        return _private_text(file, "database password").strip("\r\n")
    return None  # libpq's PGPASSWORD / ~/.pgpass, or the URL in a 0600 service file


def parse_s3_url(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.hostname:
        raise UsageError(f"invalid blob store {url!r}",
                         hint="use s3://BUCKET?endpoint=https://HOST[:PORT]&region=R")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    prefix = query.get("prefix", "").lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return {"bucket": parts.hostname, "endpoint": query.get("endpoint"),
            "region": query.get("region"), "prefix": prefix}


def s3_credentials(cfg: StorageConfig) -> tuple[str | None, str | None]:
    file = cfg.s3_credentials_file or os.environ.get("FERRY_S3_CREDENTIALS_FILE")
    if not file:
        return None, None  # boto3's chain: AWS_* variables, profile, instance role
    try:
        doc = tomlkit.parse(_private_text(file, "S3 credentials")).unwrap()
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{file} is not valid TOML: {exc}") from None
    key, secret = doc.get("access_key_id"), doc.get("secret_access_key")
    if not key or not secret:
        raise ConfigError(f"{file} needs access_key_id and secret_access_key")
    return str(key), str(secret)


@dataclass
class Backends:
    store: Any
    blobs: Any
    audit: Any
    description: str

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()


def open_scaled_out(cfg: StorageConfig, server_key: Any, *, migrate: bool = True) -> Backends:
    """PostgreSQL store + audit chain and S3 blobs for ``cfg`` (raises a one-line error)."""
    from backend.shares.pgaudit import PgAuditLog
    from backend.shares.pgstore import PostgresMetadataStore
    from backend.shares.s3blobs import S3BlobStore

    assert cfg.database and cfg.blob_store
    if urlsplit(cfg.database).scheme not in ("postgresql", "postgres"):
        raise UsageError(f"invalid database {redact_url(cfg.database)!r}",
                         hint="use postgresql://USER@HOST:PORT/DBNAME")
    s3 = parse_s3_url(cfg.blob_store)
    key, secret = s3_credentials(cfg)
    store = PostgresMetadataStore(cfg.database, password=database_password(cfg),
                                  migrate=migrate)
    try:
        blobs = S3BlobStore(s3["bucket"], endpoint=s3["endpoint"], region=s3["region"],
                            prefix=s3["prefix"], access_key=key, secret_key=secret)
    except BaseException:
        store.close()
        raise
    audit = PgAuditLog(store, server_key.derive("audit head"))
    where = f"{redact_url(cfg.database)} + {cfg.blob_store}"
    return Backends(store, blobs, audit, where)
