"""Feature snapshots, the point-in-time join, churn labels, training dates and the CDNOW reader,
checked against values computed by hand."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mlforge.config.spec import DatasetSpec, FeatureViewSpec, ModelSpec, load_spec
from mlforge.data.sources import read_source
from mlforge.errors import DataError
from mlforge.features.labels import LABEL, compute_labels
from mlforge.features.offline import point_in_time_join
from mlforge.features.refs import feature_names
from mlforge.features.snapshots import EVENT_TS, compute_snapshot
from mlforge.io.timeline import end_of, training_dates, training_offsets

REPO = Path(__file__).resolve().parents[2]
CDNOW = REPO / "data" / "cdnow" / "CDNOW_master.txt"
KEY = "customer_id"
DAY = "date"


def view(**overrides: Any) -> FeatureViewSpec:
    """The example project's customer_activity view (overridable)."""
    cfg: dict[str, Any] = {
        "name": "customer_activity",
        "entity": "customer",
        "source": "transactions",
        "lookback_days": 365,
        "ttl_days": 365,
        "transformations": [
            {"kind": "recency"},
            {
                "kind": "aggregate",
                "columns": ["dollar_value", "number_of_cds"],
                "functions": ["count", "sum", "mean", "max"],
            },
            {
                "kind": "window",
                "columns": ["dollar_value"],
                "functions": ["count", "sum"],
                "windows_days": [30, 90, 180],
            },
        ],
    }
    cfg.update(overrides)
    return FeatureViewSpec.model_validate(cfg)


