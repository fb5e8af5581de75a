"""The project specification: `mlforge.yaml` parsed into typed objects.

A bad spec fails here, before anything runs, with the file, the field path and what was expected.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlforge.errors import MLForgeError, SpecError

_T = TypeVar("_T")
NAME = r"^[a-z][a-z0-9_]*$"
ENDPOINT_NAME = r"^[a-z][a-z0-9_-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- infrastructure --------------------------------------------------------------------------


class StorageSpec(_Model):
    """Where datasets, features, manifests, reports and logs live."""

    root: str | None = Field(None, description="Local folder or s3://bucket/prefix; default <state>/storage.")
    endpoint_url: str | None = Field(None, description="S3 endpoint (MinIO, SeaweedFS, …).")
    region: str | None = None


class OnlineStoreSpec(_Model):
    """The low-latency store serving reads features from."""

    url: str = Field("embedded", description="'embedded' (SQLite under the state folder) or redis://…")
    key_prefix: str = "mlforge"


class TrackingSpec(_Model):
    """MLflow tracking and registry."""

    uri: str | None = Field(None, description="MLflow tracking URI; default SQLite under the state folder.")
    artifact_root: str | None = Field(None, description="Artifact location for new experiments.")


class InfrastructureSpec(_Model):
    """External parts; every one has an embedded default under the state folder."""

    state_dir: str = Field(".mlforge", description="State folder (overridden by MLFORGE_HOME).")
    storage: StorageSpec = StorageSpec()
    online_store: OnlineStoreSpec = OnlineStoreSpec()
    tracking: TrackingSpec = TrackingSpec()
    executor: Literal["in_process", "multiprocess"] = "in_process"


# --- data -----------------------------------------------------------------------------------


class PartitionsSpec(_Model):
    """The one time partitioning every stage shares."""

    start: date
    end: date = Field(description="Last partition (inclusive).")
    cadence: Literal["daily"] = "daily"

    @model_validator(mode="after")
    def _ordered(self) -> PartitionsSpec:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        return self


class EntitySpec(_Model):
    """A join key, like Feast's Entity."""

    name: Annotated[str, Field(pattern=NAME)]
    join_key: str
    description: str = ""


ColumnType = Literal["string", "int", "float", "date", "datetime", "bool"]


class ColumnSpec(_Model):
    """One column of a dataset's schema and the range its values must fall in."""

    type: ColumnType
    nullable: bool = True
    min: float | None = None
    max: float | None = None


class SourceSpec(_Model):
    """Where a dataset is read from: a file or glob, local or s3://."""

    path: str
    format: Literal["whitespace", "csv", "parquet"] = "csv"


class TimestampSpec(_Model):
    """Which column holds the event time and how to parse it."""

    column: str
    format: str | None = Field(None, description="strptime format for string dates, e.g. %Y%m%d")


class DatasetSpec(_Model):
    """A raw dataset: source, schema, event time, entity."""

    name: Annotated[str, Field(pattern=NAME)]
    description: str = ""
    source: SourceSpec
    timestamp: TimestampSpec
    entity: str
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _timestamp_is_a_column(self) -> DatasetSpec:
        if self.timestamp.column not in self.columns:
            raise ValueError(
                f"timestamp.column '{self.timestamp.column}' is not one of the columns {sorted(self.columns)}"
            )
        return self


AggFunction = Literal["sum", "mean", "std", "count", "min", "max"]


class AggregateTransform(_Model):
    """Aggregates over the whole lookback window, grouped by entity."""

    kind: Literal["aggregate"]
    columns: list[str] = Field(min_length=1)
    functions: list[AggFunction] = Field(min_length=1)


class WindowTransform(_Model):
    """Rolling aggregates over the last N days, for each N in `windows_days`."""

    kind: Literal["window"]
    columns: list[str] = Field(min_length=1)
    functions: list[AggFunction] = Field(min_length=1)
    windows_days: list[Annotated[int, Field(gt=0)]] = Field(min_length=1)


class RecencyTransform(_Model):
    """Days since the entity's last and first event in the lookback window."""

    kind: Literal["recency"]


