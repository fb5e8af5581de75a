"""Every stage through Dagster on the real CDNOW data (the session's quickstart run of the compact
example: Jan–Sep 1997, cutoff and last day 1997-09-30)."""

from __future__ import annotations

import json
from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest
from projects import END, START

from mlforge.config.project import Project
from mlforge.deployment.manifest import read_manifest
from mlforge.errors import MLForgeError
from mlforge.features.offline import read_snapshot
from mlforge.io import layout
from mlforge.io.storage import read_json, read_parquet
from mlforge_assets.factory import build_definitions
from mlforge_assets.runner import Runner

#: customers in the bundled CDNOW file (the 1997-Q1 cohort: all of them known by April 1997)
COHORT = 23_570


def _transactions(materialized) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    """Every row of the bundled source file, typed as the spec says."""
    return materialized.project.read_source(materialized.project.spec.dataset("transactions"))


def test_raw_stage_stores_every_row_once(materialized) -> None:  # type: ignore[no-untyped-def]
    tx = _transactions(materialized)
    in_range = tx.filter(pl.col("date").is_between(START, END))
    meta = materialized.meta("churn/raw/transactions")
    # every source row of the partitions' days, none of the file's later history
    assert meta["dagster/row_count"] == in_range.height == 49_086
    assert tx.height == 69_659 and tx.filter(pl.col("date") > END).height > 0
    assert meta["days"] == (END - START).days + 1 == 273
    storage = materialized.project.storage
    day = read_parquet(storage, "raw/transactions/date=1997-01-01/data.parquet")
    side = read_json(storage, "raw/transactions/date=1997-01-01/_meta.json")
    assert side["rows"] == day.height > 0 and len(side["sha256"]) == 64
    assert day["date"].unique().to_list() == [date(1997, 1, 1)]


def test_feature_snapshot_matches_hand_computation(materialized) -> None:  # type: ignore[no-untyped-def]
    storage = materialized.project.storage
    snap = read_snapshot(storage, "customer_activity", END)
    assert materialized.meta("churn/features/customer_activity")["entities_last_day"] == snap.height
    # recompute from the raw rows in the lookback days up to END (120: 1997-06-03..1997-09-30)
    lookback = materialized.project.spec.feature_view("customer_activity").lookback_days
    tx = _transactions(materialized)
    window = tx.filter(pl.col("date").is_between(END - timedelta(days=lookback - 1), END))
    # the lowest id with two or more purchases in the window (00003 bought nothing after March)
    counts = window.group_by("customer_id").len().filter(pl.col("len") >= 2).sort("customer_id")
    cid = counts["customer_id"][0]
    c = window.filter(pl.col("customer_id") == cid)
    row = snap.filter(pl.col("customer_id") == cid).to_dicts()[0]
    assert row["event_count"] == c.height >= 2
    assert row["dollar_value_sum"] == pytest.approx(c["dollar_value"].sum(), rel=1e-5)
    assert row["days_since_last"] == (END - c["date"].max()).days
    # every customer known by END (the universe), not only the minority active in the lookback
    assert snap.height == tx.filter(pl.col("date") <= END)["customer_id"].n_unique() == COHORT
    active = window["customer_id"].n_unique()
    assert snap.filter(pl.col("event_count") > 0).height == active < COHORT // 2


def test_labels_and_training_metrics_are_plausible(materialized) -> None:  # type: ignore[no-untyped-def]
    labels = materialized.meta("churn/labels/churn")
    assert 0.5 < labels["positive_rate"] < 0.95  # most CDNOW customers do not come back
    trained = materialized.meta("churn/models/churn/trained")
    assert 0.70 <= trained["holdout_auc"] <= 0.90
    assert trained["holdout_rows"] > 5_000 and trained["train_rows"] > 100_000
    registered = materialized.meta("churn/models/churn/registered")
    assert registered["model_version"] == 1 and registered["promoted"] is True


