"""Holdout diagnostics of a trained model: figures for MLflow, tables for the Dagster UI.

Every figure and table is computed on the cutoff's holdout snapshot (the population the gate
judges), by task:

* binary — ROC and precision-recall curves, a calibration curve (10 equal-width score bins);
* multiclass — the confusion matrix;
* regression — predicted vs actual and residuals, and the mean actual per decile of prediction
  (the table a marketing team reads to pick whom to contact);
* every task — permutation importance on the holdout (scikit-learn's ``permutation_importance``
  with the gate's metric, so it works for any algorithm behind the model seam).

Figures are PNG bytes drawn with matplotlib's object API (no pyplot global state, Agg canvas),
logged by training as MLflow artifacts under ``plots/``. Tables are lists of rows that the
trained asset shows as Markdown.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlforge.models.base import FittedModel, Task
from mlforge.models.metrics import ECE_BINS, Direction, evaluate, metric

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Folder of the figures inside a training run's artifacts.
PLOTS_DIR = "plots"
#: Permutation rounds per feature (more: steadier importances, proportionally slower).
PERMUTATION_REPEATS = 3
#: Rows of the holdout the permutation importance uses at most (sampled with the model's seed).
PERMUTATION_ROWS = 5000


@dataclass(frozen=True)
class Diagnostics:
    """A model's holdout figures (file name -> PNG bytes) and tables (name -> rows)."""

    figures: dict[str, bytes] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def artifacts(self) -> dict[str, bytes]:
        """The figures as MLflow artifact paths."""
        return {f"{PLOTS_DIR}/{name}": png for name, png in self.figures.items()}


