"""SQL views and profile views, computed by hand: the query sees only the snapshot's lookback,
profiles are joined as of the snapshot, categories are encoded by their declared order, and every
bad input is an error naming the view or dataset."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlforge.config.spec import FeatureViewSpec, parse_spec
from mlforge.errors import DataError, SpecError
from mlforge.features.snapshots import compute_snapshot

KEY, DAY = "customer_id", "date"
AS_OF = date(2020, 6, 30)

SQL = """
SELECT customer_id,
       count(*) AS orders,
       sum(dollar_value) AS spend,
       as_of() - max(date) AS days_quiet
FROM transactions GROUP BY customer_id
"""


def sql_view(sql: str = SQL, **overrides: Any) -> FeatureViewSpec:
    cfg: dict[str, Any] = {
        "name": "recent",
        "entity": "customer",
        "source": "transactions",
        "lookback_days": 30,
        "sql": sql,
        "features": [
            {"name": "orders", "fill_value": 0},
            {"name": "spend", "fill_value": 0},
            {"name": "days_quiet"},
        ],
    }
    cfg.update(overrides)
    return FeatureViewSpec.model_validate(cfg)


def tx(rows: list[tuple[str, date, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {KEY: [r[0] for r in rows], DAY: [r[1] for r in rows], "dollar_value": [r[2] for r in rows]},
        schema={KEY: pl.String, DAY: pl.Date, "dollar_value": pl.Float64},
    )


ROWS = [
    ("a", date(2020, 5, 31), 100.0),  # the day before the 30-day lookback: the query never sees it
    ("a", date(2020, 6, 1), 10.0),
    ("a", date(2020, 6, 20), 5.0),
    ("b", date(2020, 6, 30), 7.0),
    ("c", date(2020, 1, 5), 3.0),  # known, not in the lookback: the declared fill values
]
FUTURE = [("a", date(2020, 7, 1), 1000.0), ("d", date(2020, 7, 2), 1.0)]


def test_sql_view_sees_only_the_lookback_and_covers_the_universe() -> None:
    snap = compute_snapshot(sql_view(), tx(ROWS), KEY, DAY, AS_OF)
    assert snap.columns == [KEY, "event_timestamp", "orders", "spend", "days_quiet"]
    got = {r[KEY]: (r["orders"], r["spend"], r["days_quiet"]) for r in snap.iter_rows(named=True)}
    assert got == {"a": (2, 15.0, 10), "b": (1, 7.0, 0), "c": (0, 0, None)}
    assert all(snap[c].dtype == pl.Float32 for c in ("orders", "spend", "days_quiet"))
    # the future never reaches the query
    assert_frame_equal(snap, compute_snapshot(sql_view(), tx(ROWS + FUTURE), KEY, DAY, AS_OF))


def test_sql_view_cannot_read_outside_its_window_even_when_asked() -> None:
    # a query that tries to look at everything still gets only the lookback's rows
    greedy = (
        "SELECT customer_id, count(*) AS orders, 0.0 AS spend, NULL AS days_quiet FROM transactions "
        "WHERE date > DATE '1900-01-01' GROUP BY customer_id"
    )
    snap = compute_snapshot(sql_view(greedy), tx(ROWS + FUTURE), KEY, DAY, AS_OF)
    assert dict(zip(snap[KEY], snap["orders"], strict=True)) == {"a": 2, "b": 1, "c": 0}


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            "SELECT customer_id, count(nope) AS orders, 1 AS spend, 1 AS days_quiet FROM transactions GROUP BY 1",
            r"feature view recent: the SQL query failed as of 2020-06-30: .*nope",
        ),
        (
            "SELECT customer_id, 1 AS orders, 1 AS spend, 1 AS days_quiet FROM transactions",
            r"feature view recent: the SQL result as of 2020-06-30 has 2 rows for 1 customer_id\(s\) \(e.g. 'a' twice\)",
        ),
        (
            "SELECT customer_id, count(*) AS orders, 1 AS days_quiet, 2 AS extra FROM transactions GROUP BY 1",
            r"is missing \['spend'\] and returns undeclared columns \['extra'\]",
        ),
        (
            "SELECT customer_id, count(*) AS orders, 'lots' AS spend, 1 AS days_quiet FROM transactions GROUP BY 1",
            r"feature 'spend' as of 2020-06-30 is String, not a float",
        ),
    ],
)
def test_sql_view_bad_queries_name_the_view(sql: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        compute_snapshot(sql_view(sql), tx(ROWS), KEY, DAY, AS_OF)


# --- profiles ---------------------------------------------------------------------------------


def profile_view() -> FeatureViewSpec:
    return FeatureViewSpec.model_validate(
        {
            "name": "profile",
            "entity": "customer",
            "source": "customers",
            "features": [
                {"name": "channel", "type": "category", "categories": ["web", "store", "phone"]},
                {"name": "age", "type": "float"},
            ],
        }
    )


def profiles(rows: list[tuple[str, date, str | None, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            KEY: [r[0] for r in rows],
            DAY: [r[1] for r in rows],
            "channel": [r[2] for r in rows],
            "age": [r[3] for r in rows],
        },
        schema={KEY: pl.String, DAY: pl.Date, "channel": pl.String, "age": pl.Float64},
    )


PROFILES = [
    ("a", date(2020, 1, 1), "web", 30.0),
    ("a", date(2020, 6, 30), "phone", 31.0),  # valid from the snapshot day: included
    ("b", date(2020, 2, 1), "store", 40.0),
    ("b", date(2020, 7, 1), "web", 41.0),  # valid only after the snapshot: not yet
    ("c", date(2020, 3, 1), "fax", 50.0),  # a value not among the categories: missing
]


def test_profile_is_joined_as_of_the_snapshot_with_categories_encoded() -> None:
    snap = compute_snapshot(profile_view(), profiles(PROFILES), KEY, DAY, AS_OF)
    got = {r[KEY]: (r["channel"], r["age"]) for r in snap.iter_rows(named=True)}
    assert got == {"a": (2.0, 31.0), "b": (1.0, 40.0), "c": (None, 50.0)}  # phone=2, store=1
    earlier = compute_snapshot(profile_view(), profiles(PROFILES), KEY, DAY, date(2020, 2, 15))
    assert dict(zip(earlier[KEY], earlier["channel"], strict=True)) == {"a": 0.0, "b": 1.0}  # c not yet known
    assert snap.schema["channel"] == pl.Float32


def test_profile_with_two_rows_valid_at_once_is_an_error() -> None:
    twice = [*PROFILES, ("b", date(2020, 2, 1), "web", 39.0)]
    with pytest.raises(
        DataError, match=r"profile dataset customers: customer_id 'b' has 2 rows valid from 2020-02-01"
    ):
        compute_snapshot(profile_view(), profiles(twice), KEY, DAY, AS_OF)


# --- the spec ---------------------------------------------------------------------------------


def _spec(views: list[dict[str, Any]], datasets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    tx_ds = {
        "name": "transactions",
        "source": {"path": "tx.csv"},
        "timestamp": {"column": "date"},
        "entity": "customer",
        "columns": {
            "customer_id": {"type": "string"},
            "date": {"type": "date"},
            "dollar_value": {"type": "float"},
        },
    }
    return {
        "project": "p",
        "partitions": {"start": "2020-01-01", "end": "2020-12-31"},
        "entities": [{"name": "customer", "join_key": "customer_id"}],
        "datasets": [tx_ds, *(datasets or [])],
        "feature_views": views,
    }


CUSTOMERS = {
    "name": "customers",
    "kind": "profile",
    "source": {"path": "customers.csv"},
    "entity": "customer",
    "columns": {"customer_id": {"type": "string"}, "channel": {"type": "string"}, "age": {"type": "float"}},
}


@pytest.mark.parametrize(
    ("view", "datasets", "message"),
    [
        (
            {"name": "v", "entity": "customer", "source": "transactions", "sql": "SELECT 1"},
            [],
            "feature_views[0].features: a SQL view declares the features its query returns",
        ),
        (
            {
                "name": "v",
                "entity": "customer",
                "source": "customers",
                "features": [{"name": "colour", "type": "category", "categories": ["x"]}],
            },
            [CUSTOMERS],
            "feature_views[0].features[0]: 'colour' is not a column of dataset 'customers'",
        ),
        (
            {
                "name": "v",
                "entity": "customer",
                "source": "customers",
                "features": [{"name": "age", "type": "category", "categories": ["x"]}],
            },
            [CUSTOMERS],
            "feature_views[0].features[0].type: 'age' is float: a category reads a string column",
        ),
        (
            {
                "name": "v",
                "entity": "customer",
                "source": "customers",
                "transformations": [{"kind": "recency"}],
            },
            [CUSTOMERS],
            "feature_views[0].source: 'customers' is a profile dataset",
        ),
        (
            {
                "name": "v",
                "entity": "customer",
                "source": "transactions",
                "sql": "SELECT 1",
                "extra_sources": ["nope"],
                "features": [{"name": "x"}],
            },
            [],
            "feature_views[0].extra_sources: unknown dataset 'nope'",
        ),
        (
            {
                "name": "v",
                "entity": "customer",
                "source": "transactions",
                "sql": "SELECT 1",
                "features": [{"name": "x", "type": "category"}],
            },
            [],
            "categories: a 'category' feature lists its values",
        ),
    ],
)
def test_bad_declared_views_fail_at_spec_load(
    view: dict[str, Any], datasets: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(_spec([view], datasets))
    assert message in str(err.value), str(err.value)


def test_a_static_profile_has_no_timestamp_and_an_events_dataset_needs_one() -> None:
    spec = parse_spec(_spec([], [CUSTOMERS]))
    assert spec.dataset("customers").time_column is None
    bad = {**CUSTOMERS, "kind": "events"}
    with pytest.raises(SpecError, match=r"datasets\[1\].timestamp: an events dataset needs its event time"):
        parse_spec(_spec([], [bad]))
