"""How every stage becomes a Dagster asset — defined once.

`stage_asset` wraps a plain function `run(stage, days) -> StageResult` from the stage modules in a
daily-partitioned asset with the single-run backfill policy, the project's resources, blocking
checks and metadata. A materialization of one partition or of a range calls `run` once with the
list of days, so a backfill of a range is one run per asset.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import dagster as dg

from mlforge.config.project import Project
from mlforge.data.checks import CheckOutcome
from mlforge.errors import MLForgeError
from mlforge.features.online import OnlineStore
from mlforge.io.storage import Storage
from mlforge.models.tracking import Tracker
from mlforge.monitoring.alerts import AlertBook
from mlforge_assets.metadata import metadata_value
from mlforge_assets.partitions import partition_days, partitions_def
from mlforge_resources import AlertsResource, MLflowResource, OnlineStoreResource, StorageResource


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
    every_day: bool = False,
) -> dg.AssetsDefinition:
    """A partitioned asset that runs `run` over its days and reports metadata and checks.

    `run` gets the snapshot day of each partition, or every day of their periods (`every_day`:
    the stages stored per day); the two are the same under a daily cadence.
    """
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
        partitions_def=partitions_def(project),
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
        days = partition_days(project, context, every_day)
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
                metadata={k: metadata_value(v) for k, v in c.metadata.items()},
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
            metadata={k: metadata_value(v) for k, v in meta.items()},
            check_results=check_results,
            data_version=version,
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


def algorithm_kind(algorithm: str) -> str:
    """The Dagster kind (its UI icon) of a model's algorithm: xgboost, lightgbm, scikitlearn, python."""
    if algorithm in ("xgboost", "lightgbm"):
        return algorithm
    return "scikitlearn" if algorithm.startswith("sklearn.") else "python"
