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

from mlforge.checks import CheckOutcome
from mlforge.errors import MLForgeError
from mlforge.online_store import OnlineStore
from mlforge.project import Project
from mlforge.storage import Storage
from mlforge.tracking import Tracker
from mlforge_resources import MLflowResource, OnlineStoreResource, StorageResource


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
        return {
            "mlforge.project": self.project.spec.project,
            "dagster.run_id": self.context.run.run_id,
            "dagster.asset_key": self.context.asset_key.to_user_string(),
            "dagster.partition": partition,
        }


@dataclass
class StageResult:
    """What a stage reports: metadata for the UI, check outcomes, a data version."""

    metadata: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)
    data_version: str | None = None


def check(name: str, description: str, **metadata: Any) -> tuple[str, str, dict[str, Any]]:
    """Declare a blocking check: (name, description, metadata such as its threshold)."""
    return name, description, metadata


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
    checks: Sequence[tuple[str, str, dict[str, Any]]] = (),
    automation_condition: dg.AutomationCondition | None = None,
) -> dg.AssetsDefinition:
    """A partitioned asset that runs `run` over its days and reports metadata and checks."""
    check_specs = [
        dg.AssetCheckSpec(name, asset=key, description=desc, blocking=True, metadata=meta)
        for name, desc, meta in checks
    ]
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
                severity=dg.AssetCheckSeverity.ERROR,
            )
            for c in result.checks
        ]
        version = dg.DataVersion(result.data_version) if result.data_version and len(days) == 1 else None
        return dg.MaterializeResult(
            metadata={k: _md(v) for k, v in meta.items()}, check_results=check_results, data_version=version
        )

    return _asset


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
