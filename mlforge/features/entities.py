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

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from mlforge.config.spec import DatasetSpec
from mlforge.errors import DataError
from mlforge.io import layout, timeline
from mlforge.io.storage import Storage, read_json, read_parquet, write_json, write_parquet

FIRST_DAY, LAST_DAY, EVENT_ROWS = "first_day", "last_day", "event_rows"
STATS = ("count", "sum", "sumsq", "min", "max")
VALID_FROM = "valid_from"  # profiles: when the entity's current attributes became valid


def stat(column: str, name: str) -> str:
    """The index column holding statistic `name` (one of STATS) of dataset column `column`."""
    return f"{column}__{name}"


def attribute(column: str) -> str:
    """The index column holding a profile's current value of `column`."""
    return f"{column}__value"


def numeric_columns(ds: DatasetSpec) -> list[str]:
    """The events dataset's columns the index keeps lifetime statistics of (int and float)."""
    if ds.kind == "profile":
        return []
    return [c for c, s in ds.columns.items() if s.type in ("int", "float") and c != ds.time_column]


def profile_columns(ds: DatasetSpec, key: str) -> list[str]:
    """The profile dataset's attributes the index keeps the current value of (all but key and time)."""
    if ds.kind != "profile":
        return []
    return [c for c in ds.columns if c not in (key, ds.time_column)]


