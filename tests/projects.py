"""Small example projects for tests that need the whole graph but not the whole history."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import yaml

START, END, CUTOFF = date(1997, 1, 1), date(1997, 9, 30), date(1997, 8, 31)
HORIZON = 30
#: the first training snapshot of the compact churn model for CUTOFF (10 weekly snapshots of its
#: 63-day window): a compact project whose partitions start here (`starting`) still runs every
#: stage over every day that model reads, on 154 days instead of 273
TRAIN_START = date(1997, 4, 30)


def compact_spec(repo_root: Path, source_path: str) -> dict[str, Any]:
    """The example spec over Jan–Sep 1997 with short windows (a full graph runs in ~30 s)."""
    spec = yaml.safe_load((repo_root / "mlforge.yaml").read_text())
    spec["partitions"] = {"start": START.isoformat(), "end": END.isoformat(), "cadence": "daily"}
    spec["feature_views"][0]["lookback_days"] = 120
    m = spec["models"][0]
    m["label"]["horizon_days"] = HORIZON
    m["training"] = {"window_days": 63, "snapshot_step_days": 7, "min_train_snapshots": 4, "seed": 7}
    m["params"]["n_estimators"] = 60
    m["gate"]["min"] = 0.5
    spec["datasets"][0]["source"]["path"] = source_path
    return spec


def starting(spec: dict[str, Any], start: date) -> dict[str, Any]:
    """`spec` with its partitions starting on `start` (a profile's older rows go into that day)."""
    spec["partitions"]["start"] = start.isoformat()
    return spec


def first_training_day(spec: dict[str, Any], cutoff: date, model: str = "churn") -> date:
    """The first snapshot day the model trained at `cutoff` learns from (mlforge.io.timeline)."""
    from mlforge.config.spec import parse_spec
    from mlforge.io.timeline import training_dates

    return training_dates(parse_spec(spec).model(model), cutoff)[0][0]


def write_spec(folder: Path, spec: dict[str, Any]) -> Path:
    """Write `spec` as folder/mlforge.yaml and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mlforge.yaml").write_text(yaml.safe_dump(spec))
    return folder / "mlforge.yaml"


def copy_state(src: Path, dst: Path, keep_days: set[str]) -> None:
    """A private copy of a state folder without what stage tests on late days never read (raw, DVC,
    the Dagster instance, feature days other than `keep_days`): the shared state is never written."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in {"dagster", "dvc", "dvc-remote", "raw", "reports"}}
        if Path(folder).parent.name == "features":
            skip |= {n for n in names if n.startswith("date=") and n[5:] not in keep_days}
        return skip

    shutil.copytree(src, dst, ignore=ignore)


def compact_clv_spec(repo_root: Path, source_path: str) -> dict[str, Any]:
    """examples/clv over Jan–Sep 1997 with short windows: both models (LightGBM regression,
    scikit-learn binary with folds and a threshold) and both endpoints, in a few minutes."""
    spec = yaml.safe_load((repo_root / "examples" / "clv" / "mlforge.yaml").read_text())
    spec["partitions"] = {"start": START.isoformat(), "end": END.isoformat(), "cadence": "daily"}
    spec["feature_views"][0]["lookback_days"] = 120
    spec["datasets"][0]["source"]["path"] = source_path
    for m in spec["models"]:
        m["label"]["horizon_days"] = HORIZON
        m["training"] = {"window_days": 91, "snapshot_step_days": 7, "min_train_snapshots": 4, "seed": 7}
        m["gate"]["min"] = 0.05 if m["gate"]["metric"] == "top_decile_capture" else 0.5
    spec["models"][0]["params"]["n_estimators"] = 60
    spec["models"][1]["validation"]["n_splits"] = 2
    for mon in spec["monitoring"]:
        mon["drift"]["reference_rows"] = 2000
    return spec
