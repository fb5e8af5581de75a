"""Online materialization: one daily partition (incremental) vs a full rewrite of every entity.

    uv run python benchmarks/bench_materialize.py
    uv run python benchmarks/bench_materialize.py --rows 300000 --repeats 5 --stores redis sqlite

On the example view `customer_activity` over synthetic CDNOW-shaped transactions
(benchmarks/gen_transactions.py), for day D (--day) and each store (a real redis-server started
like the test suite does, and the embedded SQLite store in a temporary file):

  the store first holds the online state as of D-1: the newest row of every entity seen so far
  (an entity's newest snapshot is the one of min(D-1, its last purchase + lookback - 1));

  incremental   what `online/<view>` does for partition D: write D's snapshot (its entities, with
                event timestamp = end of D); every row is newer than the stored one
  full rewrite  write the newest row of every entity as of D (D's snapshot plus the entities that
                left the lookback earlier, with their older timestamps)
  old replay    partition D-30 materialized again after D (a late backfill): the same write call,
                but the Lua guard (Redis) / the upsert's WHERE (SQLite) skips every row whose
                stored event timestamp is newer

Each write starts from the D-1 state (D's state for the replay), restored before every repeat;
only the `store.write` call is timed. Prints rows sent, rows written, seconds (median of
--repeats) and the ratio to the incremental write.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from gen_transactions import generate  # noqa: E402

from mlforge.config.spec import FeatureViewSpec, load_spec  # noqa: E402
from mlforge.features.online import RedisOnlineStore, SQLiteOnlineStore  # noqa: E402
from mlforge.features.refs import feature_names  # noqa: E402
from mlforge.features.snapshots import EVENT_TS, iter_snapshots  # noqa: E402

KEY, DAY, VIEW = "customer_id", "date", "customer_activity"


class Rows:
    """What one write call gets: ids, epoch-second timestamps, float64 values."""

    def __init__(self, frame: pl.DataFrame, names: list[str]) -> None:
        self.ids = frame[KEY].to_list()
        self.ts = (frame[EVENT_TS].cast(pl.Int64) // 1_000_000).to_numpy()
        self.values = frame.select(names).to_numpy().astype(np.float64)

    def __len__(self) -> int:
        return len(self.ids)


def newest_rows(view: FeatureViewSpec, events: pl.DataFrame, d: date) -> pl.DataFrame:
    """The online state as of `d`: per entity, its snapshot of min(d, last purchase + lookback - 1)."""
    last = events.filter(pl.col(DAY) <= d).group_by(KEY).agg(pl.col(DAY).max().alias("last"))
    newest = last.with_columns(
        pl.min_horizontal(pl.lit(d), pl.col("last") + pl.duration(days=view.lookback_days - 1)).alias("day")
    )
    days = sorted(newest["day"].unique().to_list())
    parts = []
    for day, snap in iter_snapshots(view, events, KEY, DAY, days):
        who = newest.filter(pl.col("day") == day).select(KEY)
        parts.append(snap.join(who, on=KEY, how="semi"))
    return pl.concat(parts).sort(KEY)


def main() -> None:
    p = argparse.ArgumentParser(description="incremental vs full online materialization")
    p.add_argument("--rows", type=int, default=300_000, help="synthetic transactions")
    p.add_argument("--day", type=date.fromisoformat, default=date(1998, 6, 30))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--stores", nargs="+", default=["redis", "sqlite"])
    a = p.parse_args()

    spec = load_spec(ROOT / "mlforge.yaml")
    view = spec.feature_view(VIEW)
    names = feature_names(view)
    ttl = int(timedelta(days=view.ttl_days).total_seconds())
    events = generate(a.rows, seed=2)
    d = a.day
    t0 = time.perf_counter()
    before = Rows(newest_rows(view, events, d - timedelta(days=1)), names)
    after = Rows(newest_rows(view, events, d), names)
    snaps = dict(iter_snapshots(view, events, KEY, DAY, [d - timedelta(days=30), d]))
    today = Rows(snaps[d], names)
    old = Rows(snaps[d - timedelta(days=30)], names)
    print(f"{a.rows:,} synthetic transactions, view {VIEW} ({len(names)} features), day {d}; "
          f"inputs prepared in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    print(f"state as of D-1: {len(before):,} entities; D's snapshot: {len(today):,}; "
          f"every entity as of D: {len(after):,}; D-30's snapshot: {len(old):,}")  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="mlforge-bench-mat-") as tmp:
        server = None
        try:
            for kind in a.stores:
                if kind == "redis":
                    from servers import start_redis

                    server = start_redis(Path(tmp) / "redis")
                    store: Any = RedisOnlineStore(server.url, "bench-mat")

                    def reset(state: Rows, store: Any = store) -> None:
                        store._redis.flushdb()
                        store.write(VIEW, state.ids, state.ts, state.values, ttl)
                else:
                    store = SQLiteOnlineStore(Path(tmp) / "online.db")

                    def reset(state: Rows, store: Any = store) -> None:
                        with store._conn() as c:
                            c.execute("DELETE FROM online")
                        store.write(VIEW, state.ids, state.ts, state.values, ttl)

                cases: list[tuple[str, Rows, Rows]] = [
                    ("incremental (partition D)", before, today),
                    ("full rewrite (every entity)", before, after),
                    ("old replay (partition D-30)", after, old),
                ]
                results = []
                for label, state, rows in cases:
                    secs, written = [], set()
                    for _ in range(a.repeats):
                        reset(state)
                        t = time.perf_counter()
                        n = store.write(VIEW, rows.ids, rows.ts, rows.values, ttl)
                        secs.append(time.perf_counter() - t)
                        written.add(n)
                    assert len(written) == 1, written
                    results.append((label, len(rows), written.pop(), statistics.median(secs)))
                base = results[0][3]
                print(f"\n[{kind}] median of {a.repeats}")
                print(
                    f"  {'':30s} {'rows sent':>10s} {'written':>10s} {'seconds':>9s} {'rows/s':>10s} {'x incr.':>8s}"
                )
                for label, sent, n, s in results:
                    print(f"  {label:30s} {sent:10,} {n:10,} {s:9.3f} {sent / s:10,.0f} {s / base:8.2f}")
                if server is not None:
                    store._redis.close()
                    server.stop()
                    server = None
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
