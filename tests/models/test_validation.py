"""Validation folds and threshold choice (pure logic, no servers)."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import numpy as np
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