def events(rows: list[tuple[str, date, float, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            KEY: [r[0] for r in rows],
            DAY: [r[1] for r in rows],
            "dollar_value": [r[2] for r in rows],
            "number_of_cds": [r[3] for r in rows],
        },
        schema={KEY: pl.String, DAY: pl.Date, "dollar_value": pl.Float64, "number_of_cds": pl.Int64},
    )


AS_OF = date(2020, 6, 30)
# lookback 365 → 2019-07-02..2020-06-30; 30d → 06-01..06-30; 90d → 04-02..06-30; 180d → 01-03..06-30
HISTORY = [
    ("c1", date(2019, 7, 1), 100.0, 9),  # one day before the lookback: excluded
    ("c1", date(2019, 7, 2), 10.0, 1),  # first day of the lookback
    ("c1", date(2020, 1, 2), 20.0, 2),  # one day before the 180-day window
    ("c1", date(2020, 1, 3), 5.0, 4),  # first day of the 180-day window
    ("c1", date(2020, 4, 1), 7.0, 1),  # one day before the 90-day window
    ("c1", date(2020, 4, 2), 30.0, 3),  # first day of the 90-day window
    ("c1", date(2020, 6, 1), 40.0, 1),  # first day of the 30-day window
    ("c2", date(2020, 6, 30), 12.5, 2),  # on as_of itself: included
    ("c2", date(2020, 6, 30), 7.5, 1),
    ("c3", date(2020, 2, 15), 50.0, 5),
    ("c4", date(2019, 6, 1), 99.0, 1),  # only before the lookback: a known customer, inactive
]
FUTURE = [
    ("c1", date(2020, 7, 1), 1000.0, 50),
    ("c3", date(2020, 7, 15), 1.0, 1),
    ("c5", date(2020, 8, 1), 3.0, 3),  # a customer who only exists in the future
]

EXPECTED = {
    "c1": {
        "days_since_last": 29,
        "days_since_first": 364,
        "event_count": 6,
        "dollar_value_sum": 112.0,
        "number_of_cds_sum": 12,
        "dollar_value_mean": 112.0 / 6,
        "number_of_cds_mean": 2.0,
        "dollar_value_max": 40.0,
        "number_of_cds_max": 4,
        "event_count_30d": 1,
        "dollar_value_sum_30d": 40.0,
        "event_count_90d": 2,
        "dollar_value_sum_90d": 70.0,
        "event_count_180d": 4,
        "dollar_value_sum_180d": 82.0,
    },
    "c2": {
        "days_since_last": 0,
        "days_since_first": 0,
        "event_count": 2,
        "dollar_value_sum": 20.0,
        "number_of_cds_sum": 3,
        "dollar_value_mean": 10.0,
        "number_of_cds_mean": 1.5,
        "dollar_value_max": 12.5,
        "number_of_cds_max": 2,
        "event_count_30d": 2,
        "dollar_value_sum_30d": 20.0,
        "event_count_90d": 2,
        "dollar_value_sum_90d": 20.0,
        "event_count_180d": 2,
        "dollar_value_sum_180d": 20.0,
    },
    "c3": {
        "days_since_last": 136,  # 2020-02-15 → 2020-06-30 (leap year)
        "days_since_first": 136,
        "event_count": 1,
        "dollar_value_sum": 50.0,
        "number_of_cds_sum": 5,
        "dollar_value_mean": 50.0,
        "number_of_cds_mean": 5.0,
        "dollar_value_max": 50.0,
        "number_of_cds_max": 5,
        "event_count_30d": 0,  # no event in the window: counts and sums are 0, not null
        "dollar_value_sum_30d": 0.0,
        "event_count_90d": 0,
        "dollar_value_sum_90d": 0.0,
        "event_count_180d": 1,
        "dollar_value_sum_180d": 50.0,
    },
    "c4": {  # no event in the lookback: zero counts and sums, null means/max, recency of any age
        "days_since_last": 395,  # 2019-06-01 → 2020-06-30
        "days_since_first": None,
        "event_count": 0,
        "dollar_value_sum": 0.0,
        "number_of_cds_sum": 0,
        "dollar_value_mean": None,
        "number_of_cds_mean": None,
        "dollar_value_max": None,
        "number_of_cds_max": None,
        "event_count_30d": 0,
        "dollar_value_sum_30d": 0.0,
        "event_count_90d": 0,
        "dollar_value_sum_90d": 0.0,
        "event_count_180d": 0,
        "dollar_value_sum_180d": 0.0,
    },
}


# --- feature names and snapshots ----------------------------------------------------------


def test_feature_names_order_and_naming() -> None:
    assert feature_names(view()) == [
        "days_since_last",
        "days_since_first",
        "event_count",
        "dollar_value_sum",
        "number_of_cds_sum",
        "dollar_value_mean",
        "number_of_cds_mean",
        "dollar_value_max",
        "number_of_cds_max",
        "event_count_30d",
        "dollar_value_sum_30d",
        "event_count_90d",
        "dollar_value_sum_90d",
        "event_count_180d",
        "dollar_value_sum_180d",
    ]


def test_feature_names_deduplicate_repeated_transformations() -> None:
    v = view(
        transformations=[
            {"kind": "recency"},
            {"kind": "recency"},
            {"kind": "aggregate", "columns": ["dollar_value"], "functions": ["sum", "sum", "min"]},
        ]
    )
    assert feature_names(v) == ["days_since_last", "days_since_first", "dollar_value_sum", "dollar_value_min"]


def test_snapshot_values_computed_by_hand() -> None:
    snap = compute_snapshot(view(), events(HISTORY), KEY, DAY, AS_OF)
    assert snap.columns == [KEY, EVENT_TS, *feature_names(view())]
    assert snap[KEY].to_list() == ["c1", "c2", "c3", "c4"]  # every customer known by as_of
    assert snap[EVENT_TS].dtype == pl.Datetime("us")
    assert snap[EVENT_TS].to_list() == [datetime(2020, 7, 1)] * 4  # the end of as_of
    for row in snap.iter_rows(named=True):
        expected = EXPECTED[row[KEY]]
        for name, value in expected.items():
            if value is None:
                assert row[name] is None, (row[KEY], name, row[name])
            else:
                assert row[name] == pytest.approx(value, rel=1e-6), (row[KEY], name, row[name], value)
    assert all(snap[n].dtype == pl.Float32 for n in feature_names(view()))


def test_future_events_never_change_the_snapshot() -> None:
    past = compute_snapshot(view(), events(HISTORY), KEY, DAY, AS_OF)
    with_future = compute_snapshot(view(), events(HISTORY + FUTURE), KEY, DAY, AS_OF)
    assert_frame_equal(past, with_future)
    # Sanity: the future rows do change a later snapshot, so the check above could have failed.
    later = compute_snapshot(view(), events(HISTORY + FUTURE), KEY, DAY, date(2020, 8, 1))
    assert "c5" in later[KEY].to_list()


def test_lookback_excludes_old_events() -> None:
    short = view(lookback_days=10)
    rows = [
        ("a", date(2020, 6, 20), 1.0, 1),  # as_of - 10: one day too old
        ("a", date(2020, 6, 21), 2.0, 1),  # first day of the 10-day lookback
        ("a", date(2020, 6, 25), 4.0, 1),
        ("b", date(2020, 6, 1), 8.0, 1),  # only old: a row that says so
    ]
    snap = compute_snapshot(short, events(rows), KEY, DAY, AS_OF)
    assert snap[KEY].to_list() == ["a", "b"]
    old = snap.row(1, named=True)
    assert (old["event_count"], old["dollar_value_sum"], old["dollar_value_mean"]) == (0, 0, None)
    assert (old["days_since_last"], old["days_since_first"]) == (29, None)
    row = snap.row(0, named=True)
    assert row["event_count"] == 2
    assert row["dollar_value_sum"] == pytest.approx(6.0)
    assert row["days_since_first"] == 9
    assert row["days_since_last"] == 5
    # The 30/90/180-day windows cannot reach past the lookback either.
    assert row["event_count_180d"] == 2
    assert row["dollar_value_sum_180d"] == pytest.approx(6.0)


def test_lifetime_view_and_tenure_computed_by_hand() -> None:
    life = view(
        lookback_days="all",
        transformations=[
            {"kind": "recency"},
            {"kind": "tenure"},
            {
                "kind": "aggregate",
                "columns": ["dollar_value"],
                "functions": ["count", "sum", "mean", "std", "min"],
            },
            {"kind": "window", "columns": ["dollar_value"], "functions": ["sum"], "windows_days": [30]},
        ],
    )
    assert life.read_days == 30  # the rows read: the longest window; the rest from the entity index
    snap = compute_snapshot(life, events(HISTORY + FUTURE), KEY, DAY, AS_OF)
    assert snap[KEY].to_list() == ["c1", "c2", "c3", "c4"]
    c1 = snap.row(0, named=True)
    c1_values = [100.0, 10.0, 20.0, 5.0, 7.0, 30.0, 40.0]  # every c1 row up to as_of, none after
    assert c1["tenure_days"] == 365 and c1["days_since_first"] == 365  # 2019-07-01 → 2020-06-30
    assert c1["days_since_last"] == 29
    assert c1["event_count"] == 7 and c1["dollar_value_sum"] == pytest.approx(212.0)
    assert c1["dollar_value_mean"] == pytest.approx(212.0 / 7)
    assert c1["dollar_value_std"] == pytest.approx(pl.Series(c1_values).std(), rel=1e-6)
    assert c1["dollar_value_min"] == 5.0 and c1["dollar_value_sum_30d"] == pytest.approx(40.0)
    c4 = snap.row(3, named=True)
    assert (c4["tenure_days"], c4["event_count"], c4["dollar_value_sum"]) == (395, 1, pytest.approx(99.0))
    assert c4["dollar_value_std"] is None and c4["dollar_value_sum_30d"] == 0  # one value; not recent
    # the bounded view's tenure is the same lifetime figure
    bounded = compute_snapshot(view(transformations=[{"kind": "tenure"}]), events(HISTORY), KEY, DAY, AS_OF)
    assert bounded["tenure_days"].to_list() == [365, 0, 136, 395]


def test_window_mean_of_an_empty_window_is_null_but_count_is_zero() -> None:
    v = view(
        transformations=[
            {
                "kind": "window",
                "columns": ["dollar_value"],
                "functions": ["count", "mean", "max"],
                "windows_days": [7],
            }
        ]
    )
    rows = [
        ("a", date(2020, 6, 1), 10.0, 1),
        ("b", date(2020, 6, 29), 3.0, 1),
        ("b", date(2020, 6, 24), 5.0, 1),
    ]
    snap = compute_snapshot(v, events(rows), KEY, DAY, AS_OF)
    a, b = snap.row(0, named=True), snap.row(1, named=True)
    assert a["event_count_7d"] == 0
    assert a["dollar_value_mean_7d"] is None
    assert a["dollar_value_max_7d"] is None
    assert b["event_count_7d"] == 2  # 06-24 is the first day of the 7-day window
    assert b["dollar_value_mean_7d"] == pytest.approx(4.0)
    assert b["dollar_value_max_7d"] == pytest.approx(5.0)


def test_snapshot_of_no_events_is_empty_with_the_full_schema() -> None:
    snap = compute_snapshot(view(), events(FUTURE), KEY, DAY, AS_OF)
    assert snap.height == 0
    assert snap.columns == [KEY, EVENT_TS, *feature_names(view())]
    assert snap.schema[KEY] == pl.String
    assert snap.schema[EVENT_TS] == pl.Datetime("us")


_days = st.dates(min_value=date(2020, 1, 1), max_value=date(2020, 12, 31))
_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        _days,
        st.floats(min_value=0, max_value=1000, allow_nan=False),
        st.integers(1, 20),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows, _days)