def _png(draw: Callable[[Axes], None], size: tuple[float, float] = (5.0, 4.0)) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    draw(ax)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """Per equal-width score bin (the ECE's): rows, mean score and observed positive rate."""
    idx = np.minimum((np.clip(p, 0.0, 1.0) * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        if n:
            rows.append(
                {
                    "scores": f"{b / bins:.1f}–{(b + 1) / bins:.1f}",
                    "rows": n,
                    "mean_score": round(float(p[sel].mean()), 4),
                    "positive_rate": round(float(y[sel].mean()), 4),
                }
            )
    return rows


def decile_table(pred: np.ndarray, actual: np.ndarray) -> list[dict[str, Any]]:
    """Per decile of prediction (1 = highest): rows, mean prediction, mean actual, share of the total."""
    order = np.argsort(-pred, kind="stable")
    total = float(actual.sum())
    rows = []
    for d, part in enumerate(np.array_split(order, 10), start=1):
        if part.size:
            rows.append(
                {
                    "decile": d,
                    "rows": int(part.size),
                    "mean_prediction": round(float(pred[part].mean()), 4),
                    "mean_actual": round(float(actual[part].mean()), 4),
                    "share_of_total": round(float(actual[part].sum()) / total, 4) if total else None,
                }
            )
    return rows


def confusion_table(y: np.ndarray, pred: np.ndarray, classes: int) -> list[dict[str, Any]]:
    """Rows: actual class; columns: predicted class counts."""
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(y, pred, labels=np.arange(classes))
    return [{"actual": k, **{f"pred_{j}": int(cm[k, j]) for j in range(classes)}} for k in range(classes)]


def permutation_importance_table(
    model: FittedModel,
    x: np.ndarray,
    y: np.ndarray,
    task: Task,
    metric_name: str,
    threshold: float,
    seed: int,
) -> list[dict[str, Any]]:
    """How much `metric_name` worsens on the holdout when one feature's values are shuffled.

    scikit-learn's ``permutation_importance`` with a scorer that calls the model seam's `predict`,
    so any algorithm works; positive = the model relies on the feature. Sorted, largest first.
    """
    from sklearn.inspection import permutation_importance

    m = metric(metric_name, task)
    sign = 1.0 if m.direction is Direction.HIGHER else -1.0  # sklearn maximises: negate a loss

    def score(_: Any, xs: np.ndarray, ys: np.ndarray) -> float:
        return sign * evaluate(model.predict(xs.astype(np.float32)), ys, threshold, task)[metric_name]

    rng = np.random.default_rng(seed)
    if len(x) > PERMUTATION_ROWS:
        keep = rng.choice(len(x), PERMUTATION_ROWS, replace=False)
        x, y = x[keep], y[keep]
    result = permutation_importance(
        _Fitted(), x, y, scoring=score, n_repeats=PERMUTATION_REPEATS, random_state=seed
    )
    names = model.feature_names
    rows = [
        {
            "feature": names[j],
            f"{metric_name}_worse": round(float(result.importances_mean[j]), 5),
            "std": round(float(result.importances_std[j]), 5),
        }
        for j in range(len(names))
    ]
    return sorted(rows, key=lambda r: -r[f"{metric_name}_worse"])


class _Fitted:
    """Stands in for an estimator: permutation_importance only hands it to the scorer."""

    def fit(self, *_: Any) -> _Fitted:
        return self


def diagnostics(
    model: FittedModel,
    x: np.ndarray,
    y: np.ndarray,
    task: Task,
    metric_name: str,
    threshold: float = 0.5,
    seed: int = 0,
) -> Diagnostics:
    """Figures and tables of `model` on the holdout (x, y); empty when the holdout has no rows."""
    if len(y) == 0:
        return Diagnostics()
    scores = model.predict(x)
    figures: dict[str, bytes] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    if task is Task.BINARY:
        from sklearn.metrics import precision_recall_curve, roc_curve

        y = y.astype(np.int64)
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, scores)
            prec, rec, _ = precision_recall_curve(y, scores)

            def roc(ax: Axes) -> None:
                ax.plot(fpr, tpr)
                ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
                ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (holdout)")

            def pr(ax: Axes) -> None:
                ax.plot(rec, prec)
                ax.axhline(float(y.mean()), linestyle="--", color="grey")
                ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (holdout)")

            figures["roc.png"] = _png(roc)
            figures["precision_recall.png"] = _png(pr)
        cal = calibration_table(y, scores)
        tables["calibration"] = cal

        def calibration(ax: Axes) -> None:
            ax.plot([r["mean_score"] for r in cal], [r["positive_rate"] for r in cal], marker="o")
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
            ax.set(xlabel="mean score", ylabel="positive rate", title="Calibration (holdout)")

        figures["calibration.png"] = _png(calibration)
    elif task is Task.MULTICLASS:
        k = scores.shape[1]
        table = confusion_table(y.astype(np.int64), scores.argmax(axis=1), k)
        tables["confusion"] = table

        def confusion(ax: Axes) -> None:
            cm = np.array([[r[f"pred_{j}"] for j in range(k)] for r in table])
            ax.imshow(cm, cmap="Blues")
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center")
            ax.set(xlabel="predicted class", ylabel="actual class", title="Confusion (holdout)")

        figures["confusion.png"] = _png(confusion)
    else:
        y = y.astype(np.float64)
        tables["deciles"] = decile_table(scores, y)

        def scatter(ax: Axes) -> None:
            ax.scatter(scores, y, s=4, alpha=0.4)
            hi = float(max(scores.max(), y.max()))
            ax.plot([0, hi], [0, hi], linestyle="--", color="grey")
            ax.set(xlabel="prediction", ylabel="actual", title="Predicted vs actual (holdout)")

        def residuals(ax: Axes) -> None:
            ax.scatter(scores, y - scores, s=4, alpha=0.4)
            ax.axhline(0.0, linestyle="--", color="grey")
            ax.set(xlabel="prediction", ylabel="actual − prediction", title="Residuals (holdout)")

        figures["predicted_vs_actual.png"] = _png(scatter)
        figures["residuals.png"] = _png(residuals)
    importance = permutation_importance_table(model, x, y, task, metric_name, threshold, seed)
    tables["permutation_importance"] = importance
    key = f"{metric_name}_worse"

    def bars(ax: Axes) -> None:
        top = importance[:15][::-1]
        ax.barh([r["feature"] for r in top], [r[key] for r in top], xerr=[r["std"] for r in top])
        ax.set(xlabel=f"{metric_name} worse when shuffled", title="Permutation importance (holdout)")

    figures["permutation_importance.png"] = _png(bars, (6.0, 0.35 * min(len(importance), 15) + 1.5))
    return Diagnostics(figures, tables)
