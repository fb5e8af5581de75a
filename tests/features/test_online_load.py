"""Loading offline snapshots into the online store: the newest row per entity, with the view's TTL."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from mlforge.features.online import OnlineLoad, SQLiteOnlineStore, latest_per_entity, load_latest, ttl_seconds
from mlforge.features.snapshots import EVENT_TS

FEATURES = ["x", "y"]


def snapshots() -> pl.DataFrame:
    """Two days of snapshots, read in no particular order: a on both days, b on the 1st, c on the 2nd."""
    d1, d2 = datetime(1997, 1, 2), datetime(1997, 1, 3)
    return pl.DataFrame(
        {
            "customer_id": ["a", "c", "b", "a"],
            EVENT_TS: [d2, d2, d1, d1],
            "x": [2.0, 30.0, 10.0, 1.0],
            "y": [0.2, 3.0, 1.0, 0.1],
        },
        schema_overrides={EVENT_TS: pl.Datetime("us")},
    )


def test_latest_per_entity_keeps_the_newest_row_in_time_order() -> None:
    latest = latest_per_entity(snapshots(), "customer_id")
    assert latest["customer_id"].to_list() == ["b", "a", "c"]
    assert latest["x"].to_list() == [10.0, 2.0, 30.0]
    assert latest_per_entity(snapshots().clear(), "customer_id").height == 0


def test_ttl_seconds() -> None:
    assert ttl_seconds(1) == 86_400 and ttl_seconds(365) == 31_536_000


def test_load_latest_writes_each_entity_s_newest_values(tmp_path: Path) -> None:
    store = SQLiteOnlineStore(tmp_path / "online.db")
    load = load_latest(store, "view", snapshots(), "customer_id", FEATURES, ttl_days=2)
    assert load == OnlineLoad(entities=3, written=3, ttl_seconds=172_800)
    values, found = store.read("view", ["a", "b", "c", "z"], 2)
    assert found.tolist() == [True, True, True, False]
    np.testing.assert_array_equal(values[:3], [[2.0, 0.2], [10.0, 1.0], [30.0, 3.0]])
    # the stored event timestamp is the snapshot's, in epoch seconds
    raw = store._conn().execute("SELECT ts FROM online WHERE entity = 'a'").fetchone()[0]
    assert raw == int((datetime(1997, 1, 3) - datetime(1970, 1, 1)).total_seconds())

    # loading an older day again writes nothing over the fresher values
    older = snapshots().filter(pl.col(EVENT_TS) == datetime(1997, 1, 2))
    again = load_latest(store, "view", older, "customer_id", FEATURES, ttl_days=2)
    assert (again.entities, again.written) == (2, 1)  # b is rewritten (same timestamp); a is older
    assert store.read("view", ["a"], 2)[0].tolist() == [[2.0, 0.2]]