def test_snapshot_equals_the_snapshot_of_only_past_events(rows: list[Any], as_of: date) -> None:
    allrows = events(rows)
    past = allrows.filter(pl.col(DAY) <= as_of)
    v = view(lookback_days=120)
    assert_frame_equal(
        compute_snapshot(v, allrows, KEY, DAY, as_of), compute_snapshot(v, past, KEY, DAY, as_of)
    )


# --- point-in-time join -------------------------------------------------------------------


def entity_frame(rows: list[tuple[str, datetime]]) -> pl.DataFrame:
    return pl.DataFrame(
        {KEY: [r[0] for r in rows], EVENT_TS: [r[1] for r in rows]},
        schema={KEY: pl.String, EVENT_TS: pl.Datetime("us")},
    )


def feature_frame(rows: list[tuple[str, datetime, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {KEY: [r[0] for r in rows], EVENT_TS: [r[1] for r in rows], "x": [r[2] for r in rows]},
        schema={KEY: pl.String, EVENT_TS: pl.Datetime("us"), "x": pl.Float64},
    )


T0 = datetime(2020, 3, 1)
US = timedelta(microseconds=1)
TTL = timedelta(days=30)


def pit(
    entities: list[tuple[str, datetime]], feats: list[tuple[str, datetime, float]], ttl: timedelta = TTL
) -> list[Any]:
    out = point_in_time_join(entity_frame(entities), feature_frame(feats), KEY, ttl, ["x"])
    assert out[KEY].to_list() == [e for e, _ in entities]
    assert out[EVENT_TS].to_list() == [t for _, t in entities]
    return out["x"].to_list()


def test_pit_exact_timestamp_match_is_used() -> None:
    assert pit([("a", T0)], [("a", T0, 1.0)]) == [1.0]


def test_pit_feature_one_microsecond_after_is_not_used() -> None:
    assert pit([("a", T0)], [("a", T0 + US, 1.0)]) == [None]
    # ...and an older row is used instead of the one from the future.
    assert pit([("a", T0)], [("a", T0 - timedelta(days=1), 7.0), ("a", T0 + US, 1.0)]) == [7.0]


def test_pit_takes_the_latest_earlier_row() -> None:
    feats = [
        ("a", T0 - timedelta(days=3), 3.0),
        ("a", T0 - timedelta(days=1), 1.0),
        ("a", T0 - timedelta(days=2), 2.0),  # unsorted on purpose
        ("a", T0 - US, 0.5),
        ("b", T0 - timedelta(hours=1), 99.0),  # another entity's newer row is never used for 'a'
    ]
    assert pit([("a", T0)], feats) == [0.5]
    assert pit([("a", T0 - timedelta(hours=36))], feats) == [2.0]


def test_pit_ttl_expiry_gives_null() -> None:
    ttl = timedelta(days=2)
    feats = [("a", T0, 1.0)]
    assert pit([("a", T0 + timedelta(days=2))], feats, ttl) == [1.0]  # exactly the TTL: still valid
    assert pit([("a", T0 + timedelta(days=2) + US)], feats, ttl) == [None]
    assert pit([("a", T0 + timedelta(days=10))], feats, ttl) == [None]


def test_pit_entity_without_history_gets_null() -> None:
    assert pit([("a", T0), ("ghost", T0)], [("a", T0 - US, 1.0)]) == [1.0, None]


def test_pit_keeps_entity_row_order_and_extra_columns() -> None:
    rows = [
        ("b", T0 + timedelta(days=2)),
        ("a", T0 + timedelta(days=5)),
        ("b", T0 - timedelta(days=1)),
        ("a", T0),
        ("c", T0),
        ("a", T0 + timedelta(days=5)),  # duplicate entity rows stay duplicated
    ]
    feats = [("a", T0, 10.0), ("a", T0 + timedelta(days=4), 14.0), ("b", T0, 20.0)]
    ent = entity_frame(rows).with_columns(pl.Series("tag", list(range(len(rows)))))
    out = point_in_time_join(ent, feature_frame(feats), KEY, TTL, ["x"])
    assert out.columns == [KEY, EVENT_TS, "tag", "x"]
    assert out["tag"].to_list() == list(range(len(rows)))
    assert out["x"].to_list() == [20.0, 14.0, None, 10.0, None, 14.0]


def test_pit_accepts_millisecond_entity_timestamps() -> None:
    ent = entity_frame([("a", T0)]).with_columns(pl.col(EVENT_TS).cast(pl.Datetime("ms")))
    out = point_in_time_join(ent, feature_frame([("a", T0, 1.0)]), KEY, TTL, ["x"])
    assert out["x"].to_list() == [1.0]


_hours = st.integers(0, 240)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from("abcd"), _hours), min_size=1, max_size=25),
    st.dictionaries(st.tuples(st.sampled_from("abc"), _hours), st.floats(-1e6, 1e6), max_size=25),
    st.integers(1, 100),
)
def test_pit_matches_a_brute_force_reference(
    ent_rows: list[tuple[str, int]], feat_rows: dict[tuple[str, int], float], ttl_hours: int
) -> None:
    base = datetime(2020, 1, 1)
    entities = [(e, base + timedelta(hours=h)) for e, h in ent_rows]
    feats = [(e, base + timedelta(hours=h), x) for (e, h), x in feat_rows.items()]
    ttl = timedelta(hours=ttl_hours)
    expected = []
    for e, t in entities:
        ok = [(ft, x) for fe, ft, x in feats if fe == e and t - ttl <= ft <= t]
        expected.append(max(ok)[1] if ok else None)
    assert pit(entities, feats, ttl) == expected


