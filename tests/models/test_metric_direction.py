"""Metric direction: the blocking quality check, the gate and the worst-cutoff choice agree."""

from __future__ import annotations

import pytest

from mlforge.config.spec import GateSpec
from mlforge.models.gate import decide
from mlforge.models.metrics import min_quality


@pytest.mark.parametrize(
    ("metric", "minimum", "good", "bad"),
    [("logloss", 0.50, 0.30, 0.70), ("auc", 0.60, 0.75, 0.55), ("f1", 0.40, 0.80, 0.20)],
)
def test_min_quality_check_agrees_with_gate(metric: str, minimum: float, good: float, bad: float) -> None:
    """A model the gate's minimum accepts passes the blocking check; one it rejects is blocked."""
    gate = GateSpec(metric=metric, min=minimum, max_regression=0.0)
    assert decide(gate, good, None).promote
    assert not decide(gate, bad, None).promote
    assert min_quality({metric: good}, metric, minimum).passed
    assert not min_quality({metric: bad}, metric, minimum).passed
