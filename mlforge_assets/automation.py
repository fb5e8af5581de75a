"""Jobs, schedules and sensors: the daily refresh, the weekly retrain, drift → retrain, canary steps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from mlforge.canary import decide
from mlforge.deployment import DeploymentConflictError, read_manifest, write_manifest
from mlforge.prediction_log import days_between, read_prediction_logs
from mlforge.project import Project
from mlforge.spec import DeploymentSpec
from mlforge_assets.common import asset_key
from mlforge_resources import StorageResource

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


def _utcnow() -> datetime:
    return datetime.now(UTC)


def canary_sensor(
    project: Project, dep: DeploymentSpec, clock: Callable[[], datetime] = _utcnow
) -> dg.SensorDefinition:
    """Advances, promotes or rolls back `dep.endpoint`'s rollout from its live prediction log.

    Each tick reads the current manifest and the prediction-log rows served under its revision,
    asks :func:`mlforge.canary.decide`, and writes the manifest of an advance / promotion /
    rollback / rejection as the next revision (refused if the manifest changed meanwhile). Every
    step is recorded three times: in the manifest (``state.status``, ``state.reason``; the
    history keeps every revision), as an observation of the deployment asset with the decision's
    metrics, and in the sensor's log. The cursor is the last revision the sensor wrote.
    """
    endpoint = dep.endpoint
    strategy = dep.strategy
    deployment = asset_key(project, "deployments", endpoint)

    @dg.sensor(
        name=f"{project.spec.project}_{endpoint.replace('-', '_')}_canary",
        minimum_interval_seconds=30,
        description=(
            f"Advances `{endpoint}`'s {strategy.kind} rollout on live metrics from the prediction log "
            f"(steps {strategy.steps}, {strategy.evaluation_minutes:g} min per step), or rolls it back."
        ),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext, storage: StorageResource) -> dg.SensorResult:
        store = storage.get()
        manifest = read_manifest(store, endpoint)
        if manifest is None:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"{endpoint} has no manifest yet"))
        now = clock()
        created = datetime.fromisoformat(manifest.created_at)
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        frame = read_prediction_logs(store, endpoint, days_between(min(created, now), now), since=created)
        decision = decide(manifest, strategy, frame, now)
        context.log.info(f"{endpoint} revision {manifest.revision}: {decision.action}: {decision.reason}")
        if decision.manifest is None:
            return dg.SensorResult(skip_reason=dg.SkipReason(decision.reason))
        try:
            written = write_manifest(store, decision.manifest, expected_revision=manifest.revision)
        except DeploymentConflictError as exc:
            return dg.SensorResult(skip_reason=dg.SkipReason(str(exc)))
        metadata: dict[str, Any] = {
            **decision.tags(),
            "mlforge/canary_new_revision": str(written.revision),
        }
        for name, st in decision.stats.items():
            metadata[f"{name}_rows"] = st.rows
            metadata[f"{name}_error_rate"] = round(st.error_rate, 6)
            if st.latency_p99_ms is not None:
                metadata[f"{name}_latency_p99_ms"] = round(st.latency_p99_ms, 3)
            if st.mean_score is not None:
                metadata[f"{name}_mean_score"] = round(st.mean_score, 6)
        context.log.info(f"{endpoint}: wrote revision {written.revision} ({decision.action})")
        return dg.SensorResult(
            cursor=str(written.revision),
            asset_events=[dg.AssetObservation(asset_key=deployment, metadata=metadata)],
        )

    return _sensor
