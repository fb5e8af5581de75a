"""Training: a point-in-time training set for a cutoff, a time-aware split, the model, evaluation.

The training set for cutoff D uses only snapshots whose labels had matured by D (see
`timeline.training_dates`), joined point-in-time from the offline store, so the model for D is
a function of raw data up to D and nothing after it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from mlforge.config.spec import ModelSpec, ProjectSpec
from mlforge.errors import MissingPartitionsError, MLForgeError
from mlforge.features.labels import LABEL, missing_labels
from mlforge.features.offline import (
    join_service,
    missing_snapshots,
    read_snapshots,
    service_frame,
    snapshot_versions,
)
from mlforge.features.refs import service_features, service_views
from mlforge.features.snapshots import EVENT_TS
from mlforge.io import layout
from mlforge.io.storage import Storage, read_json, read_parquet, write_json, write_parquet
from mlforge.io.timeline import Cadence, clip, key, training_dates
from mlforge.models.base import (
    ALGORITHM_TAG,
    CUTOFF_TAG,
    DATA_VERSION_TAG,
    EXPERIMENT_TAG,
    TASK_TAG,
    THRESHOLD_TAG,
    FittedModel,
    Task,
    fit_model,
)
from mlforge.models.metrics import evaluate
from mlforge.models.plots import diagnostics
from mlforge.models.tracking import LoggedModel, Tracker
from mlforge.models.validation import fold_metrics, threshold_of, uses_folds, validate


@dataclass
class TrainingData:
    """A point-in-time training set split by time."""

    train: pl.DataFrame
    holdout: pl.DataFrame
    features: list[str]
    train_days: list[date]
    holdout_day: date
    data_versions: dict[str, str] = field(default_factory=dict)
    #: features that are category codes (declared `type: category`): native categorical splits
    categorical: tuple[str, ...] = ()

    def matrix(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) of 'train' or 'holdout' as float32 / int arrays."""
        df = self.train if part == "train" else self.holdout
        return df.select(self.features).to_numpy().astype(np.float32), df[LABEL].to_numpy()


def categorical_features(spec: ProjectSpec, service: str) -> list[str]:
    """The service's features that are category codes, in order."""
    kinds = {(v.name, f.name): f.type for v in spec.feature_views for f in v.features}
    return [f for v, f in service_features(spec, service) if kinds.get((v, f)) == "category"]


def feature_columns(spec: ProjectSpec, model: ModelSpec) -> list[str]:
    """The model's input columns, in order."""
    return [f for _, f in service_features(spec, model.feature_service)]


def input_versions(storage: Storage, model: str, views: list[str], days: list[date]) -> dict[str, str]:
    """{`labels/<model>/<day>` | `features/<view>/<day>`: sha256} of every partition a training set reads."""
    versions = {
        f"labels/{model}/{key(d)}": read_json(storage, layout.label_meta(model, d))["sha256"] for d in days
    }
    for view in views:
        versions.update(
            {f"features/{view}/{d}": h for d, h in snapshot_versions(storage, view, days).items()}
        )
    return versions


def data_version(versions: dict[str, str]) -> str:
    """The data version of a training set: a short hash of its input versions (run and model tags)."""
    return hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:16]


def build_training_data(storage: Storage, spec: ProjectSpec, model: ModelSpec, cutoff: date) -> TrainingData:
    """Assemble the training set of `model` for `cutoff` from stored labels and snapshots."""
    train_days, holdout_day = training_dates(model, cutoff, Cadence.of(spec))
    train_days = clip(spec, train_days)
    if holdout_day < spec.partitions.start or len(train_days) < model.training.min_train_snapshots:
        raise MLForgeError(
            f"models/{model.name}: cutoff {cutoff} leaves {len(train_days)} training snapshot(s) with "
            f"matured labels (need {model.training.min_train_snapshots}); choose a later cutoff"
        )
    days = [*train_days, holdout_day]
    stage = f"models/{model.name}/trained[{key(cutoff)}]"
    missing = missing_labels(storage, model.name, days)
    if missing:
        raise MissingPartitionsError(stage, f"labels/{model.name}", missing, "Materialize them first.")
    views = service_views(spec, model.feature_service)
    for view in views:
        missing = missing_snapshots(storage, view, days)
        if missing:
            raise MissingPartitionsError(stage, f"features/{view}", missing, "Materialize them first.")

    join_key = spec.service_entity(model.feature_service).join_key
    labels = pl.concat([read_parquet(storage, layout.label_data(model.name, d)) for d in days])
    versions = input_versions(storage, model.name, views, days)
    frame = join_service(labels, spec, model.feature_service, lambda v: read_snapshots(storage, v, days))
    frame = frame.sort(EVENT_TS, join_key)
    holdout_ts = frame[EVENT_TS].max()
    features = feature_columns(spec, model)
    return TrainingData(
        train=frame.filter(pl.col(EVENT_TS) < holdout_ts),
        holdout=frame.filter(pl.col(EVENT_TS) == holdout_ts),
        features=features,
        train_days=train_days,
        holdout_day=holdout_day,
        data_versions=versions,
        categorical=tuple(categorical_features(spec, model.feature_service)),
    )


def train_model(data: TrainingData, model: ModelSpec) -> FittedModel:
    """Fit the spec's algorithm on the training part (deterministic for the same data and params)."""
    return fit_model(data, model)


