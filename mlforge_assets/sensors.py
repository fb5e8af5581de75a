"""Sensors: drift → retrain, canary steps, run-failure alerts and the replay clock of the demos."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg

from mlforge.config.project import Project
from mlforge.config.spec import DeploymentSpec
from mlforge.deployment.champion import apply_champion_sync, plan_champion_sync
from mlforge.deployment.decisions import decide
from mlforge.deployment.manifest import DeploymentConflictError, Manifest, read_manifest, write_manifest
from mlforge.io.timeline import Cadence
from mlforge.monitoring.alerts import Alert
from mlforge.monitoring.drift_events import (
    DriftCursor,
    DriftReport,
    judge_reports,
    retrain_cutoff,
)
from mlforge.monitoring.prediction_log import days_between, read_prediction_logs
from mlforge_assets.metadata import step_failures
from mlforge_assets.partitions import asset_key
from mlforge_resources import AlertsResource, MLflowResource, StorageResource

IN_PROGRESS_STATUSES = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)


def drift_sensor(project: Project, model: str, job: Any) -> dg.SensorDefinition:
    """Drift over the spec's threshold → exactly one retrain run per drift event.

    A drift event opens with the first drift report at or over the threshold and closes with the
    next report under it; only its opening requests a retrain, so a week of drifted days is one
    retrain, not seven. The retrain's cutoff is the latest drifted day seen in that tick, or the
    newest day whose holdout labels (cutoff − horizon) have matured, whichever is earlier. The cursor holds the last
    drift materialization judged and whether an event is open, so each report is judged once,
    over sensor and daemon restarts too; the run key makes a repeated request a no-op. The rule
    is :func:`mlforge.monitoring.drift_events.judge_reports`; the sensor only reads and requests.
    """
    mon = project.spec.monitoring_for(model).drift
    drift = asset_key(project, "monitoring", model, "drift")
    labels = asset_key(project, "labels", model)
    horizon = project.spec.model(model).label.horizon_days
    interval = sensor_interval(project)

    @dg.sensor(
        name=f"{project.spec.project}_{model}_drift_retrain",
        job=job,
        minimum_interval_seconds=interval,
        description=f"Requests one retrain of `{model}` per drift event (drift share ≥ {mon.threshold}).",
        default_status=dg.DefaultSensorStatus.RUNNING if mon.auto_retrain else dg.DefaultSensorStatus.STOPPED,
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        state = DriftCursor.parse(context.cursor)
        result = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=drift, after_storage_id=state.storage_id),
            limit=1000,
            ascending=True,
        )
        if not result.records:
            return dg.SkipReason(f"no new {drift.to_user_string()} materializations")
        reports = [
            DriftReport.from_metadata(r.storage_id, mat.partition, mat.metadata, r.run_id)
            if (mat := r.asset_materialization) is not None
            else DriftReport(r.storage_id, None, None, r.run_id)
            for r in result.records
        ]
        state, request = judge_reports(state, reports, mon.threshold)
        cursor = state.dumps()
        if request is None:
            why = f"drift event open since {state.open}" if state.open else f"drift below {mon.threshold}"
            context.log.info(f"{len(result.records)} drift report(s): {why}; no retrain")
            return dg.SensorResult(skip_reason=dg.SkipReason(why), cursor=cursor)
        partition, share = request.partition, request.share
        cadence = Cadence.of(project.spec)
        matured = context.instance.get_materialized_partitions(labels)
        cutoff = retrain_cutoff(cadence, partition, matured, horizon)
        if cutoff is None:
            why = f"drift {share:.2f} on {partition}, but no {labels.to_user_string()} partition to train on"
            context.log.warning(why)
            return dg.SensorResult(skip_reason=dg.SkipReason(why), cursor=cursor)
        context.log.info(
            f"drift {share:.2f} on {partition}: requesting a retrain of {model} for cutoff {cutoff}"
        )
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=request.run_key, partition_key=cutoff, tags=request.tags())],
            cursor=cursor,
        )

    return _sensor


def sensor_interval(project: Project) -> int:
    """Seconds between sensor ticks: 30, or the replay's interval when a replay is configured."""
    return project.spec.replay.interval_seconds if project.spec.replay else 30


