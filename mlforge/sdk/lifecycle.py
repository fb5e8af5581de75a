"""The SDK's lifecycle parts over the core: models in the registry, ad-hoc MLflow experiments and
endpoint deployments. `MLForgeClient` exposes them; each is a thin layer over the function the
assets, the CLI and the admin API use (never a second way of doing a stage)."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from mlforge.config.project import Project
from mlforge.data.catalog import (
    DatasetSummary,
    Registration,
    pull_days,
    pull_model_data,
    recorded_versions,
    register,
    summaries,
    validate,
)
from mlforge.data.checks import CheckOutcome
from mlforge.deployment.manifest import Manifest, apply_traffic, read_manifest, rollback
from mlforge.errors import MLForgeError, ModelNotFoundError
from mlforge.features.refs import service_features
from mlforge.models.base import FittedModel
from mlforge.models.gate import CHAMPION
from mlforge.models.predictions import score_frame
from mlforge.models.registration import version_model, version_threshold
from mlforge.models.tracking import ModelVersionInfo
from mlforge.monitoring.report import DayRow, MonitorReport, monitor_report


class Models:
    """Registered versions of the project's models: list, resolve aliases, load, predict."""

    def __init__(self, project: Project, online_features: Any) -> None:
        self.project = project
        self._online = online_features

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """Every registered version of model `name`, newest first, with its aliases and tags."""
        self.project.spec.model(name)
        return self.project.tracker.versions(name)

    def aliases(self, name: str) -> dict[str, int]:
        """alias → version of model `name` (e.g. ``{"champion": 3, "challenger": 4}``)."""
        return {a: v.version for v in self.versions(name) for a in v.aliases}

    def version(self, name: str, version: int | None = None, alias: str | None = None) -> ModelVersionInfo:
        """A version by number, or the one `alias` names (default: the champion)."""
        self.project.spec.model(name)
        return self.project.tracker.resolve(name, version, alias or CHAMPION)

    def load(self, name: str, alias: str | None = None, version: int | None = None) -> FittedModel:
        """The fitted model of a version (default: the champion), loaded with its own algorithm."""
        info = self.version(name, version, alias)
        return version_model(self.project.tracker, info, self.project.spec.model(name))

    def predict(
        self,
        name: str,
        frame: Any = None,
        entity_ids: Sequence[str] | None = None,
        alias: str | None = None,
        version: int | None = None,
    ) -> pl.DataFrame:
        """Scores of a version (default: the champion) for a feature frame (polars or pandas, the
        model's feature columns plus its entity key) or for entity ids (their online features)."""
        if (frame is None) == (entity_ids is None):
            raise MLForgeError("predict: give exactly one of frame= or entity_ids=")
        spec = self.project.spec
        m = spec.model(name)
        features = [f for _, f in service_features(spec, m.feature_service)]
        key = spec.service_entity(m.feature_service).join_key
        info = self.version(name, version, alias)
        if entity_ids is not None:
            online = self._online.get_online_features(m.feature_service, list(entity_ids))
            frame = pl.DataFrame(
                {key: online.entity_ids}
                | {n.split(":", 1)[1]: online.values[:, j] for j, n in enumerate(online.feature_names)}
            )
        elif not isinstance(frame, pl.DataFrame):
            frame = pl.from_pandas(frame)
        missing = [c for c in [key, *features] if c not in frame.columns]
        if missing:
            raise MLForgeError(f"predict: the frame lacks {missing} (model {name} reads {features})")
        model = version_model(self.project.tracker, info, m)
        return score_frame(model, frame, features, key, info.version, version_threshold(info, m))


@contextmanager
def experiment_run(project: Project, name: str, tags: dict[str, str] | None = None) -> Iterator[Any]:
    """An MLflow run in experiment `name`, tagged with the project, on the project's tracking store;
    ended FINISHED, or FAILED when the block raises (the exception goes on)."""
    import mlflow

    tracker = project.tracker
    exp_id = tracker.experiment_id(name)
    all_tags = {"mlforge.project": project.spec.project, "mlforge.trigger": "sdk", **(tags or {})}
    with tracker.fluent(), mlflow.start_run(experiment_id=exp_id, tags=all_tags) as active:
        # start_run ends the run FINISHED, or FAILED when the block raises, and re-raises
        yield active


