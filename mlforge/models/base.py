"""The model seam: what the platform needs from a trained model, whichever library fitted it.

Training, the gate's champion scoring, batch predictions, the drift reference, tracking and
(once wired) serving talk to a :class:`FittedModel`, never to a library's native object. A
built-in implementation is one class plus one entry in :data:`ALGORITHMS`, keyed by the spec's
``models[].algorithm`` (scikit-learn estimators and plug-ins are named by import path: see
:mod:`mlforge.models.algorithms`); its module is imported on first use, so importing this one stays light
(numpy only: no xgboost, mlflow or sklearn).

Small requests: :meth:`FittedModel.scorer` returns the fastest scorer among caller-supplied
candidates (serving's compiled trees, a C-API call, …) that gives scores bit-identical to the
library's own :meth:`FittedModel.predict` on probe rows; see :func:`verified_scorer`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np

from mlforge.errors import MLForgeError

if TYPE_CHECKING:
    from mlforge.config.spec import ModelSpec
    from mlforge.models.training import TrainingData

log = logging.getLogger("mlforge.models")

#: float32 matrix [rows, features] -> float64 scores [rows].
Scorer = Callable[[np.ndarray], np.ndarray]

#: Model-version / run tag: the cutoff a model was trained for (its training set ends before it).
CUTOFF_TAG = "mlforge.cutoff"
#: Model-version / run tag: the hash of every input partition the training set read.
DATA_VERSION_TAG = "mlforge.data_version"
#: Model-version / run tag naming the algorithm a model was fitted with.
ALGORITHM_TAG = "mlforge.algorithm"
#: Model-version / run tag: the task (binary, multiclass, regression) the model predicts.
TASK_TAG = "mlforge.task"
#: Model-version / run tag: a binary model's decision threshold (serving's `label` = score >= it).
THRESHOLD_TAG = "mlforge.threshold"
#: Run tag: the MLflow experiment a training run logs to (`mlforge train --experiment`; the Dagster
#: run tag `mlforge/experiment` becomes it), instead of `<project>/<model>`.
EXPERIMENT_TAG = "mlforge.experiment"


class Task(StrEnum):
    """What a model predicts: the score of a row is one float for binary and regression."""

    BINARY = "binary"  # positive-class probability
    REGRESSION = "regression"  # the prediction itself
    MULTICLASS = "multiclass"  # class probabilities: scores are [rows, classes]


@dataclass(frozen=True)
class ScorerCandidate:
    """A faster way to score small requests, tried by :func:`verified_scorer`.

    `build` receives the model (its implementation class: e.g. ``XGBoostModel``, whose ``booster``
    is the native object) and returns a scorer, or None when it does not cover the model. The
    candidate answers requests of at most `max_rows` rows (None: any size).
    """

    name: str
    build: Callable[[Any], Scorer | None]
    max_rows: int | None = None


@runtime_checkable
class FittedModel(Protocol):
    """A trained model: fit, predict, save/load, its features and task, how MLflow logs it."""

    #: the spec's ``algorithm`` this class implements (the key in :data:`ALGORITHMS`)
    algorithm: ClassVar[str]
    #: MLflow flavor it is logged with (``mlflow.<flavor>.log_model``)
    flavor: ClassVar[str]
    #: file name of the native model inside the logged model's artifacts (the manifest's booster_uri)
    model_file: ClassVar[str]

    @classmethod
    def fit(cls, data: TrainingData, spec: ModelSpec) -> Self:
        """Fit on ``data``'s training part with the spec's params (deterministic)."""
        ...

    @property
    def task(self) -> Task:
        """Binary classification, regression, …"""
        ...

    @property
    def feature_names(self) -> list[str]:
        """The input columns, in the order `predict` expects them."""
        ...

    @property
    def params(self) -> dict[str, Any]:
        """Training parameters as a run logs them (empty for a loaded model)."""
        ...

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float64 scores of a float32 matrix [rows, features] (the library's own call): [rows], or
        [rows, classes] of probabilities for a multiclass model."""
        ...

    def to_bytes(self) -> bytes:
        """The serialized model (what `sha256` hashes and `from_bytes` reads)."""
        ...

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray) -> Self:
        """Inverse of `to_bytes`."""
        ...

    def save(self, path: str | Path) -> None:
        """Write the native model file."""
        ...

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a native model file written by `save` (or MLflow's flavor)."""
        ...

    def sha256(self) -> str:
        """Hash of the serialized model: equal hashes mean identical models."""
        ...

    def log_mlflow(self, name: str, signature: Any, tags: dict[str, str]) -> Any:
        """Log with the MLflow flavor inside the active run; returns MLflow's ModelInfo."""
        ...

    def scorer(
        self,
        max_rows: int,
        candidates: Sequence[ScorerCandidate] = (),
        probe: np.ndarray | None = None,
    ) -> Scorer:
        """The fastest verified scorer for requests of up to `max_rows` rows (see verified_scorer)."""
        ...


class SerializedModel:
    """What every built-in FittedModel derives from its bytes and the seam: `sha256` of
    `to_bytes` and the verified small-request `scorer`. A plug-in may inherit it too."""

    def to_bytes(self) -> bytes:
        raise NotImplementedError

    def sha256(self) -> str:
        """Hash of the serialized model: equal hashes mean identical models."""
        import hashlib

        return hashlib.sha256(self.to_bytes()).hexdigest()

    def scorer(
        self,
        max_rows: int,
        candidates: Sequence[ScorerCandidate] = (),
        probe: np.ndarray | None = None,
    ) -> Scorer:
        """The fastest of `candidates` verified against `predict` (see verified_scorer)."""
        return verified_scorer(self, max_rows, candidates, probe)  # type: ignore[arg-type]


#: algorithm -> "module:Class" of its FittedModel (imported on first use).
ALGORITHMS: dict[str, str] = {
    "xgboost": "mlforge.models.xgboost_model:XGBoostModel",
    "lightgbm": "mlforge.models.lightgbm_model:LightGBMModel",
}


def model_class(algorithm: str) -> type[FittedModel]:
    """The FittedModel class of `algorithm`: a built-in name, a scikit-learn estimator's or a
    plug-in's import path (see mlforge.models.algorithms.resolve); an MLForgeError naming the
    known ones."""
    from mlforge.models.algorithms import resolve

    return resolve(algorithm)


def fit_model(data: TrainingData, spec: ModelSpec) -> FittedModel:
    """Fit the spec's algorithm on `data`."""
    return model_class(spec.algorithm).fit(data, spec)


def load_model(algorithm: str, source: bytes | bytearray | str | Path) -> FittedModel:
    """A model of `algorithm` from its serialized bytes or a local file path."""
    cls = model_class(algorithm)
    if isinstance(source, bytes | bytearray):
        return cls.from_bytes(source)
    return cls.load(source)


def as_model(model: Any) -> FittedModel:
    """`model` if it is a FittedModel; a native XGBoost booster is wrapped (for callers holding one)."""
    if isinstance(model, FittedModel):
        return model
    from mlforge.models.xgboost_model import XGBoostModel

    if XGBoostModel.wraps(model):
        return XGBoostModel(model)
    raise MLForgeError(f"not a model: {type(model).__module__}.{type(model).__name__}")


# ---------------------------------------------------------------------------------------------
# Small-request scorers
# ---------------------------------------------------------------------------------------------

PROBE_ROWS = 256
#: At most this many chunks of a candidate's row limit are compared with the library call.
PROBE_CHUNKS = 64


def probe_rows(n_features: int, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Float32 rows spread over a wide range with 20 % missing values (NaN)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 50, (rows, n_features)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    return x


def _agrees(candidate: Scorer, library: Scorer, probe: np.ndarray, limit: int) -> bool:
    """Bit-identical scores to the library call on single rows and on chunks of `limit` rows."""
    sizes = sorted({1, min(limit, len(probe))})
    for size in sizes:
        for start in range(0, min(len(probe), size * PROBE_CHUNKS) - size + 1, size):
            chunk = np.ascontiguousarray(probe[start : start + size])
            got = np.asarray(candidate(chunk))
            if got.shape != (size,) or not np.array_equal(got, library(chunk)):
                return False
    return True


def verified_scorer(
    model: FittedModel,
    max_rows: int,
    candidates: Sequence[ScorerCandidate] = (),
    probe: np.ndarray | None = None,
) -> Scorer:
    """A scorer for requests of up to `max_rows` rows, as fast as the verified candidates allow.

    `candidates` are given fastest first (as measured by benchmarks/bench_scoring.py). Each is
    built and compared with ``model.predict`` on `probe` (default :func:`probe_rows`): one row at a
    time and in chunks of its row limit (at most `max_rows`); only a bit-identical one is kept. A
    request of n rows goes to the first kept candidate whose limit is ≥ n (a candidate without a
    limit takes any size), else to ``model.predict``. A candidate that
    does not cover the model, raises or disagrees is logged at WARNING together with what answers
    its requests instead — in the end the library's own call. Without candidates the library call
    is returned as it is (nothing to fall back from).
    """
    library = model.predict
    if not candidates:
        return library
    x = probe if probe is not None else probe_rows(len(model.feature_names), max(PROBE_ROWS, max_rows))
    kept: list[tuple[float, str, Scorer]] = []
    rejected: list[tuple[ScorerCandidate, str]] = []
    for c in candidates:
        try:
            fn = c.build(model)
            if fn is None:
                rejected.append((c, "does not cover this model"))
            elif not _agrees(fn, library, x, min(c.max_rows or max_rows, max_rows)):
                rejected.append((c, "gives scores that differ from the library call on probe rows"))
            else:
                kept.append((c.max_rows or float("inf"), c.name, fn))
        except Exception as exc:
            rejected.append((c, f"failed ({exc})"))
    for c, why in rejected:
        limit = c.max_rows or max_rows
        instead = next((name for lim, name, _ in kept if lim >= limit), f"{model.algorithm} predict()")
        log.warning(
            "%s scorer %r %s; requests of ≤ %d rows use %s instead",
            model.algorithm,
            c.name,
            why,
            limit,
            instead,
        )
    if not kept:
        return library
    if len(kept) == 1:
        only_limit, _, only = kept[0]
        if only_limit == float("inf"):
            return only
        return lambda rows: only(rows) if len(rows) <= only_limit else library(rows)
    tiers = tuple((limit, fn) for limit, _, fn in kept)

    def score(rows: np.ndarray) -> np.ndarray:
        n = len(rows)
        for limit, fn in tiers:
            if n <= limit:
                return fn(rows)
        return library(rows)

    return score
