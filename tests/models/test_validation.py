"""Validation folds and threshold choice (pure logic, no servers)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn import metrics as skm

from mlforge.config.spec import ValidationSpec
from mlforge.errors import MLForgeError
from mlforge.models.validation import choose_threshold, fold_days

DAYS = [date(2020, 1, 1) + timedelta(days=7 * k) for k in range(20)]  # weekly snapshots


def test_fold_days_are_a_horizon_apart_and_each_has_matured_training_snapshots() -> None:
    folds = fold_days(DAYS, horizon_days=30, n_splits=3)
    assert len(folds) == 3 and folds == sorted(folds)
    assert folds[-1] == DAYS[-1]
    assert all((b - a).days >= 30 for a, b in itertools.pairwise(folds))
    # each fold keeps ≥ 2 snapshots whose labels matured by the fold's day
    assert all(sum(t <= f - timedelta(days=30) for t in DAYS) >= 2 for f in folds)
    with pytest.raises(MLForgeError, match=r"lower n_splits or widen training.window_days"):
        fold_days(DAYS, horizon_days=30, n_splits=10)


def _scores(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(4000) < 0.25).astype(int)
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.15), 0, 1)
    return y, s


def test_f1_threshold_is_the_best_f1_of_every_candidate() -> None:
    y, s = _scores()
    t = choose_threshold(y, s, ValidationSpec(threshold_optimization="f1"))
    best = skm.f1_score(y, s >= t)
    grid = np.quantile(s, np.linspace(0.01, 0.99, 99))
    assert best >= max(skm.f1_score(y, s >= g) for g in grid) - 1e-12
    assert best > skm.f1_score(y, s >= 0.5)  # the default threshold is worse on these scores


def test_cost_threshold_moves_with_the_costs() -> None:
    y, s = _scores()
    cheap_fp = choose_threshold(y, s, ValidationSpec(threshold_optimization="cost", cost_false_negative=10))
    cheap_fn = choose_threshold(y, s, ValidationSpec(threshold_optimization="cost", cost_false_positive=10))
    assert cheap_fp < cheap_fn

    def cost(t: float, fp_cost: float, fn_cost: float) -> float:
        pred = s >= t
        return fp_cost * int((pred & (y == 0)).sum()) + fn_cost * int((~pred & (y == 1)).sum())

    grid = np.quantile(s, np.linspace(0.01, 0.99, 99))
    assert cost(cheap_fp, 1, 10) <= min(cost(g, 1, 10) for g in grid)


def test_precision_threshold_is_the_lowest_reaching_the_target() -> None:
    y, s = _scores()
    t = choose_threshold(y, s, ValidationSpec(threshold_optimization="precision", target_precision=0.8))
    assert skm.precision_score(y, s >= t) >= 0.8
    lower = s[s < t].max()
    assert skm.precision_score(y, s >= lower) < 0.8
    with pytest.raises(MLForgeError, match="one class only"):
        choose_threshold(np.zeros(10), s[:10], ValidationSpec(threshold_optimization="f1"))


def test_folds_score_snapshot_rows_and_train_only_on_labels_matured_by_then() -> None:
    """Snapshots carry end_of(day) as their timestamp, as the offline store writes them."""
    from mlforge.config.spec import ModelSpec
    from mlforge.features.labels import LABEL
    from mlforge.features.snapshots import EVENT_TS
    from mlforge.io.timeline import end_of
    from mlforge.models.validation import validate

    rng = np.random.default_rng(3)
    per_day = 150
    frames = []
    for d in DAYS:
        x = rng.normal(size=(per_day, 2)).astype(np.float32)
        frames.append(
            pl.DataFrame(
                {
                    "customer_id": [f"{i:05d}" for i in range(per_day)],
                    EVENT_TS: [end_of(d)] * per_day,
                    "f0": x[:, 0],
                    "f1": x[:, 1],
                    LABEL: (x[:, 0] + rng.normal(0, 1, per_day) > 0).astype(np.int8),
                }
            )
        )
    train = pl.concat(frames)
    model = ModelSpec.model_validate(
        {
            "name": "m",
            "feature_service": "s",
            "label": {"kind": "churn", "dataset": "t", "horizon_days": 30},
            "params": {"n_estimators": 20, "max_depth": 2},
            "validation": {"strategy": "time_series_split", "n_splits": 3, "threshold_optimization": "f1"},
        }
    )
    v = validate(train, ["f0", "f1"], DAYS, model)
    assert [f.day for f in v.folds] == fold_days(DAYS, 30, 3)
    for f in v.folds:
        assert f.rows == per_day  # the fold's own snapshot, every entity
        assert f.train_rows == per_day * sum(t <= f.day - timedelta(days=30) for t in DAYS)
        assert 0.6 < f.metrics["auc"] <= 1.0  # learnable signal, scored out of fold
    assert len(v.y) == len(v.scores) == 3 * per_day
    assert 0.0 < choose_threshold(v.y, v.scores, model.validation) < 1.0
