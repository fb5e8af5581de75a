"""Data-quality checks as pure functions. Dagster asset checks wrap them; tests call them directly.

Each check tests one property and reports its threshold, so the UI can show why it failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import polars as pl

from mlforge.config.spec import DatasetSpec


@dataclass(frozen=True)
class CheckOutcome:
    """Result of one check: passed or not, a one-line description, metadata for the UI."""

    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def not_null(df: pl.DataFrame, ds: DatasetSpec) -> CheckOutcome:
    """Columns declared `nullable: false` have no nulls."""
    required = [c for c, s in ds.columns.items() if not s.nullable]
    counts = {c: int(df[c].null_count()) for c in required}
    bad = {c: n for c, n in counts.items() if n}
    desc = "no nulls in required columns" if not bad else f"nulls in required columns: {bad}"
    return CheckOutcome("not_null", not bad, desc, {"required_columns": required, "null_counts": counts})


def value_ranges(df: pl.DataFrame, ds: DatasetSpec) -> CheckOutcome:
    """Numeric columns stay within the [min, max] the spec declares."""
    violations: dict[str, int] = {}
    bounds: dict[str, list[float | None]] = {}
    for c, s in ds.columns.items():
        if s.min is None and s.max is None:
            continue
        bounds[c] = [s.min, s.max]
        expr = pl.lit(False)
        if s.min is not None:
            expr = expr | (pl.col(c) < s.min)
        if s.max is not None:
            expr = expr | (pl.col(c) > s.max)
        n = int(df.select(expr.sum()).item() or 0)
        if n:
            violations[c] = n
    desc = "all values within range" if not violations else f"out-of-range values: {violations}"
    return CheckOutcome("value_ranges", not violations, desc, {"bounds": bounds, "violations": violations})


def unique_keys(df: pl.DataFrame, keys: list[str]) -> CheckOutcome:
    """No two rows share the same key."""
    dupes = df.height - df.select(keys).n_unique() if df.height else 0
    return CheckOutcome(
        "unique_keys",
        dupes == 0,
        "keys are unique" if dupes == 0 else f"{dupes} duplicate key(s) on {keys}",
        {"keys": keys, "duplicates": dupes},
    )


def no_future_data(
    snapshot: pl.DataFrame, as_of: date, timestamp_col: str = "event_timestamp"
) -> CheckOutcome:
    """A snapshot as of `as_of` carries no timestamp past the end of that day and no negative recency.

    A negative `days_since_last` can only come from reading an event after the snapshot day.
    """
    from mlforge.io.timeline import end_of

    limit = end_of(as_of)
    late = int(snapshot.filter(pl.col(timestamp_col) > limit).height)
    negative = (
        int(snapshot.filter(pl.col("days_since_last") < 0).height)
        if "days_since_last" in snapshot.columns
        else 0
    )
    ok = late == 0 and negative == 0
    desc = (
        f"no data after {as_of}"
        if ok
        else f"{late} row(s) stamped after {as_of}, {negative} negative recency"
    )
    return CheckOutcome(
        "no_future_data", ok, desc, {"as_of": str(as_of), "late_rows": late, "negative_recency": negative}
    )