def test_mlflow_run_is_tagged_with_its_lineage(materialized) -> None:  # type: ignore[no-untyped-def]
    import os

    # training must not leak its tracking URI into the process (later projects would track into it)
    assert os.environ.get("MLFLOW_TRACKING_URI") != materialized.project.settings.tracking_uri
    trained = materialized.meta("churn/models/churn/trained")
    tracker = materialized.runner.resources["mlflow"].get()
    run = tracker.client.get_run(trained["mlflow_run_id"])
    tags = run.data.tags
    assert tags["dagster.asset_key"] == "churn/models/churn/trained"
    assert tags["dagster.partition"] == END.isoformat()
    assert tags["mlforge.data_version"] == trained["data_version"]
    assert tags["dagster.run_id"]
    assert run.data.metrics["holdout_auc"] == pytest.approx(trained["holdout_auc"])
    champion = tracker.alias("churn", "champion")
    assert (
        champion is not None and champion.version == 1 and champion.tags["mlforge.cutoff"] == END.isoformat()
    )


def test_deployment_manifest_names_the_champion(materialized) -> None:  # type: ignore[no-untyped-def]
    m = read_manifest(materialized.project.storage, "churn-api")
    assert m is not None and m.strategy == "blue_green" and m.revision == 1
    (v,) = m.variants
    assert (v.version, v.traffic, v.name) == (1, 100, "champion")
    assert v.booster_uri.endswith("model.ubj")
    assert m.feature_names[:2] == ["days_since_last", "days_since_first"]


def test_drift_report_and_predictions(materialized) -> None:  # type: ignore[no-untyped-def]
    storage = materialized.project.storage
    drift = materialized.meta("churn/monitoring/churn/drift")
    assert 0.0 <= drift["drift_share"] < 0.5 and drift["dataset_drift"] is False  # a clean day
    html = storage.read_bytes(layout.drift_report("churn", END, "html"))
    assert len(html) > 100_000 and b"<html" in html[:2000].lower()
    summary = json.loads(storage.read_bytes(layout.drift_summary("churn", END)))
    assert summary["drift_share"] == pytest.approx(drift["drift_share"])
    preds = read_parquet(storage, layout.predictions("churn", END))
    assert preds.height == materialized.meta("churn/predictions/churn")["dagster/row_count"] == COHORT
    assert preds["score"].min() >= 0.0 and preds["score"].max() <= 1.0
    assert preds["customer_id"].n_unique() == preds.height


def test_drift_report_flags_shifted_spend(materialized) -> None:  # type: ignore[no-untyped-def]
    """The same report on the day's features with spend tripled and recency halved flags drift."""
    from mlforge.features.refs import feature_names
    from mlforge.monitoring.drift import drift_report

    storage = materialized.project.storage
    cols = feature_names(materialized.project.spec.feature_view("customer_activity"))
    reference = read_parquet(storage, layout.model_reference("churn", END))
    current = read_snapshot(storage, "customer_activity", END)
    shifted = current.with_columns(
        [pl.col(c) * 3 for c in cols if c.startswith("dollar_value")]
        + [pl.col("days_since_last") / 2, pl.col("days_since_first") / 2]
    )
    clean = drift_report(reference, current, cols, None, 0.5)
    drifted = drift_report(reference, shifted, cols, None, 0.5)
    assert clean.drift_share < 0.5 <= drifted.drift_share
    assert drifted.dataset_drift and set(drifted.column_scores) == set(cols)


