"""Encrypted blobs in an S3-compatible object store (AWS S3, MinIO, SeaweedFS, Ceph RGW...).

Same interface as ``backend/shares/blobs.py``: the store only ever sees container bytes that the
service encrypted (the key stays wrapped in the database). Driver: boto3, called from the
service's I/O threads as the folder store is (docs/sharing.md "Deployment" says why).

* Writing: up to :data:`PART_SIZE` bytes are buffered; a blob that fits is one ``PutObject``,
  a larger one a multipart upload (parts of :data:`PART_SIZE`), completed by ``commit`` and
  aborted by ``abort``, so no object appears under the blob's key until it is complete.
* Reading: ``open`` checks the object exists (a missing object is the same error as a missing
  blob file: the share is marked broken before any header is sent) and returns a reader that
  streams with ranged GETs from its position; a dropped connection is resumed with a new
  ``Range`` from the byte it stopped at. ``size_and_prefix`` lets the service check the
  object's length before the first byte, as it does with ``fstat`` on a file.
* ``cleanup_partial`` aborts multipart uploads older than an hour (a crashed instance's).
"""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.errors import ConfigError, ShareError
from backend.shares.blobs import _check_id

PART_SIZE = 8 * 1024 * 1024  # S3 parts are at least 5 MiB except the last
STALE_UPLOAD = timedelta(hours=1)
_RETRIES = 3


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _missing(exc: Exception) -> bool:
    return _code(exc) in ("404", "NoSuchKey", "NotFound")


