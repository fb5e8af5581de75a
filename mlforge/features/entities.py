"""The entity index of a dataset: every entity seen up to a day, with its lifetime statistics.

``index(D) = fold(index(D - 1), rows of day D)``: a day costs O(entities + that day's rows),
however long the history is. The index is the universe a model scores (every entity known by D,
active in the lookback or not) and the source of the lifetime features: recency (days since the
last event), tenure (days since the first) and the aggregates of a ``lookback_days: all`` view.

Columns: the join key, ``first_day``, ``last_day``, ``event_rows``, and for every numeric column
``c`` of the dataset ``c__count`` (non-null values), ``c__sum``, ``c__sumsq``, ``c__min``,
``c__max`` (float64). Rows are sorted by the join key. Only rows on or before D ever enter
index(D), so it can never depend on the future.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date

import polars as pl

from mlforge.config.spec import DatasetSpec
from mlforge.io import layout, timeline
from mlforge.io.storage import Storage, read_json, read_parquet, write_json, write_parquet

FIRST_DAY, LAST_DAY, EVENT_ROWS = "first_day", "last_day", "event_rows"
STATS = ("count", "sum", "sumsq", "min", "max")


def stat(column: str, name: str) -> str:
    """The index column holding statistic `name` (one of STATS) of dataset column `column`."""
    return f"{column}__{name}"


def numeric_columns(ds: DatasetSpec) -> list[str]:
    """The dataset's columns the index keeps lifetime statistics of (int and float), in spec order."""
    return [c for c, s in ds.columns.items() if s.type in ("int", "float") and c != ds.timestamp.column]


def index_schema(key: str, key_dtype: pl.DataType, columns: Sequence[str]) -> dict[str, pl.DataType]:
    """The index's schema for a join key of `key_dtype` and statistics of `columns`."""
    schema: dict[str, pl.DataType] = {key: key_dtype, FIRST_DAY: pl.Date(), LAST_DAY: pl.Date()}
    schema[EVENT_ROWS] = pl.Int64()
    for c in columns:
        schema[stat(c, "count")] = pl.Int64()
        for s in STATS[1:]:
            schema[stat(c, s)] = pl.Float64()
    return schema


def empty_index(key: str, key_dtype: pl.DataType, columns: Sequence[str]) -> pl.DataFrame:
    """The index before the first day: no entity known."""
    return pl.DataFrame(schema=index_schema(key, key_dtype, columns))


def _day_stats(rows: pl.DataFrame, key: str, day: date, columns: Sequence[str]) -> pl.DataFrame:
    """Per entity, the statistics of one day's rows (all rows of `rows` belong to `day`)."""
    aggs: list[pl.Expr] = [pl.len().cast(pl.Int64).alias(EVENT_ROWS)]
    for c in columns:
        v = pl.col(c).cast(pl.Float64)
        aggs += [
            v.count().cast(pl.Int64).alias(stat(c, "count")),
            v.sum().alias(stat(c, "sum")),
            (v * v).sum().alias(stat(c, "sumsq")),
            v.min().alias(stat(c, "min")),
            v.max().alias(stat(c, "max")),
        ]
    # sorted first: the sums (float) do not depend on the order the rows arrived in
    return (
        rows.filter(pl.col(key).is_not_null())
        .sort([key, *columns], nulls_last=True)
        .group_by(key, maintain_order=True)
        .agg(aggs)
        .with_columns(pl.lit(day).alias(FIRST_DAY), pl.lit(day).alias(LAST_DAY))
    )


