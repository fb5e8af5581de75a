"""The example through the quickstart plan under a weekly and a monthly cadence (compact history):
partitions are Dagster's weekly/monthly ones, raw data and the entity index are stored for every
day, snapshots, labels and predictions as of each period's last day, training learns from such
snapshots only, and the cutoff's predictions cover every customer seen by then."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from conftest import Materialized
from projects import CUTOFF, END, START, compact_spec, write_spec

from mlforge.config.project import Project
from mlforge.data.raw import stored_partition_days
from mlforge.features.entities import stored_index_days
from mlforge.io import layout
from mlforge.io.storage import read_json, read_parquet
from mlforge.io.timeline import Cadence, days_between, training_dates
from mlforge_assets.runner import Runner

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["weekly", "monthly"])
def run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, repo_root: Path
) -> Iterator[Materialized]:
    folder = tmp_path_factory.mktemp(request.param)
    spec = compact_spec(repo_root, str(repo_root / "data" / "cdnow" / "CDNOW_master.txt"))
    spec["partitions"]["cadence"] = request.param
    if request.param == "monthly":
        # the same day-based windows; monthly snapshots need a longer window for 4 of them
        spec["models"][0]["training"]["window_days"] = 100
    project = Project.load(write_spec(folder, spec), state_dir=folder / "state")
    (folder / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(folder / "dagster")) as instance:
        runner = Runner(project, instance)
        steps = runner.run_plan(runner.quickstart_plan(cutoff=CUTOFF, history_end=END))
        yield Materialized(project, runner, instance, steps, folder / "state")


def test_partitions_follow_the_cadence(run: Materialized) -> None:
    spec, storage = run.project.spec, run.project.storage
    cadence = Cadence.of(spec)
    cutoff = cadence.snap(CUTOFF)
    snapshots = cadence.snapshot_days(START, cutoff)
    keys = [cadence.key_of(d) for d in snapshots]
    step = 7 if spec.partitions.cadence == "weekly" else 28
    assert all(step <= (b - a).days <= step + 3 for a, b in itertools.pairwise(snapshots))
    features = dg.AssetKey(["churn", "features", "customer_activity"])
    assert sorted(run.instance.get_materialized_partitions(features)) == keys
    # per day where the data lives, per period's last day where a snapshot is taken
    last = cadence.snap(END)
    assert stored_partition_days(storage, "transactions") == days_between(START, last)
    assert sorted(stored_index_days(storage, "transactions")) == days_between(START, cutoff)
    stored = sorted(
        layout.day_of(k)
        for k in storage.list(layout.snapshot_prefix("customer_activity"))
        if k.endswith(".parquet")
    )
    assert stored == snapshots


def test_training_reads_period_snapshots_and_predictions_cover_the_universe(run: Materialized) -> None:
    spec, storage = run.project.spec, run.project.storage
    cadence, model = Cadence.of(spec), spec.models[0]
    cutoff = cadence.snap(CUTOFF)
    trained = read_json(storage, layout.model_run("churn", cutoff))
    train, holdout = training_dates(model, cutoff, cadence)
    train = [d for d in train if d >= START]
    labels = {d: read_parquet(storage, layout.label_data("churn", d)).height for d in [*train, holdout]}
    # snapshot days only, labels matured by the cutoff, the rows training says it read
    assert set(labels) <= set(cadence.snapshot_days(START, cutoff))
    assert len(train) >= model.training.min_train_snapshots
    assert holdout + timedelta(days=model.label.horizon_days) <= cutoff
    assert trained["train_rows"] == sum(labels[d] for d in train)
    assert trained["holdout_rows"] == labels[holdout]
    assert 0.6 < trained["metrics"]["auc"] <= 1.0
    # every customer whose first purchase is on or before the cutoff's snapshot day, once
    source = run.project.read_source(spec.dataset("transactions"))
    seen = source.filter(pl.col("date") <= cutoff)["customer_id"].n_unique()
    preds = read_parquet(storage, layout.predictions("churn", cutoff))
    assert preds.height == preds["customer_id"].n_unique() == seen > 20_000
