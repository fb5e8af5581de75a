"""Live model performance: the champion's quality once the labels of a day have matured.

For a day D whose labels exist (the horizon after D has passed), the quality of the scores made
for D is measured against those labels twice: on the batch predictions of D and on the prediction
log rows served on the UTC day D (non-shadow rows with status ``ok``). Operational figures —
latency p50/p99 per request and the error rate — come from the log alone and need no labels.

A day whose labels have not matured yet reports ``status = "labels not matured"`` and the day
they mature, never zeros. Everything here is pure (polars/numpy; scikit-learn imported lazily),
except `read_day_inputs`, which gathers a day's stored inputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from mlforge.data.checks import CheckOutcome
from mlforge.errors import MissingPartitionsError
from mlforge.features.labels import LABEL
from mlforge.io import layout
from mlforge.io.storage import Storage, read_parquet
from mlforge.io.timeline import key
from mlforge.models.base import Task
from mlforge.models.metrics import evaluate, metrics_for
from mlforge.models.metrics import metric as metric_info
from mlforge.monitoring.prediction_log import (
    STATUS_OK,
    answering_rows,
    empty_frame,
    ok_scored_rows,
    read_prediction_log,
)

#: Labelled log rows from which the live (log) quality is the one checked instead of the batch's.
MIN_LOG_ROWS = 200

STATUS_OK_DAY = "ok"
STATUS_NOT_MATURED = "labels not matured"

#: The prediction columns a day's quality is measured from (batch predictions and the log).
SCORE = "score"
PROBABILITIES = "probabilities"  # multiclass: the class probabilities, a list per row
OPERATIONS = ("latency_p50_ms", "latency_p99_ms", "error_rate")


def matures_on(d: date, horizon_days: int) -> date:
    """The last raw day the labels of `d` look at: they can be computed once it exists."""
    return d + timedelta(days=horizon_days)


def check_name(metric: str) -> str:
    """Name of the asset check of one alert threshold, e.g. ``min_auc``, ``max_latency_p99_ms``."""
    return f"{metric_info(metric).bound}_{metric}"


# ---------------------------------------------------------------------------------------------
# Quality against labels
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quality:
    """Quality of predictions against matured labels: every label metric of the task.

    A metric that cannot be computed on the rows (AUC with one class, anything on no rows) is None.
    """

    task: Task
    rows: int
    metrics: dict[str, float | None]
    threshold: float | None = None  # binary: where a score becomes a positive

    def value(self, name: str) -> float | None:
        """The figure of metric `name` (None when it could not be computed)."""
        return self.metrics.get(name)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form: the task, rows, threshold and every metric at the top level."""
        return {"task": str(self.task), "rows": self.rows, "threshold": self.threshold, **self.metrics}


def quality(
    y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5, task: Task = Task.BINARY
) -> Quality:
    """:func:`mlforge.models.metrics.evaluate` of the scores, NaN as None, plus count summaries
    (binary: positives and the mean score; regression: the mean prediction)."""
    y = np.asarray(y_true)
    n = int(y.size)
    names = metrics_for(task, live=False)
    extra = {
        Task.BINARY: ["positives", "positive_rate", "mean_score"],
        Task.REGRESSION: ["actual_mean", "mean_score"],
        Task.MULTICLASS: [],
    }[task]
    if n == 0:
        return Quality(task, 0, dict.fromkeys([*names, *extra]), threshold if task is Task.BINARY else None)
    values = evaluate(scores, y, threshold, task)
    got: dict[str, float | None] = {
        k: (None if values.get(k, np.nan) != values.get(k, np.nan) else values[k])
        for k in names
        if k in values
    }
    p = np.asarray(scores, dtype=np.float64)
    if task is Task.BINARY:
        got.update(positives=float(y.sum()), positive_rate=float(y.mean()), mean_score=float(p.mean()))
    elif task is Task.REGRESSION:
        got.update(actual_mean=float(y.mean()), mean_score=float(p.mean()))
    return Quality(task, n, got, threshold if task is Task.BINARY else None)


def _score_column(task: Task) -> str:
    return PROBABILITIES if task is Task.MULTICLASS else SCORE


def join_batch(
    predictions: pl.DataFrame, labels: pl.DataFrame, entity_key: str, task: Task = Task.BINARY
) -> pl.DataFrame:
    """(score, label) of every batch prediction whose entity has a label (multiclass: probabilities)."""
    col = _score_column(task)
    return (
        predictions.select(entity_key, col)
        .join(labels.select(entity_key, LABEL), on=entity_key, how="inner")
        .select(pl.col(col).alias(SCORE), LABEL)
    )


