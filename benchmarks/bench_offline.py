"""Offline feature computation: MLForge's snapshot code vs a hand-written DuckDB query.

    uv run python benchmarks/bench_offline.py                       # 1 M and 10 M rows
    uv run python benchmarks/bench_offline.py --rows 1000000 --repeats 3

The example view `customer_activity` (mlforge.yaml: recency; count/sum/mean/max of dollar_value
and number_of_cds over a 365-day lookback; count/sum of dollar_value over 30/90/180 days) over
synthetic CDNOW-shaped transactions (benchmarks/gen_transactions.py), two tasks:

  single  one snapshot as of --as-of (the whole data set is passed; rows after it are ignored)
  range   --days consecutive daily snapshots ending at --as-of, delivered one polars frame per
          day sorted by customer (what a backfill run writes)

Variants (all start from the data in memory and deliver polars frames):

  mlforge         compute_snapshot / iter_snapshots (mlforge/features.py)
  legacy          the code before this benchmark: per day, filter the whole frame, hash group-by
  duckdb          hand-written SQL on a native DuckDB table: GROUP BY with FILTER clauses
                  (range: the same query once per day)
  duckdb_join     range only: one query, days JOIN events ON date BETWEEN d-364 AND d, GROUP BY

Time: the variants run alternately in this process, --repeats times; medians and the median of
the per-repeat ratios against the best DuckDB variant are printed. Memory: each variant runs once
more in a fresh child process that loads the data and runs it; its peak RSS (os.wait4 rusage) is
compared with the DuckDB child's. Correctness: MLForge's snapshots are checked against DuckDB's
(same entities, every value within 1e-3 relative) for the single snapshot and every day of the
range.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gen_transactions import generate  # noqa: E402
from legacy_features import legacy_snapshot  # noqa: E402

from mlforge.config.spec import FeatureViewSpec, load_spec  # noqa: E402
from mlforge.features.refs import feature_names  # noqa: E402
from mlforge.features.snapshots import EVENT_TS, compute_snapshot, iter_snapshots  # noqa: E402
from mlforge.io.timeline import end_of  # noqa: E402

KEY, DAY = "customer_id", "date"


def example_view() -> FeatureViewSpec:
    return load_spec(ROOT / "mlforge.yaml").feature_view("customer_activity")


# --- DuckDB: the hand-written query -------------------------------------------------------

_SELECT = """
  (d - max(date))::FLOAT AS days_since_last,
  (d - min(date))::FLOAT AS days_since_first,
  count(dollar_value)::FLOAT AS event_count,
  sum(dollar_value)::FLOAT AS dollar_value_sum,
  sum(number_of_cds)::FLOAT AS number_of_cds_sum,
  avg(dollar_value)::FLOAT AS dollar_value_mean,
  avg(number_of_cds)::FLOAT AS number_of_cds_mean,
  max(dollar_value)::FLOAT AS dollar_value_max,
  max(number_of_cds)::FLOAT AS number_of_cds_max,
  count(dollar_value) FILTER (WHERE date > d - 30)::FLOAT AS event_count_30d,
  coalesce(sum(dollar_value) FILTER (WHERE date > d - 30), 0)::FLOAT AS dollar_value_sum_30d,
  count(dollar_value) FILTER (WHERE date > d - 90)::FLOAT AS event_count_90d,
  coalesce(sum(dollar_value) FILTER (WHERE date > d - 90), 0)::FLOAT AS dollar_value_sum_90d,
  count(dollar_value) FILTER (WHERE date > d - 180)::FLOAT AS event_count_180d,
  coalesce(sum(dollar_value) FILTER (WHERE date > d - 180), 0)::FLOAT AS dollar_value_sum_180d
"""


def sql_single(as_of: date) -> str:
    return f"""
SELECT customer_id, {_SELECT.replace("d - ", f"DATE '{as_of}' - ")}
FROM events
WHERE date BETWEEN DATE '{as_of}' - 364 AND DATE '{as_of}'
GROUP BY customer_id
ORDER BY customer_id
"""


def sql_range_join(first: date, last: date) -> str:
    return f"""