# --- labels -------------------------------------------------------------------------------


def model(horizon: int = 10, window: int = 270, step: int = 7) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "churn",
            "feature_service": "churn_features",
            "label": {"kind": "churn", "dataset": "transactions", "horizon_days": horizon},
            "training": {"window_days": window, "snapshot_step_days": step},
        }
    )


def test_compute_labels_by_hand() -> None:
    d = date(2020, 1, 10)  # horizon 10 → events on 01-11..01-20 count
    future = events(
        [
            ("on_d", date(2020, 1, 10), 1.0, 1),  # the day itself does not count
            ("first", date(2020, 1, 11), 1.0, 1),
            ("last", date(2020, 1, 20), 1.0, 1),
            ("after", date(2020, 1, 21), 1.0, 1),  # only after the horizon
            ("before", date(2020, 1, 1), 1.0, 1),
            ("twice", date(2020, 1, 12), 1.0, 1),
            ("twice", date(2020, 1, 13), 1.0, 1),
            ("stranger", date(2020, 1, 15), 1.0, 1),  # not an entity of the snapshot: no label
        ]
    )
    ents = pl.Series(KEY, ["twice", "on_d", "after", "first", "none", "last", "before"])
    out = compute_labels(model(10), ents, future, KEY, DAY, d)
    assert out.columns == [KEY, EVENT_TS, LABEL]
    assert out[LABEL].dtype == pl.Int8
    assert dict(zip(out[KEY].to_list(), out[LABEL].to_list(), strict=True)) == {
        "after": 1,
        "before": 1,
        "first": 0,
        "last": 0,
        "none": 1,
        "on_d": 1,
        "twice": 0,
    }
    assert out[KEY].to_list() == sorted(ents.to_list())
    assert set(out[EVENT_TS].to_list()) == {end_of(d)} == {datetime(2020, 1, 11)}


