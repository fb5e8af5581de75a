"""The code location loads, and its shape follows the spec: one partitioning, every stage, checks."""

from __future__ import annotations

from datetime import datetime

import dagster as dg

from mlforge.config.project import Project
from mlforge_assets.factory import build_definitions


def _defs(repo_root) -> dg.Definitions:  # type: ignore[no-untyped-def]
    return build_definitions(Project.load(repo_root / "mlforge.yaml"))


def test_definitions_module_loads() -> None:
    from mlforge_assets.definitions import defs

    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys == {
        "churn/raw/transactions",
        "churn/entities/transactions",
        "churn/features/customer_activity",
        "churn/online/customer_activity",
        "churn/labels/churn",
        "churn/models/churn/trained",
        "churn/models/churn/registered",
        "churn/deployments/churn-api",
        "churn/monitoring/churn/drift",
        "churn/monitoring/churn/performance",
        "churn/predictions/churn",
    }


def test_one_daily_partitioning_and_single_run_backfills(repo_root) -> None:  # type: ignore[no-untyped-def]
    graph = _defs(repo_root).get_repository_def().asset_graph
    parts = {graph.get(k).partitions_def for k in graph.get_all_asset_keys()}
    assert len(parts) == 1
    (pdef,) = parts
    keys = pdef.get_partition_keys()  # type: ignore[union-attr]
    assert keys[0] == "1997-01-01" and keys[-1] == "1998-06-30" and len(keys) == 546
    for k in graph.get_all_asset_keys():
        assert graph.get(k).backfill_policy == dg.BackfillPolicy.single_run(), k


def test_partition_mappings_encode_lookback_and_horizon(repo_root) -> None:  # type: ignore[no-untyped-def]
    from mlforge_assets.factory import build_assets

    assets = {a.key.to_user_string(): a for a in build_assets(Project.load(repo_root / "mlforge.yaml"))}
    raw = dg.AssetKey(["churn", "raw", "transactions"])
    feats = assets["churn/features/customer_activity"]
    pdef = feats.partitions_def
    assert pdef is not None

    def upstream(asset: dg.AssetsDefinition, up: dg.AssetKey, day: str) -> list[str]:
        res = asset.get_partition_mapping(up).get_upstream_mapped_partitions_result_for_partitions(
            pdef.subset_with_partition_keys([day]), pdef, pdef
        )
        return sorted(res.partitions_subset.get_partition_keys())

    # features of 1998-03-31 read the 365 raw days ending that day
    sub = upstream(feats, raw, "1998-03-31")
    assert len(sub) == 365 and sub[0] == "1997-04-01" and sub[-1] == "1998-03-31"
    # near the start of history the window is clipped, not an error
    assert upstream(feats, raw, "1997-01-10") == [f"1997-01-{d:02d}" for d in range(1, 11)]
    # labels of 1998-01-01 look at the 90 raw days after it, never the day itself
    lsub = upstream(assets["churn/labels/churn"], raw, "1998-01-01")
    assert len(lsub) == 90 and lsub[0] == "1998-01-02" and lsub[-1] == "1998-04-01"
    # training for cutoff 1998-06-30 reads labels up to the holdout day 90 days earlier, not later
    tsub = upstream(
        assets["churn/models/churn/trained"], dg.AssetKey(["churn", "labels", "churn"]), "1998-06-30"
    )
    assert tsub[-1] == "1998-04-01" and tsub[0] == "1997-04-06"


def test_checks_are_blocking_and_cover_data_and_model(repo_root) -> None:  # type: ignore[no-untyped-def]
    graph = _defs(repo_root).get_repository_def().asset_graph
    checks = {
        (c.asset_key.to_user_string(), c.name): graph.get_check_spec(c).blocking  # type: ignore[attr-defined]
        for c in graph.asset_check_keys
    }
    assert checks == {
        ("churn/raw/transactions", "not_null"): True,
        ("churn/raw/transactions", "value_ranges"): True,
        ("churn/features/customer_activity", "unique_keys"): True,
        ("churn/features/customer_activity", "no_future_data"): True,
        ("churn/models/churn/trained", "min_quality"): True,
        # one warning check per alert threshold of the spec (auc, latency_p99_ms), alerting, not blocking
        ("churn/monitoring/churn/drift", "drift_share"): False,
        ("churn/monitoring/churn/performance", "min_auc"): False,
        ("churn/monitoring/churn/performance", "max_latency_p99_ms"): False,
    }


def test_jobs_schedules_sensors(repo_root) -> None:  # type: ignore[no-untyped-def]
    defs = _defs(repo_root)
    repo = defs.get_repository_def()
    assert {s.name for s in repo.schedule_defs} == {
        "churn_daily_refresh_schedule",
        "churn_churn_weekly_retrain",
    }
    assert {s.name for s in repo.sensor_defs} == {
        "churn_churn_drift_retrain",
        "churn_run_failure_alert",
        "churn_automation",
    }
    retrain = defs.resolve_job_def("churn_churn_retrain")
    selected = {k.to_user_string() for k in retrain.asset_layer.selected_asset_keys}
    assert selected == {
        "churn/models/churn/trained",
        "churn/models/churn/registered",
        "churn/deployments/churn-api",
    }
    refresh = defs.resolve_job_def("churn_daily_refresh")
    selected = {k.to_user_string() for k in refresh.asset_layer.selected_asset_keys}
    assert "churn/labels/churn" not in selected and "churn/monitoring/churn/drift" in selected
    assert "churn/models/churn/trained" not in selected


def test_weekly_retrain_schedule_targets_the_previous_day(repo_root) -> None:  # type: ignore[no-untyped-def]
    defs = _defs(repo_root)
    repo = defs.get_repository_def()
    sched = repo.get_schedule_def("churn_churn_weekly_retrain")
    assert sched.cron_schedule == "0 4 * * 1" and sched.execution_timezone == "UTC"
    ctx = dg.build_schedule_context(scheduled_execution_time=datetime(1998, 3, 2, 4, 0), repository_def=repo)
    (req,) = sched.evaluate_tick(ctx).run_requests  # type: ignore[misc]
    assert req.partition_key == "1998-03-01"
    # after the end of the history the schedule keeps to the last partition
    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 30, 4, 0), repository_def=repo
    )
    (req,) = sched.evaluate_tick(ctx).run_requests  # type: ignore[misc]
    assert req.partition_key == "1998-06-30"