class S3BlobStore:
    def __init__(self, bucket: str, *, endpoint: str | None = None, region: str | None = None,
                 prefix: str = "", access_key: str | None = None,
                 secret_key: str | None = None, part_size: int = PART_SIZE,
                 check: bool = True) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.part_size = max(5 * 1024 * 1024, part_size)
        self.requests = 0
        self._count = threading.Lock()
        session = boto3.session.Session()
        self.client = session.client(
            "s3", endpoint_url=endpoint, region_name=region or "us-east-1",
            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=64,
                          retries={"max_attempts": 3, "mode": "standard"},
                          connect_timeout=10, read_timeout=60),
        )
        self.endpoint = endpoint or "AWS S3"
        if check:
            self.check()

    def _call(self, name: str, **kwargs: Any) -> Any:
        with self._count:
            self.requests += 1
        return getattr(self.client, name)(Bucket=self.bucket, **kwargs)

    def check(self) -> None:
        """One request that proves the bucket exists and the credentials are accepted."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            self._call("head_bucket")
        except NoCredentialsError:
            raise ConfigError(
                f"no S3 credentials for bucket {self.bucket}",
                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or s3_credentials_file "
                     "(docs/sharing.md \"Deployment\")") from None
        except ClientError as exc:
            code = _code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise ConfigError(f"the S3 bucket {self.bucket} does not exist at "
                                  f"{self.endpoint}", hint="create it first") from None
            raise ConfigError(f"the S3 store {self.endpoint} refused bucket {self.bucket}: "
                              f"{code or exc}",
                              hint="check the access key, secret and the bucket policy"
                              ) from None
        except BotoCoreError as exc:
            raise ConfigError(f"cannot reach the S3 store {self.endpoint}: {exc}") from None

    def key(self, blob_id: str) -> str:
        return f"{self.prefix}{_check_id(blob_id)}.fcx"

    def new_writer(self, blob_id: str) -> _S3Writer:
        return _S3Writer(self, self.key(blob_id))

    def open(self, blob_id: str) -> _S3Reader:
        from botocore.exceptions import ClientError

        key = self.key(blob_id)
        try:
            head = self._call("head_object", Key=key)
        except ClientError as exc:
            if _missing(exc):
                raise ShareError("the shared file is no longer stored") from None
            raise ShareError(f"the object store refused to read the file: {_code(exc)}"
                             ) from None
        return _S3Reader(self, key, int(head["ContentLength"]))

    def delete(self, blob_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self._call("delete_object", Key=self.key(blob_id))
        except ClientError as exc:
            if not _missing(exc):
                raise

    def exists(self, blob_id: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._call("head_object", Key=self.key(blob_id))
            return True
        except ClientError as exc:
            if _missing(exc):
                return False
            raise

    def cleanup_partial(self) -> int:
        """Abort multipart uploads under our prefix started more than an hour ago."""
        removed = 0
        old = datetime.now(UTC) - STALE_UPLOAD
        with contextlib.suppress(Exception):
            listing = self._call("list_multipart_uploads", Prefix=self.prefix)
            for up in listing.get("Uploads", []):
                started = up.get("Initiated")
                if started is not None and started < old:
                    self._call("abort_multipart_upload", Key=up["Key"],
                               UploadId=up["UploadId"])
                    removed += 1
        return removed


class _S3Writer:
    def __init__(self, store: S3BlobStore, key: str) -> None:
        self._store = store
        self._key = key
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _send_part(self, data: bytes) -> None:
        store = self._store
        if self._upload_id is None:
            self._upload_id = store._call("create_multipart_upload", Key=self._key)["UploadId"]
        number = len(self._parts) + 1
        resp = store._call("upload_part", Key=self._key, UploadId=self._upload_id,
                           PartNumber=number, Body=data)
        self._parts.append({"ETag": resp["ETag"], "PartNumber": number})

    def write(self, data: bytes) -> None:
        self._buf += data
        size = self._store.part_size
        while len(self._buf) >= size * 2:  # keep at least one part back for the last one
            self._send_part(bytes(self._buf[:size]))
            del self._buf[:size]

    def commit(self) -> None:
        store = self._store
        if self._upload_id is None and len(self._buf) <= store.part_size * 2:
            store._call("put_object", Key=self._key, Body=bytes(self._buf))
        else:
            size = store.part_size
            while len(self._buf) > size:
                self._send_part(bytes(self._buf[:size]))
                del self._buf[:size]
            if self._buf:
                self._send_part(bytes(self._buf))
            store._call("complete_multipart_upload", Key=self._key, UploadId=self._upload_id,
                        MultipartUpload={"Parts": self._parts})
        self._buf = bytearray()

    def abort(self) -> None:
        self._buf = bytearray()
        if self._upload_id is not None:
            with contextlib.suppress(Exception):
                self._store._call("abort_multipart_upload", Key=self._key,
                                  UploadId=self._upload_id)
            self._upload_id = None


class _S3Reader:
    """A read-only binary stream over one object, by ranged GETs from its position."""

    def __init__(self, store: S3BlobStore, key: str, size: int) -> None:
        self._store = store
        self._key = key
        self.size = size
        self._pos = 0
        self._body: Any = None
        self.closed = False

    def size_and_prefix(self, n: int) -> tuple[int, bytes]:
        if self.size == 0:
            return 0, b""
        resp = self._store._call("get_object", Key=self._key,
                                 Range=f"bytes=0-{min(n, self.size) - 1}")
        return self.size, resp["Body"].read()

    def seek(self, pos: int) -> None:
        self._drop()
        self._pos = pos

    def tell(self) -> int:
        return self._pos

    def _open(self) -> None:
        from botocore.exceptions import ClientError

        try:
            resp = self._store._call("get_object", Key=self._key, Range=f"bytes={self._pos}-")
        except ClientError as exc:
            if _missing(exc):
                raise ShareError("the shared file is no longer stored") from None
            raise
        self._body = resp["Body"]

    def read(self, n: int = -1) -> bytes:
        if self.closed:
            raise ValueError("read of a closed blob")
        if self._pos >= self.size:
            return b""
        want = self.size - self._pos if n < 0 else min(n, self.size - self._pos)
        out = bytearray()
        tries = 0
        while len(out) < want:
            if self._body is None:
                self._open()
            try:
                data = self._body.read(want - len(out))
            except Exception:  # a dropped connection: resume with a Range from here
                self._drop()
                tries += 1
                if tries > _RETRIES:
                    raise
                continue
            if not data:  # the object ended early (replaced or truncated underneath us)
                self._drop()
                break
            out += data
            self._pos += len(data)
        return bytes(out)

    def _drop(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
            self._body = None

    def close(self) -> None:
        self.closed = True
        self._drop()

    def __enter__(self) -> _S3Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
