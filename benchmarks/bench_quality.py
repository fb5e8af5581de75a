"""Model quality against simple baselines, on the same holdout rows, for every model of a project.

    uv run mlforge quickstart                                   # once: trains the churn model
    uv run python benchmarks/bench_quality.py
    uv run mlforge quickstart --spec examples/clv/mlforge.yaml  # once: trains the CLV models
    uv run python benchmarks/bench_quality.py --spec examples/clv/mlforge.yaml

For each model, its newest stored training run (or --cutoff) is read back: the trained model from
MLflow and the holdout the gate judged it on — every entity of the holdout snapshot (cutoff −
horizon), labelled with what happened in the horizon after it, rows the model never trained on.
On exactly those rows it prints the model's metrics (mlforge.models.metrics.evaluate, the code
the gate uses) next to baselines computed in this same process:

  binary (churn)     recency: the score is the days since the last purchase (long-gone customers
                     churn) — the classic RFM rule; and the constant training base rate
  binary (event)     recency reversed: recent buyers buy again
  regression (sum)   the entity's spend over the same length of past window (the feature
                     `<column>_sum_<horizon>d`, e.g. past-90-day spend for a 90-day CLV), and the
                     constant training mean
  multiclass         the training class frequencies (constant)

No timings: quality numbers only, so nothing here depends on the machine's speed.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlforge.config.project import Project  # noqa: E402
from mlforge.config.spec import AggregateLabel, ChurnLabel, EventLabel, ModelSpec  # noqa: E402
from mlforge.features.labels import LABEL, label_view  # noqa: E402
from mlforge.io import layout  # noqa: E402
from mlforge.io.storage import read_parquet  # noqa: E402
from mlforge.models.base import Task  # noqa: E402
from mlforge.models.metrics import evaluate, metric, metrics_for  # noqa: E402
from mlforge.models.predictions import predict_frame  # noqa: E402
from mlforge.models.training import build_training_data, read_trained  # noqa: E402

#: What a ranking baseline (not a probability) is judged on.
RANK_METRICS = {"auc", "pr_auc"}


def newest_cutoff(project: Project, model: str) -> date | None:
    """The latest cutoff with a stored training run."""
    prefix = f"models/{model}/"
    cutoffs = sorted(
        k.split("cutoff=")[1].split("/")[0] for k in project.storage.list(prefix) if k.endswith("run.json")
    )
    return date.fromisoformat(cutoffs[-1]) if cutoffs else None


def baselines(model: ModelSpec, train: pl.DataFrame, holdout: pl.DataFrame) -> dict[str, np.ndarray]:
    """Baseline scores on the holdout rows (see the module docstring)."""
    out: dict[str, np.ndarray] = {}
    n = holdout.height
    y_train = train[LABEL].to_numpy()
    label = model.label
    task = model.model_task
    if task is Task.BINARY:
        recency = holdout["days_since_last"].to_numpy().astype(np.float64)
        scaled = (recency - recency.min()) / max(1.0, float(recency.max() - recency.min()))
        if isinstance(label, ChurnLabel):
            out["recency (days since last purchase)"] = scaled
        elif isinstance(label, EventLabel):
            out["recency reversed (recent buyers buy again)"] = 1.0 - scaled
        out["constant training base rate"] = np.full(n, float(np.mean(y_train)))
    elif task is Task.REGRESSION:
        if isinstance(label, AggregateLabel) and label.function == "sum" and label.column:
            col = f"{label.column}_sum_{label.horizon_days}d"
            if col in holdout.columns:
                out[f"past {label.horizon_days}-day {label.column} ({col})"] = (
                    holdout[col].fill_null(0).to_numpy().astype(np.float64)
                )
        out["constant training mean"] = np.full(n, float(np.mean(y_train)))
    else:
        k = int(max(y_train.max(), holdout[LABEL].max())) + 1  # type: ignore[call-overload]
        freq = np.bincount(y_train.astype(np.int64), minlength=k) / len(y_train)
        out["constant training class frequencies"] = np.tile(freq, (n, 1))
    return out


def report(project: Project, model: ModelSpec, cutoff: date | None) -> None:
    """Print the model's holdout metrics and the baselines' for one model."""
    cutoff = cutoff or newest_cutoff(project, model.name)
    if cutoff is None:
        print(f"\n{model.name}: no training run stored — run `mlforge quickstart --spec ...` first")
        return
    trained = read_trained(project.storage, model.name, cutoff)
    holdout = read_parquet(project.storage, layout.model_holdout(model.name, cutoff))
    data = build_training_data(project.storage, project.spec, model, cutoff)
    tracker = project.tracker
    fitted = tracker.load_model(trained.booster_uri, model.algorithm)
    y = holdout[LABEL].to_numpy()
    task = model.model_task
    threshold = trained.threshold if trained.threshold is not None else model.threshold
    rows = {f"model ({model.algorithm})": predict_frame(fitted, holdout, trained.features)}
    rows |= baselines(model, data.train, holdout)
    names = [m for m in metrics_for(task, live=False) if m != "ece"]
    if task is Task.BINARY:
        names = ["auc", "pr_auc", "logloss", "brier", "f1"]
    print(
        f"\n{model.name} — {task}, label {model.label.kind} over {model.label.horizon_days} days; "
        f"cutoff {cutoff}, holdout = every {label_view(project.spec, model).entity} "
        f"of the snapshot {data.holdout_day} ({len(y):,} rows, none seen in training; "
        f"training {data.train.height:,} rows from {len(data.train_days)} snapshots "
        f"{data.train_days[0]}..{data.train_days[-1]})"
    )
    if task is Task.BINARY:
        print(f"  positive rate on the holdout {float(np.mean(y)):.3f}; F1 at threshold {threshold:.3f}")
    elif task is Task.REGRESSION:
        print(f"  mean label {float(np.mean(y)):.2f}, zero share {float(np.mean(y == 0)):.3f}")
    header = f"  {'scores':<52}" + "".join(f"{n:>20}" for n in names)
    print(header)
    for who, scores in rows.items():
        m = evaluate(scores, y, threshold, task)
        # a rescaled recency is a ranking, not a probability: only its rank metrics mean anything
        shown = RANK_METRICS if who.startswith("recency") else set(names)
        print(f"  {who:<52}" + "".join(f"{m[n]:>20.4f}" if n in shown else f"{'n/a':>20}" for n in names))
    best = {n: metric(n).direction.value for n in names}
    print("  (" + ", ".join(f"{n}: {d} is better" for n, d in best.items()) + ")")


def main() -> None:
    """Parse arguments and report every model (or --model)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default=str(ROOT / "mlforge.yaml"))
    ap.add_argument("--home", default=None, help="state folder (default: the spec's state_dir)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--cutoff", default=None, type=date.fromisoformat)
    args = ap.parse_args()
    project = Project.load(Path(args.spec), state_dir=args.home)
    for model in project.spec.models:
        if args.model in (None, model.name):
            report(project, model, args.cutoff)


if __name__ == "__main__":
    main()
