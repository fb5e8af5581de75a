"""The SDK's feature store on the materialized compact example: Feast's calls, MLForge's stores."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl
import pytest
from projects import END, START

from mlforge import MLForgeClient
from mlforge.errors import MLForgeError
from mlforge.features.offline import read_snapshot
from mlforge.features.refs import feature_names
from mlforge.features.snapshots import EVENT_TS
from mlforge.features.store import FeatureStore


def test_list_feature_views(materialized) -> None:  # type: ignore[no-untyped-def]
    (info,) = FeatureStore(materialized.project).list_feature_views()
    assert info.name == "customer_activity" and info.join_key == "customer_id"
    assert info.materialized_days == (END - START).days + 1 == 273
    assert (info.first_day, info.last_day) == (START, END)
    assert info.features == feature_names(materialized.project.spec.feature_view("customer_activity"))


def test_online_features_in_request_order_with_missing_markers(materialized) -> None:  # type: ignore[no-untyped-def]
    fs = FeatureStore(materialized.project)
    snap = read_snapshot(materialized.project.storage, "customer_activity", END)
    # 00001 last bought in Jan 1997: outside the lookback, still a known customer (the universe)
    ids = ["nobody", *snap["customer_id"].to_list()[10:13], "00001"]
    res = fs.get_online_features("churn_features", ids)
    assert res.entity_ids == ids
    assert res.found[:, 0].tolist() == [False, True, True, True, True]
    assert np.isnan(res.values[0]).all()
    names = feature_names(materialized.project.spec.feature_view("customer_activity"))
    expected = pl.DataFrame({"customer_id": ids[1:]}).join(snap, on="customer_id", how="left").select(names)
    assert np.allclose(res.values[1:], expected.to_numpy(), equal_nan=True)
    inactive = dict(zip(names, res.values[4], strict=True))
    assert inactive["event_count"] == 0 and inactive["dollar_value_sum_30d"] == 0
    assert inactive["days_since_last"] == (END - date(1997, 1, 1)).days
    # a subset of features by reference, in the order asked
    two = fs.get_online_features(
        ["customer_activity:event_count", "customer_activity:days_since_last"], ids[1:2]
    )
    assert two.feature_names == ["customer_activity:event_count", "customer_activity:days_since_last"]
    row = snap[10].to_dicts()[0]
    assert two.values[0].tolist() == pytest.approx([row["event_count"], row["days_since_last"]])
    assert two.to_dict()["customer_activity:event_count"] == [row["event_count"]]
    with pytest.raises(MLForgeError, match="no feature 'nope'"):
        fs.get_online_features(["customer_activity:nope"], ids)


def test_historical_features_are_point_in_time(materialized) -> None:  # type: ignore[no-untyped-def]
    fs = FeatureStore(materialized.project)
    storage = materialized.project.storage
    # the snapshot as of 1997-09-01 becomes valid at 1997-09-02 00:00
    entity_df = pl.DataFrame(
        {
            "customer_id": ["00003", "00003", "00003", "99999"],
            EVENT_TS: [
                datetime(1997, 9, 2, 0, 0),  # exactly the snapshot of 09-01
                datetime(1997, 9, 1, 23, 59),  # just before: the snapshot of 08-31
                datetime(1997, 9, 2, 12, 0),  # later that day: still 09-01's
                datetime(1997, 9, 2, 0, 0),  # unknown customer
            ],
        }
    )
    out = fs.get_historical_features(entity_df, "churn_features")
    assert out.height == 4 and out["customer_id"].to_list() == entity_df["customer_id"].to_list()
    s0901 = read_snapshot(storage, "customer_activity", date(1997, 9, 1)).filter(
        pl.col("customer_id") == "00003"
    )
    s0831 = read_snapshot(storage, "customer_activity", date(1997, 8, 31)).filter(
        pl.col("customer_id") == "00003"
    )
    assert s0901["days_since_last"][0] == s0831["days_since_last"][0] + 1  # a day apart, told apart
    assert out["days_since_last"].to_list()[:3] == [
        s0901["days_since_last"][0],
        s0831["days_since_last"][0],
        s0901["days_since_last"][0],
    ]
    assert out.row(3, named=True)["event_count"] is None
    with pytest.raises(MLForgeError, match="event_timestamp"):
        fs.get_historical_features(entity_df.drop(EVENT_TS), "churn_features")


def test_sdk_materialize_fills_offline_and_online(tmp_path, repo_root) -> None:  # type: ignore[no-untyped-def]
    client = MLForgeClient(repo_root / "mlforge.yaml", home=tmp_path)
    meta = client.feature_store.materialize("1997-03-01", "1997-03-10")
    assert meta["churn/features/customer_activity"]["dagster/row_count"] > 0
    info = client.feature_store.list_feature_views()[0]
    assert (info.first_day, info.last_day, info.materialized_days) == (
        date(1997, 3, 1),
        date(1997, 3, 10),
        10,
    )
    snap = read_snapshot(client.project.storage, "customer_activity", date(1997, 3, 10))
    res = client.feature_store.get_online_features("churn_features", snap["customer_id"].to_list()[:50])
    assert res.found.all()
