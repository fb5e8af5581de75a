"""Metric direction: the blocking quality check, the gate and the worst-cutoff choice agree."""

from __future__ import annotations

import pytest

from mlforge.config.spec import GateSpec
from mlforge.models.gate import decide
from mlforge.models.metrics import metric, min_quality


@pytest.mark.parametrize(
    ("metric", "minimum", "good", "bad"),
    [("logloss", 0.50, 0.30, 0.70), ("auc", 0.60, 0.75, 0.55), ("f1", 0.40, 0.80, 0.20)],
)
def test_min_quality_check_agrees_with_gate(metric: str, minimum: float, good: float, bad: float) -> None:
    """A model the gate's minimum accepts passes the blocking check; one it rejects is blocked."""
    gate = GateSpec(metric=metric, min=minimum, max_regression=0.0)
    assert decide(gate, metric, good, None).promote
    assert not decide(gate, metric, bad, None).promote
    assert min_quality({metric: good}, metric, minimum).passed
    assert not min_quality({metric: bad}, metric, minimum).passed


def test_worst_cutoff_follows_the_direction_and_survives_nan() -> None:
    """The blocking check looks at the worst cutoff of a backfill: lowest AUC, highest log loss.

    A cutoff whose holdout has one class has AUC NaN; picking the worst must not crash on it
    (comparing values back with == never matches NaN).
    """
    runs = [{"auc": 0.74, "logloss": 0.52}, {"auc": 0.71, "logloss": 0.49}, {"auc": 0.78, "logloss": 0.55}]
    assert metric("auc").worst(runs, lambda r: r["auc"]) is runs[1]
    assert metric("logloss").worst(runs, lambda r: r["logloss"]) is runs[2]
    with_nan = [{"auc": float("nan")}, {"auc": 0.7}]
    assert metric("auc").worst(with_nan, lambda r: r["auc"]) in with_nan
