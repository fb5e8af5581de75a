"""The Python SDK: `MLForgeClient(...).feature_store` and friends.

Like the CLI this is a composition root: `materialize` drives the Dagster graph (imported lazily),
the rest uses the core library only.
"""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

from mlforge.config.project import Project
from mlforge.features.store import FeatureStore


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
