"""The per-day snapshot implementation the range kernel replaced (filter + hash group-by per day).

Kept once, as the oracle the range kernel is tested against (tests/features/test_features_range.py) and as
the "old code" baseline of benchmarks/bench_offline.py.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from mlforge.config.spec import FeatureViewSpec
from mlforge.features.refs import _plan, feature_names
from mlforge.features.snapshots import _FILL_ZERO, EVENT_TS, _agg
from mlforge.io.timeline import end_of


def legacy_snapshot(
    view: FeatureViewSpec, events: pl.DataFrame, as_of: date, key: str = "customer_id", day: str = "date"
) -> pl.DataFrame:
    """Snapshot of `view` as of `as_of`, computed from scratch for that one day."""
    start = as_of - timedelta(days=view.lookback_days - 1)
    win = events.filter(pl.col(day).is_between(start, as_of))
    exprs: list[pl.Expr] = []
    for name, col, fn, n in _plan(view):
        if fn == "recency_last":
            exprs.append((pl.lit(as_of) - pl.col(day).max()).dt.total_days().cast(pl.Float32).alias(name))
        elif fn == "recency_first":
            exprs.append((pl.lit(as_of) - pl.col(day).min()).dt.total_days().cast(pl.Float32).alias(name))
        elif n is None:
            exprs.append(_agg(col, fn, name))
        else:
            exprs.append(_agg(col, fn, name, where=pl.col(day) > (as_of - timedelta(days=n))))
    names = feature_names(view)
    snap = (
        win.group_by(key).agg(exprs)
        if win.height
        else pl.DataFrame(schema={key: events.schema[key], **{n: pl.Float32 for n in names}})
    )
    fills = [pl.col(n).fill_null(0.0) for n, _, fn, _ in _plan(view) if fn in _FILL_ZERO]
    return (
        snap.with_columns(*fills, pl.lit(end_of(as_of)).cast(pl.Datetime("us")).alias(EVENT_TS))
        .select(key, EVENT_TS, *names)
        .sort(key)
    )