def landing_sensor(project: Project, dataset: str, job: Any) -> dg.SensorDefinition:
    """New files in a watched source's landing area → the days they cover, materialized.

    The first tick only records the files already there (the history a backfill materializes),
    so turning the sensor on never re-runs the past. After that each new file is inspected once
    (the cursor maps file name → sha256). A file that fits the schema requests, for the days its
    rows fall in:

    - days not stored yet: one daily refresh over them (a new day becomes a scored day). A day's
      entity index folds the day before's, so a file for a day after the next one to come waits
      (it stays out of the cursor) until the day before it is stored;
    - days already stored (a late file): the raw day alone. Dagster's data versions mark what
      reads it stale, and the declarative automation redoes the stored days downstream (the
      index from that day on, features, labels, online store, predictions; see conditions).

    One that does not fit is moved to `_quarantine/` with a note naming the file, row and column,
    and nothing is requested or stored for it (:mod:`mlforge.data.landing`).
    """
    from mlforge.data.landing import inspect_file, landing_of

    ds = project.spec.dataset(dataset)
    cadence = Cadence.of(project.spec)

    @dg.sensor(
        name=f"{project.spec.project}_{dataset}_landing",
        job=job,
        minimum_interval_seconds=sensor_interval(project),
        description=f"Materializes the days of every new file landing in `{ds.source.path}`; "
        "quarantines files that do not fit the schema.",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        landing = landing_of(ds, project.root, project.settings.storage_endpoint_url)
        if not context.cursor:
            present = landing.files()
            return dg.SensorResult(
                skip_reason=f"watching {landing.storage.uri('')}: {len(present)} file(s) already there "
                "are the history's (backfill them); new files from now on",
                cursor=json.dumps(dict.fromkeys(present, "present"), sort_keys=True),
            )
        seen: dict[str, str] = json.loads(context.cursor)
        new = [n for n in landing.files() if n not in seen]
        if not new:
            return dg.SkipReason(f"no new file in {landing.storage.uri('')}")
        raw, index = asset_key(project, "raw", dataset), asset_key(project, "entities", dataset)
        stored = context.instance.get_materialized_partitions(raw)
        indexed = context.instance.get_materialized_partitions(index)
        requests: list[dg.RunRequest] = []
        for name in new:
            found = inspect_file(project.spec, ds, landing, name)
            if found.error is not None:
                seen[name] = found.sha256
                context.log.warning(f"quarantined {name}: {found.error}")
                continue
            partitions = sorted({cadence.key_of(d) for d in found.days})
            late = [p for p in partitions if p in stored]
            fresh = [p for p in partitions if p not in stored]
            before = cadence.key_of(date.fromisoformat(fresh[0]) - timedelta(days=1)) if fresh else None
            if fresh and fresh[0] != cadence.key_of(cadence.start) and before not in indexed:
                context.log.info(
                    f"{name}: waits for {before} (the day before its first new day) to be stored"
                )
                continue
            seen[name] = found.sha256
            context.log.info(f"{name}: {found.rows} rows, {len(late)} stored day(s) redone, {len(fresh)} new")
            tag = {"mlforge/landing_file": name}
            run_key = f"landing-{dataset}-{name}-{found.sha256[:12]}"
            requests += [
                dg.RunRequest(run_key=f"{run_key}-{p}", partition_key=p, asset_selection=[raw], tags=tag)
                for p in late
            ]
            if fresh:
                span = {
                    "dagster/asset_partition_range_start": fresh[0],
                    "dagster/asset_partition_range_end": fresh[-1],
                }
                requests.append(
                    dg.RunRequest(
                        run_key=f"{run_key}-{fresh[0]}-{fresh[-1]}", partition_key=fresh[0], tags=tag
                    )
                    if len(fresh) == 1
                    else dg.RunRequest(run_key=f"{run_key}-{fresh[0]}-{fresh[-1]}", tags=tag | span)
                )
        if not requests and all(n not in seen for n in new):
            return dg.SkipReason(f"{len(new)} new file(s) in {landing.storage.uri('')} wait for earlier days")
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))

    return _sensor


