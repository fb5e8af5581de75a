"""The per-day snapshot implementation the range kernel replaced (filter + hash group-by per day).

Kept once, as the oracle the range kernel is tested against (tests/features/test_features_range.py) and as
the "old code" baseline of benchmarks/bench_offline.py. The universe (every entity with an event on or
before the day) and its lifetime features are computed here from scratch with one group-by over the
whole history up to the day, independently of the entity index's day-by-day fold.
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
    start = as_of - timedelta(days=view.read_days - 1)
    past = events.filter(pl.col(day) <= as_of)
    win = past.filter(pl.col(day) >= start)
    exprs: list[pl.Expr] = []
    lifetime: list[pl.Expr] = []
    for name, col, fn, n in _plan(view):
        if fn == "recency_last":
            lifetime.append((pl.lit(as_of) - pl.col(day).max()).dt.total_days().cast(pl.Float32).alias(name))
        elif fn == "tenure" or (fn == "recency_first" and view.lifetime):
            lifetime.append((pl.lit(as_of) - pl.col(day).min()).dt.total_days().cast(pl.Float32).alias(name))
        elif fn == "recency_first":
            exprs.append((pl.lit(as_of) - pl.col(day).min()).dt.total_days().cast(pl.Float32).alias(name))
        elif n is None and view.lifetime:
            lifetime.append(_agg(col, fn, name))
        elif n is None:
            exprs.append(_agg(col, fn, name))
        else:
            exprs.append(_agg(col, fn, name, where=pl.col(day) > (as_of - timedelta(days=n))))
    names = feature_names(view)
    universe = past.group_by(key).agg(lifetime) if lifetime else past.select(key).unique()
    if exprs and win.height:
        snap = universe.join(win.group_by(key).agg(exprs), on=key, how="left")
    else:
        snap = universe.with_columns(*[pl.lit(None, pl.Float32).alias(e.meta.output_name()) for e in exprs])
    fills = [pl.col(n).fill_null(0.0) for n, _, fn, _ in _plan(view) if fn in _FILL_ZERO]
    return (
        snap.with_columns(*fills, pl.lit(end_of(as_of)).cast(pl.Datetime("us")).alias(EVENT_TS))
        .select(key, EVENT_TS, *names)
        .sort(key)
    )
