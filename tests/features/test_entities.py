"""The entity index: the day-by-day fold equals a group-by over the whole history, never sees the
future, and resuming from a stored day gives the same bytes as folding from the start."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from mlforge.features.entities import (
    EVENT_ROWS,
    FIRST_DAY,
    LAST_DAY,
    empty_index,
    index_as_of,
    iter_index,
    stat,
)

KEY, DAY = "customer_id", "date"
COLS = ["dollar_value", "number_of_cds"]
START = date(2020, 1, 1)


def history(n: int = 4000, entities: int = 300, days: int = 120, seed: int = 5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, 20.0, n)
    values[rng.random(n) < 0.05] = np.nan  # NaN is a value (polars sums it), null is missing
    frame = pl.DataFrame(
        {
            KEY: [f"c{i:04d}" for i in rng.integers(0, entities, n)],
            DAY: [START + timedelta(days=int(d)) for d in rng.integers(0, days, n)],
            "dollar_value": values,
            "number_of_cds": rng.integers(1, 9, n),
        }
    )
    # some nulls: counted as rows, not as values
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 37 == 0)
        .then(None)
        .otherwise(pl.col("number_of_cds"))
        .alias("number_of_cds")
    )


def direct(events: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """The index as of `as_of` from one group-by over every row up to it (the oracle)."""
    past = events.filter(pl.col(DAY) <= as_of)
    aggs = [
        pl.col(DAY).min().alias(FIRST_DAY),
        pl.col(DAY).max().alias(LAST_DAY),
        pl.len().cast(pl.Int64).alias(EVENT_ROWS),
    ]
    for c in COLS:
        v = pl.col(c).cast(pl.Float64)
        aggs += [
            v.count().cast(pl.Int64).alias(stat(c, "count")),
            v.sum().alias(stat(c, "sum")),
            (v * v).sum().alias(stat(c, "sumsq")),
            v.min().alias(stat(c, "min")),
            v.max().alias(stat(c, "max")),
        ]
    return past.group_by(KEY).agg(aggs).sort(KEY)


def test_fold_equals_a_group_by_over_the_whole_history() -> None:
    events = history()
    days = [START + timedelta(days=k) for k in (0, 9, 30, 77, 119, 130)]
    folded = index_as_of(events, KEY, DAY, days, COLS)
    for d in days:
        got, want = folded[d], direct(events, d)
        assert got[KEY].to_list() == want[KEY].to_list()
        assert got[[FIRST_DAY, LAST_DAY, EVENT_ROWS]].equals(want[[FIRST_DAY, LAST_DAY, EVENT_ROWS]])
        for c in COLS:
            assert got[stat(c, "count")].equals(want[stat(c, "count")])
            for s in ("sum", "sumsq", "min", "max"):
                np.testing.assert_allclose(
                    got[stat(c, s)].to_numpy(), want[stat(c, s)].to_numpy(), rtol=1e-12, equal_nan=True
                )
    assert folded[days[-1]].height == 300  # every entity by the end
    assert folded[days[0]].height == events.filter(pl.col(DAY) == START)[KEY].n_unique()


def test_the_index_never_sees_the_future() -> None:
    events = history()
    d = START + timedelta(days=60)
    rewritten = events.with_columns(
        pl.when(pl.col(DAY) > d).then(pl.col("dollar_value") * 7 + 1).otherwise(pl.col("dollar_value")),
        pl.when(pl.col(DAY) > d).then(pl.lit("newcomer")).otherwise(pl.col(KEY)).alias(KEY),
    )
    assert_frame_equal(
        index_as_of(events, KEY, DAY, [d], COLS)[d], index_as_of(rewritten, KEY, DAY, [d], COLS)[d]
    )
    later = d + timedelta(days=30)
    assert "newcomer" in index_as_of(rewritten, KEY, DAY, [later], COLS)[later][KEY].to_list()


def test_resuming_from_a_stored_day_gives_the_same_index_bit_for_bit() -> None:
    # a daily partition folds only its own rows into yesterday's index: the same as one long run,
    # whatever order the day's rows arrive in
    events = history()
    span = [START + timedelta(days=k) for k in range(120)]
    start_index = empty_index(KEY, pl.String(), COLS)
    whole = dict(iter_index(start_index, events, KEY, DAY, span, COLS))
    first, rest = span[:50], span[50:]
    part = dict(iter_index(start_index, events, KEY, DAY, first, COLS))
    shuffled = events.sample(fraction=1.0, shuffle=True, seed=1)
    resumed = part[first[-1]]
    for d in rest:
        ((_, resumed),) = iter_index(resumed, shuffled, KEY, DAY, [d], COLS)
        assert_frame_equal(resumed, whole[d], check_exact=True)