@dataclass(frozen=True)
class IndexRule:
    """What the index of one dataset keeps: lifetime statistics of `columns` (events), the
    current value of `attributes` with their `valid_from` column (profiles; None: static)."""

    dataset: str
    key: str
    columns: tuple[str, ...] = ()
    attributes: tuple[str, ...] = ()
    valid_from: str | None = None

    @classmethod
    def of(cls, ds: DatasetSpec, key: str) -> IndexRule:
        """The rule of a dataset keyed by `key`."""
        return cls(ds.name, key, tuple(numeric_columns(ds)), tuple(profile_columns(ds, key)), ds.time_column)

    def empty(self, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
        """The index before the first day, for rows of `schema` (the key's and attributes' dtypes)."""
        attrs = {a: schema[a] for a in self.attributes} if self.attributes else None
        return empty_index(self.key, schema[self.key], self.columns, attrs)


def index_schema(
    key: str, key_dtype: pl.DataType, columns: Sequence[str], attributes: dict[str, pl.DataType] | None = None
) -> dict[str, pl.DataType]:
    """The index's schema for a join key of `key_dtype`, statistics of `columns` and the profile
    `attributes` {column: dtype}."""
    schema: dict[str, pl.DataType] = {key: key_dtype, FIRST_DAY: pl.Date(), LAST_DAY: pl.Date()}
    schema[EVENT_ROWS] = pl.Int64()
    for c in columns:
        schema[stat(c, "count")] = pl.Int64()
        for s in STATS[1:]:
            schema[stat(c, s)] = pl.Float64()
    if attributes is not None:
        schema[VALID_FROM] = pl.Datetime("us")
        schema.update({attribute(c): t for c, t in attributes.items()})
    return schema


def empty_index(
    key: str, key_dtype: pl.DataType, columns: Sequence[str], attributes: dict[str, pl.DataType] | None = None
) -> pl.DataFrame:
    """The index before the first day: no entity known."""
    return pl.DataFrame(schema=index_schema(key, key_dtype, columns, attributes))


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


def _day_profile(rows: pl.DataFrame, rule: IndexRule, day: date) -> pl.DataFrame:
    """Per entity, the attributes of its latest row of the day; two rows valid at once: an error."""
    key = rule.key
    vf = (
        pl.col(rule.valid_from).cast(pl.Datetime("us"))
        if rule.valid_from is not None
        else pl.lit(None, pl.Datetime("us"))
    )
    rows = rows.filter(pl.col(key).is_not_null()).with_columns(vf.alias(VALID_FROM))
    dupes = rows.filter(pl.struct(key, VALID_FROM).is_duplicated())
    if dupes.height:
        first = dupes.row(0, named=True)
        n = dupes.filter(pl.col(key) == first[key]).height
        when = f"valid from {first[VALID_FROM]}" if rule.valid_from else "static (no valid_from)"
        raise DataError(
            f"profile dataset {rule.dataset}: {key} {first[key]!r} has {n} rows {when} (stored on "
            f"{day}); each entity needs one row per valid_from"
        )
    return (
        rows.sort(key, VALID_FROM, nulls_last=False)
        .group_by(key, maintain_order=True)
        .agg(
            pl.len().cast(pl.Int64).alias(EVENT_ROWS),
            pl.col(VALID_FROM).last(),
            *[pl.col(c).last().alias(attribute(c)) for c in rule.attributes],
        )
        .with_columns(pl.lit(day).alias(FIRST_DAY), pl.lit(day).alias(LAST_DAY))
    )


def _fold_profile(index: pl.DataFrame, rows: pl.DataFrame, rule: IndexRule, day: date) -> pl.DataFrame:
    """A profile's index(day): an entity with rows that day takes the newest one's attributes."""
    key = rule.key
    both = index.join(_day_profile(rows, rule, day), on=key, how="full", coalesce=True, suffix="__new")
    seen = pl.col(f"{EVENT_ROWS}__new").is_not_null()
    exprs = [
        pl.coalesce(FIRST_DAY, f"{FIRST_DAY}__new").alias(FIRST_DAY),
        pl.coalesce(f"{LAST_DAY}__new", LAST_DAY).alias(LAST_DAY),
        (pl.col(EVENT_ROWS).fill_null(0) + pl.col(f"{EVENT_ROWS}__new").fill_null(0)).alias(EVENT_ROWS),
        *[
            pl.when(seen).then(pl.col(f"{c}__new")).otherwise(pl.col(c)).alias(c)
            for c in (VALID_FROM, *[attribute(a) for a in rule.attributes])
        ],
    ]
    return both.select(key, *exprs).sort(key).select(list(index.columns))


def fold(
    index: pl.DataFrame,
    rows: pl.DataFrame,
    key: str,
    day: date,
    columns: Sequence[str],
    rule: IndexRule | None = None,
) -> pl.DataFrame:
    """index(day) from index(day - 1) and the rows of `day` (any order; rows of other days: none).

    With a profile `rule`, an entity's attributes are those of its newest row (by valid_from).
    """
    if rows.height == 0:
        return index
    if rule is not None and rule.attributes:
        return _fold_profile(index, rows, rule, day)
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
    rule: IndexRule | None = None,
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
        index = fold(index, by_day.get(d, empty), key, d, columns, rule)
        yield d, index


def index_as_of(
    events: pl.DataFrame,
    key: str,
    day_col: str,
    days: Sequence[date],
    columns: Sequence[str],
    rule: IndexRule | None = None,
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
    rule = rule or IndexRule("", key, tuple(columns))
    index = rule.empty(events.schema)
    return {d: idx for d, idx in iter_index(index, seen, key, day_col, span, columns, rule) if d in wanted}


# --- the stored index: entities/<dataset>/date=D ----------------------------------------------


def write_index(storage: Storage, dataset: str, d: date, index: pl.DataFrame) -> str:
    """Store index(d) and its sidecar (rows, sha256); returns the sha256."""
    digest = write_parquet(storage, layout.entity_index_data(dataset, d), index)
    write_json(storage, layout.entity_index_meta(dataset, d), {"rows": index.height, "sha256": digest})
    return digest


def missing_index_days(storage: Storage, dataset: str, days: Sequence[date]) -> list[str]:
    """Days in `days` with no stored entity index of `dataset`."""
    return [timeline.key(d) for d in days if not storage.exists(layout.entity_index_meta(dataset, d))]


def stored_index_days(storage: Storage, dataset: str) -> set[date]:
    """Every day with a stored index of `dataset` (one listing)."""
    listing = storage.list(layout.entity_index_prefix(dataset))
    return set(layout.stored_days(listing, lambda d: layout.entity_index_meta(dataset, d)))


def read_index(storage: Storage, dataset: str, d: date) -> pl.DataFrame:
    """The stored index of `dataset` as of `d`."""
    return read_parquet(storage, layout.entity_index_data(dataset, d))


def index_versions(storage: Storage, dataset: str, days: Sequence[date]) -> dict[str, str]:
    """{day: sha256} of stored index days."""
    return {timeline.key(d): read_json(storage, layout.entity_index_meta(dataset, d))["sha256"] for d in days}
