"""Synthetic transactions with the CDNOW schema, at any scale.

    uv run python benchmarks/gen_transactions.py --rows 10000000 --out /tmp/tx_10m.parquet

Columns and types are those `read_source` gives for the bundled CDNOW file:
`customer_id` (zero-padded string), `date` (date), `number_of_cds` (int ≥ 1),
`dollar_value` (float ≥ 0, two decimals). The shape is CDNOW-like:

- customers are one acquisition cohort (first purchase in the first `cohort_days` days, as the
  1997-Q1 cohort of CDNOW), each buying 1 + Poisson(λ) times with λ ~ Gamma (heterogeneous
  purchase rates, mean ≈ 2.95 purchases per customer as in CDNOW);
- repeat purchases spread over the rest of the period with activity decaying over time;
- spend per purchase is log-normal around a per-customer level (CDNOW: median ≈ $26,
  mean ≈ $36), a few purchases are $0; CDs grow with spend.

Rows come sorted by (date, customer_id) — the order `load_days` returns stored raw partitions in.
`generate(rows, seed)` is deterministic for a given (rows, seed).
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

START = date(1997, 1, 1)
SPAN_DAYS = 546  # 1997-01-01 .. 1998-06-30, the example project's partitions
MEAN_PURCHASES = 69_659 / 23_570  # CDNOW


def generate(
    rows: int,
    seed: int = 0,
    start: date = START,
    span_days: int = SPAN_DAYS,
    cohort_days: int = 84,
) -> pl.DataFrame:
    """`rows` synthetic purchases with the CDNOW schema, sorted by (date, customer_id)."""
    if rows <= 0:
        return pl.DataFrame(
            schema={
                "customer_id": pl.String,
                "date": pl.Date,
                "number_of_cds": pl.Int64,
                "dollar_value": pl.Float64,
            }
        )
    rng = np.random.default_rng(seed)
    # Customers: 1 + Poisson(λ) purchases, λ ~ Gamma(shape 0.5, mean MEAN_PURCHASES - 1).
    shape = 0.5
    est = int(rows / MEAN_PURCHASES * 1.1) + 16
    counts = np.empty(0, dtype=np.int64)
    while counts.sum() < rows:
        lam = rng.gamma(shape, (MEAN_PURCHASES - 1) / shape, size=est)
        counts = np.concatenate([counts, 1 + rng.poisson(lam)])
    cum = np.cumsum(counts)
    n_cust = int(np.searchsorted(cum, rows) + 1)
    counts = counts[:n_cust].copy()
    counts[-1] -= int(cum[n_cust - 1] - rows)  # trim the last customer to hit `rows` exactly
    cust = np.repeat(np.arange(n_cust, dtype=np.int64), counts)

    # Days: the first purchase in the cohort window, repeats after it with decaying activity.
    first = rng.integers(0, min(cohort_days, span_days), size=n_cust)
    first_of_row = np.repeat(first, counts)
    is_first = np.zeros(rows, dtype=bool)
    is_first[np.concatenate([[0], np.cumsum(counts)[:-1]])] = True
    remaining = (span_days - 1) - first_of_row
    u = rng.random(rows) ** 1.6  # more repeat purchases soon after acquisition
    day = np.where(is_first, first_of_row, first_of_row + np.floor(u * (remaining + 1)).astype(np.int64))
    day = np.minimum(day, span_days - 1)

    # Spend: log-normal around a per-customer level; a few $0 purchases; CDs grow with spend.
    level = rng.normal(np.log(26.0), 0.45, size=n_cust)
    spend = np.exp(np.repeat(level, counts) + rng.normal(0.0, 0.65, size=rows))
    spend[rng.random(rows) < 0.0012] = 0.0
    spend = np.minimum(np.round(spend, 2), 10_000.0)
    cds = np.minimum(1 + rng.poisson(spend / 20.0), 1000).astype(np.int64)

    order = np.lexsort((cust, day))
    width = max(5, len(str(n_cust)))
    start_ord = np.datetime64(start.isoformat(), "D")
    return pl.DataFrame(
        {
            "customer_id": pl.Series(cust[order] + 1).cast(pl.String).str.zfill(width),
            "date": pl.Series((start_ord + day[order]).astype("datetime64[D]")).cast(pl.Date),
            "number_of_cds": pl.Series(cds[order], dtype=pl.Int64),
            "dollar_value": pl.Series(spend[order], dtype=pl.Float64),
        }
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    t0 = time.perf_counter()
    df = generate(a.rows, a.seed)
    t1 = time.perf_counter()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(a.out)
    t2 = time.perf_counter()
    print(
        f"rows={df.height:,} customers={df['customer_id'].n_unique():,} "
        f"days={df['date'].min()}..{df['date'].max()} "
        f"mean_spend={df['dollar_value'].mean():.2f} mean_cds={df['number_of_cds'].mean():.2f}"
    )
    print(f"generate {t1 - t0:.2f} s, write {t2 - t1:.2f} s -> {a.out} ({a.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
