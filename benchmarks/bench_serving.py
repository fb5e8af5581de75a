"""Serving: MLForge (`mlforge serve`) vs `mlflow models serve` on the same registered model.

    uv run mlforge quickstart --home /tmp/benchstate          # once, if the state is not there
    uv run python benchmarks/bench_serving.py --home /tmp/benchstate
    uv run python benchmarks/bench_serving.py --home /tmp/benchstate --duration 10 --workers 1 2
    # another algorithm: the clv example's LightGBM regression and scikit-learn endpoints
    uv run mlforge quickstart --spec examples/clv/mlforge.yaml
    uv run python benchmarks/bench_serving.py --spec examples/clv/mlforge.yaml --endpoint clv-api

One run, on loopback (127.0.0.1 only), against the champion of an endpoint (default `churn-api`,
XGBoost) in the state folder:

- **MLForge**: `mlforge serve --workers N` with entity-id requests (`{"entity_ids": [id]}`):
  routing, the online lookup from a REAL Redis (a throwaway redis-server filled with every
  customer's row of the view from the state's online store) and the prediction log on (the
  default: buffered, parquet files in a benchmark storage root that holds a copy of the
  manifests, so the state folder is not touched).
- **MLflow**: `mlflow models serve -m models:/churn/<version> --env-manager local --workers N`,
  requests with the same customers' features (`dataframe_split`, one row) — MLflow has no
  online store, so it does strictly less work per request.

Per server and worker count: bounded load with an async httpx client (fixed concurrency, fixed
duration, bounded request count) → throughput, p50/p99 under load, failures; then sequential
requests (one at a time, keep-alive) → p50/p99. Then a hot-swap run: MLForge under the same load
while two new manifest revisions are written (`write_manifest`) → failed requests and the
revisions that answered. Every process started here runs in its own process group and is stopped
(SIGTERM to the group, then SIGKILL) on exit. Prints a Markdown table; `--json` writes the figures.

Beside throughput, each load run reports the CPU time the server's process tree spent per request
(from /proc) and the client's CPU time: on a small machine the load generator needs about a core
of its own, so throughput is bounded by the client and CPU per request is the client-independent
measure of what a server costs. Finally, the prediction log's rows are counted against the
successful MLForge requests (every worker flushes on SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from mlforge.config.project import Project  # noqa: E402
from mlforge.deployment.manifest import read_manifest, write_manifest  # noqa: E402
from mlforge.features.offline import read_snapshot  # noqa: E402
from mlforge.features.online import open_online_store  # noqa: E402
from mlforge.features.refs import feature_names  # noqa: E402
from mlforge.io import layout  # noqa: E402
from mlforge.io.storage import LocalStorage  # noqa: E402
from mlforge.monitoring.prediction_log import read_prediction_log  # noqa: E402
from servers import free_port, start_redis  # noqa: E402

BIN = Path(sys.executable).parent
JSON_HEADERS = {"content-type": "application/json"}


@dataclass
class LoadResult:
    """One load run."""

    server: str
    workers: int
    requests: int
    failures: int
    seconds: float
    throughput: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)
    server_cpu_ms_per_request: float = 0.0
    client_cpu_s: float = 0.0
    server_p99_ms_at_most: float | None = None  # MLForge: from its /metrics histogram (one worker)
    redis_cpu_ms_per_request: float = 0.0  # MLForge: the Redis server's CPU per request


@dataclass
class SeqResult:
    """Sequential requests."""

    server: str
    workers: int
    requests: int
    failures: int
    p50_ms: float
    p99_ms: float


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


class Proc:
    """A server in its own process group; `stop()` ends the group."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._fh = log.open("wb")
        self.p = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, url: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready in {timeout}s: {self.log.read_text()[-2000:]}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the server and every process below it, so far."""
        tick = os.sysconf("SC_CLK_TCK")
        total, todo = 0.0, [self.p.pid]
        while todo:
            pid = todo.pop()
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
        return total

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.p.pid, signal.SIGTERM)
        try:
            self.p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
        with contextlib.suppress(ProcessLookupError):  # stragglers of the group (uvicorn workers)
            os.killpg(self.p.pid, signal.SIGKILL)
        self._fh.close()


# ---------------------------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


async def _load(
    url: str, bodies: list[bytes], concurrency: int, duration: float, max_requests: int, parse: bool
) -> tuple[list[float], Counter[str], Counter[str], int, float]:
    """`concurrency` tasks sending requests back to back until the duration or the count runs out.

    The requests go through httpx's transport (its connection pool, httpcore) directly, on
    uvloop: the full `AsyncClient.post` (URL merging, cookies, event hooks) cost ~1 ms of client
    CPU per request and capped the load at ~650 req/s on this machine, below what the server
    answers; the transport call costs ~0.56 ms.
    """
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    revisions: Counter[str] = Counter()
    failures = 0
    counter = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    target = httpx.URL(url)
    async with httpx.AsyncHTTPTransport(limits=limits) as transport:
        t0 = time.perf_counter()
        stop_at = t0 + duration

        async def worker() -> None:
            nonlocal failures
            while True:
                i = next(counter)
                if i >= max_requests or time.perf_counter() >= stop_at:
                    return
                t = time.perf_counter()
                try:
                    request = httpx.Request(
                        "POST", target, content=bodies[i % len(bodies)], headers=JSON_HEADERS
                    )
                    r = await transport.handle_async_request(request)
                    content = await r.aread()
                    await r.aclose()
                    statuses[str(r.status_code)] += 1
                    if r.status_code != 200:
                        failures += 1
                    elif parse:
                        revisions[str(json.loads(content)["revision"])] += 1
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    failures += 1
                latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return latencies, statuses, revisions, failures, elapsed


def load(
    server: str,
    workers: int,
    url: str,
    bodies: list[bytes],
    args: argparse.Namespace,
    proc: Proc,
    parse: bool = False,
) -> LoadResult:
    cpu0, client0 = proc.cpu_seconds(), time.process_time()
    gc.collect()
    gc.disable()  # the client's collector pauses would show as server latency
    try:
        lat, statuses, revisions, failures, elapsed = uvloop.run(
            _load(url, bodies, args.concurrency, args.duration, args.max_requests, parse)
        )
    finally:
        gc.enable()
    server_cpu, client_cpu = proc.cpu_seconds() - cpu0, time.process_time() - client0
    return LoadResult(
        server,
        workers,
        len(lat),
        failures,
        round(elapsed, 2),
        round(len(lat) / elapsed, 1),
        round(pct(lat, 50), 3),
        round(pct(lat, 99), 3),
        dict(statuses),
        dict(revisions),
        round(server_cpu / max(len(lat), 1) * 1000, 3),
        round(client_cpu, 2),
    )


_WRK_LUA = """
local bodies = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[(i %% #bodies) + 1])
end
"""


def _ms(text: str) -> float:
    """wrk's '1.23ms' / '850.00us' / '1.02s' as milliseconds."""
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text.strip())
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def pid_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of one process so far (0 when it is gone)."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def load_wrk(
    server: str,
    workers: int,
    url: str,
    bodies: list[bytes],
    args: argparse.Namespace,
    proc: Proc,
    redis_pid: int | None = None,
) -> LoadResult:
    """The same bounded load from wrk (C, one thread), so the client does not saturate a core.

    With ``--wrk-cpus`` wrk runs under ``taskset -c`` (the servers are not pinned). The client's
    CPU time (wrk is a child process: RUSAGE_CHILDREN) and, for MLForge, the Redis server's are
    reported beside the server's, since on a small machine all three share the cores.
    """
    import resource
    import tempfile

    lua = _WRK_LUA % ", ".join(json.dumps(b.decode()) for b in bodies[:2000])
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(lua)
        script = fh.name
    cpu0 = proc.cpu_seconds()
    redis0 = pid_cpu_seconds(redis_pid) if redis_pid else 0.0
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = ["wrk", "-t1", f"-c{args.concurrency}", f"-d{int(args.duration)}s", "-s", script, "--latency", url]
    if args.wrk_cpus:
        cmd = ["taskset", "-c", args.wrk_cpus, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 30, check=True).stdout
    server_cpu = proc.cpu_seconds() - cpu0
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
    redis_cpu = pid_cpu_seconds(redis_pid) - redis0 if redis_pid else 0.0
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    seconds = float(re.search(r"requests in ([0-9.]+)s", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failures = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    p50 = _ms(re.search(r"50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    return LoadResult(
        server,
        workers,
        total,
        failures,
        round(seconds, 2),
        round(total / seconds, 1),
        round(p50, 3),
        round(p99, 3),
        server_cpu_ms_per_request=round(server_cpu / max(total, 1) * 1000, 3),
        client_cpu_s=round(client_cpu, 2),
        redis_cpu_ms_per_request=round(redis_cpu / max(total, 1) * 1000, 3),
    )


def server_p99(base: str) -> float | None:
    """Upper bound of the p99 the server measured itself: the first histogram bucket holding 99 %."""
    import re

    text = httpx.get(f"{base}/metrics", timeout=10).text
    pattern = (
        r'^mlforge_request_latency_seconds_bucket\{endpoint="[^"]+",variant="[^"]+",le="([^"]+)"\} (\d+)$'
    )
    buckets = [(float(le), int(n)) for le, n in re.findall(pattern, text, re.M)]
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    return next(le * 1000 for le, n in buckets if n >= 0.99 * total)


def sequential(server: str, workers: int, url: str, bodies: list[bytes], n: int) -> SeqResult:
    lat: list[float] = []
    failures = 0
    with httpx.Client(timeout=30) as client:
        for i in range(50):  # warm the connection
            client.post(url, content=bodies[i % len(bodies)], headers=JSON_HEADERS)
        for i in range(n):
            t = time.perf_counter()
            r = client.post(url, content=bodies[i % len(bodies)], headers=JSON_HEADERS)
            lat.append(time.perf_counter() - t)
            failures += r.status_code != 200
    return SeqResult(server, workers, n, failures, round(pct(lat, 50), 3), round(pct(lat, 99), 3))


def warm(url: str, bodies: list[bytes], n: int = 300) -> None:
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            r = client.post(url, content=bodies[i % len(bodies)], headers=JSON_HEADERS)
            if r.status_code != 200:
                raise RuntimeError(f"warm-up request to {url} failed: {r.status_code} {r.text[:500]}")


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "mlforge.yaml", help="the project's spec")
    ap.add_argument("--endpoint", default="churn-api", help="the endpoint to load")
    ap.add_argument(
        "--home", default=None, help="state folder of a quickstart run (default: the spec's state_dir)"
    )
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-requests", type=int, default=200_000, help="upper bound per load run")
    ap.add_argument("--sequential", type=int, default=2000, help="sequential requests per server")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--client", choices=["httpx", "wrk"], default="httpx", help="load generator")
    ap.add_argument(
        "--wrk-cpus", default=None, help="run wrk under `taskset -c WRK_CPUS` (e.g. 1); servers not pinned"
    )
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()

    spec_path = args.spec.resolve()
    project = Project.load(spec_path, state_dir=Path(args.home).resolve() if args.home else None)
    home = Path(project.settings.state_dir).resolve()
    endpoint = args.endpoint
    manifest = read_manifest(project.storage, endpoint)
    if manifest is None:
        sys.exit(
            f"no manifest of {endpoint} under {home}: run `uv run mlforge quickstart --spec {spec_path} "
            f"--home {home}` first"
        )
    if len(manifest.views) != 1:
        sys.exit(f"{endpoint} reads {len(manifest.views)} feature views; this benchmark fills one")
    view = manifest.views[0]
    print(f"{endpoint}: {manifest.model} v{manifest.variants[0].version} ({manifest.variants[0].algorithm})")
    version = manifest.variants[0].version
    names = manifest.feature_names
    day = (
        datetime.fromisoformat(manifest.partition).date()
        if manifest.partition
        else project.spec.partitions.end
    )
    snap = read_snapshot(project.storage, view, day).sort(manifest.entity_key)
    rng = np.random.default_rng(7)
    ids = [str(i) for i in rng.choice(snap[manifest.entity_key].to_numpy(), size=2000, replace=False)]
    rows = {
        r[manifest.entity_key]: [r[n] for n in names]
        for r in snap.filter(snap[manifest.entity_key].is_in(ids)).to_dicts()
    }
    mlforge_bodies = [json.dumps({"entity_ids": [i]}).encode() for i in ids]
    mlflow_bodies = [
        json.dumps({"dataframe_split": {"columns": names, "data": [rows[i]]}}).encode() for i in ids
    ]

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    procs: list[Proc] = []
    results: dict[str, Any] = {"load": [], "sequential": [], "hot_swap": None, "log": None}
    redis = start_redis(work / "redis")
    try:
        # the online store: every customer of the view, from the state's store into a real Redis
        all_ids = snap[manifest.entity_key].to_list()
        width = len(feature_names(project.spec.feature_view(view)))
        source = open_online_store(project.settings.online_store_url, project.settings.online_key_prefix)
        values, found = source.read(view, all_ids, width)
        keep = [i for i, f in zip(all_ids, found, strict=True) if f]
        target = open_online_store(redis.url, project.settings.online_key_prefix)
        target.write(view, keep, [int(time.time())] * len(keep), values[found], ttl_seconds=7 * 86400)
        print(f"redis {redis.url}: {len(keep):,} customers of {view}")

        storage_root = work / "storage"
        bench_storage = LocalStorage(storage_root)
        for key in project.storage.list(layout.deployment_prefix(endpoint)):
            bench_storage.write_bytes(key, project.storage.read_bytes(key))
        base_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("MLFORGE_", "DAGSTER_", "MLFLOW_"))
        }
        mlforge_env = {
            **base_env,
            "MLFORGE_HOME": str(home),
            "MLFORGE_STORAGE_ROOT": str(storage_root),
            "MLFORGE_ONLINE_STORE_URL": redis.url,
        }
        mlflow_env = {**base_env, "MLFLOW_TRACKING_URI": project.settings.tracking_uri}

        def mlforge(workers: int) -> tuple[Proc, str]:
            port = free_port()
            cmd = [
                str(BIN / "mlforge"),
                "serve",
                "--spec",
                str(spec_path),
                "--home",
                str(home),
                "--port",
                str(port),
                "--workers",
                str(workers),
            ]
            p = Proc(f"mlforge-w{workers}", cmd, mlforge_env, work / f"mlforge-w{workers}-{port}.log")
            procs.append(p)
            p.wait_ready(f"http://127.0.0.1:{port}/ready")
            return p, f"http://127.0.0.1:{port}/predict/{endpoint}"

        def mlflow(workers: int) -> tuple[Proc, str]:
            port = free_port()
            cmd = [
                str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{manifest.model}/{version}",
                "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "--workers", str(workers),
            ]  # fmt: skip
            p = Proc(f"mlflow-w{workers}", cmd, mlflow_env, work / f"mlflow-w{workers}-{port}.log")
            procs.append(p)
            p.wait_ready(f"http://127.0.0.1:{port}/ping", timeout=180)
            return p, f"http://127.0.0.1:{port}/invocations"

        served_requests = 0
        for workers in args.workers:
            for name, start, bodies in (
                ("mlforge", mlforge, mlforge_bodies),
                ("mlflow", mlflow, mlflow_bodies),
            ):
                if name == "mlflow" and args.skip_mlflow:
                    continue
                proc, url = start(workers)
                try:
                    warm(url, bodies)
                    if args.client == "wrk":
                        lr = load_wrk(
                            name, workers, url, bodies, args, proc, redis.pid if name == "mlforge" else None
                        )
                    else:
                        lr = load(name, workers, url, bodies, args, proc)
                    if name == "mlforge":
                        lr.server_p99_ms_at_most = server_p99(url.split("/predict/")[0])
                    sr = sequential(name, workers, url, bodies, args.sequential)
                finally:
                    proc.stop()
                    procs.remove(proc)
                if name == "mlforge":
                    served_requests += 300 + 50 + lr.requests - lr.failures + sr.requests - sr.failures
                results["load"].append(asdict(lr))
                results["sequential"].append(asdict(sr))
                print(
                    f"  {name} w{workers}: load {lr.throughput:,.0f} req/s p50 {lr.p50_ms} p99 {lr.p99_ms} ms "
                    f"({lr.requests} requests, {lr.failures} failed, server CPU {lr.server_cpu_ms_per_request} "
                    f"ms/request, client CPU {lr.client_cpu_s} s); sequential p50 {sr.p50_ms} p99 {sr.p99_ms} ms",
                    flush=True,
                )

        # hot swap under load: two new manifest revisions while the load runs
        workers = max(args.workers)
        proc, url = mlforge(workers)
        try:
            warm(url, mlforge_bodies)
            current = read_manifest(bench_storage, endpoint)
            assert current is not None
            written: list[int] = []

            def swapper() -> None:
                for color in ("green", "blue"):
                    time.sleep(args.duration / 3)
                    variants = [v.model_copy(update={"name": color}) for v in current.variants]
                    written.append(
                        write_manifest(
                            bench_storage, current.model_copy(update={"variants": variants})
                        ).revision
                    )

            t = threading.Thread(target=swapper)
            t.start()
            hs = load("mlforge", workers, url, mlforge_bodies, args, proc, parse=True)
            t.join()
        finally:
            proc.stop()
            procs.remove(proc)
        served_requests += 300 + hs.requests - hs.failures
        results["hot_swap"] = {**asdict(hs), "written_revisions": written}
        print(
            f"  hot swap w{workers}: {hs.requests} requests, {hs.failures} failed, revisions answered {hs.revisions}"
        )

        # the prediction log of every MLForge request (workers flushed on SIGTERM)
        today = datetime.now(UTC)
        logged = read_prediction_log(bench_storage, endpoint, today).height
        files = len(bench_storage.list(layout.prediction_log_prefix(endpoint)))
        results["log"] = {"rows": logged, "files": files, "successful_requests": served_requests}
        print(
            f"  prediction log: {logged:,} rows in {files} files for {served_requests:,} successful requests"
        )
    finally:
        for p in procs:
            p.stop()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)

    report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\nload: concurrency {args.concurrency}, {args.duration:g} s per run, ≤ {args.max_requests:,} requests\n"
    )
    print(
        "| server | workers | req/s | req/s per worker | p50 ms | p99 ms | failed | server CPU ms/request "
        "| req/s per server CPU-second | Redis CPU ms/request "
        "| server-side p99 ms | client CPU s | sequential p50 ms | sequential p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    seq = {(s["server"], s["workers"]): s for s in results["sequential"]}
    for r in results["load"]:
        s = seq[(r["server"], r["workers"])]
        side = f"≤ {r['server_p99_ms_at_most']:g}" if r["server_p99_ms_at_most"] else "-"
        print(
            f"| {r['server']} | {r['workers']} | {r['throughput']:,.0f} | {r['throughput'] / r['workers']:,.0f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['failures']} | {r['server_cpu_ms_per_request']:.3f} "
            f"| {1000 / r['server_cpu_ms_per_request'] if r['server_cpu_ms_per_request'] else 0:,.0f} "
            f"| {r.get('redis_cpu_ms_per_request', 0.0):.3f} "
            f"| {side} "
            f"| {r['client_cpu_s']:.1f} "
            f"| {s['p50_ms']:.2f} | {s['p99_ms']:.2f} |"
        )
    by = {(r["server"], r["workers"]): r for r in results["load"]}
    for w in args.workers:
        if ("mlflow", w) in by and ("mlforge", w) in by:
            ratio = by[("mlforge", w)]["throughput"] / by[("mlflow", w)]["throughput"]
            cpu = (
                by[("mlflow", w)]["server_cpu_ms_per_request"]
                / by[("mlforge", w)]["server_cpu_ms_per_request"]
            )
            print(
                f"\n{w} worker(s): throughput MLForge / MLflow {ratio:.1f}×; "
                f"server CPU per request MLflow / MLForge {cpu:.1f}×",
                end="",
            )
    print()
    hs = results["hot_swap"]
    if hs:
        print(
            f"\nhot swap ({hs['workers']} workers): {hs['requests']:,} requests, {hs['failures']} failed, "
            f"revisions written {hs['written_revisions']}, answered by revision {hs['revisions']}"
        )
    if results["log"]:
        lg = results["log"]
        print(
            f"prediction log: {lg['rows']:,} rows ({lg['files']} files) for {lg['successful_requests']:,} successful requests"
        )


if __name__ == "__main__":
    main()
