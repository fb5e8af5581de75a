"""Build the whole Dagster graph of a project from its spec."""

from __future__ import annotations

import dagster as dg

from mlforge.config.project import Project
from mlforge.io.timeline import Cadence
from mlforge_assets.datasets import raw_asset
from mlforge_assets.deployments import deployment_asset
from mlforge_assets.drift import drift_asset
from mlforge_assets.entities import entities_asset
from mlforge_assets.features import feature_asset, online_asset
from mlforge_assets.jobs import refresh_job, retrain_job
from mlforge_assets.labels import label_asset
from mlforge_assets.models import registered_asset, trained_asset
from mlforge_assets.partitions import asset_key
from mlforge_assets.performance import performance_asset
from mlforge_assets.predictions import predictions_asset
from mlforge_assets.schedules import day_schedule
from mlforge_assets.sensors import (
    alert_on_run_failure,
    canary_sensor,
    drift_sensor,
    landing_sensor,
    replay_sensor,
    sensor_interval,
)
from mlforge_resources import resources_for


def build_assets(project: Project) -> list[dg.AssetsDefinition]:
    """Every lifecycle asset the spec asks for."""
    spec = project.spec
    assets = [raw_asset(project, ds) for ds in spec.datasets]
    assets += [entities_asset(project, ds) for ds in spec.datasets]
    for view in spec.feature_views:
        assets += [feature_asset(project, view), online_asset(project, view)]
    for model in spec.models:
        assets += [
            label_asset(project, model),
            trained_asset(project, model),
            registered_asset(project, model),
            drift_asset(project, model),
            performance_asset(project, model),
            predictions_asset(project, model),
        ]
    assets += [deployment_asset(project, dep) for dep in spec.deployments]
    return assets


def build_definitions(project: Project) -> dg.Definitions:
    """Assets, jobs, schedules, sensors and resources of a project."""
    spec = project.spec
    refresh = refresh_job(project)
    retrains = {m.name: retrain_job(project, m.name) for m in spec.models}
    cadence = Cadence.of(spec)
    schedules = [
        day_schedule(
            project,
            f"{spec.project}_daily_refresh_schedule",
            spec.schedules.daily_refresh_cron or cadence.cron(3),
            refresh,
            spec.schedules.enabled,
        )
    ]
    schedules += [
        day_schedule(
            project,
            f"{spec.project}_{m.name}_weekly_retrain",
            m.retrain_cron or cadence.cron(4, weekly=True),
            retrains[m.name],
            spec.schedules.enabled,
        )
        for m in spec.models
    ]
    sensors = [drift_sensor(project, mon.model, retrains[mon.model]) for mon in spec.monitoring]
    sensors += [
        canary_sensor(project, dep)
        for dep in spec.deployments
        if dep.strategy.kind in ("canary", "champion_challenger")
    ]
    if spec.alerts.on_run_failure:
        sensors.append(alert_on_run_failure(project))
    sensors.append(
        dg.AutomationConditionSensorDefinition(
            f"{spec.project}_automation",
            target=dg.AssetSelection.all(),
            minimum_interval_seconds=sensor_interval(project),
            default_status=dg.DefaultSensorStatus.RUNNING,
            description="Declarative automation: labels when they mature, performance after labels, "
            "predictions after a new registration.",
        )
    )
    if spec.replay is not None:
        sensors.append(replay_sensor(project, refresh))
    sensors += [landing_sensor(project, ds.name, refresh) for ds in spec.datasets if ds.source.watch]
    freshness = [
        check
        for ds in spec.datasets
        if ds.source.deadline_cron
        for check in dg.build_time_partition_freshness_checks(
            assets=[asset_key(project, "raw", ds.name)],
            deadline_cron=ds.source.deadline_cron,
            timezone=spec.timezone,
        )
    ]
    if freshness:
        sensors.append(
            dg.build_sensor_for_freshness_checks(
                freshness_checks=freshness,
                name=f"{spec.project}_freshness",
                default_status=dg.DefaultSensorStatus.RUNNING,
            )
        )
    executor = (
        dg.in_process_executor if spec.infrastructure.executor == "in_process" else dg.multiprocess_executor
    )
    return dg.Definitions(
        assets=build_assets(project),
        asset_checks=freshness or None,
        jobs=[refresh, *retrains.values()],
        schedules=schedules,
        sensors=sensors,
        resources=resources_for(project),
        executor=executor,
    )
