"""The cost of one new daily partition, early and late in the history, and of the whole universe.

    uv run python benchmarks/bench_incremental.py                  # CDNOW (the example)
    uv run python benchmarks/bench_incremental.py --rows 10000000  # the 10 M-row synthetic set

What a daily run does for a new day D: `entities/<dataset>` folds D's rows into the stored
index(D-1) (:func:`mlforge.features.entities.fold`), and `features/<view>` computes the snapshot
of D from the lookback's rows and index(D) (:func:`mlforge.features.snapshots.iter_snapshots`).
Both are timed for a day early in the history (day 60) and for the last one, against the
baseline a platform without the index pays: folding the universe from the whole history up to D
(a full rescan, :func:`index_as_of`). Ratios are within this process and run, so machine noise
mostly cancels. Also printed: the snapshot's size in rows and parquet bytes, and the online write
of the whole universe (embedded store), per entity.
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

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from mlforge.config.spec import load_spec  # noqa: E402
from mlforge.data.sources import read_source  # noqa: E402
from mlforge.features.entities import empty_index, fold, index_as_of, iter_index, numeric_columns  # noqa: E402
from mlforge.features.online import SQLiteOnlineStore, load_latest  # noqa: E402
from mlforge.features.refs import feature_names  # noqa: E402
from mlforge.features.snapshots import iter_snapshots  # noqa: E402
from mlforge.io.storage import parquet_bytes  # noqa: E402

KEY, DAY = "customer_id", "date"


def best(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=0, help="synthetic rows (0: the CDNOW file)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    spec = load_spec(REPO / "mlforge.yaml")
    ds = spec.dataset("transactions")
    view = spec.feature_view("customer_activity")
    if args.rows:
        from gen_transactions import generate

        events = generate(args.rows, seed=1)
        label = f"synthetic {args.rows:,} rows"
    else:
        events = read_source(ds, str(REPO / ds.source.path))
        label = f"CDNOW {events.height:,} rows"
    events = events.sort(DAY, KEY)
    cols = numeric_columns(ds)
    first_day, last_day = events[DAY].min(), events[DAY].max()
    assert isinstance(first_day, date) and isinstance(last_day, date)
    span = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]

    probes = (span[59], span[-1])
    keep = {d + timedelta(days=k) for d in probes for k in (-1, 0)}
    t0 = time.perf_counter()
    # only the days measured are kept (a 10 M-row universe is ~3 M entities per day's index)
    indexes = {
        d: idx
        for d, idx in iter_index(empty_index(KEY, pl.String(), cols), events, KEY, DAY, span, cols)
        if d in keep
    }
    backfill = time.perf_counter() - t0
    print(f"{label}, {len(span)} days, {events[KEY].n_unique():,} entities")
    print(
        f"  backfill of the entity index over every day: {backfill:.2f} s ({backfill / len(span) * 1e3:.1f} ms/day)"
    )

    rows_of = {d: g for (d,), g in events.partition_by(DAY, as_dict=True, maintain_order=True).items()}
    print(f"  {'new day':>12} {'history':>9} {'fold':>9} {'snapshot':>9} {'rescan':>9} {'rescan/new':>10}")
    for d in probes:
        prev = indexes[d - timedelta(days=1)]
        day_rows = rows_of.get(d, events.clear())
        lookback = events.filter(pl.col(DAY).is_between(d - timedelta(days=view.read_days - 1), d))
        t_fold = best(lambda p=prev, r=day_rows, d=d: fold(p, r, KEY, d, cols), args.repeat)
        t_snap = best(
            lambda lb=lookback, d=d: list(iter_snapshots(view, lb, KEY, DAY, [d], indexes.__getitem__)),
            args.repeat,
        )
        past = events.filter(pl.col(DAY) <= d)
        t_rescan = best(lambda p=past, d=d: index_as_of(p, KEY, DAY, [d], cols), max(1, args.repeat // 2))
        new = t_fold + t_snap
        print(
            f"  {d!s:>12} {(d - first_day).days + 1:>6} d {t_fold * 1e3:>7.1f}ms {t_snap * 1e3:>7.1f}ms "
            f"{t_rescan * 1e3:>7.0f}ms {t_rescan / new:>9.1f}x"
        )
        assert fold(prev, day_rows, KEY, d, cols).equals(indexes[d])

    ((_, snap),) = iter_snapshots(
        view,
        events.filter(pl.col(DAY) > span[-1] - timedelta(days=view.read_days)),
        KEY,
        DAY,
        [span[-1]],
        indexes.__getitem__,
    )
    size = len(parquet_bytes(snap))
    print(
        f"  snapshot of {span[-1]}: {snap.height:,} rows (the universe), {size / 1e6:.2f} MB parquet, "
        f"{size / snap.height:.0f} B/entity"
    )
    active = snap.filter(pl.col("event_count") > 0).height
    print(f"  active in the {view.lookback_days}-day lookback: {active:,} ({active / snap.height:.0%})")
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteOnlineStore(Path(tmp) / "online.db")
        names = feature_names(view)
        t_all = best(lambda: load_latest(store, view.name, snap, KEY, names, view.ttl_days), 3)
        only = snap.filter(pl.col("event_count") > 0)
        t_act = best(lambda: load_latest(store, view.name, only, KEY, names, view.ttl_days), 3)
    print(
        f"  online write (embedded): universe {t_all:.2f} s ({t_all / snap.height * 1e6:.1f} us/entity), "
        f"active only {t_act:.2f} s: universe/active {t_all / t_act:.2f}x for {snap.height / max(active, 1):.2f}x the rows"
    )


if __name__ == "__main__":
    main()