def fold(
    index: pl.DataFrame, rows: pl.DataFrame, key: str, day: date, columns: Sequence[str]
) -> pl.DataFrame:
    """index(day) from index(day - 1) and the rows of `day` (any order; rows of other days: none)."""
    if rows.height == 0:
        return index
    today = _day_stats(rows, key, day, columns)
    both = index.join(today, on=key, how="full", coalesce=True, suffix="__new")

    def add(name: str) -> pl.Expr:
        return (pl.col(name).fill_null(0) + pl.col(f"{name}__new").fill_null(0)).alias(name)

    exprs: list[pl.Expr] = [
        pl.coalesce(FIRST_DAY, f"{FIRST_DAY}__new").alias(FIRST_DAY),
        pl.coalesce(f"{LAST_DAY}__new", LAST_DAY).alias(LAST_DAY),
        add(EVENT_ROWS),
    ]
    for c in columns:
        exprs += [add(stat(c, "count")), add(stat(c, "sum")), add(stat(c, "sumsq"))]
        exprs += [
            pl.min_horizontal(stat(c, "min"), f"{stat(c, 'min')}__new").alias(stat(c, "min")),
            pl.max_horizontal(stat(c, "max"), f"{stat(c, 'max')}__new").alias(stat(c, "max")),
        ]
    return both.select(key, *exprs).sort(key).select(list(index.columns))


def iter_index(
    index: pl.DataFrame,
    events: pl.DataFrame,
    key: str,
    day_col: str,
    days: Sequence[date],
    columns: Sequence[str],
) -> Iterator[tuple[date, pl.DataFrame]]:
    """(day, index as of day) for consecutive `days`, starting from `index` as of the day before.

    `events` holds the rows of those days (others are ignored), with their day in `day_col`.
    """
    days = list(days)
    if not days:
        return
    rows = events.filter(pl.col(day_col).is_between(days[0], days[-1]))
    by_day = {d: g for (d,), g in rows.partition_by(day_col, as_dict=True, maintain_order=True).items()}
    empty = rows.clear()
    for d in days:
        index = fold(index, by_day.get(d, empty), key, d, columns)
        yield d, index


def index_as_of(
    events: pl.DataFrame, key: str, day_col: str, days: Sequence[date], columns: Sequence[str]
) -> dict[date, pl.DataFrame]:
    """The index as of each of `days`, folded from the first day of `events` (no stored index).

    The same fold as the stored `entities/<dataset>` partitions, so snapshots computed from it are
    the stored ones bit for bit when `events` starts at the first partition.
    """
    wanted = set(days)
    if not wanted:
        return {}
    seen = events.filter(pl.col(day_col) <= max(wanted))
    start = seen[day_col].min() if seen.height else min(wanted)
    assert isinstance(start, date)
    first = min(start, min(wanted))
    span = [date.fromordinal(o) for o in range(first.toordinal(), max(wanted).toordinal() + 1)]
    index = empty_index(key, events.schema[key], columns)
    return {d: idx for d, idx in iter_index(index, seen, key, day_col, span, columns) if d in wanted}


# --- the stored index: entities/<dataset>/date=D ----------------------------------------------


def write_index(storage: Storage, dataset: str, d: date, index: pl.DataFrame) -> str:
    """Store index(d) and its sidecar (rows, sha256); returns the sha256."""
    digest = write_parquet(storage, layout.entity_index_data(dataset, d), index)
    write_json(storage, layout.entity_index_meta(dataset, d), {"rows": index.height, "sha256": digest})
    return digest


def missing_index_days(storage: Storage, dataset: str, days: Sequence[date]) -> list[str]:
    """Days in `days` with no stored entity index of `dataset`."""
    return [timeline.key(d) for d in days if not storage.exists(layout.entity_index_meta(dataset, d))]


def read_index(storage: Storage, dataset: str, d: date) -> pl.DataFrame:
    """The stored index of `dataset` as of `d`."""
    return read_parquet(storage, layout.entity_index_data(dataset, d))


def index_versions(storage: Storage, dataset: str, days: Sequence[date]) -> dict[str, str]:
    """{day: sha256} of stored index days."""
    return {timeline.key(d): read_json(storage, layout.entity_index_meta(dataset, d))["sha256"] for d in days}