Transform = Annotated[AggregateTransform | WindowTransform | RecencyTransform, Field(discriminator="kind")]


class FeatureViewSpec(_Model):
    """Feature view: entity, source dataset, transformations, TTL (Feast's words)."""

    name: Annotated[str, Field(pattern=NAME)]
    description: str = ""
    entity: str
    source: str
    lookback_days: int = Field(365, gt=0, description="History each snapshot may read.")
    ttl_days: int = Field(365, gt=0, description="How long a snapshot value stays valid.")
    transformations: list[Transform] = Field(min_length=1)


class FeatureServiceSpec(_Model):
    """What a model reads: 'view:feature' or 'view:*' references."""

    name: Annotated[str, Field(pattern=NAME)]
    features: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _refs(self) -> FeatureServiceSpec:
        for ref in self.features:
            if not re.fullmatch(r"[a-z][a-z0-9_]*:(\*|[A-Za-z0-9_]+)", ref):
                raise ValueError(f"feature reference '{ref}' must look like 'view:feature' or 'view:*'")
        return self


# --- models ---------------------------------------------------------------------------------


class LabelSpec(_Model):
    """The target: churn = no event in the next `horizon_days` after the snapshot."""

    kind: Literal["churn"] = "churn"
    dataset: str
    horizon_days: int = Field(gt=0)


class TrainingSpec(_Model):
    """How a training set is drawn for a cutoff."""

    window_days: int = Field(270, gt=0, description="How far back training snapshots reach.")
    snapshot_step_days: int = Field(7, gt=0, description="Days between training snapshots.")
    min_train_snapshots: int = Field(4, gt=0)
    seed: int = 7


class GateSpec(_Model):
    """Promotion gate: minimum metric and no regression against the current champion."""

    metric: Literal["auc", "f1", "logloss"] = "auc"
    min: float = Field(0.7, description="Minimum holdout metric to register as a candidate.")
    max_regression: float = Field(
        0.0, ge=0, description="How much worse than the champion (same holdout) is still promoted."
    )


class ModelSpec(_Model):
    """A model: feature service, label, algorithm and its parameters, promotion gate."""

    name: Annotated[str, Field(pattern=NAME)]
    description: str = ""
    feature_service: str
    label: LabelSpec
    algorithm: Literal["xgboost"] = "xgboost"
    params: dict[str, Any] = Field(default_factory=dict)
    training: TrainingSpec = TrainingSpec()
    gate: GateSpec = GateSpec()
    retrain_cron: str = Field("0 4 * * 1", description="Weekly retrain schedule.")


# --- deployments and monitoring -------------------------------------------------------------


class PromotionCriteria(_Model):
    """When the canary sensor promotes a challenger (champion-challenger) from its logged scores.

    Scores carry no labels at serving time, so the criteria compare the challenger with the
    champion on the same traffic: enough requests, per-request agreement (shadow mode, where both
    scored the same rows) or distribution shift (split mode), and the live bounds of the strategy.
    """

    enabled: bool = Field(True, description="Promote automatically when every criterion holds.")
    min_requests: int = Field(500, ge=1, description="Challenger rows logged before any decision.")
    min_agreement: float = Field(
        0.9, ge=0, le=1, description="Shadow: share of rows where both scores differ by ≤ tolerance."
    )
    agreement_tolerance: float = Field(0.1, ge=0, le=1, description="Score difference that still agrees.")
    max_mean_shift: float = Field(
        0.05, ge=0, le=1, description="|mean challenger score − mean champion score| allowed."
    )


