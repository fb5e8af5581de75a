"""The project specification: `mlforge.yaml` parsed into typed objects.

A bad spec fails here, before anything runs, with the file, the field path and what was expected.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlforge.errors import MLForgeError, SpecError
from mlforge.models.base import ALGORITHMS, Task
from mlforge.models.metrics import DEFAULT_GATE_METRIC, METRICS, metrics_for

_T = TypeVar("_T")
NAME = r"^[a-z][a-z0-9_]*$"
ENDPOINT_NAME = r"^[a-z][a-z0-9_-]*$"


_S = TypeVar("_S", bound=BaseModel)


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
    end: date = Field(description="Last day (inclusive); the last partition is the last whole period.")
    cadence: Literal["daily", "weekly", "monthly"] = Field(
        "daily",
        description="Partition length. Periods start on `start` (weekly: its weekday; monthly: its "
        "day of the month); snapshots are taken as of each period's last day.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> PartitionsSpec:
        if self.end < self.start:
            raise ValueError(f"end ({self.end}) is before start ({self.start})")
        if self.cadence == "monthly" and self.start.day > 28:
            raise ValueError(
                f"a monthly cadence's periods start on the start's day of the month, which must be "
                f"1..28 (every month has it), got {self.start}"
            )
        span = {"daily": 1, "weekly": 7, "monthly": 28}[self.cadence]
        if (self.end - self.start).days + 1 < span:
            raise ValueError(f"{self.start}..{self.end} holds no whole {self.cadence} period")
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
    """Where a dataset is read from: a file or glob, local or s3://.

    With `watch`, the folder (or S3 prefix) of the glob is a landing area: a sensor materializes
    the partitions of each new file once, and moves a file that does not fit the schema to
    `_quarantine/` beside it, with a note naming the row and column.
    """

    path: str
    format: Literal["whitespace", "csv", "parquet"] = "csv"
    watch: bool = Field(False, description="A sensor picks up new files of the glob (a landing area).")
    deadline_cron: str | None = Field(
        None, description="Freshness: the latest partition is expected by this cron (e.g. '0 6 * * *')."
    )

    @model_validator(mode="after")
    def _watch_a_glob(self) -> SourceSpec:
        if self.watch and not any(c in self.path.rsplit("/", 1)[-1] for c in "*?["):
            raise ValueError("watch: a watched source is a glob over its landing folder, e.g. landing/*.csv")
        return self


class TimestampSpec(_Model):
    """Which column holds the event time and how to parse it."""

    column: str
    format: str | None = Field(None, description="strptime format for string dates, e.g. %Y%m%d")


class DatasetSpec(_Model):
    """A raw dataset: source, schema, event time, entity.

    ``kind: events`` (the default) holds facts with their event time; ``kind: profile`` holds
    slowly changing attributes per entity, each row valid from its `timestamp` (``valid_from``)
    until the entity's next row, or static ones without a timestamp (valid from the start).
    """

    name: Annotated[str, Field(pattern=NAME)]
    description: str = ""
    kind: Literal["events", "profile"] = "events"
    source: SourceSpec
    timestamp: TimestampSpec | None = Field(
        None, description="The event time (events) or valid_from (profile; none: static attributes)."
    )
    entity: str
    columns: dict[str, ColumnSpec]

    @model_validator(mode="after")
    def _timestamp_is_a_column(self) -> DatasetSpec:
        if self.timestamp is None:
            if self.kind == "events":
                raise ValueError("timestamp: an events dataset needs its event time column")
            return self
        if self.timestamp.column not in self.columns:
            raise ValueError(
                f"timestamp.column '{self.timestamp.column}' is not one of the columns {sorted(self.columns)}"
            )
        return self

    @property
    def event_time(self) -> TimestampSpec:
        """The timestamp of a dataset that has one (every events dataset)."""
        if self.timestamp is None:
            raise MLForgeError(f"dataset {self.name} is a static profile: it has no timestamp")
        return self.timestamp

    @property
    def time_column(self) -> str | None:
        """The timestamp column, None for a static profile."""
        return self.timestamp.column if self.timestamp is not None else None


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
    """`days_since_last`: days since the entity's last event up to the snapshot (any age);
    `days_since_first`: days since its first event in the lookback (null when it has none there)."""

    kind: Literal["recency"]


class TenureTransform(_Model):
    """`tenure_days`: days since the entity's first event ever (from the entity index)."""

    kind: Literal["tenure"]


