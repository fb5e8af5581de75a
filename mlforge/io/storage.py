"""One storage abstraction for every store: a local folder or an S3 bucket/prefix.

Keys are '/'-separated paths relative to the root. Writes are atomic on both backends: a local
write goes to a temporary file in the same folder and is renamed into place; an S3 PUT is atomic
by the protocol. No reader ever sees half an object.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlforge.config.settings import get_settings
from mlforge.errors import DataError, MLForgeError, StoreUnavailableError

if TYPE_CHECKING:
    import polars as pl


def write_file_atomically(target: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `target`, fsync, then rename it over `target`:
    a reader sees the old file or the new one, never a part (the one home of a local atomic write)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Storage(Protocol):
    """What every store needs from object storage."""

    root: str

    def uri(self, key: str) -> str:
        """Full URI of `key` (a local path or s3://…)."""
        ...

    def exists(self, key: str) -> bool:
        """Whether `key` exists."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """The bytes stored at `key`; DataError when missing."""
        ...

    def write_bytes(self, key: str, data: bytes) -> None:
        """Store `data` at `key` atomically."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix`, sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key` if present."""
        ...


class LocalStorage:
    """Storage in a local folder (the embedded default)."""

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root).expanduser().resolve()
        self.root = str(self.path)

    def _p(self, key: str) -> Path:
        key = key.lstrip("/")
        if ".." in Path(key).parts:
            raise MLForgeError(f"storage key may not leave the root: {key}")
        return self.path / key

    def uri(self, key: str) -> str:
        """Absolute local path of `key`."""
        return str(self._p(key))

    def exists(self, key: str) -> bool:
        """Whether `key` exists."""
        return self._p(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        """The bytes stored at `key`."""
        try:
            return self._p(key).read_bytes()
        except FileNotFoundError:
            raise DataError(f"not found in storage: {self.uri(key)}") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write to a temp file beside the target, fsync, then rename over it."""
        write_file_atomically(self._p(key), data)

    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix` (temporary files excluded)."""
        base = self._p(prefix)
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        out = [
            str(p.relative_to(self.path)).replace(os.sep, "/")
            for p in base.rglob("*")
            if p.is_file() and not (p.name.startswith(".") and p.name.endswith(".tmp"))
        ]
        return sorted(out)

    def delete(self, key: str) -> None:
        """Remove `key` if present."""
        self._p(key).unlink(missing_ok=True)


# Error codes that mean "these credentials may not do this" rather than "the store is down".
_AUTH_CODES = frozenset(
    {
        "403",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "InvalidClientTokenId",
        "AuthorizationHeaderMalformed",
    }
)
_CREDENTIALS_HINT = (
    "check the S3 credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the configured "
    "profile/role) and that they may access the bucket"
)


class S3Storage:
    """Storage under s3://bucket/prefix on any S3-compatible server.

    `endpoint_url` selects MinIO, SeaweedFS or any other S3 server (None: AWS). Credentials are the
    explicit keys when given, else boto3's standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    / AWS_SESSION_TOKEN, AWS_PROFILE, instance roles). The region defaults to AWS_REGION, then
    AWS_DEFAULT_REGION, then us-east-1. Secrets are handed to the client and never kept on this
    object nor put into any message.
    """

    def __init__(
        self,
        root: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
        *,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
    ) -> None:
        if not root.startswith("s3://"):
            raise MLForgeError(f"S3 storage root must start with s3://, got {root}")
        bucket, _, prefix = root[len("s3://") :].partition("/")
        if not bucket:
            raise MLForgeError(f"S3 storage root names no bucket: {root}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint_url = endpoint_url or None
        env = get_settings()
        self.region = region or env.aws_region or env.aws_default_region or "us-east-1"
        if client is None:
            import boto3  # boto3 costs ~0.3 s to import; only S3 users pay it
            from botocore.config import Config

            # A session of our own: boto3's module-level default session resolves the credential
            # chain once per process, so a key changed in the environment later would be ignored.
            session = boto3.session.Session(
                aws_access_key_id=aws_access_key_id or None,
                aws_secret_access_key=aws_secret_access_key or None,
                aws_session_token=aws_session_token or None,
                region_name=self.region,
            )
            client = session.client(
                "s3",
                endpoint_url=self.endpoint_url,
                config=Config(
                    signature_version="s3v4",
                    # MinIO/SeaweedFS behind a plain host name do not serve virtual-hosted buckets
                    s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                    retries={"max_attempts": 3, "mode": "standard"},
                    connect_timeout=10,
                    read_timeout=60,
                ),
            )
        self._s3 = client

    def __repr__(self) -> str:
        return f"S3Storage({self.root!r}, endpoint_url={self.endpoint_url!r})"

    def _k(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        """s3:// URI of `key`."""
        return f"s3://{self.bucket}/{self._k(key)}"

    def _call(self, what: str, fn: Any, **kw: Any) -> Any:
        """`fn(Bucket=…, **kw)` with every botocore error mapped to one of ours.

        Messages name the endpoint, bucket and key and the server's error code, never credentials;
        the botocore traceback is dropped (`from None`).
        """
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        target = (
            f"s3://{self.bucket}/{kw['Key']}" if "Key" in kw else f"s3://{self.bucket}/{kw.get('Prefix', '')}"
        )
        endpoint = self.endpoint_url or "AWS S3"
        try:
            return fn(Bucket=self.bucket, **kw)
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            kind = "timed out" if isinstance(exc, ConnectTimeoutError) else "unreachable"
            raise StoreUnavailableError(f"S3 endpoint {endpoint} {kind} ({what} {target})") from None
        except ReadTimeoutError:
            raise StoreUnavailableError(
                f"S3 {what} failed on {self.root}: {target}: endpoint {endpoint} did not answer in time"
            ) from None
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise StoreUnavailableError(
                f"S3 {what} failed on {self.root}: {exc} — set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or a profile/role)"
            ) from None
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", "") or "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise DataError(f"not found in storage: {target}") from None
            detail = f"{code or 'error'} (HTTP {status})" if status else (code or "error")
            if code in _AUTH_CODES:
                hint = f" — {_CREDENTIALS_HINT}"
            elif code == "NoSuchBucket":
                hint = f" — bucket '{self.bucket}' does not exist on {endpoint}"
            else:
                hint = ""
            raise StoreUnavailableError(
                f"S3 {what} failed on {self.root}: {target}: {detail}{hint}"
            ) from None
        except BotoCoreError as exc:
            # BotoCoreError messages carry URLs and parameter names, never credential values
            raise StoreUnavailableError(
                f"S3 {what} failed on {self.root}: {target}: {type(exc).__name__}: {exc}"
            ) from None

    def exists(self, key: str) -> bool:
        """Whether `key` exists (a refused or failed HEAD raises, it never means "missing")."""
        try:
            self._call("head", self._s3.head_object, Key=self._k(key))
            return True
        except DataError:
            return False

    def read_bytes(self, key: str) -> bytes:
        """The bytes stored at `key` (one GET; the body is checked against its Content-Length)."""

        def get(**kw: Any) -> bytes:
            # reading the body inside _call maps a broken stream (IncompleteReadError, …) too
            return bytes(self._s3.get_object(**kw)["Body"].read())

        result: bytes = self._call("get", get, Key=self._k(key))
        return result

    def write_bytes(self, key: str, data: bytes) -> None:
        """One PUT: S3 makes the object visible whole or not at all."""
        self._call("put", self._s3.put_object, Key=self._k(key), Body=data)

    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix`, relative to the root."""
        out: list[str] = []
        token: str | None = None
        strip = len(self.prefix) + 1 if self.prefix else 0
        while True:
            kw: dict[str, Any] = {"Prefix": self._k(prefix)}
            if token:
                kw["ContinuationToken"] = token
            resp = self._call("list", self._s3.list_objects_v2, **kw)
            out.extend(obj["Key"][strip:] for obj in resp.get("Contents", []))
            if not resp.get("IsTruncated"):
                return sorted(out)
            token = resp.get("NextContinuationToken")

    def delete(self, key: str) -> None:
        """Remove `key` if present."""
        self._call("delete", self._s3.delete_object, Key=self._k(key))


def open_storage(
    root: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    *,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    aws_session_token: str | None = None,
) -> Storage:
    """A LocalStorage or S3Storage for `root` (S3 keys: explicit, else the standard AWS chain)."""
    if root.startswith("s3://"):
        return S3Storage(
            root,
            endpoint_url=endpoint_url,
            region=region,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
        )
    if "://" in root and not root.startswith("file://"):
        raise MLForgeError(f"unsupported storage root {root}: use a local folder or s3://bucket/prefix")
    return LocalStorage(root.removeprefix("file://"))


# --- typed helpers on top of bytes ---------------------------------------------------------


def parquet_bytes(df: pl.DataFrame) -> bytes:
    """`df` encoded as parquet the way every store writes it (zstd, statistics)."""
    buf = io.BytesIO()
    df.write_parquet(buf, compression="zstd", statistics=True)
    return buf.getvalue()


def write_parquet(storage: Storage, key: str, df: pl.DataFrame) -> str:
    """Write `df` as parquet at `key`; return the sha256 of the bytes written (the data version)."""
    data = parquet_bytes(df)
    storage.write_bytes(key, data)
    return hashlib.sha256(data).hexdigest()


def read_parquet(storage: Storage, key: str) -> pl.DataFrame:
    """Read the parquet object at `key`."""
    import polars as pl

    data = storage.read_bytes(key)
    try:
        return pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # polars raises several types for a corrupt file
        raise DataError(f"{storage.uri(key)} is not a readable parquet file: {exc}") from None


def write_json(storage: Storage, key: str, obj: Any) -> None:
    """Write `obj` as pretty JSON at `key`."""
    storage.write_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())


def read_json(storage: Storage, key: str) -> Any:
    """Read the JSON object at `key`."""
    data = storage.read_bytes(key)
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise DataError(f"{storage.uri(key)} is not valid JSON: {exc}") from None
