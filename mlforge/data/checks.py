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


@dataclass(frozen=True)
class Rule:
    """One rule the spec sets on a column: `bad` is true on the rows that break it."""

    check: str  # the check it belongs to: not_null or value_ranges
    column: str
    bad: pl.Expr
    what: str  # what a breaking value is, for messages


def column_rules(ds: DatasetSpec) -> list[Rule]:
    """The spec's rules per column, in spec order: required (not null), then [min, max]."""
    rules = []
    for c, s in ds.columns.items():
        if not s.nullable:
            rules.append(Rule("not_null", c, pl.col(c).is_null(), "is null (required)"))
        if s.min is not None or s.max is not None:
            lo = pl.col(c) < s.min if s.min is not None else pl.lit(False)
            hi = pl.col(c) > s.max if s.max is not None else pl.lit(False)
            rules.append(Rule("value_ranges", c, lo | hi, f"is outside [{s.min}, {s.max}]"))
    return rules


def first_violation(df: pl.DataFrame, ds: DatasetSpec) -> str | None:
    """The first broken rule, by column and row (1-based), with the value; None when all hold."""
    indexed = df.with_row_index("__row")
    for r in column_rules(ds):
        rows = indexed.filter(r.bad)["__row"]
        if len(rows):
            i = int(rows[0])
            return f"column '{r.column}' row {i + 1}: {df[r.column][i]!r} {r.what} ({len(rows)} bad value(s) in all)"
    return None


def _violations(df: pl.DataFrame, ds: DatasetSpec, check: str) -> dict[str, int]:
    counts = {r.column: int(df.select(r.bad.sum()).item() or 0) for r in column_rules(ds) if r.check == check}
    return {c: n for c, n in counts.items() if n}


def not_null(df: pl.DataFrame, ds: DatasetSpec) -> CheckOutcome:
    """Columns declared `nullable: false` have no nulls."""
    required = [c for c, s in ds.columns.items() if not s.nullable]
    bad = _violations(df, ds, "not_null")
    counts = {c: bad.get(c, 0) for c in required}
    desc = "no nulls in required columns" if not bad else f"nulls in required columns: {bad}"
    return CheckOutcome("not_null", not bad, desc, {"required_columns": required, "null_counts": counts})


def value_ranges(df: pl.DataFrame, ds: DatasetSpec) -> CheckOutcome:
    """Numeric columns stay within the [min, max] the spec declares."""
    bounds = {c: [s.min, s.max] for c, s in ds.columns.items() if s.min is not None or s.max is not None}
    violations = _violations(df, ds, "value_ranges")
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
