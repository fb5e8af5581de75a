"""The Python SDK: `MLForgeClient(...).feature_store` and friends.

Like the CLI this is a composition root: `materialize` drives the Dagster graph (imported lazily),
the rest uses the core library only.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

from mlforge.config.project import Project
from mlforge.deployment.manifest import Manifest
from mlforge.errors import MLForgeError
from mlforge.features.store import FeatureStore
from mlforge.sdk.lifecycle import Datasets, Deployments, Models, Monitor, experiment_run


class ClientFeatureStore(FeatureStore):
    """FeatureStore plus `materialize`, which runs the feature assets through Dagster."""

    def __init__(self, project: Project, instance: Any = None) -> None:
        super().__init__(project)
        self._instance = instance

    def materialize(
        self, start: date | str, end: date | str, views: list[str] | None = None
    ) -> dict[str, Any]:
        """Materialize raw data, offline snapshots and the online store for start..end (one run each).

        Like Feast's `materialize`, but incremental per day: the online store keeps the newest
        value per entity and is never overwritten by an older partition.
        """
        from mlforge_assets.runner import Runner

        first = date.fromisoformat(start) if isinstance(start, str) else start
        last = date.fromisoformat(end) if isinstance(end, str) else end
        spec = self.project.spec
        chosen = views or [v.name for v in spec.feature_views]
        runner = Runner(self.project, self._instance)
        datasets = sorted({spec.feature_view(v).source for v in chosen})
        lookback = max(spec.feature_view(v).read_days for v in chosen)
        # the entity index folds each day into the day before's: rebuild it from its first gap
        index_first = min(_index_from(self.project, d, first) for d in datasets)
        raw_first = max(spec.partitions.start, date.fromordinal(first.toordinal() - lookback + 1))
        raw_first = min(raw_first, index_first)
        steps = [
            runner.materialize([runner.key("raw", d) for d in datasets], raw_first, last),
            runner.materialize([runner.key("entities", d) for d in datasets], index_first, last),
            runner.materialize([runner.key("features", v) for v in chosen], first, last),
            runner.materialize([runner.key("online", v) for v in chosen], first, last),
        ]
        meta: dict[str, Any] = {}
        for s in steps:
            meta.update(s.metadata)
        return meta


class MLForgeClient:
    """Entry point of the SDK for one project (spec path and state folder as in the CLI)."""

    def __init__(self, spec: str | Path | None = None, home: str | Path | None = None) -> None:
        self.project = Project.load(spec, state_dir=home)

    @cached_property
    def feature_store(self) -> ClientFeatureStore:
        """Offline/online feature access and materialization."""
        return ClientFeatureStore(self.project)

    @cached_property
    def models(self) -> Models:
        """Registered versions: `versions`, `aliases`, `load`, `predict` (frame or entity ids)."""
        return Models(self.project, self.feature_store)

    @cached_property
    def datasets(self) -> Datasets:
        """Datasets: `list`, `validate`, `register`, `versions`, `pull`."""
        return Datasets(self.project)

    @cached_property
    def monitor(self) -> Monitor:
        """Monitoring: `report(endpoint)` with `drift_detected`, `drift_share` and its days."""
        return Monitor(self.project)

    @cached_property
    def deployments(self) -> Deployments:
        """Endpoint manifests: `status`, `rollback`, `traffic`."""
        return Deployments(self.project)

    def experiment(self, name: str, tags: dict[str, str] | None = None) -> AbstractContextManager[Any]:
        """An MLflow run in experiment `name`, tagged with the project, on the project's store:
        ``with client.experiment("notebook") as run: mlflow.log_metric(...)``; it ends FINISHED, or
        FAILED when the block raises (the exception is re-raised)."""
        return experiment_run(self.project, name, tags)

    def deploy_model(
        self, model: str, version: int, endpoint: str, strategy: Any = None
    ) -> tuple[Manifest, bool]:
        """Deploy a registered version to `endpoint` with a strategy (a DSL `BlueGreen()`,
        `Canary(steps=[...])`, `ChampionChallenger(...)`, a dict like the YAML's, or the endpoint's
        own): a new manifest revision through the deployment asset's code; (manifest, changed)."""
        from mlforge.deployment.rollout import deploy_version, strategy_of

        dep = self.project.spec.deployment(endpoint)
        info = self.project.tracker.version(model, version)
        chosen = strategy_of(strategy, dep.strategy)
        return deploy_version(
            self.project.storage, self.project.tracker, self.project.spec, endpoint, info, chosen
        )

    def materialize(
        self, selection: str | list[str], partition: str | date | None = None, end: str | date | None = None
    ) -> dict[str, Any]:
        """Materialize assets through Dagster for one partition, or `partition`..`end` as one run.

        `selection` names assets without the project prefix (``"features/customer_activity"``) or
        is a list of them; returns each asset's materialization metadata. The run is recorded in
        the project's Dagster instance (visible in ``mlforge ui``).
        """
        from mlforge.io.timeline import Cadence, day
        from mlforge_assets.runner import project_runner

        names = [selection] if isinstance(selection, str) else list(selection)
        spec = self.project.spec
        first = day(partition) if partition else Cadence.of(spec).snap(spec.partitions.end)
        last = day(end) if end else first
        with project_runner(self.project) as runner:
            known = {k.to_user_string().split("/", 1)[1] for a in runner.assets for k in a.keys}
            unknown = [n for n in names if n not in known]
            if unknown:
                raise MLForgeError(f"unknown asset(s) {unknown} (known: {sorted(known)})")
            result = runner.materialize([runner.key(*n.split("/")) for n in names], first, last)
        return result.metadata


def _index_from(project: Project, dataset: str, first: date) -> date:
    """The first day the entity index of `dataset` must be built from so that `first` can fold:
    the first day before it without a stored index (one listing), else `first` itself."""
    from mlforge.features.entities import stored_index_days
    from mlforge.io.timeline import days_between

    start = project.spec.partitions.start
    if first <= start:
        return start
    stored = stored_index_days(project.storage, dataset)
    before = days_between(start, date.fromordinal(first.toordinal() - 1))
    return next((d for d in before if d not in stored), first)
