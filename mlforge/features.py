"""Feature views: snapshots of transformations per entity, as of the end of a day.

A snapshot as of day D reads only events on or before D (within the view's lookback) and carries
`event_timestamp` = the end of D, from when its values are known.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from mlforge.spec import (
    AggregateTransform,
    FeatureViewSpec,
    ProjectSpec,
    RecencyTransform,
    WindowTransform,
)
from mlforge.timeline import end_of

EVENT_TS = "event_timestamp"
_FILL_ZERO = {"count", "sum"}


def _agg(col: str, fn: str, name: str, where: pl.Expr | None = None) -> pl.Expr:
    c = pl.col(col) if where is None else pl.col(col).filter(where)
    expr = {
        "sum": c.sum(),
        "mean": c.mean(),
        "std": c.std(),
        "count": c.count(),
        "min": c.min(),
        "max": c.max(),
    }[fn]
    return expr.cast(pl.Float32).alias(name)


def _plan(view: FeatureViewSpec) -> list[tuple[str, str, str, int | None]]:
    """(feature name, column, function, window days or None) in a stable order, deduplicated."""
    out: list[tuple[str, str, str, int | None]] = []
    seen: set[str] = set()

    def add(name: str, col: str, fn: str, window: int | None) -> None:
        if name not in seen:
            seen.add(name)
            out.append((name, col, fn, window))

    for t in view.transformations:
        if isinstance(t, RecencyTransform):
            add("days_since_last", "", "recency_last", None)
            add("days_since_first", "", "recency_first", None)
        elif isinstance(t, AggregateTransform):
            for fn in t.functions:
                for col in t.columns:
                    add("event_count" if fn == "count" else f"{col}_{fn}", col, fn, None)
        elif isinstance(t, WindowTransform):
            for n in t.windows_days:
                for fn in t.functions:
                    for col in t.columns:
                        add(f"event_count_{n}d" if fn == "count" else f"{col}_{fn}_{n}d", col, fn, n)
    return out


def feature_names(view: FeatureViewSpec) -> list[str]:
    """The view's features, in the order models and the online store use."""
    return [p[0] for p in _plan(view)]


def service_features(spec: ProjectSpec, service: str) -> list[tuple[str, str]]:
    """(view, feature) pairs a feature service reads, in order."""
    return resolve_refs(spec, spec.feature_service(service).features)


def resolve_refs(spec: ProjectSpec, refs: list[str]) -> list[tuple[str, str]]:
    """(view, feature) pairs of 'view:feature' / 'view:*' references, in order; unknown ones raise."""
    from mlforge.errors import MLForgeError

    out: list[tuple[str, str]] = []
    for ref in refs:
        view, sep, feat = ref.partition(":")
        if not sep:
            raise MLForgeError(f"feature reference '{ref}' must look like 'view:feature' or 'view:*'")
        names = feature_names(spec.feature_view(view))
        if feat != "*" and feat not in names:
            raise MLForgeError(f"feature view '{view}' has no feature '{feat}' (features: {names})")
        out.extend((view, n) for n in (names if feat == "*" else [feat]))
    return out


def compute_snapshot(
    view: FeatureViewSpec, events: pl.DataFrame, entity_key: str, day_col: str, as_of: date
) -> pl.DataFrame:
    """Features of every entity with an event in the lookback window ending at `as_of`.

    `events` may hold more history than needed; rows after `as_of` are ignored, so the result can
    never depend on the future.
    """
    start = as_of - timedelta(days=view.lookback_days - 1)
    win = events.filter(pl.col(day_col).is_between(start, as_of))
    exprs: list[pl.Expr] = []
    for name, col, fn, n in _plan(view):
        if fn == "recency_last":
            exprs.append((pl.lit(as_of) - pl.col(day_col).max()).dt.total_days().cast(pl.Float32).alias(name))
        elif fn == "recency_first":
            exprs.append((pl.lit(as_of) - pl.col(day_col).min()).dt.total_days().cast(pl.Float32).alias(name))
        elif n is None:
            exprs.append(_agg(col, fn, name))
        else:
            # A filtered aggregate restricts it to the last n days without a second group-by.
            exprs.append(_agg(col, fn, name, where=pl.col(day_col) > (as_of - timedelta(days=n))))
    names = feature_names(view)
    snap = (
        win.group_by(entity_key).agg(exprs)
        if win.height
        else pl.DataFrame(schema={entity_key: events.schema[entity_key], **{n: pl.Float32 for n in names}})
    )
    fills = [pl.col(n).fill_null(0.0) for n, _, fn, _ in _plan(view) if fn in _FILL_ZERO]
    return (
        snap.with_columns(*fills, pl.lit(end_of(as_of)).cast(pl.Datetime("us")).alias(EVENT_TS))
        .select(entity_key, EVENT_TS, *names)
        .sort(entity_key)
    )