def join_log(
    log: pl.DataFrame, labels: pl.DataFrame, entity_key: str, task: Task = Task.BINARY
) -> pl.DataFrame:
    """(score, label) of the log's answered ok rows whose entity has a label (one row per prediction).

    A multiclass model's log rows are measured only when the log holds their class probabilities.
    """
    ok = ok_scored_rows(answering_rows(log))
    col = _score_column(task)
    if col not in ok.columns:
        return pl.DataFrame({SCORE: [], LABEL: []})
    return (
        ok.select(pl.col("entity_id").alias(entity_key), pl.col(col).alias(SCORE))
        .join(labels.select(entity_key, LABEL), on=entity_key, how="inner")
        .select(SCORE, LABEL)
    )


def quality_of(pairs: pl.DataFrame, threshold: float = 0.5, task: Task = Task.BINARY) -> Quality:
    """:func:`quality` of a (score, label) frame (a multiclass score is a list of probabilities)."""
    if task is Task.MULTICLASS:
        scores = np.array(pairs[SCORE].to_list(), dtype=np.float64) if pairs.height else np.zeros((0, 0))
    else:
        scores = pairs[SCORE].to_numpy()
    return quality(pairs[LABEL].to_numpy(), scores, threshold, task)


# ---------------------------------------------------------------------------------------------
# Operations from the log
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operations:
    """What serving did on a day, from its log rows (answering rows, labelled or not)."""

    log_rows: int
    requests: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    error_rate: float | None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form."""
        return asdict(self)


def operations(log: pl.DataFrame) -> Operations:
    """Latency p50/p99 per request and the share of rows whose status is not ``ok``.

    Latency is a property of a request (every row of it carries the same value), so the
    percentiles are over requests, as the canary sensor measures them; the error rate is over rows.
    """
    rows = answering_rows(log)
    if rows.height == 0:
        return Operations(0, 0, None, None, None)
    per_request = rows.unique(["endpoint", "request_id"], keep="first")["latency_ms"].to_numpy()
    lat = per_request.astype(np.float64)
    return Operations(
        log_rows=rows.height,
        requests=int(lat.size),
        latency_p50_ms=float(np.percentile(lat, 50)),
        latency_p99_ms=float(np.percentile(lat, 99)),
        error_rate=float((rows["status"] != STATUS_OK).sum()) / rows.height,
    )


# ---------------------------------------------------------------------------------------------
# The inputs of one day
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayInputs:
    """What a day's performance is measured from."""

    labels: pl.DataFrame | None  # None: the day's labels have not matured
    predictions: pl.DataFrame | None  # the batch predictions; read only when labels exist
    log: pl.DataFrame  # every endpoint's prediction log rows of the UTC day


