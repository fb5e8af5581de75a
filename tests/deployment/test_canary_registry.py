"""The registry follows live traffic: a canary's end moves (or restores) MLflow's `champion` alias."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from projects import END
from test_strategies import (
    CANARY,
    ENDPOINT,
    _log_frame,
    canary_project,
    healthy,
    manifest,
    rollout,
    rows,
    tick,
    variant,
)

from mlforge.deployment.manifest import read_manifest, write_manifest
from mlforge.models.tracking import Tracker
from mlforge.models.training import read_trained
from mlforge.monitoring.prediction_log import PredictionLogger
from mlforge_assets.metadata import metadata_values
from mlforge_assets.sensors import canary_sensor


def _two_versions(materialized: Any, project: Any) -> Tracker:
    """The project's (copied) registry with v2 = a second version of the quickstart's run, champion."""
    tracker = project.tracker
    trained = read_trained(materialized.project.storage, "churn", END)
    logged = trained.logged_model()
    v2 = tracker.register("churn", logged, {"mlforge.cutoff": END.isoformat()})
    assert v2.version == 2
    tracker.set_alias("churn", "champion", 2)  # the gate promoted it; the canary starts
    return tracker


def test_canary_rollback_puts_the_champion_alias_back_and_tags_the_version(
    materialized: Any, tmp_path: Path
) -> None:
    project = canary_project(materialized.project, tmp_path, CANARY)
    tracker = _two_versions(materialized, project)
    storage = project.storage
    write_manifest(storage, manifest([variant(1, "champion", 100)], strategy="blue_green"))
    m = write_manifest(storage, rollout().model_copy(update={"created_at": datetime.now(UTC)}))
    _log_frame(
        PredictionLogger(storage),
        pl.concat([rows(m, "stable", 500), rows(m, "canary", 150, latency_ms=400.0, seed=1)]),
    )
    result = tick(canary_sensor(project, project.spec.deployment(ENDPOINT)), project)
    meta = metadata_values(result.asset_events[0].metadata)
    assert meta["mlforge/canary_action"] == "rollback"
    assert meta["mlforge/champion_alias"] == "moved → v1"
    champion = tracker.alias("churn", "champion")
    assert champion is not None and champion.version == 1
    assert champion.tags["mlforge.deployment"] == "live"
    rolled = tracker.version("churn", 2)
    assert rolled.tags["mlforge.deployment"] == "rolled_back"
    assert "p99 latency" in rolled.tags["mlforge.deployment_reason"]
    current = read_manifest(storage, ENDPOINT)
    assert current is not None and [v.version for v in current.variants] == [1]


def test_canary_promotion_keeps_the_gate_s_champion(materialized: Any, tmp_path: Path) -> None:
    project = canary_project(materialized.project, tmp_path, CANARY)
    tracker = _two_versions(materialized, project)
    storage = project.storage
    write_manifest(storage, manifest([variant(1, "champion", 100)], strategy="blue_green"))
    m = write_manifest(storage, rollout(share=50).model_copy(update={"created_at": datetime.now(UTC)}))
    _log_frame(PredictionLogger(storage), healthy(m))
    clock = {"now": datetime.now(UTC) + timedelta(minutes=11)}
    result = tick(
        canary_sensor(project, project.spec.deployment(ENDPOINT), clock=lambda: clock["now"]), project
    )
    meta = metadata_values(result.asset_events[0].metadata)
    assert meta["mlforge/canary_action"] == "promote"
    assert meta["mlforge/champion_alias"] == "kept → v2"
    champion = tracker.alias("churn", "champion")
    assert champion is not None and champion.version == 2
    assert tracker.version("churn", 1).tags.get("mlforge.deployment") is None