Transform = Annotated[
    AggregateTransform | WindowTransform | RecencyTransform | TenureTransform, Field(discriminator="kind")
]


class FeatureSpec(_Model):
    """A declared feature of a SQL or profile view: its name, type and, for a category, its values.

    Every feature is stored as a float: numbers and booleans as they are, a category as the index
    of its value in `categories` (an unknown value or null is missing), so training, the online
    store and serving encode it the same way and algorithms with native categorical support get
    the column as categorical.
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    type: Literal["float", "int", "bool", "category"] = "float"
    categories: list[str] | None = Field(
        None, min_length=1, description="category: its values, in code order."
    )
    column: str | None = Field(None, description="Profile views: the dataset column (default: the name).")
    fill_value: float | None = Field(None, description="The value of an entity the view has no row for.")

    @model_validator(mode="after")
    def _categories(self) -> FeatureSpec:
        if (self.type == "category") != (self.categories is not None):
            raise ValueError("categories: a 'category' feature lists its values; other types take none")
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValueError(f"categories: duplicate values in {self.categories}")
        return self


class FeatureViewSpec(_Model):
    """Feature view: entity, source dataset, transformations, TTL (Feast's words).

    Its features come from one of: `transformations` over an events dataset; `sql`, a DuckDB
    query over the source (and `extra_sources`), each visible to it as a table of only the rows
    of the snapshot's lookback (never after it), with `as_of()` the snapshot day; or, on a profile
    dataset, its declared `features` (the attributes valid at the end of the snapshot day).
    """

    name: Annotated[str, Field(pattern=NAME)]
    description: str = ""
    entity: str
    source: str
    extra_sources: list[str] = Field(default_factory=list, description="SQL views: further tables read.")
    sql: str | None = Field(None, description="A DuckDB query returning the join key and the features.")
    features: list[FeatureSpec] = Field(default_factory=list, description="SQL and profile views.")
    lookback_days: Annotated[int, Field(gt=0)] | Literal["all"] = Field(
        365,
        description="Days of history the aggregates cover; 'all': the whole history up to the "
        "snapshot (lifetime aggregates from the entity index, no rescan).",
    )
    ttl_days: int = Field(365, gt=0, description="How long a snapshot value stays valid.")
    transformations: list[Transform] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_kind(self) -> FeatureViewSpec:
        if self.sql is not None:
            if self.transformations:
                raise ValueError("sql: a SQL view declares its features, not transformations")
            if not self.features:
                raise ValueError("features: a SQL view declares the features its query returns")
        elif self.extra_sources:
            raise ValueError("extra_sources: only a SQL view reads further tables")
        elif not self.transformations and not self.features:
            raise ValueError(
                "transformations: a view needs transformations, a sql query, or (on a "
                "profile dataset) features"
            )
        elif self.transformations and self.features:
            raise ValueError(
                "features: declared features are for SQL and profile views; this view has transformations"
            )
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features: duplicate names {dupes}")
        return self

    @property
    def kind(self) -> Literal["transformations", "sql", "profile"]:
        """How the view's features are computed."""
        if self.sql is not None:
            return "sql"
        return "profile" if self.features else "transformations"

    @property
    def lifetime(self) -> bool:
        """The aggregates cover the whole history (`lookback_days: all`)."""
        return self.lookback_days == "all"

    @property
    def read_days(self) -> int:
        """Days of raw rows a snapshot reads: the lookback, or for a lifetime view its longest
        window (lifetime values come from the entity index, not from rows)."""
        if isinstance(self.lookback_days, int):
            return self.lookback_days
        windows = [n for t in self.transformations if isinstance(t, WindowTransform) for n in t.windows_days]
        return max(windows, default=1)


class ServiceJoin(_Model):
    """A view keyed by another entity, joined through a feature of a main-entity view.

    ``{view: store_stats, on: "customer_profile:store_id"}``: each row's `store_id` as of the
    snapshot (an `int`, or a `category` whose value is the key) picks the `store_stats` row of that
    store as of the same snapshot — offline point-in-time, online as a second read.
    """

    view: str
    on: str = Field(description="'view:feature' of a main-entity view holding the other entity's key.")


class FeatureServiceSpec(_Model):
    """What a model reads: 'view:feature' or 'view:*' references; views keyed by another entity
    are joined through a main-entity feature (`joins`)."""

    name: Annotated[str, Field(pattern=NAME)]
    features: list[str] = Field(min_length=1)
    joins: list[ServiceJoin] = Field(default_factory=list)

    @model_validator(mode="after")
    def _refs(self) -> FeatureServiceSpec:
        for ref in self.features:
            if not re.fullmatch(r"[a-z][a-z0-9_]*:(\*|[A-Za-z0-9_]+)", ref):
                raise ValueError(f"feature reference '{ref}' must look like 'view:feature' or 'view:*'")
        return self


# --- models ---------------------------------------------------------------------------------


class Condition(_Model):
    """A row filter on a dataset column, e.g. ``{column: cds, op: ge, value: 3}``."""

    column: str
    op: Literal["eq", "ne", "gt", "ge", "lt", "le", "in"]
    value: float | str | list[float | str]

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if (self.op == "in") != isinstance(self.value, list):
            raise ValueError("op 'in' takes a list value; every other op takes a single value")
        return self


class _HorizonLabel(_Model):
    dataset: str
    horizon_days: int = Field(gt=0, description="Days after the snapshot the label looks at.")
    where: list[Condition] = Field(
        default_factory=list, description="Only the dataset's rows that meet every condition count."
    )


class ChurnLabel(_HorizonLabel):
    """churn = 1 when the entity has no (matching) event in (D, D + horizon]: binary."""

    kind: Literal["churn"] = "churn"


class EventLabel(_HorizonLabel):
    """event = 1 when the entity has at least one (matching) event in (D, D + horizon]: binary."""

    kind: Literal["event"]


class AggregateLabel(_HorizonLabel):
    """A sum, count or mean of `column` over (D, D + horizon]: regression; with `bins`, multiclass.

    An entity without a (matching) event in the horizon gets `fill_value` (sum and count are 0
    then by definition; the mean of nothing is `fill_value` too). `bins` are the increasing inner
    edges of the classes: class k holds values v with edges[k-1] <= v < edges[k], so n edges make
    n + 1 classes.
    """

    kind: Literal["aggregate"]
    function: Literal["sum", "count", "mean"]
    column: str | None = Field(None, description="The aggregated column (not needed for count).")
    fill_value: float = 0.0
    bins: list[float] | None = Field(None, min_length=1, description="Inner class edges → multiclass.")

    @model_validator(mode="after")
    def _column_and_bins(self) -> AggregateLabel:
        if self.function != "count" and self.column is None:
            raise ValueError(f"function '{self.function}' needs a column")
        if self.bins is not None and any(b <= a for a, b in zip(self.bins, self.bins[1:], strict=False)):
            raise ValueError(f"bins must increase strictly, got {self.bins}")
        return self


class ColumnLabel(_Model):
    """A label read from a labels dataset of (entity, timestamp, value) rows, point-in-time.

    The label of snapshot D is the `column` value of the entity's rows whose timestamp falls in
    (D, D + horizon]; with several, `several` picks one (``last``: the latest, the default). An
    entity without such a row gets `fill_value`, or is left out of the training set when it is null.
    """

    kind: Literal["column"]
    dataset: str
    column: str
    horizon_days: int = Field(gt=0)
    several: Literal["last", "first", "max", "min", "mean"] = "last"
    fill_value: float | None = None


LabelSpec = Annotated[ChurnLabel | EventLabel | AggregateLabel | ColumnLabel, Field(discriminator="kind")]

#: The task each label kind implies (an aggregate label with bins is multiclass); None: declared.
LABEL_TASKS: dict[str, Task | None] = {
    "churn": Task.BINARY,
    "event": Task.BINARY,
    "aggregate": Task.REGRESSION,
    "column": None,
}


def label_task(label: ChurnLabel | EventLabel | AggregateLabel | ColumnLabel) -> Task | None:
    """The task a label implies, None when only the spec's `task` can say (a column label)."""
    if isinstance(label, AggregateLabel) and label.bins is not None:
        return Task.MULTICLASS
    return LABEL_TASKS[label.kind]


class TrainingSpec(_Model):
    """How a training set is drawn for a cutoff."""

    window_days: int = Field(270, gt=0, description="How far back training snapshots reach.")
    snapshot_step_days: int = Field(7, gt=0, description="Days between training snapshots.")
    min_train_snapshots: int = Field(4, gt=0)
    seed: int = 7


class GateSpec(_Model):
    """Promotion gate: an optional bound on a holdout metric, and no regression against the champion."""

    metric: str | None = Field(
        None, description="A metric of the model's task; default auc / logloss / rmse by task."
    )
    min: float | None = Field(
        None,
        description="Bound on the holdout metric before registration (a minimum, or a maximum for "
        "a lower-is-better metric); null: none.",
    )
    max_regression: float = Field(
        0.0, ge=0, description="How much worse than the champion (same holdout) is still promoted."
    )


class ValidationSpec(_Model):
    """How a model is validated before its holdout, and how a binary model's threshold is chosen.

    ``time_series_split`` trains on the earlier cutoffs' training sets and scores the snapshot that
    follows each (every fold point-in-time like the final model); ``holdout`` is the holdout only.
    """

    strategy: Literal["holdout", "time_series_split"] = "holdout"
    n_splits: int = Field(3, ge=2, le=20, description="Folds of time_series_split.")
    threshold_optimization: Literal["none", "f1", "cost", "precision"] = Field(
        "none", description="Binary: choose the decision threshold on the validation folds."
    )
    cost_false_positive: float = Field(1.0, ge=0, description="threshold_optimization: cost.")
    cost_false_negative: float = Field(1.0, ge=0, description="threshold_optimization: cost.")
    target_precision: float = Field(
        0.5, gt=0, le=1, description="threshold_optimization: precision — the lowest threshold reaching it."
    )


#: An import path: ``package.module.Class`` or ``package.module:Class`` (built-in names aside).
_IMPORT_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+(:[A-Za-z_][A-Za-z0-9_]*)?$")


def _algorithm_name(value: str) -> str:
    """A built-in algorithm (mlforge.models.base.ALGORITHMS) or an import path; else a clear error."""
    if value in ALGORITHMS or _IMPORT_PATH.match(value):
        return value
    raise ValueError(
        f"unknown algorithm {value!r}: use {', '.join(sorted(ALGORITHMS))}, a scikit-learn estimator's "
        "import path (e.g. sklearn.ensemble.RandomForestRegressor) or your class's (package.module:Class)"
    )


class ModelSpec(_Model):
    """A model: feature service, label, task, algorithm and its parameters, validation, gate."""

    name: Annotated[str, Field(pattern=NAME)]
    description: str = ""
    feature_service: str
    label: LabelSpec
    task: Task | None = Field(
        None, description="binary, multiclass or regression; inferred from the label kind when unset."
    )
    algorithm: Annotated[str, AfterValidator(_algorithm_name)] = Field(
        "xgboost",
        description="xgboost, lightgbm, a scikit-learn estimator's import path "
        "(sklearn.linear_model.LogisticRegression) or a plug-in 'package.module:Class'.",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    scaler: Literal["standard", "minmax", "robust"] | None = Field(
        None, description="scikit-learn estimators: scale the features first (in the logged pipeline)."
    )
    threshold: float = Field(0.5, gt=0, lt=1, description="Binary: the decision threshold (default).")
    training: TrainingSpec = TrainingSpec()
    validation: ValidationSpec = ValidationSpec()
    gate: GateSpec = GateSpec()
    retrain_cron: str | None = Field(
        None,
        description="Retrain schedule (default: 04:00 on the first day of each week under a daily or "
        "weekly cadence, of each period under a monthly one).",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_label_kind(cls, data: Any) -> Any:
        # `kind` was optional when churn was the only label; keep such specs valid
        if isinstance(data, dict) and isinstance(data.get("label"), dict) and "kind" not in data["label"]:
            data = {**data, "label": {**data["label"], "kind": "churn"}}
        return data

    @model_validator(mode="after")
    def _task_fits(self) -> ModelSpec:
        implied = label_task(self.label)
        if implied is None and self.task is None:
            raise ValueError("task: a 'column' label needs the task (binary, multiclass or regression)")
        if implied is not None and self.task is not None and self.task is not implied:
            raise ValueError(
                f"task: '{self.task}' does not fit a '{self.label.kind}' label (it is {implied})"
            )
        if self.gate.metric is not None:
            m = METRICS.get(self.gate.metric)
            if m is None or m.live or self.model_task not in m.tasks:
                raise ValueError(
                    f"gate.metric: '{self.gate.metric}' is not a metric of a {self.model_task} model "
                    f"(known: {', '.join(metrics_for(self.model_task, live=False))})"
                )
        if self.validation.threshold_optimization != "none" and self.model_task is not Task.BINARY:
            raise ValueError("validation.threshold_optimization: only binary models have a threshold")
        return self

    @property
    def model_task(self) -> Task:
        """The task: declared, or implied by the label kind."""
        return self.task or label_task(self.label) or Task.BINARY

    @property
    def n_classes(self) -> int | None:
        """Classes of a multiclass model when the spec fixes them (binned aggregate: bins + 1)."""
        if isinstance(self.label, AggregateLabel) and self.label.bins is not None:
            return len(self.label.bins) + 1
        return None

    def class_count(self, y: Any) -> int:
        """Classes a multiclass model is fitted with: the spec's, else 1 + the largest training label,
        so a class the training window happens to miss still has its output."""
        import numpy as np

        seen = int(np.max(y)) + 1 if len(y) else 1
        return max(self.n_classes or 0, seen)

    @property
    def gate_metric(self) -> str:
        """The metric the gate compares: the spec's, or the task's default."""
        return self.gate.metric or DEFAULT_GATE_METRIC[self.model_task]


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
        description="Alerting bounds on any metric of the model's task (a minimum for higher-is-"
        "better ones such as auc or r2, a maximum for rmse or logloss) and on latency_p99_ms, "
        "error_rate, drift_share (maximums).",
    )


class ScheduleSpec(_Model):
    """The refresh of each new partition (raw → features → … → predictions)."""

    daily_refresh_cron: str | None = Field(
        None, description="Refresh schedule (default: 03:00 on the first day of each new period)."
    )
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
            src = datasets[v.source]
            cols = src.columns
            if src.entity != v.entity and {src.entity, v.entity} <= entities:
                problems.append(
                    f"feature_views[{i}].entity: '{v.entity}', but its source '{v.source}' is about "
                    f"{src.entity}: a view is keyed by its source's entity (a view of another entity "
                    "reads a dataset of that entity and is joined in a feature service)"
                )
            for name in v.extra_sources:
                if name not in datasets:
                    problems.append(
                        f"feature_views[{i}].extra_sources: unknown dataset '{name}' (known: {sorted(datasets)})"
                    )
            if v.kind == "transformations" and src.kind != "events":
                problems.append(
                    f"feature_views[{i}].source: '{v.source}' is a profile dataset: transformations "
                    "aggregate events (declare the profile's features instead)"
                )
            if v.kind == "profile" and src.kind != "profile":
                problems.append(
                    f"feature_views[{i}].features: '{v.source}' is an events dataset: declared features "
                    "without sql read a profile dataset (use transformations or sql)"
                )
            for j, f in enumerate(v.features if v.kind == "profile" else []):
                col = f.column or f.name
                where = f"feature_views[{i}].features[{j}]"
                if col not in cols:
                    problems.append(
                        f"{where}: '{col}' is not a column of dataset '{v.source}' (columns: {sorted(cols)})"
                    )
                elif (f.type == "category") != (cols[col].type == "string"):
                    problems.append(
                        f"{where}.type: '{col}' is {cols[col].type}: a category reads a string column, "
                        "a number an int, float or bool one"
                    )
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
            problems.extend(_service_joins(f"feature_services[{i}]", s, views))
        for i, m in enumerate(self.models):
            if m.feature_service not in services:
                problems.append(
                    f"models[{i}].feature_service: unknown feature service '{m.feature_service}' "
                    f"(known: {sorted(services)})"
                )
            if m.label.dataset not in datasets:
                problems.append(f"models[{i}].label.dataset: unknown dataset '{m.label.dataset}'")
                continue
            if datasets[m.label.dataset].kind != "events":
                problems.append(
                    f"models[{i}].label.dataset: '{m.label.dataset}' is a profile dataset: labels are "
                    "read from events (rows with an event time)"
                )
                continue
            problems.extend(_label_columns(f"models[{i}].label", m.label, datasets[m.label.dataset]))
        for i, dep in enumerate(self.deployments):
            if dep.model not in models:
                problems.append(
                    f"deployments[{i}].model: unknown model '{dep.model}' (known: {sorted(models)})"
                )
        by_name = {m.name: m for m in self.models}
        for i, mon in enumerate(self.monitoring):
            if mon.model not in models:
                problems.append(
                    f"monitoring[{i}].model: unknown model '{mon.model}' (known: {sorted(models)})"
                )
                continue
            task = by_name[mon.model].model_task
            known = metrics_for(task)
            unknown = sorted(set(mon.alert_thresholds) - set(known))
            if unknown:
                problems.append(
                    f"monitoring[{i}].alert_thresholds: {unknown} not metrics of a {task} model "
                    f"(known: {', '.join(known)})"
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

    def service_entity(self, service: str) -> EntitySpec:
        """The entity a feature service's rows are about: that of its views not joined through
        another (validated to be one)."""
        s = self.feature_service(service)
        joined = {j.view for j in s.joins}
        first = next(r.split(":", 1)[0] for r in s.features if r.split(":", 1)[0] not in joined)
        return self.entity(self.feature_view(first).entity)

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


def _label_columns(
    where: str, label: ChurnLabel | EventLabel | AggregateLabel | ColumnLabel, ds: DatasetSpec
) -> list[str]:
    """Problems with the dataset columns a label names (they must exist; aggregates need numbers)."""
    problems = []
    cols = ds.columns
    named: list[tuple[str, str, bool]] = [
        (f"{where}.where[{j}].column", c.column, False) for j, c in enumerate(getattr(label, "where", []))
    ]
    column = getattr(label, "column", None)
    if column is not None:
        named.append((f"{where}.column", column, True))
    if named and not cols:
        return [
            f"{where}.dataset: dataset '{ds.name}' declares no columns; the label reads "
            f"{sorted({c for _, c, _ in named})} from it: declare them under datasets[].columns with their types"
        ]
    for path, col, numeric in named:
        if col not in cols:
            problems.append(
                f"{path}: '{col}' is not a column of dataset '{ds.name}' (columns: {sorted(cols)})"
            )
        elif numeric and cols[col].type not in ("int", "float", "bool"):
            problems.append(f"{path}: '{col}' is {cols[col].type}, a label needs int, float or bool")
    return problems


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
    return part in {
        "aggregate",
        "window",
        "recency",
        "tenure",
        "churn",
        "event",
        "column",
    } or part.startswith("function-")


def _describe_error(err: Any, data: Any) -> str:
    loc = _format_loc(tuple(err.get("loc", ())), data)
    msg = err.get("msg", "invalid")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        # a model validator names the field inside its object: "gate.metric: …" → models[0].gate.metric
        inner = re.match(r"([a-z_]+(?:\.[a-z_]+)*): ", msg)
        if inner:
            return f"{loc}.{inner.group(1)}: {msg[inner.end() :]}"
    if err.get("type") == "missing":
        return f"{loc}: required field is missing"
    if err.get("type") == "extra_forbidden":
        return f"{loc}: unknown field (check the spelling)"
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{loc}: {msg}{shown}"


def parse_spec(data: Any, path: str = "<spec>") -> ProjectSpec:
    """Validate an already-loaded YAML document; raise SpecError naming every bad field.

    Past the schema, every model's algorithm is resolved and its params checked
    (:func:`mlforge.models.algorithms.check_params`): a scikit-learn estimator or plug-in named by
    import path is imported here, so a typo fails validation, not training.
    """
    if not isinstance(data, dict):
        raise SpecError(path, [f"(top level): expected a mapping of sections, got {type(data).__name__}"])
    try:
        spec = ProjectSpec.model_validate(data)
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
    # each model's algorithm and params (an estimator's import path is imported to check them)
    from mlforge.models.algorithms import check_params

    problems = [p for i, m in enumerate(spec.models) for p in check_params(m, f"models[{i}]")]
    if problems:
        raise SpecError(path, problems)
    return spec


def parse_section(model: type[_S], data: Any, where: str) -> _S:
    """One section of a spec given on its own (a command's options, an SDK argument), validated
    with the spec's own messages in one line: ``<where>.<field>: <what is wrong>``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_describe_error(err, data) for err in exc.errors()]
        named = [
            p.replace("(top level)", where, 1) if p.startswith("(top level)") else f"{where}.{p}"
            for p in problems
        ]
        raise MLForgeError("; ".join(named)) from None


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as strings, so pydantic reports a bad one with its field path."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_spec(path: str | Path, check_files: bool = True) -> ProjectSpec:
    """Read and validate `mlforge.yaml`, or a Python spec (a ``.py`` file defining ``project``,
    see :mod:`mlforge.config.python_spec`). Relative source paths are checked against its folder."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(str(p), ["file not found"])
    spec = parse_spec(read_document(p), str(p))
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


def read_document(p: Path) -> Any:
    """The spec file's document before validation: the YAML, or a Python spec's ``project`` as
    the mapping the YAML would hold. Unreadable files raise SpecError naming the file."""
    if p.suffix == ".py":
        from mlforge.config.python_spec import read_python_spec

        return read_python_spec(p)
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_Loader)  # _Loader is a SafeLoader
    except UnicodeDecodeError as exc:
        raise SpecError(str(p), [f"not UTF-8 text (byte {exc.start})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(str(p), [f"{where}not valid YAML: {problem}"]) from None
    return data


def _service_joins(where: str, s: FeatureServiceSpec, views: dict[str, FeatureViewSpec]) -> list[str]:
    """Problems of a service's views and joins: one main entity, every other entity's view joined
    through an int or category feature of a main-entity view."""
    used = [r.split(":", 1)[0] for r in s.features if r.split(":", 1)[0] in views]
    joined = {j.view: j for j in s.joins}
    main = {views[v].entity for v in used if v not in joined}
    if len(main) > 1:
        return [
            f"{where}.features: views of entities {sorted(main)}: a service has one main entity, the "
            "others' views are joined through a feature of its views (joins: [{view, on: 'view:feature'}])"
        ]
    if not main:  # no known view at all is reported with the features
        return [f"{where}.joins: every view is joined: one must be of the main entity"] if used else []
    entity = main.pop()
    out = [
        f"{where}.features: '{v}' is keyed by {views[v].entity}, not {entity}: join it through a "
        f"feature of a {entity} view (joins: [{{view: {v}, on: 'view:feature'}}])"
        for v in dict.fromkeys(used)
        if views[v].entity != entity and v not in joined
    ]
    for k, j in enumerate(s.joins):
        at = f"{where}.joins[{k}]"
        if j.view not in views:
            out.append(f"{at}.view: unknown feature view '{j.view}'")
            continue
        if j.view not in used:
            out.append(f"{at}.view: '{j.view}' is not among the service's features")
        if views[j.view].entity == entity:
            out.append(f"{at}.view: '{j.view}' is keyed by the main entity {entity}: list it without a join")
        on_view, sep, feat = j.on.partition(":")
        if not sep or on_view not in views:
            out.append(f"{at}.on: '{j.on}' must name 'view:feature' of a {entity} view")
            continue
        if views[on_view].entity != entity:
            out.append(
                f"{at}.on: '{on_view}' is keyed by {views[on_view].entity}, not the main entity {entity}"
            )
            continue
        declared = {f.name: f for f in views[on_view].features}
        if feat not in declared:
            out.append(
                f"{at}.on: '{on_view}' declares no feature '{feat}' holding the {views[j.view].entity} key "
                f"(declared: {sorted(declared)}); the key comes from a profile or SQL view's int or category feature"
            )
        elif declared[feat].type not in ("int", "category"):
            out.append(f"{at}.on: '{j.on}' is {declared[feat].type}: a key is an int or a category")
    return out