class Deployments:
    """Endpoint manifests: status, rollback, traffic (the functions the CLI and admin API use)."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def status(self, endpoint: str) -> Manifest:
        """The current manifest of `endpoint`."""
        self.project.spec.deployment(endpoint)
        m = read_manifest(self.project.storage, endpoint)
        if m is None:
            raise ModelNotFoundError(f"endpoint {endpoint} has no deployment manifest yet")
        return m

    def rollback(self, endpoint: str) -> Manifest:
        """Make the previous manifest revision current again (a new revision)."""
        return rollback(self.project.storage, endpoint)

    def traffic(self, endpoint: str, split: dict[str, int]) -> Manifest:
        """Re-weight the variants (``{"stable": 75, "canary": 25}``; answering shares add up to 100)."""
        return apply_traffic(self.project.storage, endpoint, dict(split), "with the SDK")


class Datasets:
    """The project's datasets: what is stored, checks, a new source's entry, DVC versions, restore."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def list(self) -> list[DatasetSummary]:
        """Every dataset: the days stored, their rows and the current DVC version."""
        return summaries(self.project)[0]

    def validate(self, dataset: str | None = None) -> dict[str, builtins.list[CheckOutcome]]:
        """Re-read a dataset's source (default: all) and run its checks: dataset → outcomes."""
        return {ds.name: outcomes for ds, _, outcomes in validate(self.project, dataset)}

    def register(
        self,
        name: str,
        path: str,
        format: str,
        timestamp_column: str,
        timestamp_format: str | None = None,
        entity: str | None = None,
        columns: Sequence[str] = (),
    ) -> Registration:
        """Read and check a new source and infer its `datasets:` entry (`.entry`, to add to the spec)."""
        return register(self.project, name, path, format, timestamp_column, timestamp_format, entity, columns)

    def versions(self, dataset: str) -> dict[date, str | None]:
        """The DVC object (md5) each stored day of `dataset` records."""
        return recorded_versions(self.project, dataset)

    def pull(
        self,
        out: str | Path,
        dataset: str | None = None,
        days: Sequence[date] | None = None,
        model: str | None = None,
        version: int | None = None,
    ) -> int:
        """Restore exact raw bytes (sha256 verified) into `out`: the days of `dataset` (default: every
        stored day), or every partition model `model` version `version` read. Returns the count."""
        if (model is None) == (dataset is None):
            raise MLForgeError("pull: give a dataset, or model= and version=")
        if model is not None:
            if version is None:
                raise MLForgeError("pull: model= needs version=")
            return pull_model_data(self.project, model, version, Path(out))[2]
        assert dataset is not None
        return pull_days(self.project, dataset, list(days) if days is not None else None, Path(out))


@dataclass(frozen=True)
class EndpointReport:
    """An endpoint's monitoring, as the SDK returns it: the latest day's drift and its days."""

    report: MonitorReport
    threshold: float

    @property
    def drift_share(self) -> float | None:
        """Drift share of the latest day with a drift summary."""
        shares = [d.drift_share for d in self.report.days if d.drift_share is not None]
        return shares[-1] if shares else None

    @property
    def drift_detected(self) -> bool:
        """The latest drift share is at or over the spec's threshold."""
        return self.drift_share is not None and self.drift_share >= self.threshold

    @property
    def days(self) -> list[DayRow]:
        """Per day: drift share, live metrics (auc, f1), latency p50/p99 and error rate."""
        return list(self.report.days)


class Monitor:
    """Monitoring of the project's endpoints (what `mlforge monitor` prints)."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def report(self, endpoint: str, days: int = 14) -> EndpointReport:
        """Drift and live performance of `endpoint`'s model for its last `days` days."""
        spec = self.project.spec
        model = spec.deployment(endpoint).model
        report = monitor_report(self.project.storage, spec, endpoint, days)
        return EndpointReport(report, spec.monitoring_for(model).drift.threshold)
