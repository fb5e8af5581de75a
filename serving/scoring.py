"""Scoring with one model: a verified fast prediction function per loaded model.

Given a loaded model (:class:`~mlforge.models.base.FittedModel`), :func:`scorer` returns a function
float32 matrix -> float64 scores, chosen by the model seam (:meth:`FittedModel.scorer`) among
serving's candidates: the trees compiled to numpy (:mod:`serving.trees`) for tiny requests and
XGBoost's C call with a pre-serialised configuration, each verified bit-identical to
``Booster.inplace_predict`` at load.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mlforge.errors import DataError
from mlforge.models.base import FittedModel, ScorerCandidate, Task
from serving.schemas import MAX_BATCH
from serving.trees import compile_booster

if TYPE_CHECKING:
    import xgboost as xgb

log = logging.getLogger("mlforge.serving")

COMPILED_MAX_ROWS = 4  # up to this many rows are scored by the compiled trees (serving/trees.py)

Scorer = Callable[[np.ndarray], np.ndarray]
"""Scores of a float32 matrix [rows, features], as float64 [rows]."""


def import_xgboost() -> None:
    """Import xgboost without scikit-learn (whose import pulls in pandas).

    xgboost 3 imports scikit-learn at import time for its optional sklearn wrapper, and
    scikit-learn 1.9 imports pandas. Serving only needs ``Booster``, so when neither is loaded yet
    sklearn is hidden for the duration of the import. A process that already imported xgboost or
    sklearn (tests, the Dagster code location) is left alone.
    """
    if "xgboost" in sys.modules:
        return
    hide = "sklearn" not in sys.modules
    if hide:
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn` fail
    try:
        import xgboost  # noqa: F401
    finally:
        if hide and sys.modules.get("sklearn", False) is None:
            del sys.modules["sklearn"]


_PREDICT_CONFIG = json.dumps(
    {
        "type": 0,  # the model's output (probabilities for binary:logistic), as inplace_predict
        "training": False,
        "iteration_begin": 0,
        "iteration_end": 0,
        "strict_shape": False,
        "missing": float("nan"),
        "cache_id": 0,
    }
).encode()


def c_api(booster: xgb.Booster) -> Scorer:
    """XGBoost's C prediction call with the configuration serialised once.

    ``Booster.inplace_predict`` spends about half of a one-row prediction in Python (argument
    JSON, array-interface objects built per call: 102 µs vs 57 µs measured for the example
    model); this calls the same C function (``XGBoosterPredictFromDense``) directly. It relies on
    XGBoost's private helpers, so it raises if they moved; the model seam then verifies the
    result against the library call (:func:`mlforge.models.base.verified_scorer`).
    """
    import ctypes

    from xgboost.core import _LIB, _check_call, c_bst_ulong

    predict = _LIB.XGBoosterPredictFromDense
    handle = booster.handle

    def fast(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        rows, cols = x.shape
        array = b'{"data": [%d, true], "shape": [%d, %d], "typestr": "<f4", "version": 3}' % (
            x.ctypes.data,
            rows,
            cols,
        )
        shape = ctypes.POINTER(c_bst_ulong)()
        dims = c_bst_ulong()
        out = ctypes.POINTER(ctypes.c_float)()
        _check_call(
            predict(
                handle,
                array,
                _PREDICT_CONFIG,
                None,
                ctypes.byref(shape),
                ctypes.byref(dims),
                ctypes.byref(out),
            )
        )
        size = 1
        for i in range(dims.value):
            size *= shape[i]
        if size != rows:
            raise DataError(f"expected {rows} scores, XGBoost returned {size}")
        return np.ctypeslib.as_array(out, shape=(size,)).astype(np.float64)

    return fast


def scorer(model: FittedModel) -> Scorer:
    """The fastest verified scorer of `model`, through the model seam.

    An XGBoost model's candidates, fastest first as measured by benchmarks/bench_scoring.py: its
    trees compiled to numpy (:mod:`serving.trees`) for requests of at most ``COMPILED_MAX_ROWS``
    rows, then the C call (:func:`c_api`) for any size. Each is used only if bit-identical to the
    library's ``inplace_predict`` on probe rows with missing values; a rejected one is logged at
    WARNING and its requests go to the next verified candidate, in the end to XGBoost's call.
    Other algorithms (LightGBM, scikit-learn, plug-ins) score with their library's own call.
    """
    if model.algorithm != "xgboost":
        return model.scorer(MAX_BATCH)
    n_features = len(model.feature_names)
    candidates = [
        ScorerCandidate("C API", lambda m: c_api(m.booster)),
    ]
    if model.task is not Task.MULTICLASS:  # the compiled trees decline multiclass by design
        candidates.insert(
            0,
            ScorerCandidate(
                "compiled trees", lambda m: compile_booster(m.booster, n_features), max_rows=COMPILED_MAX_ROWS
            ),
        )
    return model.scorer(MAX_BATCH, candidates)
