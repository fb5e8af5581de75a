"""Scoring with one XGBoost booster: a verified fast prediction function per booster.

Self-contained: given a loaded ``xgboost.Booster`` and its number of features,
:func:`scorer` returns a function float32 matrix -> float64 scores that is bit-identical to
``Booster.inplace_predict`` (the C prediction call with a pre-serialised configuration, and for
tiny requests the booster's trees compiled to numpy by :mod:`serving.trees`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mlforge.errors import DataError
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


def scorer(booster: xgb.Booster, n_features: int) -> Scorer:
    """A function float32 matrix -> float64 scores for `booster`.

    ``Booster.inplace_predict`` spends about half of a one-row prediction in Python (argument
    JSON, array-interface objects built per call: 102 µs vs 57 µs measured for the example
    model). The fast path calls the same C function (``XGBoosterPredictFromDense``) with the
    configuration serialised once. It is used only when it gives bit-identical scores to
    ``inplace_predict`` on probe rows (with missing values) at load time; otherwise, or if
    XGBoost's private helpers moved, the plain call is used.

    Requests of at most ``COMPILED_MAX_ROWS`` rows are scored by the booster's trees compiled to
    numpy arrays (:mod:`serving.trees`: ~23 µs for one row instead of ~53 µs, verified
    bit-identical to ``inplace_predict`` at load time), when the model allows it.
    """

    def plain(x: np.ndarray) -> np.ndarray:
        return np.asarray(booster.inplace_predict(x), dtype=np.float64).reshape(len(x))

    try:
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

        rng = np.random.default_rng(0)
        probe = rng.normal(0, 50, (64, n_features)).astype(np.float32)
        probe[rng.random(probe.shape) < 0.2] = np.nan
        if not (
            np.array_equal(fast(probe), plain(probe)) and np.array_equal(fast(probe[:1]), plain(probe[:1]))
        ):
            fast = plain
    except Exception as exc:  # an XGBoost without these internals: the public call
        log.info("fast XGBoost prediction path unavailable (%s); using inplace_predict", exc)
        fast = plain
    compiled = compile_booster(booster, n_features)
    if compiled is None:
        return fast

    def small_compiled(x: np.ndarray) -> np.ndarray:
        return compiled(x) if len(x) <= COMPILED_MAX_ROWS else fast(x)

    return small_compiled
