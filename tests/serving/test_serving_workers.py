"""`/metrics` of the real server with 2 workers: one set of figures for all of them.

Each scrape reaches whichever worker accepts the connection; the request counter must still
never go backwards, must count every answered request, and process metrics must be there. A
worker that dies is marked dead (its live gauges leave), uvicorn starts another, and the counter
keeps its value.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlforge.config.project import Project
from servers import free_port

ENDPOINT = "churn-api"
SCRAPES = 20
REQUESTS = "mlforge_requests_total"


def total(text: str, name: str, **labels: str) -> float:
    """Sum of every sample of `name` whose labels include `labels` (0 when none)."""
    out = 0.0
    for m in re.finditer(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$", text, re.M):
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            out += float(m.group(2))
    return out


def scrape(url: str) -> str:
    """GET /metrics on a new connection (so successive scrapes reach different workers)."""
    r = httpx.get(f"{url}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


def worker_pids(text: str) -> set[int]:
    """Workers whose live gauges a scrape shows (the revision each serves, labelled by pid)."""
    return {int(p) for p in re.findall(r'^mlforge_manifest_revision\{[^}]*pid="(\d+)"', text, re.M)}


@pytest.fixture
def server(
    materialized: Any, tmp_path: Path, repo_root: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`mlforge serve --workers 2` on an isolated copy of the deployed project."""
    project = materialized.project
    storage_root = tmp_path / "storage"
    own = Project(
        project.spec, project.root, dataclasses.replace(project.settings, storage_root=str(storage_root))
    )
    for key in project.storage.list("deployments/"):
        own.storage.write_bytes(key, project.storage.read_bytes(key))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFORGE_", "DAGSTER_", "MLFLOW_", "PROMETHEUS_", "prometheus_"))
    }
    env |= {"MLFORGE_STORAGE_ROOT": str(storage_root), "MLFORGE_PREDICTION_LOG": "off"}
    port = free_port()
    cmd = [
        str(Path(sys.executable).parent / "mlforge"),
        "serve",
        "--spec",
        str(project.root / "mlforge.yaml"),
        "--home",
        str(project.settings.state_dir),
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(
        cmd, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        ready = 0  # consecutive /ready answers, each on a new connection (any worker)
        while ready < 5:
            try:
                ready = ready + 1 if httpx.get(f"{url}/ready", timeout=1).status_code == 200 else 0
            except httpx.HTTPError:
                ready = 0
            assert time.monotonic() < deadline, "2 workers did not become ready"
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            time.sleep(0.3)
        time.sleep(2)  # the slower worker finishes loading too
        yield url, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_two_workers_metrics_never_go_backwards(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = server
    answered = 0
    stop = threading.Event()
    failures: list[str] = []

    def send() -> None:
        nonlocal answered
        i = 0
        while not stop.is_set():
            try:  # a new connection per request: both workers answer
                r = httpx.post(
                    f"{url}/predict/{ENDPOINT}", json={"entity_ids": [f"{3 + i % 40:05d}"]}, timeout=10
                )
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
                continue
            if r.status_code == 200:
                answered += 1
            else:
                failures.append(r.text)
            i += 1

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    counts: list[float] = []
    pids: set[int] = set()
    try:
        for _ in range(SCRAPES):
            text = scrape(url)
            counts.append(total(text, REQUESTS, endpoint=ENDPOINT, status="200"))
            pids |= worker_pids(text)
            time.sleep(0.1)
    finally:
        stop.set()
        sender.join(timeout=30)
    assert not failures, failures[:3]
    assert answered > 0
    assert counts == sorted(counts), counts  # never backwards, whichever worker answered the scrape
    final = scrape(url)
    assert total(final, REQUESTS, endpoint=ENDPOINT, status="200") >= answered
    assert total(final, "mlforge_predictions_total", endpoint=ENDPOINT, shadow="false") >= answered
    assert total(final, "mlforge_request_latency_seconds_count", endpoint=ENDPOINT) >= answered
    assert total(final, "process_cpu_seconds_total") > 0
    assert total(final, "process_resident_memory_bytes") > 0
    assert total(final, "mlforge_workers") == 2
    assert len(pids) == 2, pids  # each worker reports the revision it serves
    assert "# TYPE mlforge_requests_total counter" in final

    # A worker dies: uvicorn starts another; the dead one's live gauges go, its counts stay.
    before = total(final, REQUESTS, endpoint=ENDPOINT, status="200")
    victim = max(pids)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        time.sleep(0.5)
        try:
            text = scrape(url)
        except (httpx.HTTPError, AssertionError):
            continue
        assert total(text, REQUESTS, endpoint=ENDPOINT, status="200") >= before
        live = worker_pids(text)
        if total(text, "mlforge_workers") == 2 and victim not in live and len(live) == 2:
            break
        assert time.monotonic() < deadline, f"dead worker {victim} still reported: {live}"

    # A clean stop removes the metrics directory the server created.
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    log = out.decode(errors="replace")
    shared = re.search(r"metrics: workers share (\S+)", log)
    assert shared is not None, log[-3000:]
    assert not Path(shared.group(1)).exists(), log[-3000:]


def test_python_m_serving_has_the_serve_options(repo_root: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "serving", "--help"], cwd=repo_root, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    for option in ("--workers", "--port", "--host", "--home", "--spec"):
        assert option in out.stdout, out.stdout