class StrategySpec(_Model):
    """How a new champion reaches traffic, and the live bounds that keep it there."""

    kind: Literal["blue_green", "canary", "champion_challenger"] = "blue_green"
    steps: list[Annotated[int, Field(gt=0, le=100)]] = Field(
        default_factory=lambda: [5, 25, 50, 100],
        min_length=1,
        description="Canary traffic steps in percent, increasing, ending at 100.",
    )
    mode: Literal["split", "shadow"] = "split"
    challenger_traffic: int = Field(10, ge=0, le=100)
    evaluation_minutes: float = Field(
        10.0, gt=0, description="Canary: how long a step serves before the sensor may advance it."
    )
    min_requests: int = Field(
        100, ge=1, description="Canary rows a step must log before it is judged (advance or roll back)."
    )
    max_error_rate: float = Field(0.01, ge=0, le=1, description="Canary: share of rows that failed.")
    max_latency_p99_ms: float = Field(50.0, gt=0, description="Canary: p99 request latency of its rows.")
    max_score_shift: float = Field(
        0.1, ge=0, le=1, description="Canary: |mean canary score − mean stable score| allowed."
    )
    max_score_psi: float | None = Field(
        None, ge=0, description="Canary: population stability index of its scores vs stable (off: null)."
    )
    promotion_criteria: PromotionCriteria = PromotionCriteria()

    @model_validator(mode="after")
    def _steps_increase(self) -> StrategySpec:
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"steps must increase strictly, got {self.steps}")
        if self.kind == "canary" and self.steps and self.steps[-1] != 100:
            raise ValueError(f"canary steps must end at 100, got {self.steps}")
        return self


class DeploymentSpec(_Model):
    """An endpoint serving one model with a strategy."""

    endpoint: Annotated[str, Field(pattern=ENDPOINT_NAME)]
    model: str
    strategy: StrategySpec = StrategySpec()


class DriftSpec(_Model):
    """Data drift of a model's features against its training reference."""

    threshold: float = Field(0.5, gt=0, le=1, description="Drift share that triggers a retrain.")
    method: str | None = Field(None, description="Evidently stattest, e.g. 'ks', 'psi'.")
    reference_rows: int = Field(20000, gt=0)
    auto_retrain: bool = Field(
        True, description="Drift sensor running by default: drift over threshold → retrain."
    )


class MonitoringSpec(_Model):
    """Monitoring of one model."""

    model: str
    drift: DriftSpec = DriftSpec()
    alert_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Alerting bounds: auc, f1, precision, recall (minimums); latency_p99_ms, "
        "error_rate, drift_share (maximums).",
    )

    @field_validator("alert_thresholds")
    @classmethod
    def _known_thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        known = {"auc", "f1", "precision", "recall", "latency_p99_ms", "error_rate", "drift_share"}
        unknown = sorted(set(v) - known)
        if unknown:
            raise ValueError(f"unknown alert threshold(s) {unknown} (known: {sorted(known)})")
        return v


class ScheduleSpec(_Model):
    """The daily refresh."""

    daily_refresh_cron: str = "0 3 * * *"
    enabled: bool = False


class AlertsSpec(_Model):
    """Where alerts go: the log always, a webhook when its URL is in the environment.

    The URL is read from the variable named here (webhook URLs embed tokens), never from the spec.
    """

    webhook_url_env: str = Field(
        "MLFORGE_ALERT_WEBHOOK_URL", description="Environment variable holding the webhook URL."
    )
    dagster_url: str = Field(
        "http://localhost:3000", description="Base URL of the Dagster UI for links (MLFORGE_DAGSTER_URL)."
    )
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    on_run_failure: bool = Field(True, description="A run-failure sensor alerts on every failed run.")


class ReplaySpec(_Model):
    """A simulated clock for demos and tests: one daily refresh per tick, from `start` to `end`.

    Production uses the daily schedule; the replay sensor exists only when this section is set.
    """

    start: date
    end: date
    interval_seconds: int = Field(10, ge=1, description="Seconds between sensor ticks.")


# --- the project ----------------------------------------------------------------------------


