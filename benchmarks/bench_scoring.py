"""Small-request scoring: XGBoost's call vs our two shortcuts vs treelite, on one model, one run.

    uv run python benchmarks/bench_scoring.py                        # < 1 min on an idle machine
    uv run python benchmarks/bench_scoring.py --train-snapshots 0    # the example model exactly
    uv run python benchmarks/bench_scoring.py --model /tmp/benchstate/mlflow/artifacts/.../model.ubj
    uv run python benchmarks/bench_scoring.py --rounds 31 --json /tmp/scoring.json

The model has the example model's shape: trained here, through the model seam
(``XGBoostModel.fit``) with the spec's params (200 trees of depth 4, 15 features), on the example
view's snapshots of the bundled CDNOW history (the training days of cutoff 1998-06-30, labels from
``compute_labels``). By default only the newest ``--train-snapshots 8`` of the 39 training snapshots
are used, to keep the run short; ``0`` takes all of them (the quickstart's model: holdout AUC
0.7451), ``--model`` loads a booster file instead (e.g. the quickstart champion's ``model.ubj``).
Rows are the real feature rows of the holdout snapshot (1998-04-01).

Scorers, all with one thread (what serving configures):

  inplace_predict    ``Booster.inplace_predict`` — the reference; ratios are against it
  compiled trees     ``serving.trees.compile_booster`` (numpy, verified bit-identical at load)
  C API              ``serving.scoring.c_api``: ``XGBoosterPredictFromDense`` with the
                     configuration serialised once
  serving today      ``serving.scoring.scorer``: compiled trees ≤ 4 rows, else the C API, chosen
                     and verified by the model seam
  core hook          ``XGBoostModel.scorer(1000, [compiled ≤ 4, C API])`` — the same two
                     candidates through the core's verified-scorer hook (its dispatch overhead)
  treelite           ``treelite.gtil.predict(treelite.frontend.from_xgboost(booster), x, nthread=1)``
  treelite (config)  the same C call with the GTIL config built once (``gtil._predict_impl``)

Per row count (1, 4, 100) every scorer runs ``--rounds`` rounds of ``--calls`` calls, the scorers
alternating within each round so that they share the machine's state; each round gives a mean per
call — wall time and the CPU time of the calling thread (every scorer runs single-threaded on it;
on a shared machine CPU time is the steadier of the two) — and the table the median over rounds
and the median of the per-round ratios to ``inplace_predict``. Before timing, every scorer's scores of holdout rows (the first 500 one row at
a time, the first 2,000 in 4s, all in 100s) are compared with ``inplace_predict``'s: max abs
difference and whether they are bit-identical. The load average is printed: the machine is shared,
so absolute times drift between runs and the ratios are what compares.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlforge.config.spec import load_spec  # noqa: E402
from mlforge.data.sources import read_source  # noqa: E402
from mlforge.features.labels import LABEL, compute_labels  # noqa: E402
from mlforge.features.refs import feature_names  # noqa: E402
from mlforge.features.snapshots import EVENT_TS, iter_snapshots  # noqa: E402
from mlforge.io.timeline import training_dates  # noqa: E402
from mlforge.models.base import ScorerCandidate  # noqa: E402
from mlforge.models.training import TrainingData  # noqa: E402
from mlforge.models.xgboost_model import XGBoostModel  # noqa: E402

CUTOFF = date(1998, 6, 30)
KEY, DAY = "customer_id", "date"
SIZES = (1, 4, 100)
Scorer = Callable[[np.ndarray], np.ndarray]


def example_training_data(train_snapshots: int) -> tuple[TrainingData, Any]:
    """The example model's training set for CUTOFF from the bundled history (snapshots + labels),
    with only the newest `train_snapshots` training snapshots (0: all)."""
    spec = load_spec(ROOT / "mlforge.yaml")
    model = spec.model("churn")
    view = spec.feature_views[0]
    ds = spec.datasets[0]
    events = read_source(ds, str(ROOT / ds.source.path))
    train_days, holdout_day = training_dates(model, CUTOFF)
    train_days = train_days[-train_snapshots:] if train_snapshots else train_days
    names = feature_names(view)
    frames = []
    for d, snap in iter_snapshots(view, events, KEY, DAY, [*train_days, holdout_day]):
        labels = compute_labels(model, snap[KEY], events, KEY, DAY, d)
        frames.append(labels.join(snap.select(KEY, *names), on=KEY, how="left"))
    frame = pl.concat(frames).sort(EVENT_TS, KEY)
    last = frame[EVENT_TS].max()
    data = TrainingData(
        train=frame.filter(pl.col(EVENT_TS) < last),
        holdout=frame.filter(pl.col(EVENT_TS) == last),
        features=names,
        train_days=train_days,
        holdout_day=holdout_day,
    )
    return data, model


def scorers(booster: Any, n_features: int) -> dict[str, Scorer]:
    """Every scorer measured, by name (serving's are imported from serving/ as they are)."""
    import treelite
    import treelite.gtil
    from treelite.gtil.gtil import GTILConfig, _predict_impl

    from serving.scoring import c_api as serving_c_api
    from serving.scoring import scorer as serving_scorer
    from serving.trees import compile_booster

    compiled = compile_booster(booster, n_features)
    if compiled is None:
        raise SystemExit("compile_booster did not verify this model; nothing to compare")
    c_api = serving_c_api(booster)
    serving_today = serving_scorer(XGBoostModel(booster))
    hook = XGBoostModel(booster).scorer(
        1000,
        [
            ScorerCandidate("compiled trees", lambda m: compile_booster(m.booster, n_features), max_rows=4),
            ScorerCandidate("C API", lambda _: c_api),
        ],
    )
    tl = treelite.frontend.from_xgboost(booster)
    config = GTILConfig(nthread=1, predict_type="default")
    return {
        "inplace_predict": lambda x: booster.inplace_predict(x),
        "compiled trees": compiled,
        "C API": c_api,
        "serving today": serving_today,
        "core hook": hook,
        "treelite": lambda x: treelite.gtil.predict(tl, x, nthread=1).reshape(len(x)),
        "treelite (config)": lambda x: _predict_impl(tl, x, config=config).reshape(len(x)),
    }


def agreement(fns: dict[str, Scorer], x: np.ndarray) -> dict[str, dict[str, Any]]:
    """Max abs difference to inplace_predict over `x` scored in chunks of each size."""
    ref = fns["inplace_predict"]
    out: dict[str, dict[str, Any]] = {}
    for name, fn in fns.items():
        worst, identical = 0.0, True
        for size in SIZES:
            rows = x[: 500 if size == 1 else 2000 if size == 4 else len(x) - len(x) % size]
            for s in range(0, len(rows), size):
                chunk = rows[s : s + size]
                want = np.asarray(ref(chunk), dtype=np.float64)
                got = np.asarray(fn(chunk), dtype=np.float64)
                worst = max(worst, float(np.max(np.abs(got - want))))
                identical &= bool(np.array_equal(got, want))
        out[name] = {"max_abs_diff": worst, "bit_identical": identical}
    return out


def measure(
    fns: dict[str, Scorer], x: np.ndarray, size: int, rounds: int, calls: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per-call wall and CPU seconds (this thread's) of each scorer, one mean per round, the scorers
    alternating within a round."""
    chunks = [np.ascontiguousarray(x[s : s + size]) for s in range(0, calls * size, size)]
    per: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm up
        for c in chunks[:20]:
            fn(c)
    gc.disable()
    try:
        for _ in range(rounds):
            for name, fn in fns.items():
                c0, t0 = time.thread_time(), time.perf_counter()
                for c in chunks:
                    fn(c)
                per[name].append((time.perf_counter() - t0) / calls)
                cpu[name].append((time.thread_time() - c0) / calls)
    finally:
        gc.enable()
    return per, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="booster file to load instead of training the example model")
    ap.add_argument("--train-snapshots", type=int, default=8, help="newest training snapshots (0: all)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=100, help="calls per scorer and round")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()

    import xgboost as xgb

    t0 = time.perf_counter()
    data, spec_model = example_training_data(a.train_snapshots)
    x = data.holdout.select(data.features).to_numpy().astype(np.float32)
    if a.model:
        model = XGBoostModel.load(a.model)
        source = a.model
    else:
        model = XGBoostModel.fit(data, spec_model)
        source = f"trained here: {data.train.height:,} rows, {len(data.train_days)} snapshots"
    booster = model.booster
    booster.set_param({"nthread": 1})
    n_features = booster.num_features()
    rounds_trees = booster.num_boosted_rounds()
    print(f"model: {rounds_trees} trees, {n_features} features ({source}); {time.perf_counter() - t0:.1f} s")
    print(f"rows: {len(x):,} holdout rows of {data.holdout_day}")
    y = data.holdout[LABEL].to_numpy()
    from sklearn.metrics import roc_auc_score

    print(f"holdout AUC {roc_auc_score(y, model.predict(x)):.4f}")
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    fns = scorers(booster, n_features)
    agree = agreement(fns, x)
    table: list[dict[str, Any]] = []
    for size in SIZES:
        calls = a.calls if size < 100 else max(20, a.calls // 4)
        per, cpu = measure(fns, x, size, a.rounds, calls)
        ref, ref_cpu = per["inplace_predict"], cpu["inplace_predict"]
        for name, times in per.items():
            ratios = [t / r for t, r in zip(times, ref, strict=True)]
            cpu_ratios = [t / r for t, r in zip(cpu[name], ref_cpu, strict=True)]
            table.append(
                {
                    "rows": size,
                    "scorer": name,
                    "median_us": statistics.median(times) * 1e6,
                    "ratio": statistics.median(ratios),
                    "cpu_us": statistics.median(cpu[name]) * 1e6,
                    "cpu_ratio": statistics.median(cpu_ratios),
                    **agree[name],
                }
            )
    print(
        f"\nxgboost {xgb.__version__}, numpy {np.__version__}, "
        f"treelite {__import__('treelite').__version__}, python {platform.python_version()}; "
        f"{a.rounds} rounds × {a.calls} calls (100 rows: {max(20, a.calls // 4)} calls)\n"
    )
    print(
        "| rows | scorer | wall per call | vs inplace_predict | CPU per call | vs inplace_predict "
        "| max abs diff | bit-identical |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for r in table:
        print(
            f"| {r['rows']} | {r['scorer']} | {r['median_us']:.1f} µs | {r['ratio']:.2f}× | "
            f"{r['cpu_us']:.1f} µs | {r['cpu_ratio']:.2f}× | "
            f"{r['max_abs_diff']:.1e} | {'yes' if r['bit_identical'] else 'no'} |"
        )
    for size in SIZES:
        rows = [r for r in table if r["rows"] == size and r["bit_identical"]]
        best = min(rows, key=lambda r: r["median_us"])
        anyone = min((r for r in table if r["rows"] == size), key=lambda r: r["median_us"])
        print(
            f"{size:>3} rows: fastest bit-identical {best['scorer']} ({best['median_us']:.1f} µs); "
            f"fastest overall {anyone['scorer']} ({anyone['median_us']:.1f} µs)"
        )
    if a.json:
        Path(a.json).write_text(json.dumps({"source": source, "table": table}, indent=2))
    print(
        f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}; total {time.perf_counter() - t0:.1f} s"
    )


if __name__ == "__main__":
    main()