WITH days AS (
  SELECT CAST(t.d AS DATE) AS d FROM range(DATE '{first}', DATE '{last}' + INTERVAL 1 DAY, INTERVAL 1 DAY) t(d)
)
SELECT d AS snapshot_day, customer_id, {_SELECT}
FROM days JOIN events ON events.date BETWEEN d - 364 AND d
GROUP BY d, customer_id
ORDER BY d, customer_id
"""


def duckdb_frame(tbl, as_of: date) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    """A DuckDB result as the snapshot frame MLForge delivers (same columns and types)."""
    df = tbl if isinstance(tbl, pl.DataFrame) else pl.from_arrow(tbl)
    assert isinstance(df, pl.DataFrame)
    return df.select(
        KEY, pl.lit(end_of(as_of)).cast(pl.Datetime("us")).alias(EVENT_TS), pl.exclude(KEY, "snapshot_day")
    )


def duckdb_connect(df: pl.DataFrame):  # type: ignore[no-untyped-def]
    """An in-memory DuckDB with the events as a native table (its fastest input)."""
    import duckdb

    con = duckdb.connect()
    arrow = df.to_arrow()  # noqa: F841  (DuckDB reads the local variable by name)
    con.execute("CREATE TABLE events AS SELECT * FROM arrow")
    return con


# --- the variants -------------------------------------------------------------------------


def legacy_compute_snapshot(view: FeatureViewSpec, events: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """compute_snapshot as it was before the range kernel (git 5beca36)."""
    return legacy_snapshot(view, events, as_of, KEY, DAY)


class Task:
    """The data, the view and the days; each variant returns (rows delivered, frames or None)."""

    def __init__(self, df: pl.DataFrame, as_of: date, n_days: int, need_duckdb: bool = True) -> None:
        self.df = df
        self.view = example_view()
        self.as_of = as_of
        self.days = [as_of - timedelta(days=n_days - 1 - i) for i in range(n_days)]
        self.con = duckdb_connect(df) if need_duckdb else None

    # single snapshot
    def single_mlforge(self, keep: bool = False) -> tuple[int, list[pl.DataFrame] | None]:
        s = compute_snapshot(self.view, self.df, KEY, DAY, self.as_of)
        return s.height, [s] if keep else None

    def single_legacy(self, keep: bool = False) -> tuple[int, list[pl.DataFrame] | None]:
        s = legacy_compute_snapshot(self.view, self.df, self.as_of)
        return s.height, [s] if keep else None

    def single_duckdb(self, keep: bool = False) -> tuple[int, list[pl.DataFrame] | None]:
        s = duckdb_frame(self.con.sql(sql_single(self.as_of)).to_arrow_table(), self.as_of)
        return s.height, [s] if keep else None

    # range of daily snapshots; each day's frame is handed on (dropped) before the next
    def range_mlforge(self, keep: bool = False) -> tuple[int, list[pl.DataFrame] | None]:
        rows, out = 0, []
        for _, s in iter_snapshots(self.view, self.df, KEY, DAY, self.days):
            rows += s.height
            if keep:
                out.append(s)
        return rows, out if keep else None

    def range_legacy(self, keep: bool = False) -> tuple[int, list[pl.DataFrame] | None]:
        rows, out = 0, []
        for d in self.days:
            s = legacy_compute_snapshot(self.view, self.df, d)
            rows += s.height
            if keep:
                out.append(s)
        return rows, out if keep else None

    def range_duckdb(self, keep: bool = False) -> tuple[int, list[pl.DataFrame] | None]:
        rows, out = 0, []
        for d in self.days:
            s = duckdb_frame(self.con.sql(sql_single(d)).to_arrow_table(), d)
            rows += s.height
            if keep:
                out.append(s)
        return rows, out if keep else None

    def range_duckdb_join(self, keep: bool = False) -> tuple[int, list[pl.DataFrame] | None]:
        rows, out = 0, []
        reader = self.con.sql(sql_range_join(self.days[0], self.days[-1])).to_arrow_reader(1 << 20)
        pending: list[pl.DataFrame] = []

        def flush() -> None:
            nonlocal rows
            if pending:
                day_frame = pl.concat(pending)
                d = day_frame["snapshot_day"][0]
                s = duckdb_frame(day_frame, d)
                rows += s.height
                if keep:
                    out.append(s)
                pending.clear()

        for batch in reader:
            b = pl.from_arrow(batch)
            assert isinstance(b, pl.DataFrame)
            for (_d,), part in b.group_by("snapshot_day", maintain_order=True):
                if pending and pending[0]["snapshot_day"][0] != _d:
                    flush()
                pending.append(part)
        flush()
        return rows, out if keep else None


VARIANTS = {
    "single": ["mlforge", "legacy", "duckdb"],
    "range": ["mlforge", "legacy", "duckdb", "duckdb_join"],
}


def run_variant(task: Task, kind: str, variant: str) -> Callable[..., tuple[int, list[pl.DataFrame] | None]]:
    return getattr(task, f"{kind}_{variant}")


# --- correctness ----------------------------------------------------------------------------


def assert_close(ours: pl.DataFrame, theirs: pl.DataFrame, names: list[str], what: str) -> None:
    """Same entities in the same order, same timestamps, every value within 1e-3 relative."""
    assert ours.columns == theirs.columns, (what, ours.columns, theirs.columns)
    assert ours[KEY].to_list() == theirs[KEY].to_list(), f"{what}: entities differ"
    assert ours[EVENT_TS].equals(theirs[EVENT_TS]), f"{what}: timestamps differ"
    for n in names:
        a = ours[n].to_numpy().astype(np.float64)
        b = theirs[n].to_numpy().astype(np.float64)
        same_nan = np.isnan(a) == np.isnan(b)
        ok = same_nan & (np.isnan(a) | (np.abs(a - b) <= 1e-3 * np.maximum(np.abs(a), np.abs(b))))
        assert ok.all(), f"{what}: {n} differs in {int((~ok).sum())} rows, e.g. {ours.filter(~ok).head(3)}"


def verify(task: Task, join_max_rows: int) -> str:
    names = feature_names(task.view)
    _, ours = task.single_mlforge(keep=True)
    _, theirs = task.single_duckdb(keep=True)
    assert ours is not None and theirs is not None
    assert_close(ours[0], theirs[0], names, f"single {task.as_of}")
    checked = 0
    for d, s in iter_snapshots(task.view, task.df, KEY, DAY, task.days):
        ref = duckdb_frame(task.con.sql(sql_single(d)).to_arrow_table(), d)
        assert_close(s, ref, names, f"range day {d}")
        checked += s.height
    msg = f"verified: single {ours[0].height:,} rows and {len(task.days)} range days ({checked:,} rows) equal DuckDB's"
    if task.df.height <= join_max_rows:  # the one-query range result is held in full to compare it
        _, joined = task.range_duckdb_join(keep=True)
        assert joined is not None and len(joined) == len(task.days)
        for (d, s), ref in zip(iter_snapshots(task.view, task.df, KEY, DAY, task.days), joined, strict=True):
            assert_close(s, ref, names, f"range-join day {d}")
        msg += " (per-day queries and the one range-join query)"
    return msg


# --- measuring ------------------------------------------------------------------------------


def load(rows: int, data_dir: Path, seed: int) -> pl.DataFrame:
    path = data_dir / f"tx_{rows}_{seed}.parquet"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        generate(rows, seed).write_parquet(path)
    return pl.read_parquet(path)


def child_main(a: argparse.Namespace) -> None:
    """One variant once, in this fresh process (its peak RSS is the parent's measurement)."""
    kind, variant = a.child.split(":")
    df = load(a.rows, a.data_dir, a.seed)
    if variant == "load":
        print("rows", df.height, "peak_rss_mb", vm_hwm_mb())
        return
    task = Task(df, a.as_of, a.days, need_duckdb=variant.startswith("duckdb"))
    if variant.startswith("duckdb"):
        del df, task.df  # DuckDB works on its own table; the polars copy is not part of its footprint
        gc.collect()
    rows, _ = run_variant(task, kind, variant)()
    print("rows", rows, "peak_rss_mb", vm_hwm_mb())


def vm_hwm_mb() -> float:
    """This process's peak RSS (VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_rss_mb(args: list[str]) -> float:
    """Peak RSS of a fresh child process running this script with `args`.

    The child reports its own VmHWM: the rusage ru_maxrss of a child (os.wait4 or
    RUSAGE_CHILDREN) starts from the parent's RSS at fork on Linux, so with a parent holding
    gigabytes of data it would measure the parent.
    """
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed: {out.stdout}{out.stderr}")
    return float(out.stdout.split("peak_rss_mb")[1].split()[0])


def main() -> None:
    p = argparse.ArgumentParser(description="MLForge snapshots vs hand-written DuckDB SQL")
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--days", type=int, default=30, help="length of the range of daily snapshots")
    p.add_argument("--as-of", type=date.fromisoformat, default=date(1998, 6, 30))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=Path("/tmp/mlforge-bench"))
    p.add_argument("--skip", nargs="*", default=[], help="variants to leave out, e.g. range:legacy")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument(
        "--join-max-rows",
        type=int,
        default=2_000_000,
        help="run range:duckdb_join only up to this many rows (it peaks at ~17 GB at 10 M)",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        a.rows = a.rows[0]
        child_main(a)
        return

    print(f"polars {pl.__version__}, duckdb {__import__('duckdb').__version__}, {os.cpu_count()} cores")
    results: dict[tuple[int, str, str], float] = {}
    for rows in a.rows:
        df = load(rows, a.data_dir, a.seed)
        task = Task(df, a.as_of, a.days)
        print(
            f"\n=== {rows:,} rows, {df[KEY].n_unique():,} customers; as of {a.as_of}, range {a.days} days ==="
        )
        print(verify(task, a.join_max_rows))
        for kind, variants in VARIANTS.items():
            variants = [v for v in variants if f"{kind}:{v}" not in a.skip]
            if rows > a.join_max_rows:
                variants = [v for v in variants if v != "duckdb_join"]
            times: dict[str, list[float]] = {v: [] for v in variants}
            out_rows: dict[str, int] = {}
            for rep in range(a.repeats):
                order = variants if rep % 2 == 0 else variants[::-1]  # alternate to spread drift
                for v in order:
                    gc.collect()
                    t0 = time.perf_counter()
                    n, _ = run_variant(task, kind, v)()
                    times[v].append(time.perf_counter() - t0)
                    out_rows[v] = n
            assert len(set(out_rows.values())) == 1, out_rows
            floor = min(
                (v for v in variants if v.startswith("duckdb")), key=lambda v: statistics.median(times[v])
            )
            print(f"\n[{kind}] {out_rows[floor]:,} snapshot rows; floor = {floor}; medians of {a.repeats}")
            for v in variants:
                med = statistics.median(times[v])
                ratio = statistics.median(t / f for t, f in zip(times[v], times[floor], strict=True))
                results[(rows, kind, v)] = med
                print(
                    f"  {v:12s} {med:8.3f} s   x{ratio:5.2f} vs {floor}   (min {min(times[v]):.3f}, max {max(times[v]):.3f})"
                )
            if not a.no_memory:
                base = peak_rss_mb(
                    ["--child", f"{kind}:load", "--rows", str(rows), "--data-dir", str(a.data_dir)]
                )
                mem = {}
                for v in variants:
                    mem[v] = peak_rss_mb(
                        ["--child", f"{kind}:{v}", "--rows", str(rows), "--days", str(a.days),
                         "--as-of", a.as_of.isoformat(), "--data-dir", str(a.data_dir), "--seed", str(a.seed)]
                    )  # fmt: skip
                mfloor = min((v for v in variants if v.startswith("duckdb")), key=lambda v: mem[v])
                print(f"  peak RSS (fresh process each; loading the data alone: {base:.0f} MB)")
                for v in variants:
                    print(f"  {v:12s} {mem[v]:8.0f} MB   x{mem[v] / mem[mfloor]:5.2f} vs {mfloor}")
        del task, df
        gc.collect()
    if len(a.rows) > 1:
        lo, hi = min(a.rows), max(a.rows)
        print(f"\ngrowth {lo:,} -> {hi:,} rows (x{hi / lo:.0f} data): time ratio per variant")
        for (rows, kind, v), t in sorted(results.items()):
            if rows == hi and (lo, kind, v) in results:
                print(f"  {kind:6s} {v:12s} x{t / results[(lo, kind, v)]:.1f}")


if __name__ == "__main__":
    main()