class ProjectSpec(_Model):
    """A whole `mlforge.yaml`."""

    project: Annotated[str, Field(pattern=NAME)]
    description: str = ""
    timezone: str = "UTC"
    owners: list[str] = Field(default_factory=list)
    partitions: PartitionsSpec
    infrastructure: InfrastructureSpec = InfrastructureSpec()
    entities: list[EntitySpec] = Field(min_length=1)
    datasets: list[DatasetSpec] = Field(min_length=1)
    feature_views: list[FeatureViewSpec] = Field(default_factory=list)
    feature_services: list[FeatureServiceSpec] = Field(default_factory=list)
    models: list[ModelSpec] = Field(default_factory=list)
    deployments: list[DeploymentSpec] = Field(default_factory=list)
    monitoring: list[MonitoringSpec] = Field(default_factory=list)
    schedules: ScheduleSpec = ScheduleSpec()
    alerts: AlertsSpec = AlertsSpec()
    replay: ReplaySpec | None = None

    # Cross-references are checked here so a typo fails with the field path that holds it.
    @model_validator(mode="after")
    def _references(self) -> ProjectSpec:
        problems: list[str] = []
        entities = {e.name for e in self.entities}
        datasets = {d.name: d for d in self.datasets}
        views = {v.name: v for v in self.feature_views}
        services = {s.name for s in self.feature_services}
        models = {m.name for m in self.models}
        for kind, names in (
            ("entities", [e.name for e in self.entities]),
            ("datasets", [d.name for d in self.datasets]),
            ("feature_views", [v.name for v in self.feature_views]),
            ("feature_services", [s.name for s in self.feature_services]),
            ("models", [m.name for m in self.models]),
            ("deployments", [d.endpoint for d in self.deployments]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                problems.append(f"{kind}: duplicate names {dupes}")
        for i, d in enumerate(self.datasets):
            if d.entity not in entities:
                problems.append(
                    f"datasets[{i}].entity: unknown entity '{d.entity}' (known: {sorted(entities)})"
                )
        for i, v in enumerate(self.feature_views):
            if v.entity not in entities:
                problems.append(
                    f"feature_views[{i}].entity: unknown entity '{v.entity}' (known: {sorted(entities)})"
                )
            if v.source not in datasets:
                problems.append(
                    f"feature_views[{i}].source: unknown dataset '{v.source}' (known: {sorted(datasets)})"
                )
                continue
            cols = datasets[v.source].columns
            for j, t in enumerate(v.transformations):
                for c in getattr(t, "columns", []):
                    if c not in cols:
                        problems.append(
                            f"feature_views[{i}].transformations[{j}].columns: '{c}' is not a column of "
                            f"dataset '{v.source}' (columns: {sorted(cols)})"
                        )
                    elif cols[c].type not in ("int", "float"):
                        problems.append(
                            f"feature_views[{i}].transformations[{j}].columns: '{c}' is {cols[c].type}, "
                            "aggregates need int or float"
                        )
        for i, s in enumerate(self.feature_services):
            for ref in s.features:
                view = ref.split(":", 1)[0]
                if view not in views:
                    problems.append(
                        f"feature_services[{i}].features: unknown feature view '{view}' in '{ref}'"
                    )
        for i, m in enumerate(self.models):
            if m.feature_service not in services:
                problems.append(
                    f"models[{i}].feature_service: unknown feature service '{m.feature_service}' "
                    f"(known: {sorted(services)})"
                )
            if m.label.dataset not in datasets:
                problems.append(f"models[{i}].label.dataset: unknown dataset '{m.label.dataset}'")
        for i, dep in enumerate(self.deployments):
            if dep.model not in models:
                problems.append(
                    f"deployments[{i}].model: unknown model '{dep.model}' (known: {sorted(models)})"
                )
        for i, mon in enumerate(self.monitoring):
            if mon.model not in models:
                problems.append(
                    f"monitoring[{i}].model: unknown model '{mon.model}' (known: {sorted(models)})"
                )
        if self.replay is not None:
            r, p = self.replay, self.partitions
            if not (p.start <= r.start <= r.end <= p.end):
                problems.append(
                    f"replay: start {r.start} and end {r.end} must lie within partitions "
                    f"{p.start}..{p.end}, start first"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # --- lookups used everywhere ---

    def dataset(self, name: str) -> DatasetSpec:
        """The dataset called `name`."""
        return _find(self.datasets, "name", name, "dataset")

    def entity(self, name: str) -> EntitySpec:
        """The entity called `name`."""
        return _find(self.entities, "name", name, "entity")

    def feature_view(self, name: str) -> FeatureViewSpec:
        """The feature view called `name`."""
        return _find(self.feature_views, "name", name, "feature view")

    def feature_service(self, name: str) -> FeatureServiceSpec:
        """The feature service called `name`."""
        return _find(self.feature_services, "name", name, "feature service")

    def model(self, name: str) -> ModelSpec:
        """The model called `name`."""
        return _find(self.models, "name", name, "model")

    def deployment(self, endpoint: str) -> DeploymentSpec:
        """The deployment of `endpoint`."""
        return _find(self.deployments, "endpoint", endpoint, "endpoint")

    def join_key(self, view: str) -> str:
        """The join key of the entity feature view `view` is keyed by."""
        return self.entity(self.feature_view(view).entity).join_key

    def endpoints_of(self, model: str) -> list[str]:
        """The endpoints that serve `model`."""
        return [d.endpoint for d in self.deployments if d.model == model]

    def monitoring_for(self, model: str) -> MonitoringSpec:
        """Monitoring settings of `model` (defaults when the spec names none)."""
        return next((m for m in self.monitoring if m.model == model), MonitoringSpec(model=model))


def _find(items: list[_T], attr: str, name: str, kind: str) -> _T:
    """The item whose `attr` is `name`, or an error listing the known names."""
    for item in items:
        if getattr(item, attr) == name:
            return item
    raise MLForgeError(f"unknown {kind} '{name}' (known: {sorted(getattr(i, attr) for i in items)})")


def _format_loc(loc: tuple[int | str, ...], data: Any) -> str:
    """('datasets', 0, 'source', 'path') -> 'datasets[0].source.path' (skipping union tags)."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
        elif isinstance(node, dict) or node is None or out == "":
            if isinstance(node, dict) and part not in node and out and _is_union_tag(part):
                continue
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
        else:
            continue
    return out or "(top level)"


def _is_union_tag(part: str) -> bool:
    return part in {"aggregate", "window", "recency"} or part.startswith("function-")


def _describe_error(err: Any, data: Any) -> str:
    loc = _format_loc(tuple(err.get("loc", ())), data)
    msg = err.get("msg", "invalid")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err.get("type") == "missing":
        return f"{loc}: required field is missing"
    if err.get("type") == "extra_forbidden":
        return f"{loc}: unknown field (check the spelling)"
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{loc}: {msg}{shown}"


def parse_spec(data: Any, path: str = "<spec>") -> ProjectSpec:
    """Validate an already-loaded YAML document; raise SpecError naming every bad field."""
    if not isinstance(data, dict):
        raise SpecError(path, [f"(top level): expected a mapping of sections, got {type(data).__name__}"])
    try:
        return ProjectSpec.model_validate(data)
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors():
            if err.get("type") == "value_error" and not err.get("loc"):
                problems.extend(
                    p.strip() for p in str(err.get("msg", "")).removeprefix("Value error, ").split("; ")
                )
            else:
                problems.append(_describe_error(err, data))
        raise SpecError(path, problems) from None


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as strings, so pydantic reports a bad one with its field path."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_spec(path: str | Path, check_files: bool = True) -> ProjectSpec:
    """Read and validate `mlforge.yaml`. Relative source paths are checked against its folder."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(str(p), ["file not found"])
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_Loader)  # _Loader is a SafeLoader
    except UnicodeDecodeError as exc:
        raise SpecError(str(p), [f"not UTF-8 text (byte {exc.start})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(str(p), [f"{where}not valid YAML: {problem}"]) from None
    spec = parse_spec(data, str(p))
    if check_files:
        missing = []
        for i, d in enumerate(spec.datasets):
            src = d.source.path
            if "://" in src or any(ch in src for ch in "*?["):
                continue
            if not (p.parent / src).exists():
                missing.append(f"datasets[{i}].source.path: file not found: {src}")
        if missing:
            raise SpecError(str(p), missing)
    return spec
