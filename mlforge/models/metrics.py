"""Model and live metrics: each one's direction and tasks, defined once, and the holdout evaluation.

Every place that compares a metric with a bound or with another value — the spec's checks, the
blocking quality check, the promotion gate, the worst cutoff of a backfill, performance alerts,
the canary's live bounds and the reports — asks :func:`metric` here, so a lower-is-better metric
such as log loss or RMSE is never read as higher-is-better, and a metric is only used for a task
it is defined for. Pure Python and numpy; scikit-learn and scipy are imported inside
:func:`evaluate` (the spec imports this module, and serving imports the spec).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from mlforge.errors import MLForgeError
from mlforge.models.base import Task

if TYPE_CHECKING:
    from mlforge.data.checks import CheckOutcome

_T = TypeVar("_T")

#: Equal within this tolerance counts as equal (metrics are floats: exactly at a limit passes).
TOLERANCE = 1e-9


class Direction(StrEnum):
    """Which way a metric improves; a bound on it is a minimum or a maximum."""

    HIGHER = "higher"
    LOWER = "lower"


_ALL = frozenset(Task)


@dataclass(frozen=True)
class Metric:
    """A metric's name, direction, the tasks it applies to and what it measures.

    `live` metrics come from serving (latency, errors, drift), not from labels: every task has them.
    """

    name: str
    direction: Direction
    tasks: frozenset[Task]
    description: str
    live: bool = False

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
_B, _M, _R = frozenset({Task.BINARY}), frozenset({Task.MULTICLASS}), frozenset({Task.REGRESSION})
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("auc", _H, _B, "area under the ROC curve"),
        Metric("pr_auc", _H, _B, "area under the precision-recall curve (average precision)"),
        Metric("logloss", _L, _B | _M, "log loss of the predicted probabilities"),
        Metric("brier", _L, _B, "Brier score (mean squared error of the probabilities)"),
        Metric("accuracy", _H, _B | _M, "share of rows whose predicted class is right"),
        Metric("f1", _H, _B, "F1 at the model's threshold"),
        Metric("precision", _H, _B, "precision at the model's threshold"),
        Metric("recall", _H, _B, "recall at the model's threshold"),
        Metric("ece", _L, _B, "expected calibration error (10 equal-width bins)"),
        Metric("macro_f1", _H, _M, "F1 averaged over the classes, unweighted"),
        Metric("rmse", _L, _R, "root mean squared error"),
        Metric("mae", _L, _R, "mean absolute error"),
        Metric("r2", _H, _R, "coefficient of determination"),
        Metric("spearman", _H, _R, "Spearman rank correlation of predictions and actuals"),
        Metric(
            "top_decile_capture",
            _H,
            _R,
            "share of the actual total held by the 10 % of rows with the highest predictions",
        ),
        Metric("latency_p99_ms", _L, _ALL, "99th percentile of serving latency, milliseconds", live=True),
        Metric("error_rate", _L, _ALL, "share of requests that failed", live=True),
        Metric("drift_share", _L, _ALL, "share of drifted columns", live=True),
    )
}

#: The gate's metric when the spec names none.
DEFAULT_GATE_METRIC: dict[Task, str] = {
    Task.BINARY: "auc",
    Task.MULTICLASS: "logloss",
    Task.REGRESSION: "rmse",
}


def metric(name: str, task: Task | None = None) -> Metric:
    """The metric called `name` (for `task`, when given); an MLForgeError naming the known ones."""
    m = METRICS.get(name)
    if m is None or (task is not None and task not in m.tasks):
        known = metrics_for(task) if task is not None else sorted(METRICS)
        what = f"for a {task} model" if task is not None else ""
        raise MLForgeError(f"unknown metric {name!r} {what}(known: {', '.join(known)})".replace("  ", " "))
    return m


def metrics_for(task: Task, *, live: bool | None = None) -> list[str]:
    """Names of the metrics of `task` (only label-based with live=False, only live with live=True)."""
    return sorted(n for n, m in METRICS.items() if task in m.tasks and (live is None or m.live == live))


def min_quality(metrics: Mapping[str, float], name: str, bound: float | None) -> CheckOutcome:
    """The blocking check before registration: the holdout metric is on the good side of the bound.

    Without a bound the check passes as long as the metric was computed.
    """
    from mlforge.data.checks import CheckOutcome

    m = metric(name)
    value = metrics.get(name)
    computed = value is not None and value == value  # NaN: e.g. AUC of a one-class holdout
    ok = computed and (bound is None or m.meets(value, bound))  # type: ignore[arg-type]
    if not computed:
        description = f"no {name} on the holdout"
    elif bound is None:
        description = f"holdout {name} {value:.4f} (no minimum set)"
    else:
        description = f"holdout {name} {value:.4f} {m.sign(ok)} {bound}"
    return CheckOutcome(
        "min_quality",
        ok,
        description,
        {"value": value, "threshold": bound, "direction": m.direction.value},
    )


#: Equal-width probability bins of the expected calibration error.
ECE_BINS = 10


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float | None:
    """ECE over `bins` equal-width bins of [0, 1]: Σ |mean score − positive rate| × bin share."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if p.size == 0:
        return None
    idx = np.minimum((np.clip(p, 0.0, 1.0) * bins).astype(np.int64), bins - 1)
    gap = np.abs(np.bincount(idx, weights=p, minlength=bins) - np.bincount(idx, weights=y, minlength=bins))
    return float(gap.sum() / p.size)