def concat_logs(logs: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """The frames with rows concatenated (missing columns null), or the empty log frame."""
    frames = [f for f in logs if f.height]
    return pl.concat(frames, how="diagonal_relaxed") if frames else empty_frame()


def read_day_inputs(
    storage: Storage, model: str, d: date, endpoints: list[str], stage: str | None = None
) -> DayInputs:
    """Labels, batch predictions and served log rows of day `d` for `model`'s performance.

    Matured labels without the day's batch predictions raise MissingPartitionsError (for
    `stage`, by default ``monitoring/<model>/performance``): the batch quality needs both.
    """
    labels = predictions = None
    if storage.exists(layout.label_meta(model, d)):
        labels = read_parquet(storage, layout.label_data(model, d))
        if not storage.exists(layout.predictions(model, d)):
            raise MissingPartitionsError(
                stage or f"monitoring/{model}/performance",
                f"predictions/{model}",
                [key(d)],
                "Materialize them first.",
            )
        predictions = read_parquet(storage, layout.predictions(model, d))
    log = concat_logs(read_prediction_log(storage, ep, d) for ep in endpoints)
    return DayInputs(labels, predictions, log)


# ---------------------------------------------------------------------------------------------
# One day
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayPerformance:
    """The performance summary of one day (what ``summary.json`` holds)."""

    day: date
    status: str
    matures_on: date
    champion_version: int | None
    operations: Operations
    task: Task = Task.BINARY
    batch: Quality | None = None
    log: Quality | None = None
    endpoints: list[str] = field(default_factory=list)
    batch_model_versions: list[int] = field(default_factory=list)
    log_model_versions: list[int] = field(default_factory=list)

    @property
    def quality_source(self) -> str | None:
        """Which quality is checked: the log's with ≥ MIN_LOG_ROWS labelled rows, else the batch's."""
        if self.log is not None and self.log.rows >= MIN_LOG_ROWS:
            return "log"
        if self.batch is not None and self.batch.rows:
            return "batch"
        return None

    @property
    def primary(self) -> Quality | None:
        """The quality the checks and the headline figures use."""
        src = self.quality_source
        return self.log if src == "log" else self.batch if src == "batch" else None

    def value(self, metric: str) -> float | None:
        """The figure an alert threshold is compared with (None when it cannot be measured)."""
        if metric in OPERATIONS:
            return getattr(self.operations, metric)  # type: ignore[no-any-return]
        q = self.primary
        return None if q is None else q.value(metric)

    def to_json(self) -> dict[str, Any]:
        """The summary written to storage: headline figures at the top, details below."""
        q = self.primary
        return {
            "day": key(self.day),
            "status": self.status,
            "matures_on": key(self.matures_on),
            "champion_version": self.champion_version,
            "quality_source": self.quality_source,
            "task": str(self.task),
            **{m: (q.value(m) if q else None) for m in metrics_for(self.task, live=False)},
            "rows": self.batch.rows if self.batch else None,
            "log_labelled_rows": self.log.rows if self.log else None,
            **self.operations.to_json(),
            "batch": self.batch.to_json() if self.batch else None,
            "log": self.log.to_json() if self.log else None,
            "endpoints": self.endpoints,
            "batch_model_versions": self.batch_model_versions,
            "log_model_versions": self.log_model_versions,
        }


def evaluate_day(
    d: date,
    *,
    horizon_days: int,
    labels: pl.DataFrame | None,
    predictions: pl.DataFrame | None,
    log: pl.DataFrame,
    entity_key: str,
    champion_version: int | None,
    endpoints: list[str] | None = None,
    threshold: float = 0.5,
    task: Task = Task.BINARY,
) -> DayPerformance:
    """The performance of day `d`: quality when `labels` exist (None = not matured), operations always."""
    ops = operations(log)
    answered = answering_rows(log)
    log_versions = (
        sorted({int(v) for v in answered["model_version"].unique().to_list()}) if answered.height else []
    )
    batch = live = None
    batch_versions: list[int] = []
    if labels is not None:
        if predictions is not None:
            batch = quality_of(join_batch(predictions, labels, entity_key, task), threshold, task)
            if "model_version" in predictions.columns and predictions.height:
                batch_versions = sorted(int(v) for v in predictions["model_version"].unique().to_list())
        live = (
            quality_of(join_log(answered, labels, entity_key, task), threshold, task)
            if answered.height
            else None
        )
    return DayPerformance(
        day=d,
        status=STATUS_NOT_MATURED if labels is None else STATUS_OK_DAY,
        matures_on=matures_on(d, horizon_days),
        champion_version=champion_version,
        operations=ops,
        task=task,
        batch=batch,
        log=live,
        endpoints=list(endpoints or []),
        batch_model_versions=batch_versions,
        log_model_versions=log_versions,
    )


def threshold_checks(perf: DayPerformance, thresholds: dict[str, float]) -> list[CheckOutcome]:
    """One outcome per alert threshold of a label metric or an operation (drift is the drift stage's).

    A threshold whose figure cannot be measured on the day (labels not matured, one class only,
    no log rows) passes with a description saying it was not evaluated and ``evaluated: False``.
    """
    out = []
    for metric, limit in thresholds.items():
        if metric not in OPERATIONS and metric_info(metric).live:
            continue
        name, m = check_name(metric), metric_info(metric)
        labelled = metric not in OPERATIONS
        value = perf.value(metric)
        source = perf.quality_source if labelled else "log"
        meta: dict[str, Any] = {
            "value": value,
            "threshold": limit,
            "day": key(perf.day),
            "evaluated": value is not None,
            "source": source,
        }
        if value is None:
            why = (
                f"labels mature on {key(perf.matures_on)}"
                if perf.status == STATUS_NOT_MATURED and labelled
                else f"no labelled rows it can be computed on (e.g. {metric} needs both classes)"
                if labelled
                else "no prediction log rows"
            )
            out.append(CheckOutcome(name, True, f"{metric} not evaluated for {key(perf.day)}: {why}", meta))
            continue
        ok = m.meets(value, limit)
        desc = f"{metric} {value:.4g} {m.sign(ok)} {limit:g} on {key(perf.day)}" + (
            f" ({source})" if source else ""
        )
        out.append(CheckOutcome(name, ok, desc, meta))
    return out
