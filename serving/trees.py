"""Small-request scoring of an XGBoost booster without XGBoost's per-call overhead.

A one-row prediction through XGBoost's C API costs ~53 µs for the example model (200 trees of
depth 4), of which ~1 µs is walking the trees: the rest is per-call set-up inside XGBoost (a proxy
DMatrix, a view of every tree, the model's depth computed by walking every node), and in the
serving path, with colder caches, it measured ~80 µs. :func:`compile_booster` lays the trees out
once as complete binary trees in numpy arrays and scores a few rows in about a dozen vectorised
numpy operations, reproducing XGBoost's arithmetic: ``value < split → left`` else right, a missing
value (NaN) follows the node's default direction, leaf values summed in float32 in tree order onto
the float32 base margin, then the objective's transform in float32.

It is used only when it is bit-identical to ``Booster.inplace_predict``: at load time, on probe
rows built to hit every split exactly (values at, just below and just above each threshold, and
missing values), both the margins and the transformed scores must be equal; otherwise, or for a
model it does not cover (categorical splits, several targets or classes, another booster or
objective, deeper than ``MAX_DEPTH``), it returns None and XGBoost's own call is used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import xgboost as xgb

log = logging.getLogger("mlforge.serving")

MAX_DEPTH = 8
OBJECTIVES = ("binary:logistic", "reg:logistic", "reg:squarederror", "reg:linear")
PROBE_ROWS = 4096


def _layout(tree: dict[str, Any], depth: int) -> tuple[np.ndarray, ...]:
    """(feature, threshold, default_left) per heap node, leaf value per heap leaf, of one tree."""
    internal = (1 << depth) - 1
    feat = np.zeros(internal, dtype=np.intp)
    thr = np.zeros(internal, dtype=np.float32)
    dleft = np.zeros(internal, dtype=bool)
    leaf = np.zeros(1 << depth, dtype=np.float32)
    left, right = tree["left_children"], tree["right_children"]
    index, cond, default = tree["split_indices"], tree["split_conditions"], tree["default_left"]

    def place(node: int, h: int, level: int) -> None:
        if left[node] == -1:  # a leaf: shallower leaves fill their whole subtree
            if level == depth:
                leaf[h - internal] = cond[node]
            else:  # any decision reaches the same value
                place(node, 2 * h + 1, level + 1)
                place(node, 2 * h + 2, level + 1)
            return
        feat[h], thr[h], dleft[h] = index[node], cond[node], bool(default[node])
        place(left[node], 2 * h + 1, level + 1)
        place(right[node], 2 * h + 2, level + 1)

    place(0, 0, 0)
    return feat, thr, dleft, leaf


def _depth(tree: dict[str, Any]) -> int:
    left, right = tree["left_children"], tree["right_children"]
    best, todo = 0, [(0, 0)]
    while todo:
        node, d = todo.pop()
        if left[node] == -1:
            best = max(best, d)
        else:
            todo += [(left[node], d + 1), (right[node], d + 1)]
    return best


class CompiledTrees:
    """The trees of one booster as arrays; ``margin(x)`` and ``score(x)`` for float32 rows."""

    def __init__(self, model: dict[str, Any], n_features: int) -> None:
        learner = model["learner"]
        trees = learner["gradient_booster"]["model"]["trees"]
        self.n_features = n_features
        self.depth = max(1, max(_depth(t) for t in trees))
        parts = [_layout(t, self.depth) for t in trees]
        self.n_trees = len(trees)
        internal = (1 << self.depth) - 1
        self.feat = np.concatenate([p[0] for p in parts])
        self.thr = np.concatenate([p[1] for p in parts])
        self.default_right = ~np.concatenate([p[2] for p in parts])
        self.leaf = np.stack([p[3] for p in parts])  # [trees, 2^depth]
        self.base = np.arange(self.n_trees, dtype=np.intp) * internal  # first node of each tree
        self.internal = internal
        self.leaf_flat = self.leaf.ravel()
        # heap index of a leaf -> its position in leaf_flat
        self.leaf_offset = np.arange(self.n_trees, dtype=np.intp) * (1 << self.depth) - internal
        self.objective = learner["objective"]["name"]
        self.base_margin = np.float32(0.0)

    def leaf_values(self, x: np.ndarray) -> np.ndarray:
        """The leaf value each tree gives each of the float32 rows `x`: [n, trees]."""
        n = len(x)
        v = x[:, self.feat]  # [n, nodes]: the value each node tests
        go_right = v >= self.thr
        go_right |= np.isnan(v) & self.default_right
        go = go_right.ravel()
        h = np.zeros((n, self.n_trees), dtype=np.intp)
        first = self.base if n == 1 else self.base + (np.arange(n, dtype=np.intp) * v.shape[1])[:, None]
        for _ in range(self.depth):  # h -> its left (2h + 1) or right (2h + 2) child
            step = go.take(first + h)
            h *= 2
            h += 1
            h += step
        h += self.leaf_offset
        return self.leaf_flat.take(h)

    def margin(self, x: np.ndarray) -> np.ndarray:
        """Float32 margins of float32 rows `x` [n, n_features]: base, then each tree in order."""
        n = len(x)
        values = self.leaf_values(x)
        acc = np.empty((n, self.n_trees + 1), dtype=np.float32)
        acc[:, 0] = self.base_margin
        acc[:, 1:] = values
        return np.add.accumulate(acc, axis=1, dtype=np.float32)[:, -1]

    def transform(self, margin: np.ndarray) -> np.ndarray:
        """The objective's output transform in float32: ``1 / (1 + expf(-m))`` for logistic.

        ``expf`` is the C library's, called per row (numpy's float32 ``exp`` rounds differently
        in a few percent of cases): this scorer is for small requests.
        """
        if self.objective in ("binary:logistic", "reg:logistic"):
            expf = _expf()
            one = np.float32(1.0)
            e = np.fromiter((expf(-m) for m in margin.tolist()), dtype=np.float32, count=len(margin))
            return one / (one + e)
        return margin

    def score(self, x: np.ndarray) -> np.ndarray:
        """float64 scores (as XGBoost returns them, widened) of float32 rows `x`."""
        return self.transform(self.margin(x)).astype(np.float64)


@functools.cache
def _expf() -> Callable[[float], float]:
    """The C library's single-precision ``expf`` (the one XGBoost's logistic transform calls)."""
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    fn = libm.expf
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return fn  # type: ignore[no-any-return]


def _probe(compiled: CompiledTrees, rng: np.random.Generator) -> np.ndarray:
    """Rows whose values sit at, just below and just above the model's thresholds, or are NaN."""
    cols = []
    for j in range(compiled.n_features):
        t = np.unique(compiled.thr[compiled.feat == j])
        if t.size == 0:
            t = np.zeros(1, dtype=np.float32)
        near = np.concatenate(
            [t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf)), t * 1.5, t - 1]
        ).astype(np.float32)
        col = rng.choice(near, PROBE_ROWS)
        col[rng.random(PROBE_ROWS) < 0.15] = np.nan
        cols.append(col)
    return np.stack(cols, axis=1).astype(np.float32)


