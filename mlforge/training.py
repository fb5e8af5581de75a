"""Training: a point-in-time training set for a cutoff, a time-aware split, XGBoost, evaluation.

The training set for cutoff D uses only snapshots whose labels had matured by D (see
`timeline.training_dates`), joined point-in-time from the offline store, so the model for D is
a function of raw data up to D and nothing after it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mlforge.errors import MissingPartitionsError, MLForgeError
from mlforge.features import EVENT_TS, service_features
from mlforge.labels import LABEL, label_key, label_meta_key, missing_labels
from mlforge.offline_store import (
    missing_snapshots,
    point_in_time_join,
    read_snapshots,
    snapshot_versions,
)
from mlforge.spec import ModelSpec, ProjectSpec
from mlforge.storage import Storage, read_json, read_parquet
from mlforge.timeline import clip, key, training_dates

if TYPE_CHECKING:
    import xgboost as xgb


@dataclass
class TrainingData:
    """A point-in-time training set split by time."""

    train: pl.DataFrame
    holdout: pl.DataFrame
    features: list[str]
    train_days: list[date]
    holdout_day: date
    data_versions: dict[str, str] = field(default_factory=dict)

    def matrix(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) of 'train' or 'holdout' as float32 / int arrays."""
        df = self.train if part == "train" else self.holdout
        return df.select(self.features).to_numpy().astype(np.float32), df[LABEL].to_numpy()


def feature_columns(spec: ProjectSpec, model: ModelSpec) -> list[str]:
    """The model's input columns, in order."""
    return [f for _, f in service_features(spec, model.feature_service)]


def build_training_data(storage: Storage, spec: ProjectSpec, model: ModelSpec, cutoff: date) -> TrainingData:
    """Assemble the training set of `model` for `cutoff` from stored labels and snapshots."""
    train_days, holdout_day = training_dates(model, cutoff)
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
    views = sorted({v for v, _ in service_features(spec, model.feature_service)})
    for view in views:
        missing = missing_snapshots(storage, view, days)
        if missing:
            raise MissingPartitionsError(stage, f"features/{view}", missing, "Materialize them first.")

    join_key = spec.join_key(views[0])
    labels = pl.concat([read_parquet(storage, label_key(model.name, d)) for d in days])
    versions = {
        f"labels/{model.name}/{key(d)}": read_json(storage, label_meta_key(model.name, d))["sha256"]
        for d in days
    }
    frame = labels
    for view_name in views:
        fv = spec.feature_view(view_name)
        feats = [f for v, f in service_features(spec, model.feature_service) if v == view_name]
        snaps = read_snapshots(storage, view_name, days)
        frame = point_in_time_join(frame, snaps, join_key, timedelta(days=fv.ttl_days), feats)
        versions.update(
            {f"features/{view_name}/{d}": h for d, h in snapshot_versions(storage, view_name, days).items()}
        )
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
    )


def xgb_params(model: ModelSpec) -> tuple[dict[str, Any], int]:
    """XGBoost booster params and the number of rounds from the spec's params."""
    params = dict(model.params)
    rounds = int(params.pop("n_estimators", params.pop("num_boost_round", 100)))
    params.setdefault("objective", "binary:logistic")
    params.setdefault("eval_metric", "auc")
    params.setdefault("tree_method", "hist")
    params.setdefault("nthread", 2)
    params["seed"] = model.training.seed
    return params, rounds


def train_model(data: TrainingData, model: ModelSpec) -> xgb.Booster:
    """Fit the booster on the training part (deterministic for the same data and params)."""
    import xgboost as xgb

    x, y = data.matrix("train")
    params, rounds = xgb_params(model)
    dtrain = xgb.DMatrix(x, label=y, feature_names=data.features)
    return xgb.train(params, dtrain, num_boost_round=rounds)


def predict(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    """Positive-class probabilities for a float32 matrix (native, no pandas)."""
    return np.asarray(booster.inplace_predict(x), dtype=np.float64)


def evaluate(scores: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUC, log loss, Brier score and precision/recall/F1 at `threshold`."""
    from sklearn.metrics import (
        brier_score_loss,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    pred = (scores >= threshold).astype(int)
    two_classes = len(np.unique(y)) == 2
    return {
        "auc": float(roc_auc_score(y, scores)) if two_classes else float("nan"),
        "logloss": float(log_loss(y, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "brier": float(brier_score_loss(y, scores)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "positive_rate": float(np.mean(y)),
        "rows": float(len(y)),
    }


def booster_sha256(booster: xgb.Booster) -> str:
    """Hash of the booster's serialized trees: equal hashes mean identical models."""
    return hashlib.sha256(bytes(booster.save_raw(raw_format="ubj"))).hexdigest()