def test_sensor_requests_exactly_one_retrain_per_drift_event(materialized) -> None:  # type: ignore[no-untyped-def]
    defs = build_definitions(materialized.project)
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def("churn_churn_drift_retrain")
    instance = materialized.instance
    drift_key = dg.AssetKey(["churn", "monitoring", "churn", "drift"])

    # the quickstart's clean day is seen, judged below threshold, and remembered in the cursor
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=repo))
    assert first.run_requests == [] and first.cursor is not None
    cursor = first.cursor

    # two drifted days in one tick → one retrain, for the latest of them
    day_before, last_day = (END - timedelta(days=1)).isoformat(), END.isoformat()
    for day in ((END - timedelta(days=2)).isoformat(), day_before):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(drift_key, partition=day, metadata={"drift_share": 0.8})
        )
    drifted = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=repo)
    )
    assert [r.partition_key for r in drifted.run_requests] == [day_before]
    req = drifted.run_requests[0]
    assert req.tags["mlforge/trigger"] == "drift" and req.tags["mlforge/drift_share"] == "0.8000"
    assert drifted.cursor != cursor

    # a restarted sensor with the stored cursor requests nothing again
    again = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=drifted.cursor, repository_def=repo)
    )
    assert again.run_requests == []

    # the same event goes on (another drifted day, here through the served inputs): no second retrain
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            drift_key, partition=last_day, metadata={"drift_share": 0.2, "log_drift_share": 0.9}
        )
    )
    ongoing = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=drifted.cursor, repository_def=repo)
    )
    assert ongoing.run_requests == [] and ongoing.cursor != drifted.cursor

    # a clean report closes the event and advances the cursor without a run
    instance.report_runless_asset_event(
        dg.AssetMaterialization(drift_key, partition=last_day, metadata={"drift_share": 0.1})
    )
    clean = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=ongoing.cursor, repository_def=repo)
    )
    assert clean.run_requests == [] and clean.cursor not in (None, ongoing.cursor)

    # drift after the clean day is a new event: one more retrain
    instance.report_runless_asset_event(
        dg.AssetMaterialization(drift_key, partition=last_day, metadata={"drift_share": 0.7})
    )
    reopened = sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=clean.cursor, repository_def=repo)
    )
    assert [r.partition_key for r in reopened.run_requests] == [last_day]


def test_online_stage_on_a_real_redis(materialized, redis_url) -> None:  # type: ignore[no-untyped-def]
    """The same online asset, configured for Redis by settings only, fills a real Redis server."""
    import dataclasses

    import numpy as np

    from mlforge.features.online import RedisOnlineStore
    from mlforge.features.refs import feature_names

    base = materialized.project
    settings = dataclasses.replace(
        base.settings, online_store_url=redis_url, online_key_prefix="pipeline-test"
    )
    project = Project(base.spec, base.root, settings)
    runner = Runner(project, materialized.instance)
    res = runner.materialize([runner.key("online", "customer_activity")], END)
    meta = res.metadata["churn/online/customer_activity"]
    snap = read_snapshot(base.storage, "customer_activity", END)
    assert meta["written"] == meta["entities"] == snap.height
    names = feature_names(project.spec.feature_view("customer_activity"))
    ids = [*snap["customer_id"].to_list()[:100], "no-such-customer"]
    values, found = RedisOnlineStore(redis_url, "pipeline-test").read("customer_activity", ids, len(names))
    assert found.tolist() == [True] * 100 + [False]
    expected = snap.head(100).select(names).to_numpy().astype(np.float64)
    assert np.allclose(values[:100], expected, equal_nan=True)
    # re-materializing an older day never overwrites newer values: every customer of a month
    # before is in the newer snapshot too (the universe only grows), so nothing is written
    month_before = END - timedelta(days=29)
    earlier = read_snapshot(base.storage, "customer_activity", month_before)
    assert set(earlier["customer_id"]) <= set(snap["customer_id"])
    older = runner.materialize([runner.key("online", "customer_activity")], month_before)
    meta_old = older.metadata["churn/online/customer_activity"]
    assert meta_old["written"] == 0 and meta_old["skipped_older"] == earlier.height == COHORT
    again, _ = RedisOnlineStore(redis_url, "pipeline-test").read("customer_activity", ids[:100], len(names))
    assert np.allclose(again, expected, equal_nan=True)


