"""A drift simulator: the bundled history with drift injected from a given day.

Two kinds of drift a churn model meets in practice, both from `drift_from` on:

- **shifted spend**: every purchase is worth `spend_factor` times as much;
- **a new customer segment**: `new_customers` customers the history has never seen, who buy
  often and in bulk (several purchases of several items in the first weeks).

Rows before `drift_from` are untouched, so clean days stay clean and a model trained on them is
the same model it would be without the simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from mlforge.config.spec import DatasetSpec
from mlforge.io.storage import LocalStorage


@dataclass(frozen=True)
class DriftScenario:
    """What to inject and from when."""

    drift_from: date
    spend_factor: float = 3.0
    new_customers: int = 6000
    purchases_per_new_customer: int = 4
    days_of_new_purchases: int = 21
    seed: int = 7


def inject_drift(frame: pl.DataFrame, ds: DatasetSpec, key: str, scenario: DriftScenario) -> pl.DataFrame:
    """`frame` (a source typed by `read_source`, entity column `key`) with the scenario's drift."""
    ts = ds.event_time.column
    amount, count = _numeric_columns(ds)
    on_or_after = pl.col(ts).cast(pl.Date) >= scenario.drift_from
    upper = ds.columns[amount].max
    shifted = frame.with_columns(
        pl.when(on_or_after)
        .then((pl.col(amount) * scenario.spend_factor).clip(upper_bound=upper))
        .otherwise(pl.col(amount))
        .alias(amount)
    )
    rng = np.random.default_rng(scenario.seed)
    n, k = scenario.new_customers, scenario.purchases_per_new_customer
    width = max(len(str(v)) for v in frame[key].head(1000).to_list()) + 1
    ids = [f"9{i:0{width - 1}d}" for i in range(n)]
    # every new customer buys on the first drifted day, then k-1 more times within the window
    offsets = np.concatenate(
        [np.zeros((n, 1), int), rng.integers(0, scenario.days_of_new_purchases, (n, k - 1))], axis=1
    ).ravel()
    days = [scenario.drift_from + timedelta(days=int(o)) for o in offsets]
    new = pl.DataFrame(
        {
            key: np.repeat(ids, k),
            ts: pl.Series(days, dtype=pl.Date).cast(frame.schema[ts]),
            count: rng.integers(3, 12, n * k),
            amount: np.minimum(rng.gamma(4.0, 45.0, n * k).round(2), upper or np.inf),
        }
    ).select(frame.columns)
    return pl.concat([shifted, new.cast(frame.schema)]).sort(ts, key, maintain_order=True)


def write_whitespace(frame: pl.DataFrame, ds: DatasetSpec, path: Path) -> Path:
    """Write `frame` in the whitespace format the CDNOW source uses (atomically)."""
    ts = ds.event_time.column
    fmt = ds.event_time.format or "%Y-%m-%d"
    out = frame.with_columns(pl.col(ts).dt.strftime(fmt))
    LocalStorage(path.parent).write_bytes(path.name, out.write_csv(separator=" ").encode())
    return path


def _numeric_columns(ds: DatasetSpec) -> tuple[str, str]:
    """(the money column, the count column) of a purchases dataset."""
    floats = [c for c, s in ds.columns.items() if s.type == "float"]
    ints = [c for c, s in ds.columns.items() if s.type == "int"]
    if not floats or not ints:
        raise ValueError(f"dataset {ds.name}: the simulator needs a float (spend) and an int (count) column")
    return floats[0], ints[0]