@dataclass(frozen=True)
class TrainedModel:
    """What one training run produced."""

    cutoff: date
    run_id: str
    model_id: str
    model_uri: str
    booster_uri: str
    experiment_id: str
    metrics: dict[str, float]
    booster_sha256: str
    data_version: str
    train_rows: int
    holdout_rows: int
    features: list[str]
    #: binary: the decision threshold (chosen on the validation folds, or the spec's)
    threshold: float | None = None
    #: per-fold and mean validation metrics (``cv<k>_<metric>``, ``cv_mean_<metric>``), when folded
    validation: dict[str, float] = field(default_factory=dict)
    #: holdout tables by name (calibration, deciles, confusion, permutation_importance): models.plots
    diagnostics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: the run's figure artifacts (``plots/<name>.png``)
    plots: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form stored as run.json."""
        d = dict(self.__dict__)
        d["cutoff"] = key(self.cutoff)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainedModel:
        """Inverse of to_json."""
        return cls(**{**d, "cutoff": date.fromisoformat(d["cutoff"])})

    def logged_model(self) -> LoggedModel:
        """The MLflow logged model this training produced (what a model version is created from)."""
        return LoggedModel(
            self.run_id,
            self.model_id,
            self.model_uri,
            self.booster_uri.rsplit("/", 1)[0],
            self.experiment_id,
            self.booster_uri.rsplit("/", 1)[1],
        )


def train_cutoff(
    storage: Storage,
    tracker: Tracker,
    spec: ProjectSpec,
    model: ModelSpec,
    cutoff: date,
    tags: dict[str, str],
) -> TrainedModel:
    """Build the point-in-time training set for `cutoff`, train, evaluate, log to MLflow."""
    data = build_training_data(storage, spec, model, cutoff)
    # folds first: a threshold chosen on them is what the holdout's metrics are measured at
    validation = (
        validate(data.train, data.features, data.train_days, model, data.categorical)
        if uses_folds(model)
        else None
    )
    threshold = threshold_of(model, validation)
    cv = fold_metrics(validation) if validation is not None else {}
    fitted = train_model(data, model)
    x_hold, y_hold = data.matrix("holdout")
    metrics = evaluate(fitted.predict(x_hold), y_hold, threshold, model.model_task)
    diag = diagnostics(
        fitted, x_hold, y_hold, model.model_task, model.gate_metric, threshold, model.training.seed
    )
    lineage = json.dumps(data.data_versions, sort_keys=True)
    version = data_version(data.data_versions)
    digest = fitted.sha256()
    run_tags = {
        **tags,
        "mlforge.model": model.name,
        CUTOFF_TAG: key(cutoff),
        DATA_VERSION_TAG: version,
        "mlforge.train_days": f"{data.train_days[0]}..{data.train_days[-1]}",
        "mlforge.holdout_day": key(data.holdout_day),
        "mlforge.booster_sha256": digest,
        ALGORITHM_TAG: model.algorithm,  # the spec's name: resolve() gives back the class
        TASK_TAG: str(model.model_task),
    }
    if model.model_task is Task.BINARY:
        run_tags[THRESHOLD_TAG] = repr(threshold)
    logged = tracker.log_training(
        experiment=tags.get(EXPERIMENT_TAG) or f"{spec.project}/{model.name}",
        run_name=f"{model.name}-{key(cutoff)}",
        model=fitted,
        metrics={**{f"holdout_{k}": v for k, v in metrics.items()}, **cv},
        tags=run_tags,
        artifacts={"data_versions.json": lineage.encode(), **diag.artifacts()},
    )
    write_parquet(storage, layout.model_holdout(model.name, cutoff), data.holdout)
    # The drift reference is the population the model starts scoring: every entity of the
    # cutoff's own snapshot (the same universe rule and snapshot as each monitored day), not the
    # holdout, a horizon older: in a cohort that ages, a reference 90 days older shows "drift" on
    # clean days (drift share 0.60 on 1998-03-31 against the holdout of 1997-12-31).
    reference = service_frame(storage, spec, model.feature_service, cutoff).select(data.features)
    n = spec.monitoring_for(model.name).drift.reference_rows
    if reference.height > n:
        reference = reference.sample(n, seed=model.training.seed)
    write_parquet(storage, layout.model_reference(model.name, cutoff), reference)
    trained = TrainedModel(
        cutoff=cutoff,
        run_id=logged.run_id,
        model_id=logged.model_id,
        model_uri=logged.model_uri,
        booster_uri=logged.booster_uri,
        experiment_id=logged.experiment_id,
        metrics=metrics,
        booster_sha256=digest,
        data_version=version,
        train_rows=data.train.height,
        holdout_rows=data.holdout.height,
        features=data.features,
        threshold=threshold if model.model_task is Task.BINARY else None,
        validation=cv,
        diagnostics=diag.tables,
        plots=sorted(diag.artifacts()),
    )
    write_json(storage, layout.model_run(model.name, cutoff), trained.to_json())
    return trained


def read_trained(storage: Storage, model: str, cutoff: date) -> TrainedModel:
    """The training run stored for `cutoff`; MissingPartitionsError when there is none."""
    k = layout.model_run(model, cutoff)
    if not storage.exists(k):
        raise MissingPartitionsError(
            f"models/{model}/registered[{key(cutoff)}]", f"models/{model}/trained", [key(cutoff)]
        )
    return TrainedModel.from_json(read_json(storage, k))