def top_decile_capture(pred: np.ndarray, actual: np.ndarray) -> float:
    """Share of the actual total held by the rows with the 10 % highest predictions (ties by order)."""
    total = float(np.sum(actual))
    if len(actual) == 0 or total == 0:
        return float("nan")
    n = max(1, int(np.ceil(len(actual) / 10)))
    top = np.argsort(-np.asarray(pred), kind="stable")[:n]
    return float(np.sum(np.asarray(actual)[top]) / total)


def _or_nan(v: float | None) -> float:
    return float("nan") if v is None else v


def evaluate(
    scores: np.ndarray, y: np.ndarray, threshold: float = 0.5, task: Task = Task.BINARY
) -> dict[str, float]:
    """Every metric of `task` for `scores` against the actuals `y`, plus `rows`.

    binary: `scores` are positive-class probabilities, classes at `threshold`; multiclass: `scores`
    is [rows, classes] of probabilities and `y` the class index; regression: predictions.
    """
    from sklearn import metrics as skm

    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    out: dict[str, float] = {"rows": float(len(y))}
    if task is Task.REGRESSION:
        from scipy.stats import spearmanr

        out.update(
            rmse=float(np.sqrt(skm.mean_squared_error(y, scores))),
            mae=float(skm.mean_absolute_error(y, scores)),
            r2=float(skm.r2_score(y, scores)) if len(y) > 1 else float("nan"),
            spearman=float(spearmanr(scores, y).statistic) if len(y) > 1 else float("nan"),
            top_decile_capture=top_decile_capture(scores, y),
            actual_mean=float(np.mean(y)),
        )
        return out
    if task is Task.MULTICLASS:
        classes = np.arange(scores.shape[1])
        pred = scores.argmax(axis=1)
        out.update(
            logloss=float(skm.log_loss(y, np.clip(scores, 1e-7, 1), labels=classes)),
            accuracy=float(skm.accuracy_score(y, pred)),
            macro_f1=float(skm.f1_score(y, pred, average="macro", labels=classes, zero_division=0)),
        )
        return out
    pred = (scores >= threshold).astype(int)
    two_classes = len(np.unique(y)) == 2
    out.update(
        auc=float(skm.roc_auc_score(y, scores)) if two_classes else float("nan"),
        pr_auc=float(skm.average_precision_score(y, scores)) if two_classes else float("nan"),
        logloss=float(skm.log_loss(y, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1])),
        brier=float(skm.brier_score_loss(y, scores)),
        accuracy=float(skm.accuracy_score(y, pred)),
        f1=float(skm.f1_score(y, pred, zero_division=0)),
        precision=float(skm.precision_score(y, pred, zero_division=0)),
        recall=float(skm.recall_score(y, pred, zero_division=0)),
        ece=_or_nan(expected_calibration_error(y, scores)),
        positive_rate=float(np.mean(y)),
        threshold=float(threshold),
    )
    return out
