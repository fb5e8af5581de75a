"""How every stage becomes a Dagster asset — defined once.

`stage_asset` wraps a plain function `run(stage, days) -> StageResult` from the stage modules in a
daily-partitioned asset with the single-run backfill policy, the project's resources, blocking
checks and metadata. A materialization of one partition or of a range calls `run` once with the
list of days, so a backfill of a range is one run per asset.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg

from mlforge.alerts import AlertBook
from mlforge.checks import CheckOutcome
from mlforge.errors import MLForgeError
from mlforge.online_store import OnlineStore
from mlforge.project import Project
from mlforge.storage import Storage
from mlforge.tracking import Tracker
from mlforge_resources import AlertsResource, MLflowResource, OnlineStoreResource, StorageResource


def daily_partitions(project: Project) -> dg.DailyPartitionsDefinition:
    """The one time partitioning every stage shares, from the spec."""
    p = project.spec.partitions
    end = date.fromordinal(p.end.toordinal() + 1)  # Dagster's end date is exclusive
    return dg.DailyPartitionsDefinition(
        start_date=p.start.isoformat(), end_date=end.isoformat(), timezone=project.spec.timezone
    )


def asset_key(project: Project, *parts: str) -> dg.AssetKey:
    """Asset keys are prefixed by the project name."""
    return dg.AssetKey([project.spec.project, *parts])


def window(upstream: dg.AssetKey, start_offset: int, end_offset: int) -> dg.AssetDep:
    """A dependency on a window of upstream days relative to each partition."""
    return dg.AssetDep(
        upstream,
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=start_offset, end_offset=end_offset, allow_nonexistent_upstream_partitions=True
        ),
    )


@dataclass
class Stage:
    """What a stage function gets: the project, the clients, and the Dagster context."""

    project: Project
    context: dg.AssetExecutionContext
    storage: Storage
    _online: OnlineStoreResource
    _mlflow: MLflowResource

    @property
    def online(self) -> OnlineStore:
        """The online store (opened on first use)."""
        return self._online.get()

    @property
    def tracker(self) -> Tracker:
        """The MLflow tracker (MLflow imported on first use)."""
        return self._mlflow.get()

    def lineage_tags(self, partition: str) -> dict[str, str]:
        """Tags tying an MLflow run or model version to the Dagster run that made it."""
        tags = {
            "mlforge.project": self.project.spec.project,
            "dagster.run_id": self.context.run.run_id,
            "dagster.asset_key": self.context.asset_key.to_user_string(),
            "dagster.partition": partition,
        }
        # What triggered the run (e.g. the drift report behind a retrain) follows it into MLflow.
        for k, v in self.context.run.tags.items():
            if k.startswith("mlforge/"):
                tags["mlforge." + k.removeprefix("mlforge/")] = v
        return tags


@dataclass
class StageResult:
    """What a stage reports: metadata for the UI, check outcomes, a data version."""

    metadata: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)
    data_version: str | None = None


@dataclass(frozen=True)
class CheckDecl:
    """A check an asset declares: blocking ones guard a hand-over, alerting ones watch a live system."""

    name: str
    description: str
    metadata: dict[str, Any]
    blocking: bool = True
    alert: bool = False


def check(
    name: str, description: str, *, blocking: bool = True, alert: bool = False, **metadata: Any
) -> CheckDecl:
    """Declare a check with metadata such as its threshold.

    `blocking` checks stop downstream steps when they fail (severity ERROR); the others warn.
    `alert` checks also open an alert on a breach and resolve it when the check passes again.
    """
    return CheckDecl(name, description, metadata, blocking, alert)


def partition_days(context: dg.AssetExecutionContext) -> list[date]:
    """The days a run covers: one partition or a whole range (single-run backfill)."""
    return [date.fromisoformat(k) for k in context.partition_keys]


def stage_asset(
    project: Project,
    *,
    key: dg.AssetKey,
    group: str,
    description: str,
    kinds: set[str],
    deps: Sequence[dg.AssetDep],
    run: Callable[[Stage, list[date]], StageResult],
    checks: Sequence[CheckDecl] = (),
    automation_condition: dg.AutomationCondition | None = None,
) -> dg.AssetsDefinition:
    """A partitioned asset that runs `run` over its days and reports metadata and checks."""
    check_specs = [
        dg.AssetCheckSpec(
            c.name, asset=key, description=c.description, blocking=c.blocking, metadata=c.metadata
        )
        for c in checks
    ]
    declared = {c.name: c for c in checks}
    owners = [o for o in project.spec.owners if o.startswith("team:") or "@" in o]

    @dg.asset(
        key=key,
        group_name=group,
        description=description,
        kinds=kinds,
        owners=owners or None,
        deps=list(deps),
        partitions_def=daily_partitions(project),
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=check_specs or None,
        automation_condition=automation_condition,
    )
    def _asset(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        online_store: OnlineStoreResource,
        mlflow: MLflowResource,
        alerts: AlertsResource,
    ) -> dg.MaterializeResult:
        days = partition_days(context)
        stage = Stage(project, context, storage.get(), online_store, mlflow)
        try:
            result = run(stage, days)
        except MLForgeError as exc:
            # Our errors carry an actionable message; a deep traceback would only hide it.
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        meta = {"partitions": f"{days[0]}..{days[-1]}" if len(days) > 1 else str(days[0]), **result.metadata}
        check_results = [
            dg.AssetCheckResult(
                check_name=c.name,
                passed=c.passed,
                description=c.description,
                metadata={k: _md(v) for k, v in c.metadata.items()},
                severity=dg.AssetCheckSeverity.ERROR
                if declared.get(c.name, _BLOCKING).blocking
                else dg.AssetCheckSeverity.WARN,
            )
            for c in result.checks
        ]
        alerting = [c for c in result.checks if declared.get(c.name, _BLOCKING).alert]
        if alerting:
            raise_alerts(stage, alerts, alerting, str(days[-1]), meta)
        version = dg.DataVersion(result.data_version) if result.data_version and len(days) == 1 else None
        return dg.MaterializeResult(
            metadata={k: _md(v) for k, v in meta.items()}, check_results=check_results, data_version=version
        )

    return _asset


_BLOCKING = CheckDecl("", "", {})


def raise_alerts(
    stage: Stage,
    alerts: AlertsResource,
    outcomes: Sequence[CheckOutcome],
    partition: str,
    metadata: dict[str, Any],
) -> None:
    """Open or resolve one alert per alerting check (see :class:`mlforge.alerts.AlertBook`)."""
    book = AlertBook(stage.storage, alerts.channel())
    asset = stage.context.asset_key.to_user_string()
    run_url = f"{alerts.dagster_url.rstrip('/')}/runs/{stage.context.run.run_id}"
    links = {"run": run_url}
    for name in ("report_html", "manifest"):
        v = metadata.get(name)
        if v is not None:
            links[name] = str(getattr(v, "value", v))
    for c in outcomes:
        if c.metadata.get("evaluated") is False:
            continue  # no input to judge (e.g. labels not matured): neither a breach nor a recovery
        value, threshold = c.metadata.get("value"), c.metadata.get("threshold")
        sent = book.observe(
            f"{asset}:{c.name}",
            breached=not c.passed,
            summary=f"{asset} {c.name}: {c.description}",
            value=float(value) if isinstance(value, int | float) else None,
            threshold=float(threshold) if isinstance(threshold, int | float) else None,
            partition=partition,
            links=links,
            details={k: v for k, v in c.metadata.items() if isinstance(v, str | int | float | bool)},
        )
        if sent is not None:
            stage.context.log.warning(f"alert {sent.status}: {sent.summary}")


def metadata_values(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values of materialization/observation metadata (MetadataValue → its `.value`)."""
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def _md(v: Any) -> Any:
    """Metadata values Dagster accepts: keep scalars and MetadataValues, JSON the rest."""
    if isinstance(v, dg.MetadataValue | str | int | float | bool) or v is None:
        return v
    return dg.MetadataValue.json(v)


def md_table(rows: list[dict[str, Any]], limit: int = 10) -> dg.MetadataValue:
    """A markdown table preview for the UI."""
    if not rows:
        return dg.MetadataValue.md("_no rows_")
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows[:limit]:
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def step_failures(events: Iterable[dg.DagsterEvent]) -> list[str]:
    """'step: message' of every failed step and failed check among `events` (our messages, no trace)."""
    lines = []
    for ev in events:
        if ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error  # type: ignore[union-attr]
            msg = err.message.strip() if err else "failed"
            # dg.Failure puts our description after "Failure: "
            desc = msg.split("dagster._core.definitions.events.Failure: ", 1)[-1]
            lines.append(f"{ev.step_key}: {desc}")
        elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
            data = ev.event_specific_data
            if data is not None and not data.passed:  # type: ignore[union-attr]
                lines.append(f"check {data.check_name} on {data.asset_key.to_user_string()} failed")  # type: ignore[union-attr]
    return lines