def test_compute_labels_horizon_boundary_moves_with_horizon() -> None:
    future = events([("x", date(2020, 1, 20), 1.0, 1)])
    ents = pl.Series(KEY, ["x"])
    d = date(2020, 1, 10)
    assert compute_labels(model(10), ents, future, KEY, DAY, d)[LABEL].to_list() == [0]
    assert compute_labels(model(9), ents, future, KEY, DAY, d)[LABEL].to_list() == [1]


def kind_model(label: dict[str, Any], task: str | None = None) -> ModelSpec:
    """A 10-day-horizon model of `label` (a label kind other than churn)."""
    doc: dict[str, Any] = {
        "name": "m",
        "feature_service": "churn_features",
        "label": {"dataset": "transactions", "horizon_days": 10, **label},
    }
    if task is not None:
        doc["task"] = task
    return ModelSpec.model_validate(doc)


#: (entity, day, dollar_value, number_of_cds) around d = 2020-01-10 (horizon: 01-11..01-20)
KIND_ROWS = [
    ("a", date(2020, 1, 10), 100.0, 5),  # on d: never counts
    ("a", date(2020, 1, 12), 10.0, 1),
    ("a", date(2020, 1, 15), 30.0, 4),
    ("b", date(2020, 1, 20), 5.0, 3),
    ("b", date(2020, 1, 21), 999.0, 9),  # after the horizon
    ("c", date(2020, 1, 11), 50.0, 1),
]
KIND_ENTITIES = pl.Series(KEY, ["d", "c", "b", "a"])


