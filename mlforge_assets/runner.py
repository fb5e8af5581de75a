"""Materialize parts of the graph from Python: the CLI's quickstart and the tests use this.

Each call is one Dagster run on the given instance (in-process executor), so everything shows in
the Dagster UI afterwards exactly as if it had been launched there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import dagster as dg

from mlforge.config.project import Project, dagster_home
from mlforge.errors import MLForgeError
from mlforge.io.timeline import Cadence
from mlforge_assets.factory import build_assets
from mlforge_assets.metadata import metadata_values, step_failures
from mlforge_assets.partitions import asset_key
from mlforge_resources import resources_for


@dataclass(frozen=True)
class StepResult:
    """One materialization run."""

    keys: list[str]
    first: str
    last: str
    seconds: float
    run_id: str
    metadata: dict[str, dict[str, object]]


class Runner:
    """Materializes selections of a project's assets for a day or a range of days."""

    def __init__(
        self, project: Project, instance: dg.DagsterInstance | None = None, log_level: str = "WARNING"
    ) -> None:
        self.project = project
        self.log_level = log_level
        self.instance = instance or dg.DagsterInstance.ephemeral()
        self.cadence = Cadence.of(project.spec)
        self.assets = build_assets(project)
        self.resources = resources_for(project)

    def key(self, *parts: str) -> dg.AssetKey:
        """A project-prefixed asset key."""
        return asset_key(self.project, *parts)

    def materialize(
        self,
        keys: Sequence[dg.AssetKey],
        first: date,
        last: date | None = None,
        raise_on_error: bool = True,
        tags: dict[str, str] | None = None,
    ) -> StepResult:
        """Materialize `keys` for the partitions holding the days first..last, in a single run
        (with the run `tags` given)."""
        last = last or first
        t0 = time.perf_counter()
        run_tags = dict(tags or {})
        kwargs: dict[str, object] = {"tags": run_tags}
        lo, hi = self.cadence.key_of(first), self.cadence.key_of(last)
        if lo == hi:
            kwargs["partition_key"] = lo
        else:
            run_tags |= {"dagster/asset_partition_range_start": lo, "dagster/asset_partition_range_end": hi}
        result = dg.materialize(
            self.assets,
            selection=list(keys),
            instance=self.instance,
            resources=self.resources,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": self.log_level}}}},
            **kwargs,  # type: ignore[arg-type]
        )
        if not result.success and raise_on_error:
            raise MLForgeError(_failure_message(result))
        meta: dict[str, dict[str, object]] = {}
        for ev in result.get_asset_materialization_events():
            mat = ev.event_specific_data.materialization  # type: ignore[union-attr]
            meta[mat.asset_key.to_user_string()] = metadata_values(mat.metadata)
        return StepResult(
            keys=[k.to_user_string() for k in keys],
            first=lo,
            last=hi,
            seconds=time.perf_counter() - t0,
            run_id=result.run_id,
            metadata=meta,
        )

    def quickstart_plan(
        self, cutoff: date | None = None, history_end: date | None = None
    ) -> list[tuple[str, list[dg.AssetKey], date, date]]:
        """The steps that backfill history and train, register, deploy and monitor one model.

        raw over the history (to `history_end`, default the spec's last day) and features to the
        cutoff; labels up to the last day matured within that history; online store, training,
        registry, deployments, drift and predictions for the cutoff.
        """
        spec = self.project.spec
        start = spec.partitions.start
        # under a weekly or monthly cadence, days move back to the last whole partition's snapshot day
        snap = self.cadence.snap
        end = snap(history_end or spec.partitions.end)
        cutoff = snap(cutoff) if cutoff else end
        steps: list[tuple[str, list[dg.AssetKey], date, date]] = [
            ("raw datasets", [self.key("raw", d.name) for d in spec.datasets], start, end),
            (
                "entity index, feature snapshots",
                [self.key("entities", d.name) for d in spec.datasets]
                + [self.key("features", v.name) for v in spec.feature_views],
                start,
                cutoff,
            ),
        ]
        for m in spec.models:
            matured = snap(date.fromordinal(min(cutoff.toordinal(), end.toordinal() - m.label.horizon_days)))
            steps.append((f"labels/{m.name}", [self.key("labels", m.name)], start, matured))
        per_cutoff = [self.key("online", v.name) for v in spec.feature_views]
        for m in spec.models:
            per_cutoff += [self.key("models", m.name, "trained"), self.key("models", m.name, "registered")]
        per_cutoff += [self.key("deployments", d.endpoint) for d in spec.deployments]
        for m in spec.models:
            per_cutoff += [self.key("monitoring", m.name, "drift"), self.key("predictions", m.name)]
            # live performance needs the labels of the predicted day: only for a cutoff a horizon
            # or more before the end of the history (not for the default cutoff, the last day)
            if cutoff.toordinal() <= end.toordinal() - m.label.horizon_days:
                per_cutoff.append(self.key("monitoring", m.name, "performance"))
        steps.append(
            ("online store, training, registry, deployment, drift, predictions", per_cutoff, cutoff, cutoff)
        )
        return steps

    def run_plan(
        self,
        steps: list[tuple[str, list[dg.AssetKey], date, date]],
        on_step: Callable[[str, StepResult], None] | None = None,
    ) -> list[StepResult]:
        """Run the steps in order; `on_step` sees each result (progress output)."""
        out = []
        for title, keys, first, last in steps:
            res = self.materialize(keys, first, last)
            out.append(res)
            if on_step:
                on_step(title, res)
        return out


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    """The failed steps' own messages (our errors are actionable; no deep traceback)."""
    lines = step_failures(result.all_events)
    return "run failed: " + ("; ".join(lines) if lines else "see the Dagster run log")


@contextmanager
def project_runner(project: Project, log_level: str = "WARNING") -> Iterator[Runner]:
    """A Runner on the project's own Dagster instance (``<state>/dagster`` as DAGSTER_HOME), so
    what it materializes shows in ``mlforge ui`` (the CLI's and the SDK's runs)."""
    dagster_home(project.settings.state_dir, project.root)
    with dg.DagsterInstance.get() as instance:
        yield Runner(project, instance, log_level)
