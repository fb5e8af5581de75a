"""Model and live metrics: each one's direction, defined once, and the holdout evaluation.

Every place that compares a metric with a bound or with another value — the blocking quality
check, the promotion gate, the worst cutoff of a backfill, performance alerts, the canary's live
bounds and the reports — asks :func:`metric` here, so a lower-is-better metric such as log loss
is never read as higher-is-better. Pure Python; scikit-learn is imported inside :func:`evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import numpy as np

from mlforge.data.checks import CheckOutcome
from mlforge.errors import MLForgeError

_T = TypeVar("_T")

#: Equal within this tolerance counts as equal (metrics are floats: exactly at a limit passes).
TOLERANCE = 1e-9


class Direction(StrEnum):
    """Which way a metric improves; a bound on it is a minimum or a maximum."""

    HIGHER = "higher"
    LOWER = "lower"


@dataclass(frozen=True)
class Metric:
    """A metric's name, direction and what it measures."""

    name: str
    direction: Direction
    description: str

    @property
    def bound(self) -> str:
        """`min` for a higher-is-better metric (its bound is a minimum), else `max`."""
        return "min" if self.direction is Direction.HIGHER else "max"

    def meets(self, value: float, bound: float) -> bool:
        """`value` is on the good side of `bound` (or equal to it)."""
        if self.direction is Direction.HIGHER:
            return value >= bound - TOLERANCE
        return value <= bound + TOLERANCE

    def worse_by(self, value: float, reference: float) -> float:
        """How much worse `value` is than `reference` (negative when it is better)."""
        return reference - value if self.direction is Direction.HIGHER else value - reference

    def sign(self, ok: bool) -> str:
        """The comparison sign a message shows for a value against its bound."""
        if self.direction is Direction.HIGHER:
            return "≥" if ok else "<"
        return "≤" if ok else ">"

    def worst(self, items: Iterable[_T], value: Callable[[_T], float]) -> _T:
        """The item whose `value` is worst in this metric's direction (the first one on ties)."""
        return min(items, key=value) if self.direction is Direction.HIGHER else max(items, key=value)


_H, _L = Direction.HIGHER, Direction.LOWER
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("auc", _H, "area under the ROC curve"),
        Metric("logloss", _L, "log loss of the predicted probabilities"),
        Metric("brier", _L, "Brier score (mean squared error of the probabilities)"),
        Metric("f1", _H, "F1 at the model's threshold"),
        Metric("precision", _H, "precision at the model's threshold"),
        Metric("recall", _H, "recall at the model's threshold"),
        Metric("ece", _L, "expected calibration error"),
        Metric("latency_p99_ms", _L, "99th percentile of serving latency, milliseconds"),
        Metric("error_rate", _L, "share of requests that failed"),
        Metric("drift_share", _L, "share of drifted columns"),
    )
}


def metric(name: str) -> Metric:
    """The metric called `name`; an MLForgeError naming the known ones otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise MLForgeError(f"unknown metric {name!r} (known: {', '.join(sorted(METRICS))})") from None


def min_quality(metrics: Mapping[str, float], name: str, bound: float) -> CheckOutcome:
    """The blocking check before registration: the holdout metric is on the good side of the bound."""
    m = metric(name)
    value = metrics.get(name)
    ok = value is not None and m.meets(value, bound)
    return CheckOutcome(
        "min_quality",
        ok,
        f"holdout {name} {value:.4f} {m.sign(ok)} {bound}" if value is not None else f"no {name}",
        {"value": value, "threshold": bound, "direction": m.direction.value},
    )


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