def kind_labels(m: ModelSpec) -> dict[str, Any]:
    out = compute_labels(m, KIND_ENTITIES, events(KIND_ROWS), KEY, DAY, date(2020, 1, 10), DAY)
    assert out[KEY].to_list() == sorted(out[KEY].to_list())
    return dict(zip(out[KEY].to_list(), out[LABEL].to_list(), strict=True))


def test_event_label_with_a_filter() -> None:
    m = kind_model({"kind": "event"})
    assert kind_labels(m) == {"a": 1, "b": 1, "c": 1, "d": 0}
    m = kind_model({"kind": "event", "where": [{"column": "number_of_cds", "op": "ge", "value": 3}]})
    assert kind_labels(m) == {"a": 1, "b": 1, "c": 0, "d": 0}
    m = kind_model({"kind": "churn", "where": [{"column": "dollar_value", "op": "gt", "value": 20}]})
    assert kind_labels(m) == {"a": 0, "b": 1, "c": 0, "d": 1}


def test_aggregate_labels_sum_count_mean_and_bins() -> None:
    agg = {"kind": "aggregate", "column": "dollar_value"}
    assert kind_labels(kind_model({**agg, "function": "sum"})) == {"a": 40.0, "b": 5.0, "c": 50.0, "d": 0.0}
    assert kind_labels(kind_model({"kind": "aggregate", "function": "count"})) == {
        "a": 2.0,
        "b": 1.0,
        "c": 1.0,
        "d": 0.0,
    }
    mean = kind_model({**agg, "function": "mean", "fill_value": -1})
    assert kind_labels(mean) == {"a": 20.0, "b": 5.0, "c": 50.0, "d": -1.0}
    # edges [5, 50]: class 0 below 5, class 1 in [5, 50), class 2 from 50
    binned = kind_model({**agg, "function": "sum", "bins": [5.0, 50.0]})
    assert binned.model_task == "multiclass"
    out = compute_labels(binned, KIND_ENTITIES, events(KIND_ROWS), KEY, DAY, date(2020, 1, 10))
    assert out[LABEL].dtype == pl.Int32
    assert kind_labels(binned) == {"a": 1, "b": 1, "c": 2, "d": 0}
    assert (
        compute_labels(
            kind_model({**agg, "function": "sum"}),
            KIND_ENTITIES,
            events(KIND_ROWS),
            KEY,
            DAY,
            date(2020, 1, 10),
        )[LABEL].dtype
        == pl.Float64
    )


def test_column_label_rules_for_several_rows_and_none() -> None:
    col = {"kind": "column", "column": "number_of_cds"}
    # several rows in the horizon: last by time (a: 4), first (a: 1), max, mean; d has none
    assert kind_labels(kind_model(col, "regression")) == {"a": 4.0, "b": 3.0, "c": 1.0}
    assert kind_labels(kind_model({**col, "several": "first"}, "regression"))["a"] == 1.0
    assert kind_labels(kind_model({**col, "several": "max"}, "regression"))["a"] == 4.0
    assert kind_labels(kind_model({**col, "several": "mean"}, "regression"))["a"] == 2.5
    assert kind_labels(kind_model({**col, "fill_value": 0}, "multiclass")) == {"a": 4, "b": 3, "c": 1, "d": 0}
    # a binary model needs 0/1 values: the error names the column and the dataset
    with pytest.raises(DataError, match=r"'number_of_cds' of dataset 'transactions' must be 0 or 1"):
        kind_labels(kind_model(col, "binary"))


# --- training dates -----------------------------------------------------------------------