def test_stage_refuses_incomplete_upstream_window(tmp_path, repo_root) -> None:  # type: ignore[no-untyped-def]
    project = Project.load(repo_root / "mlforge.yaml", state_dir=tmp_path)
    runner = Runner(project)
    runner.materialize([runner.key("raw", "transactions")], date(1997, 1, 1), date(1997, 1, 20))
    with pytest.raises(MLForgeError) as err:
        runner.materialize([runner.key("features", "customer_activity")], date(1997, 2, 1))
    msg = str(err.value)
    assert "raw/transactions" in msg and "1997-01-21..1997-02-01" in msg and "12 partition(s)" in msg
    # nothing was written for the refused day
    assert not project.storage.exists("features/customer_activity/date=1997-02-01/data.parquet")


def test_labels_refuse_a_horizon_that_has_not_passed(tmp_path, repo_root) -> None:  # type: ignore[no-untyped-def]
    project = Project.load(repo_root / "mlforge.yaml", state_dir=tmp_path)
    runner = Runner(project)
    with pytest.raises(MLForgeError, match=r"90-day horizon of 1998-06-01 has not passed yet.*1998-04-01"):
        runner.materialize([runner.key("labels", "churn")], date(1998, 6, 1))


def test_blocking_quality_check_stops_registration(materialized) -> None:  # type: ignore[no-untyped-def]
    """A model below the gate's minimum is trained and logged, but never registered or deployed."""
    base = materialized.project
    model = base.spec.model("churn")
    strict = model.model_copy(update={"gate": model.gate.model_copy(update={"min": 0.99})})
    spec = base.spec.model_copy(update={"models": [strict]})
    runner = Runner(Project(spec, base.root, base.settings), materialized.instance)
    tracker = runner.resources["mlflow"].get()
    before = len(tracker.client.search_model_versions("name='churn'"))
    keys = [runner.key("models", "churn", "trained"), runner.key("models", "churn", "registered")]
    day = END - timedelta(days=1)
    with pytest.raises(MLForgeError, match=r"check min_quality on churn/models/churn/trained failed"):
        runner.materialize(keys, day)
    assert len(tracker.client.search_model_versions("name='churn'")) == before
    assert base.storage.exists(f"models/churn/cutoff={day}/run.json")  # trained and logged
    assert not base.storage.exists(layout.model_registration("churn", day))


def test_a_candidate_with_an_earlier_cutoff_does_not_contend(materialized, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The gate never compares on data the champion may have seen: an older cutoff's model is
    registered and evaluated, but neither becomes challenger nor champion, and says why."""
    from projects import copy_state

    from mlforge.io.timeline import training_dates
    from mlforge.models.gate import CHALLENGER, CHAMPION

    base = materialized.project
    earlier = END - timedelta(days=15)
    train_days, holdout = training_dates(base.spec.model("churn"), earlier)
    # the training and holdout snapshots, and the cutoff's own (the drift reference)
    keep = {d.isoformat() for d in [*train_days, holdout, earlier]}
    copy_state(materialized.state_dir, tmp_path / "state", keep)
    project = Project.load(materialized.spec_path, state_dir=tmp_path / "state")
    runner = Runner(project, dg.DagsterInstance.ephemeral())
    tracker = runner.resources["mlflow"].get()
    champion_before = tracker.alias("churn", CHAMPION)
    challenger_before = tracker.alias("churn", CHALLENGER)
    assert champion_before is not None and champion_before.tags["mlforge.cutoff"] == END.isoformat()

    runner.materialize(
        [runner.key("models", "churn", "trained"), runner.key("models", "churn", "registered")], earlier
    )
    reg = read_json(project.storage, layout.model_registration("churn", earlier))
    assert reg["promoted"] is False and reg["contended"] is False
    assert reg["version"] > champion_before.version  # registered all the same
    assert f"earlier than the champion's {END}" in reg["reason"]
    assert reg["champion_metric"] is None  # the champion was not scored on the seen holdout
    assert tracker.alias("churn", CHAMPION).version == champion_before.version
    assert challenger_before is not None
    assert tracker.alias("churn", CHALLENGER).version == challenger_before.version
    tags = tracker.version("churn", reg["version"]).tags
    assert tags["mlforge.gate.promoted"] == "false" and "does not contend" in tags["mlforge.gate.reason"]
