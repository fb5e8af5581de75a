"""Validation folds before the holdout, and a binary model's decision threshold chosen on them.

Folds live inside the training set of a cutoff, so they read nothing the final model does not:
fold k scores the training snapshot ``v_k`` (one of the newest ``n_splits``, a label horizon
apart) with a model fitted on the snapshots whose labels had matured by ``v_k`` (day ≤ v_k −
horizon) — each fold is a smaller, earlier cutoff, point-in-time like the final model. The
holdout is never part of a fold: the gate's comparison stays on unseen rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from mlforge.config.spec import ModelSpec, ValidationSpec
from mlforge.errors import MLForgeError
from mlforge.features.snapshots import EVENT_TS
from mlforge.io.timeline import end_of
from mlforge.models.base import Task, fit_model
from mlforge.models.metrics import evaluate


@dataclass(frozen=True)
class Fold:
    """One validation fold: the snapshot it scores and the metrics there."""

    day: date
    train_rows: int
    rows: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class Validation:
    """Every fold, their mean metrics and the out-of-fold (actual, score) rows they pooled."""

    folds: list[Fold]
    mean: dict[str, float]
    y: np.ndarray
    scores: np.ndarray


def uses_folds(model: ModelSpec) -> bool:
    """Whether a model is validated on folds: time_series_split, or a threshold chosen on them."""
    v = model.validation
    return v.strategy == "time_series_split" or v.threshold_optimization != "none"


def fold_days(train_days: list[date], horizon_days: int, n_splits: int) -> list[date]:
    """The snapshot each fold scores, oldest first: the newest training days, a horizon apart, each
    leaving at least two matured snapshots to fit on."""
    h = timedelta(days=horizon_days)
    days: list[date] = []
    for d in reversed(train_days):
        if len(days) == n_splits:
            break
        if days and d > days[-1] - h:
            continue
        if sum(t <= d - h for t in train_days) >= 2:
            days.append(d)
    if len(days) < n_splits:
        raise MLForgeError(
            f"validation: {len(train_days)} training snapshots leave {len(days)} fold(s) a "
            f"{horizon_days}-day horizon apart with 2 matured snapshots each (n_splits: {n_splits}); "
            "lower n_splits or widen training.window_days"
        )
    return sorted(days)


def validate(
    train: pl.DataFrame,
    features: list[str],
    train_days: list[date],
    model: ModelSpec,
    categorical: tuple[str, ...] = (),
) -> Validation:
    """Fit and score every fold of `train` (the cutoff's training rows) with the model's spec."""
    from mlforge.models.training import TrainingData

    task = model.model_task
    h = timedelta(days=model.label.horizon_days)
    ts = pl.col(EVENT_TS)  # a snapshot as of day d carries end_of(d)
    folds: list[Fold] = []
    ys: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for v in fold_days(train_days, model.label.horizon_days, model.validation.n_splits):
        data = TrainingData(
            train=train.filter(ts <= end_of(v - h)),
            holdout=train.filter(ts == end_of(v)),
            features=features,
            train_days=[t for t in train_days if t <= v - h],
            holdout_day=v,
            categorical=categorical,
        )
        if data.train.is_empty() or data.holdout.is_empty():
            raise MLForgeError(
                f"validation fold {v}: {data.train.height} training and {data.holdout.height} "
                "validation rows; lower n_splits or widen training.window_days"
            )
        fitted = fit_model(data, model)
        x, y = data.matrix("holdout")
        s = fitted.predict(x)
        folds.append(Fold(v, data.train.height, data.holdout.height, evaluate(s, y, model.threshold, task)))
        ys.append(y)
        scores.append(s)
    names = [k for k in folds[0].metrics if k != "rows"]
    mean = {k: float(np.nanmean([f.metrics[k] for f in folds])) for k in names}
    return Validation(folds, mean, np.concatenate(ys), np.concatenate(scores))


def choose_threshold(y: np.ndarray, scores: np.ndarray, rule: ValidationSpec) -> float:
    """A binary decision threshold chosen on out-of-fold rows by the spec's rule.

    f1: the score maximising F1; cost: the one minimising ``fp·cost_false_positive +
    fn·cost_false_negative``; precision: the lowest reaching ``target_precision`` (the highest-
    precision one when none does). Ties go to the lower threshold (more rows flagged).
    """
    from sklearn import metrics as skm

    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        raise MLForgeError("validation: the folds hold one class only; a threshold cannot be chosen")
    if rule.threshold_optimization == "cost":
        fpr, tpr, thr = skm.roc_curve(y, scores, drop_intermediate=False)
        pos, neg = int(y.sum()), int(len(y) - y.sum())
        cost = fpr * neg * rule.cost_false_positive + (1 - tpr) * pos * rule.cost_false_negative
        ok = np.isfinite(thr)  # roc_curve's first threshold is +inf (nothing flagged)
        i = _lowest_best(thr[ok], -cost[ok])
        return _clip(thr[ok][i])
    precision, recall, thr = skm.precision_recall_curve(y, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if rule.threshold_optimization == "f1":
        f1 = np.where(
            precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0
        )
        return _clip(thr[_lowest_best(thr, f1)])
    reach = np.flatnonzero(precision >= rule.target_precision)
    return _clip(thr[reach[0]] if len(reach) else thr[_lowest_best(thr, precision)])


def _lowest_best(thresholds: np.ndarray, value: np.ndarray) -> int:
    """Index of the lowest threshold among those with the highest `value`."""
    best = np.flatnonzero(value == np.max(value))
    return int(best[np.argmin(thresholds[best])])


def _clip(t: float) -> float:
    # the spec's threshold lives in (0, 1); a perfect separation can put it on a bound
    return float(min(max(t, 1e-6), 1 - 1e-6)) if math.isfinite(t) else 0.5


def threshold_of(model: ModelSpec, validation: Validation | None) -> float:
    """The decision threshold a trained binary model keeps: chosen on the folds, or the spec's."""
    if model.model_task is not Task.BINARY or validation is None:
        return model.threshold
    if model.validation.threshold_optimization == "none":
        return model.threshold
    return choose_threshold(validation.y, validation.scores, model.validation)


def fold_metrics(validation: Validation) -> dict[str, float]:
    """Flat metric names for MLflow and asset metadata: ``cv<k>_<metric>`` and ``cv_mean_<metric>``."""
    out = {f"cv_mean_{k}": v for k, v in validation.mean.items()}
    for k, f in enumerate(validation.folds, 1):
        out |= {f"cv{k}_{m}": v for m, v in f.metrics.items() if m != "rows"}
    return out