@pytest.mark.parametrize(("horizon", "window", "step"), [(90, 270, 7), (30, 60, 5), (7, 10, 3), (1, 1, 1)])
def test_training_dates(horizon: int, window: int, step: int) -> None:
    m = model(horizon, window, step)
    cutoff = date(1998, 6, 30)
    train, holdout = training_dates(m, cutoff)
    h = timedelta(days=horizon)
    assert holdout + h == cutoff
    assert train == sorted(train)
    assert len(train) == window // step + 1
    assert train[-1] + h == holdout  # the last training label matures exactly at the holdout day
    assert all(d + h <= holdout for d in train)
    assert all((b - a).days == step for a, b in itertools.pairwise(train))
    assert (train[-1] - train[0]).days <= window
    lo, hi = training_offsets(m)
    assert cutoff + timedelta(days=lo) <= train[0]
    assert holdout == cutoff + timedelta(days=hi)


def test_training_dates_of_the_example_model() -> None:
    spec = load_spec(REPO / "mlforge.yaml")
    train, holdout = training_dates(spec.model("churn"), date(1998, 6, 30))
    assert holdout == date(1998, 4, 1)
    assert train[-1] == date(1998, 1, 1)
    assert len(train) == 270 // 7 + 1 == 39
    assert train[0] == date(1998, 1, 1) - timedelta(days=7 * 38)


# --- the bundled CDNOW data ---------------------------------------------------------------


@pytest.fixture(scope="module")
def transactions() -> DatasetSpec:
    return load_spec(REPO / "mlforge.yaml").dataset("transactions")


def test_read_source_on_the_bundled_cdnow_file(transactions: DatasetSpec) -> None:
    df = read_source(transactions, str(CDNOW))
    assert df.height == 69_659
    assert df[KEY].n_unique() == 23_570
    assert df[DAY].min() == date(1997, 1, 1)
    assert df[DAY].max() == date(1998, 6, 30)
    assert df.schema == pl.Schema(
        {KEY: pl.String, DAY: pl.Date, "number_of_cds": pl.Int64, "dollar_value": pl.Float64}
    )
    # Ids keep their zero padding (they are strings, not ints).
    assert df.row(0) == ("00001", date(1997, 1, 1), 1, pytest.approx(11.77))
    assert df["number_of_cds"].min() >= 1
    assert df["dollar_value"].min() >= 0


def _lines() -> list[str]:
    return CDNOW.read_text().splitlines()


def _source_error(transactions: DatasetSpec, tmp_path: Path, lines: list[str]) -> str:
    """Write `lines` as a source file and return the DataError reading it raises (path included)."""
    p = tmp_path / "bad.txt"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        read_source(transactions, str(p))
    msg = str(info.value)
    assert str(p) in msg
    return msg


def test_line_with_three_fields_names_the_line(transactions: DatasetSpec, tmp_path: Path) -> None:
    lines = _lines()
    lines.insert(11, " 00009 19970101 1")  # becomes line 12 of the file
    msg = _source_error(transactions, tmp_path, lines)
    assert "line 12 has 3 fields, the header has 4" in msg


def test_non_numeric_dollar_value_names_the_column_and_row(transactions: DatasetSpec, tmp_path: Path) -> None:
    lines = _lines()
    lines.insert(11, " 00009 19970101 1 twelve")  # data row 11 (line 12 of the file)
    msg = _source_error(transactions, tmp_path, lines)
    assert "column 'dollar_value' row 11: cannot parse 'twelve' as float" in msg
    assert "(1 bad value(s) in all)" in msg


def test_unparseable_date_names_the_column(transactions: DatasetSpec, tmp_path: Path) -> None:
    lines = _lines()[:20]
    lines[3] = " 00003 19971301 2 3.00"
    msg = _source_error(transactions, tmp_path, lines)
    assert "column 'date' row 3: cannot parse '19971301' as date" in msg


def test_missing_source_file_is_a_data_error(transactions: DatasetSpec, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="source not found"):
        read_source(transactions, str(tmp_path / "absent.txt"))


def test_missing_column_is_a_data_error(transactions: DatasetSpec, tmp_path: Path) -> None:
    p = tmp_path / "bad.txt"
    p.write_text("customer_id date number_of_cds\n00001 19970101 1\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['dollar_value'\]"):
        read_source(transactions, str(p))


def test_field_count_error_line_number_counts_blank_lines(transactions: DatasetSpec, tmp_path: Path) -> None:
    lines = _lines()[:10]
    lines[5:5] = ["", ""]  # two blank lines (lines 6 and 7)
    lines.append(" 00009 19970101 1")  # physical line 13
    assert "line 13 has 3 fields" in _source_error(transactions, tmp_path, lines)
