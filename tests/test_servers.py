"""The real-server helpers in `servers.py` start, serve and stop real processes."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import redis
from botocore.exceptions import ClientError

from servers import free_port, free_ports, s3_client, start_redis, start_s3


def _gone(pid: int) -> bool:
    """True if neither the process nor its process group exists any more."""
    for kill in (os.kill, os.killpg):
        try:
            kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def test_free_ports_are_distinct_and_valid() -> None:
    ports = free_ports(10)
    assert len(set(ports)) == 10
    assert all(1024 <= p <= 65535 for p in ports)
    assert 1024 <= free_port() <= 65535


@pytest.mark.integration
def test_redis_set_get_and_stop(tmp_path: Path) -> None:
    started = time.monotonic()
    server = start_redis(tmp_path)
    try:
        print(f"redis ready in {time.monotonic() - started:.2f}s at {server.url}")
        assert server.url.startswith("redis://127.0.0.1:")
        client = redis.Redis.from_url(server.url)
        try:
            assert client.set("mlforge:test", "hello")
            assert client.get("mlforge:test") == b"hello"
        finally:
            client.close()
    finally:
        server.stop()
    assert _gone(server.pid)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, socket_connect_timeout=1).ping()


@pytest.mark.integration
def test_s3_put_get_list_auth_and_stop(tmp_path: Path) -> None:
    bucket, access_key, secret_key = "mlforge-test", "test-access-key", "test-secret-key"
    started = time.monotonic()
    server = start_s3(tmp_path, bucket, access_key, secret_key)
    try:
        print(f"s3 ready in {time.monotonic() - started:.2f}s at {server.url}")
        assert server.url.startswith("http://127.0.0.1:")
        assert server.extra["bucket"] == bucket
        s3 = s3_client(server.url, access_key, secret_key)
        s3.put_object(Bucket=bucket, Key="dir/hello.txt", Body=b"hello s3")
        body = s3.get_object(Bucket=bucket, Key="dir/hello.txt")["Body"].read()
        assert body == b"hello s3"
        listing = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
        assert [o["Key"] for o in listing.get("Contents", [])] == ["dir/hello.txt"]

        for bad in (
            s3_client(server.url, access_key, "wrong-secret"),
            s3_client(server.url, "wrong-access-key", secret_key),
        ):
            with pytest.raises(ClientError) as refused:
                bad.get_object(Bucket=bucket, Key="dir/hello.txt")
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
            with pytest.raises(ClientError):
                bad.put_object(Bucket=bucket, Key="intruder.txt", Body=b"x")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert keys == ["dir/hello.txt"]
    finally:
        server.stop()
    assert _gone(server.pid)


@pytest.mark.integration
def test_redis_start_failure_raises_with_log_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import servers

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setattr(servers, "free_port", lambda: busy.getsockname()[1])
        with pytest.raises(RuntimeError, match="redis-server exited") as failed:
            start_redis(tmp_path)
    assert "Address already in use" in str(failed.value)
