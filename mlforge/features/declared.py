"""Views with declared features: DuckDB SQL views and profile views.

Both end in the same encoding (:func:`encoded`): every feature a float — numbers and booleans as
they are, a category as the index of its value in the declared `categories` (unknown or null:
missing) — so training, the online store and serving read one representation.

A SQL view's query never sees the future: for snapshot D each source is a DuckDB table of only
the rows of D's lookback (the partitions up to D, never after), and `as_of()` is D. The result is
checked against the declared features (the join key and exactly those columns, one row per
entity) before anything is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

import polars as pl

from mlforge.config.spec import FeatureSpec, FeatureViewSpec
from mlforge.errors import DataError
from mlforge.features.entities import attribute


def encoded(f: FeatureSpec, column: str) -> pl.Expr:
    """The float32 encoding of feature `f` read from `column`."""
    c = pl.col(column)
    if f.type == "category":
        assert f.categories is not None
        codes = list(range(len(f.categories)))
        c = c.cast(pl.String).replace_strict(f.categories, codes, default=None, return_dtype=pl.Int32)
    return c.cast(pl.Float32).alias(f.name)


def profile_features(view: FeatureViewSpec) -> list[pl.Expr]:
    """A profile view's features from the columns of its dataset's entity index."""
    return [encoded(f, attribute(f.column or f.name)) for f in view.features]


def sql_snapshot(
    view: FeatureViewSpec, tables: Mapping[str, pl.DataFrame], entity_key: str, day_col: str, as_of: date
) -> pl.DataFrame:
    """Run the view's query as of `as_of` over the lookback rows of each table; check and encode.

    `tables` maps every source name to its rows (any span; `day_col` holds each row's day, and
    is not shown to the query). Raises DataError naming the view for a failing query, a result
    without the join key or a declared feature, an undeclared column, or an entity twice.
    """
    import duckdb

    lo = as_of - timedelta(days=view.read_days - 1) if not view.lifetime else date.min
    con = duckdb.connect()
    try:
        for name, rows in tables.items():
            window = rows.filter(pl.col(day_col).is_between(lo, as_of))
            if day_col.startswith("__"):  # the platform's day column, not one of the dataset's
                window = window.drop(day_col)
            con.register(name, window.to_arrow())
        con.execute(f"CREATE MACRO as_of() AS DATE '{as_of.isoformat()}'")
        try:
            result = con.sql(view.sql or "").pl()
        except duckdb.Error as exc:
            msg = str(exc).strip().splitlines()[0]
            raise DataError(f"feature view {view.name}: the SQL query failed as of {as_of}: {msg}") from None
    finally:
        con.close()
    return check_result(view, result, entity_key, as_of)


def check_result(view: FeatureViewSpec, result: pl.DataFrame, entity_key: str, as_of: date) -> pl.DataFrame:
    """The declared features of a SQL result, encoded; a clear error when it does not fit them."""
    declared = [f.name for f in view.features]
    wanted = [entity_key, *declared]
    missing = [c for c in wanted if c not in result.columns]
    extra = [c for c in result.columns if c not in wanted]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"is missing {missing}")
        if extra:
            parts.append(f"returns undeclared columns {extra}")
        raise DataError(
            f"feature view {view.name}: the SQL result as of {as_of} {' and '.join(parts)}; it must "
            f"return exactly {wanted} (declare every feature under features:)"
        )
    result = result.filter(pl.col(entity_key).is_not_null())
    dupes = result.filter(pl.col(entity_key).is_duplicated())
    if dupes.height:
        k = dupes[entity_key][0]
        raise DataError(
            f"feature view {view.name}: the SQL result as of {as_of} has {dupes.height} rows for "
            f"{dupes[entity_key].n_unique()} {entity_key}(s) (e.g. {k!r} twice); it must return one "
            "row per entity (GROUP BY the join key)"
        )
    columns = [result[entity_key]]
    for f in view.features:
        try:
            columns.append(result.select(encoded(f, f.name)).to_series())
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
            raise DataError(
                f"feature view {view.name}: feature '{f.name}' as of {as_of} is "
                f"{result.schema[f.name]}, not a {f.type} ({str(exc).splitlines()[0]})"
            ) from None
    return pl.DataFrame(columns)