def replay_sensor(project: Project, job: Any) -> dg.SensorDefinition:
    """A simulated clock: requests the daily refresh of the next replay day once nothing is running.

    The cursor is the last day requested, so a restarted daemon continues where it stopped.
    Waiting for every run to finish keeps the loop readable: day → drift → (retrain) → next day.
    """
    replay = project.spec.replay
    assert replay is not None
    cadence = Cadence.of(project.spec)

    @dg.sensor(
        name=f"{project.spec.project}_replay",
        job=job,
        minimum_interval_seconds=replay.interval_seconds,
        description=f"Replays days {replay.start}..{replay.end}, one daily refresh per tick (demo clock).",
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        busy = context.instance.get_run_records(dg.RunsFilter(statuses=[*IN_PROGRESS_STATUSES]), limit=1)
        if busy:
            return dg.SkipReason(f"waiting for run {busy[0].dagster_run.run_id} to finish")
        # one partition per tick: the next period after the cursor's (a day when daily)
        day = cadence.next_start(date.fromisoformat(context.cursor)) if context.cursor else replay.start
        if day > replay.end:
            return dg.SkipReason(f"replay finished at {replay.end}")
        partition = cadence.key_of(day)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"replay-{partition}", partition_key=partition, tags={"mlforge/replay": "1"}
                )
            ],
            cursor=day.isoformat(),
        )

    return _sensor


def alert_on_run_failure(project: Project) -> dg.SensorDefinition:
    """Every failed run of this code location sends an alert with the error and a link to the run."""

    @dg.run_failure_sensor(
        name=f"{project.spec.project}_run_failure_alert",
        description="Sends an alert (log + webhook) for every failed run.",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=sensor_interval(project),
    )
    def _sensor(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> None:
        run = context.dagster_run
        events = context.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        steps = step_failures(e.dagster_event for e in events if e.dagster_event)
        error = "; ".join(steps) or context.failure_event.message or "run failed"
        partition = run.tags.get("dagster/partition")
        alert = Alert(
            key=f"run:{run.job_name}:{run.run_id}",
            status="firing",
            summary=f"run {run.run_id[:8]} of {run.job_name} failed"
            + (f" (partition {partition})" if partition else "")
            + f": {error[:500]}",
            partition=partition,
            links={"run": f"{alerts.dagster_url.rstrip('/')}/runs/{run.run_id}"},
            details={"job": run.job_name, "run_id": run.run_id},
        )
        alerts.channel().send(alert)

    return _sensor


def sync_champion_alias(
    mlflow: MLflowResource, written: Manifest, before: Manifest, action: str, reason: str, log: Any
) -> str:
    """Make the registry say what serves: `champion` → the version now answering all traffic.

    The decision is :func:`mlforge.deployment.champion.plan_champion_sync`. The manifest is
    already written, so a registry that cannot be reached is logged, not raised.
    """
    plan = plan_champion_sync(written, before, action, reason)
    if plan is None:
        return "unchanged (no single live version)"
    version = plan.version
    try:
        moved = apply_champion_sync(mlflow.get(), plan)
    except Exception as exc:  # the registry is a mirror here; the manifest decides what serves
        log.warning(f"{written.endpoint}: could not move the champion alias to v{version}: {exc}")
        return f"not moved: {type(exc).__name__}"
    how = "moved" if moved else "kept"
    log.info(f"{written.endpoint}: champion alias {how} on v{version} ({plan.verdict})")
    return f"{how} → v{version}"


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
        minimum_interval_seconds=sensor_interval(project),
        description=(
            f"Advances `{endpoint}`'s {strategy.kind} rollout on live metrics from the prediction log "
            f"(steps {strategy.steps}, {strategy.evaluation_minutes:g} min per step), or rolls it back."
        ),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def _sensor(
        context: dg.SensorEvaluationContext, storage: StorageResource, mlflow: MLflowResource
    ) -> dg.SensorResult:
        store = storage.get()
        manifest = read_manifest(store, endpoint)
        if manifest is None:
            return dg.SensorResult(skip_reason=dg.SkipReason(f"{endpoint} has no manifest yet"))
        now = clock()
        created = manifest.created_at  # timezone-aware (an offset-less stored time is read as UTC)
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
        if decision.action in ("promote", "rollback", "reject"):
            metadata["mlforge/champion_alias"] = sync_champion_alias(
                mlflow, written, manifest, decision.action, decision.reason, context.log
            )
        return dg.SensorResult(
            cursor=str(written.revision),
            asset_events=[dg.AssetObservation(asset_key=deployment, metadata=metadata)],
        )

    return _sensor
