"""Storage backends: a local folder and a real S3 server (SeaweedFS), plus the parquet helpers."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest
from botocore.config import Config
from polars.testing import assert_frame_equal

from mlforge.errors import DataError, MLForgeError, StoreUnavailableError
from mlforge.io.storage import (
    LocalStorage,
    S3Storage,
    open_storage,
    read_json,
    read_parquet,
    write_json,
    write_parquet,
)
from servers import free_port


def s3_client(endpoint_url: str, access_key: str, secret_key: str, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(**config) if config else None,
    )


@pytest.fixture
def s3(s3_server: Any) -> S3Storage:
    """S3Storage under a fresh prefix of the test bucket."""
    client = s3_client(s3_server.endpoint_url, s3_server.access_key, s3_server.secret_key)
    root = f"s3://{s3_server.bucket}/t-{uuid.uuid4().hex[:12]}"
    return S3Storage(root, endpoint_url=s3_server.endpoint_url, client=client)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "root")
    else:
        yield request.getfixturevalue("s3")


# --- both backends ------------------------------------------------------------------------


def test_write_read_exists_delete_round_trip(storage: Any) -> None:
    key = "raw/transactions/date=1997-01-01/data.parquet"
    assert not storage.exists(key)
    storage.write_bytes(key, b"\x00hello\xff")
    assert storage.exists(key)
    assert storage.read_bytes(key) == b"\x00hello\xff"
    storage.write_bytes(key, b"second")  # overwrite
    assert storage.read_bytes(key) == b"second"
    storage.delete(key)
    assert not storage.exists(key)
    storage.delete(key)  # deleting a missing key is fine
    with pytest.raises(DataError, match="not found in storage"):
        storage.read_bytes(key)


def test_empty_object_round_trip(storage: Any) -> None:
    storage.write_bytes("empty.bin", b"")
    assert storage.exists("empty.bin")
    assert storage.read_bytes("empty.bin") == b""


def test_reading_a_missing_key_is_a_data_error(storage: Any) -> None:
    with pytest.raises(DataError) as info:
        storage.read_bytes("nope/absent.json")
    assert str(info.value).startswith("not found in storage: ")
    assert str(info.value).endswith("/nope/absent.json")
    assert not storage.exists("nope/absent.json")


def test_local_missing_key_error_names_its_full_path(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path / "root")
    with pytest.raises(DataError) as info:
        s.read_bytes("nope/absent.json")
    assert str(info.value) == f"not found in storage: {s.uri('nope/absent.json')}"


@pytest.mark.integration
def test_s3_missing_key_error_names_its_uri(s3: S3Storage) -> None:
    with pytest.raises(DataError) as info:
        s3.read_bytes("nope/absent.json")
    assert str(info.value) == f"not found in storage: {s3.uri('nope/absent.json')}"


def test_list_under_a_prefix(storage: Any) -> None:
    keys = [f"features/view/date=1997-01-{d:02d}/data.parquet" for d in range(1, 21)]
    for k in reversed(keys):
        storage.write_bytes(k, k.encode())
    storage.write_bytes("features/view_2/date=1997-01-01/data.parquet", b"sibling")  # same string start
    storage.write_bytes("labels/churn/date=1997-01-01/data.parquet", b"other")
    listed = storage.list("features/view/")
    assert listed == sorted(keys)
    assert len(listed) == 20
    assert storage.list("features/view/date=1997-01-05/") == [keys[4]]
    assert storage.list("nothing/here/") == []
    everything = storage.list("")
    assert len(everything) == 22
    assert "labels/churn/date=1997-01-01/data.parquet" in everything


def test_leading_slash_is_relative_to_the_root(storage: Any) -> None:
    storage.write_bytes("/abs/x.txt", b"x")
    assert storage.read_bytes("abs/x.txt") == b"x"
    assert storage.list("abs/") == ["abs/x.txt"]


def test_parquet_round_trip_returns_sha256_of_stored_bytes(storage: Any) -> None:
    df = pl.DataFrame(
        {
            "customer_id": ["00001", "00002", None],
            "date": [date(1997, 1, 1), date(1997, 1, 2), date(1998, 6, 30)],
            "dollar_value": [11.77, 12.0, float("nan")],
            "n": pl.Series([1, 2, 3], dtype=pl.Int8),
        }
    )
    digest = write_parquet(storage, "a/data.parquet", df)
    assert digest == hashlib.sha256(storage.read_bytes("a/data.parquet")).hexdigest()
    back = read_parquet(storage, "a/data.parquet")
    assert_frame_equal(back, df)
    # Same frame → same bytes → same data version.
    assert write_parquet(storage, "b/data.parquet", df) == digest
    assert write_parquet(storage, "c/data.parquet", df.head(2)) != digest


def test_read_parquet_of_garbage_is_a_data_error(storage: Any) -> None:
    storage.write_bytes("bad/data.parquet", b"this is not parquet at all")
    with pytest.raises(DataError) as info:
        read_parquet(storage, "bad/data.parquet")
    assert storage.uri("bad/data.parquet") in str(info.value)
    assert "not a readable parquet file" in str(info.value)


def test_read_parquet_of_missing_key_is_a_data_error(storage: Any) -> None:
    with pytest.raises(DataError, match="not found in storage"):
        read_parquet(storage, "missing/data.parquet")


def test_json_round_trip_and_invalid_json(storage: Any) -> None:
    write_json(storage, "m/_meta.json", {"rows": 3, "when": date(1997, 1, 1), "b": [1, 2]})
    assert read_json(storage, "m/_meta.json") == {"rows": 3, "when": "1997-01-01", "b": [1, 2]}
    storage.write_bytes("m/bad.json", b"{oops")
    with pytest.raises(DataError, match="is not valid JSON"):
        read_json(storage, "m/bad.json")


# --- LocalStorage -------------------------------------------------------------------------


def test_local_layout_and_uri(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path / "root")
    s.write_bytes("a/b/c.txt", b"abc")
    assert (tmp_path / "root" / "a" / "b" / "c.txt").read_bytes() == b"abc"
    assert s.uri("a/b/c.txt") == str((tmp_path / "root" / "a" / "b" / "c.txt").resolve())
    assert s.root == str((tmp_path / "root").resolve())
    assert s.list("a/b/c.txt") == ["a/b/c.txt"]  # a file key lists itself


def test_interrupted_write_keeps_old_content_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = LocalStorage(tmp_path / "root")
    s.write_bytes("deployments/churn-api/manifest.json", b"old manifest")
    folder = tmp_path / "root" / "deployments" / "churn-api"

    def crash(src: Any, dst: Any) -> None:
        raise OSError("disk pulled out")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk pulled out"):
        s.write_bytes("deployments/churn-api/manifest.json", b"new manifest, never visible")
    with pytest.raises(OSError):
        s.write_bytes("deployments/churn-api/new.json", b"brand new key")
    monkeypatch.undo()
    assert s.read_bytes("deployments/churn-api/manifest.json") == b"old manifest"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json"]  # no temp file left behind
    assert not s.exists("deployments/churn-api/new.json")
    assert s.list("deployments/") == ["deployments/churn-api/manifest.json"]


def test_interrupted_write_by_keyboard_interrupt_also_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = LocalStorage(tmp_path / "root")
    s.write_bytes("k.bin", b"old")

    def interrupt(src: Any, dst: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        s.write_bytes("k.bin", b"new")
    monkeypatch.undo()
    assert s.read_bytes("k.bin") == b"old"
    assert [p.name for p in (tmp_path / "root").iterdir()] == ["k.bin"]


@pytest.mark.parametrize("key", ["../x", "../../etc/passwd", "a/../../x", "a/b/../../../x", "a/.."])
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    s = LocalStorage(tmp_path / "root")
    for op in (
        lambda: s.write_bytes(key, b"x"),
        lambda: s.read_bytes(key),
        lambda: s.exists(key),
        lambda: s.delete(key),
        lambda: s.list(key),
        lambda: s.uri(key),
    ):
        with pytest.raises(MLForgeError, match="may not leave the root"):
            op()
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "root").exists() or list((tmp_path / "root").rglob("*")) == []


def test_local_list_shows_a_real_key_ending_in_tmp(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path / "root")
    s.write_bytes("exports/run.tmp", b"x")
    assert s.exists("exports/run.tmp")
    assert s.list("exports/") == ["exports/run.tmp"]


def test_open_storage(tmp_path: Path) -> None:
    local = open_storage(str(tmp_path / "r"))
    assert isinstance(local, LocalStorage)
    assert isinstance(open_storage(f"file://{tmp_path}/r"), LocalStorage)
    assert open_storage(f"file://{tmp_path}/r").root == local.root
    with pytest.raises(MLForgeError, match="unsupported storage root"):
        open_storage("gs://bucket/x")
    with pytest.raises(MLForgeError, match="must start with s3://"):
        S3Storage("bucket/x", client=object())


# --- S3Storage ----------------------------------------------------------------------------


@pytest.mark.integration
def test_s3_keys_live_under_the_root_prefix(s3: S3Storage, s3_server: Any) -> None:
    s3.write_bytes("a/b.txt", b"b")
    raw = s3_client(s3_server.endpoint_url, s3_server.access_key, s3_server.secret_key)
    body = raw.get_object(Bucket=s3_server.bucket, Key=f"{s3.prefix}/a/b.txt")["Body"].read()
    assert body == b"b"
    assert s3.uri("a/b.txt") == f"{s3.root}/a/b.txt"
    assert s3.list("a/") == ["a/b.txt"]  # relative to the root, prefix stripped


@pytest.mark.integration
def test_s3_storage_at_bucket_root(s3_server: Any) -> None:
    client = s3_client(s3_server.endpoint_url, s3_server.access_key, s3_server.secret_key)
    s = S3Storage(f"s3://{s3_server.bucket}", endpoint_url=s3_server.endpoint_url, client=client)
    key = f"rootlevel-{uuid.uuid4().hex[:8]}/x.txt"
    s.write_bytes(key, b"x")
    assert s.list(key.split("/")[0] + "/") == [key]
    s.delete(key)
    assert not s.exists(key)


@pytest.mark.integration
@pytest.mark.parametrize("bad", ["secret", "access"])
def test_s3_wrong_credentials_raise_store_unavailable(s3: S3Storage, s3_server: Any, bad: str) -> None:
    s3.write_bytes("x.txt", b"x")
    client = s3_client(
        s3_server.endpoint_url,
        "wrong-access-key" if bad == "access" else s3_server.access_key,
        "wrong-secret" if bad == "secret" else s3_server.secret_key,
    )
    wrong = S3Storage(s3.root, endpoint_url=s3_server.endpoint_url, client=client)
    with pytest.raises(StoreUnavailableError, match=f"S3 get failed on {s3.root}"):
        wrong.read_bytes("x.txt")
    with pytest.raises(StoreUnavailableError, match="S3 put failed"):
        wrong.write_bytes("y.txt", b"y")
    with pytest.raises(StoreUnavailableError, match="S3 list failed"):
        wrong.list("")
    # A 403 on HEAD is not "missing": exists() must not answer False.
    with pytest.raises(StoreUnavailableError):
        wrong.exists("x.txt")
    assert s3.list("") == ["x.txt"]  # nothing was written with the wrong keys


@pytest.mark.integration
def test_s3_unreachable_endpoint_raises_store_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = s3_client(
        url, "k", "s", connect_timeout=1, read_timeout=1, retries={"max_attempts": 1, "mode": "standard"}
    )
    s = S3Storage("s3://bucket/p", endpoint_url=url, client=client)
    with pytest.raises(StoreUnavailableError, match=f"S3 endpoint {url} unreachable"):
        s.read_bytes("x")
    with pytest.raises(StoreUnavailableError):
        s.exists("x")


@pytest.mark.integration
def test_s3_missing_bucket_is_store_unavailable(s3_server: Any) -> None:
    client = s3_client(s3_server.endpoint_url, s3_server.access_key, s3_server.secret_key)
    s = S3Storage("s3://no-such-bucket-mlforge/p", endpoint_url=s3_server.endpoint_url, client=client)
    with pytest.raises(StoreUnavailableError, match="NoSuchBucket"):
        s.list("")