def compile_booster(booster: xgb.Booster, n_features: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """A scorer float32 rows -> float64 scores equal to ``booster.inplace_predict``, or None."""
    try:
        model = json.loads(booster.save_raw("json"))
        learner = model["learner"]
        gb = learner["gradient_booster"]
        params = learner["learner_model_param"]
        if gb.get("name") != "gbtree" or learner["objective"]["name"] not in OBJECTIVES:
            return None
        if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) != 1:
            return None
        trees = gb["model"]["trees"]
        if not trees or any(any(t.get("split_type", [])) for t in trees):
            return None  # categorical splits are not covered
        if any(_depth(t) > MAX_DEPTH for t in trees):
            return None
        compiled = CompiledTrees(model, n_features)
        probe = _probe(compiled, np.random.default_rng(0))
        want_margin = np.asarray(booster.inplace_predict(probe, predict_type="margin"), dtype=np.float32)
        # the base margin as XGBoost holds it (float32): from the saved base_score, and from
        # XGBoost's margin after the first tree minus that tree's leaf, with its neighbours
        first = np.float32(
            booster.inplace_predict(probe[:1], predict_type="margin", iteration_range=(0, 1))[0]
        )
        compiled.base_margin = np.float32(0.0)
        leaf0 = compiled.leaf_values(probe[:1])[0, 0]
        guess = np.float32(first - leaf0)
        candidates = [
            *_base_margins(params, learner["objective"]["name"]),
            guess,
            np.nextafter(guess, np.float32(np.inf)),
            np.nextafter(guess, np.float32(-np.inf)),
        ]
        for base in candidates:
            compiled.base_margin = np.float32(base)
            if np.array_equal(compiled.margin(probe), want_margin):
                break
        else:
            log.info("compiled trees: margins differ from XGBoost; using XGBoost's prediction call")
            return None
        want = np.asarray(booster.inplace_predict(probe), dtype=np.float64)
        one_by_one = np.concatenate([compiled.score(probe[i : i + 1]) for i in range(256)])
        if not np.array_equal(compiled.score(probe), want) or not np.array_equal(one_by_one, want[:256]):
            log.info("compiled trees: scores differ from XGBoost; using XGBoost's prediction call")
            return None
        return compiled.score
    except Exception as exc:  # an unexpected model layout: XGBoost's own call
        log.info("compiled trees unavailable (%s); using XGBoost's prediction call", exc)
        return None


def _base_margins(params: dict[str, Any], objective: str) -> list[np.float32]:
    """Plausible float32 base margins from the saved base_score (probability space for logistic)."""
    raw = str(params.get("base_score", "0.5")).strip("[]").split(",")[0]
    p = float(raw)
    if objective in ("binary:logistic", "reg:logistic") and 0 < p < 1:
        one, p32 = np.float32(1.0), np.float32(p)
        return [-np.log(one / p32 - one), np.float32(-np.log(1.0 / p - 1.0))]
    return [np.float32(p)]
