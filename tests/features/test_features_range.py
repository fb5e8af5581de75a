"""Snapshots of a range of days (`compute_snapshots` / `iter_snapshots`, what a backfill run uses)
equal the per-day `compute_snapshot` bit for bit, and both equal an independent reference: the
original per-day implementation (filter the whole frame, hash group-by)."""

from __future__ import annotations

import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from mlforge.config.spec import FeatureViewSpec, load_spec
from mlforge.data.sources import read_source
from mlforge.features.entities import index_as_of
from mlforge.features.refs import _plan
from mlforge.features.snapshots import _Runs, compute_snapshot, compute_snapshots, iter_snapshots

REPO = Path(__file__).resolve().parents[2]
KEY, DAY = "customer_id", "date"


def reference_snapshot(view: FeatureViewSpec, events: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """The per-day implementation the range kernel replaced, kept as the oracle."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from legacy_features import legacy_snapshot

    return legacy_snapshot(view, events, as_of, KEY, DAY)


def check_range(view: FeatureViewSpec, events: pl.DataFrame, days: list[date]) -> int:
    """Range == per-day compute_snapshot (exactly) == the reference (to float32 rounding)."""
    ranged = compute_snapshots(view, events, KEY, DAY, days)  # folds the entity index itself
    assert len(ranged) == len(days)
    # the per-day calls share one index (folded once, as the stored partitions are), instead of
    # folding the history again for every day
    numeric = [c for c, t in events.schema.items() if c not in (KEY, DAY) and t.is_numeric()]
    index = index_as_of(events, KEY, DAY, days, numeric).__getitem__
    assert [d for d, _ in iter_snapshots(view, events, KEY, DAY, days, index)] == days
    rows = 0
    for d, snap in zip(days, ranged, strict=True):
        assert_frame_equal(snap, compute_snapshot(view, events, KEY, DAY, d, index), check_exact=True)
        assert_frame_equal(snap, reference_snapshot(view, events, d), check_exact=False, rel_tol=1e-6)
        rows += snap.height
    return rows


def example_view(**overrides: Any) -> FeatureViewSpec:
    cfg = load_spec(REPO / "mlforge.yaml").feature_view("customer_activity").model_dump()
    cfg.update(overrides)
    return FeatureViewSpec.model_validate(cfg)


# A view using every function, windows longer than the lookback and a short lookback.
EVERY_FUNCTION = [
    {"kind": "recency"},
    {
        "kind": "aggregate",
        "columns": ["dollar_value", "number_of_cds"],
        "functions": ["count", "sum", "mean", "std", "min", "max"],
    },
    {
        "kind": "window",
        "columns": ["dollar_value"],
        "functions": ["count", "sum", "mean", "std", "min", "max"],
        "windows_days": [7, 30, 200],
    },
]


# Everything the numpy kernel covers (no std), with windows inside and beyond the lookback.
NUMPY_FUNCTIONS = [
    {"kind": "recency"},
    {
        "kind": "aggregate",
        "columns": ["dollar_value", "number_of_cds"],
        "functions": ["count", "sum", "mean", "min", "max"],
    },
    {
        "kind": "window",
        "columns": ["dollar_value", "number_of_cds"],
        "functions": ["count", "sum", "mean", "min", "max"],
        "windows_days": [1, 7, 30, 200],
    },
]


def kernel(view: FeatureViewSpec, events: pl.DataFrame) -> str:
    """Which kernel `iter_snapshots` picks for these events."""
    return "numpy" if _Runs.of(events.sort(KEY, maintain_order=True), _plan(view), KEY, DAY) else "polars"


@pytest.fixture(scope="module")
def cdnow() -> pl.DataFrame:
    spec = load_spec(REPO / "mlforge.yaml")
    tx = read_source(spec.dataset("transactions"), str(REPO / "data" / "cdnow" / "CDNOW_master.txt"))
    # The order load_days returns stored day partitions in (each day sorted by its columns).
    return tx.sort(DAY, *[c for c in tx.columns if c != DAY])


@pytest.fixture(scope="module")
def synthetic() -> pl.DataFrame:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gen_transactions import generate

    return generate(150_000, seed=3)


def test_cdnow_60_days_match_per_day_snapshots(cdnow: pl.DataFrame) -> None:
    days = [date(1997, 12, 1) + timedelta(days=i) for i in range(60)]
    assert kernel(example_view(), cdnow) == "numpy"
    assert check_range(example_view(), cdnow, days) > 60 * 10_000


def test_cdnow_range_is_bit_identical_to_the_original_implementation(cdnow: pl.DataFrame) -> None:
    # Not guaranteed in general (sums may round differently in the last float64 bit), but on the
    # real data every value of every day of the history comes out identical after the float32 cast.
    days = [date(1997, 1, 1) + timedelta(days=i) for i in range(0, 546, 5)]
    for d, snap in zip(days, compute_snapshots(example_view(), cdnow, KEY, DAY, days), strict=True):
        assert_frame_equal(snap, reference_snapshot(example_view(), cdnow, d), check_exact=True)


def test_cdnow_first_days_where_the_lookback_starts_before_the_data(cdnow: pl.DataFrame) -> None:
    days = [date(1996, 12, 30) + timedelta(days=i) for i in range(10)]  # two days with no data yet
    check_range(example_view(), cdnow, days)
    assert compute_snapshots(example_view(), cdnow, KEY, DAY, days)[0].height == 0


def test_cdnow_in_file_order_with_every_function(cdnow: pl.DataFrame) -> None:
    # customer-sorted (the file's order), not day-sorted; unsorted and repeated days
    by_customer = cdnow.sort(KEY, maintain_order=True)
    days = [date(1998, 6, 30), date(1997, 3, 1), date(1997, 3, 1), date(1997, 9, 17)]
    check_range(example_view(lookback_days=90, transformations=EVERY_FUNCTION), by_customer, days)


def test_synthetic_range_matches_per_day_snapshots(synthetic: pl.DataFrame) -> None:
    days = [date(1998, 5, 1) + timedelta(days=i) for i in range(20)]
    assert check_range(example_view(), synthetic, days) > 20 * 10_000


def with_nulls(events: pl.DataFrame) -> pl.DataFrame:
    return events.with_columns(
        pl.when(pl.int_range(events.height) % 17 == 0)
        .then(None)
        .otherwise(pl.col("dollar_value"))
        .alias("dollar_value"),
        pl.when(pl.int_range(events.height) % 23 == 0)
        .then(None)
        .otherwise(pl.col("number_of_cds"))
        .alias("number_of_cds"),
    )


@pytest.mark.parametrize("functions", [EVERY_FUNCTION, NUMPY_FUNCTIONS], ids=["polars", "numpy"])
def test_synthetic_shuffled_with_nulls(synthetic: pl.DataFrame, functions: list[Any]) -> None:
    events = with_nulls(synthetic).sample(fraction=1.0, shuffle=True, seed=11)  # days not ascending
    view = example_view(lookback_days=60, transformations=functions)
    assert kernel(view, events) == ("numpy" if functions is NUMPY_FUNCTIONS else "polars")
    days = [date(1997, 4, 1) + timedelta(days=3 * i) for i in range(8)]
    check_range(view, events, days)


def test_int32_counts_and_nan_values(synthetic: pl.DataFrame) -> None:
    events = synthetic.head(30_000).with_columns(
        pl.col("number_of_cds").cast(pl.Int32),
        # a NaN on 1997-01-05 only: the days whose window holds it fall back to polars
        pl.when((pl.col(DAY) == date(1997, 1, 5)) & (pl.int_range(30_000) % 5 == 0))
        .then(float("nan"))
        .otherwise(pl.col("dollar_value"))
        .alias("dollar_value"),
    )
    view = example_view(lookback_days=10, transformations=NUMPY_FUNCTIONS)
    assert kernel(view, events) == "numpy"
    days = [date(1997, 1, 1) + timedelta(days=i) for i in range(20)]
    check_range(view, events, days)
    snaps = compute_snapshots(view, events, KEY, DAY, days)
    assert snaps[6]["dollar_value_sum"].is_nan().any()  # 01-07 sees the NaN ...
    assert not snaps[15]["dollar_value_sum"].is_nan().any()  # ... 01-16 no longer does


def test_empty_inputs() -> None:
    view = example_view()
    empty = pl.DataFrame(
        schema={KEY: pl.String, DAY: pl.Date, "number_of_cds": pl.Int64, "dollar_value": pl.Float64}
    )
    assert compute_snapshots(view, empty, KEY, DAY, []) == []
    (snap,) = compute_snapshots(view, empty, KEY, DAY, [date(2020, 1, 1)])
    assert snap.height == 0
    assert snap.schema == reference_snapshot(view, empty, date(2020, 1, 1)).schema


_days = st.dates(min_value=date(2020, 1, 1), max_value=date(2020, 6, 30))
_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        _days,
        st.one_of(st.none(), st.floats(min_value=0, max_value=1000, allow_nan=False)),
        st.integers(1, 20),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_rows, st.lists(_days, min_size=1, max_size=6), st.integers(1, 120))
def test_random_ranges_match_the_reference(rows: list[Any], days: list[date], lookback: int) -> None:
    events = pl.DataFrame(
        {
            KEY: [r[0] for r in rows],
            DAY: [r[1] for r in rows],
            "dollar_value": [r[2] for r in rows],
            "number_of_cds": [r[3] for r in rows],
        },
        schema={KEY: pl.String, DAY: pl.Date, "dollar_value": pl.Float64, "number_of_cds": pl.Int64},
    )
    for functions in (EVERY_FUNCTION, NUMPY_FUNCTIONS):
        check_range(example_view(lookback_days=lookback, transformations=functions), events, days)
