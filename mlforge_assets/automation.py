"""Jobs, schedules and sensors: the daily refresh, the weekly retrain, drift → retrain."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from mlforge.project import Project
from mlforge_assets.common import asset_key

DRIFT_TRIGGER_TAG = "mlforge/trigger"


def refresh_job(project: Project) -> dg.UnresolvedAssetJobDefinition:
    """raw → features → online → drift → predictions for one day."""
    p = project.spec.project
    sel = dg.AssetSelection.groups(
        "datasets", "features", "monitoring", "predictions"
    ) - dg.AssetSelection.assets(*[asset_key(project, "labels", m.name) for m in project.spec.models])
    return dg.define_asset_job(
        f"{p}_daily_refresh",
        selection=sel,
        description="Daily refresh: raw → features → online → drift → predictions.",
    )


def retrain_job(project: Project, model: str) -> dg.UnresolvedAssetJobDefinition:
    """trained → registered → deployments of one model for one cutoff."""
    keys = [asset_key(project, "models", model, "trained"), asset_key(project, "models", model, "registered")]
    keys += [
        asset_key(project, "deployments", d.endpoint) for d in project.spec.deployments if d.model == model
    ]
    return dg.define_asset_job(
        f"{project.spec.project}_{model}_retrain",
        selection=dg.AssetSelection.assets(*keys),
        description=f"Retrain `{model}` for a cutoff, register it through the gate, redeploy its endpoints.",
    )


def last_complete_day(project: Project, when: datetime) -> str:
    """The partition a run scheduled at `when` should process: the day before, within the spec."""
    d = (when - timedelta(days=1)).date()
    p = project.spec.partitions
    return min(max(d, p.start), p.end).isoformat()


def day_schedule(project: Project, name: str, cron: str, job: Any, enabled: bool) -> dg.ScheduleDefinition:
    """A schedule that runs `job` for the last complete day, in the spec's timezone."""

    @dg.schedule(
        name=name,
        cron_schedule=cron,
        job=job,
        execution_timezone=project.spec.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING if enabled else dg.DefaultScheduleStatus.STOPPED,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        partition = last_complete_day(project, context.scheduled_execution_time)
        return dg.RunRequest(run_key=f"{name}-{partition}", partition_key=partition)

    return _schedule


def drift_sensor(project: Project, model: str, job: Any) -> dg.SensorDefinition:
    """Drift over the spec's threshold → exactly one retrain run for the latest drifted cutoff.

    The cursor is the last drift materialization seen, so each drift event is judged once, over
    sensor restarts too; the run key makes a repeated request for the same event a no-op.
    """
    mon = project.spec.monitoring_for(model).drift
    drift = asset_key(project, "monitoring", model, "drift")

    @dg.sensor(
        name=f"{project.spec.project}_{model}_drift_retrain",
        job=job,
        minimum_interval_seconds=30,
        description=f"Requests a retrain of `{model}` when drift share ≥ {mon.threshold}.",
        default_status=dg.DefaultSensorStatus.RUNNING if mon.auto_retrain else dg.DefaultSensorStatus.STOPPED,
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        after = int(context.cursor) if context.cursor else None
        result = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=drift, after_storage_id=after), limit=1000, ascending=True
        )
        if not result.records:
            return dg.SkipReason(f"no new {drift.to_user_string()} materializations")
        cursor = str(max(r.storage_id for r in result.records))
        drifted = []
        for r in result.records:
            mat = r.asset_materialization
            share = mat.metadata.get("drift_share") if mat else None
            value = getattr(share, "value", share)
            if isinstance(value, int | float) and value >= mon.threshold and mat and mat.partition:
                drifted.append((mat.partition, float(value), r.storage_id))
        if not drifted:
            return dg.SensorResult(skip_reason=dg.SkipReason("drift below threshold"), cursor=cursor)
        partition, share, storage_id = max(drifted)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"drift-{storage_id}",
                    partition_key=partition,
                    tags={
                        DRIFT_TRIGGER_TAG: "drift",
                        "mlforge/drift_partition": partition,
                        "mlforge/drift_share": f"{share:.4f}",
                    },
                )
            ],
            cursor=cursor,
        )

    return _sensor
