"""A late file for an old day, carried through by Dagster's declarative automation.

The landing sensor re-materializes the raw day alone (tests/assets/test_landing.py); from there
the automation conditions (mlforge_assets/conditions.py), evaluated by Dagster against the real
instance of the materialized compact example, must request exactly the stored days that read it —
the entity index from that day on, feature snapshots, labels whose horizon holds it, the online
store and predictions — and nothing else (no drift report, no training); once those runs are
done, nothing more.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import yaml

from mlforge.config.project import Project
from mlforge.features.entities import read_index
from mlforge.features.labels import LABEL
from mlforge.features.offline import read_snapshots
from mlforge.io import layout
from mlforge.io.storage import read_parquet
from mlforge.io.timeline import days_between
from mlforge_assets.conditions import AUTOMATION_TAG
from mlforge_assets.factory import build_definitions
from mlforge_assets.runner import Runner

LATE = date(1997, 9, 20)
HORIZON = 30


def _copy(materialized, folder: Path) -> tuple[Project, dg.DagsterInstance, str]:  # type: ignore[no-untyped-def]
    """The materialized example's state (Dagster instance included) copied, reading a source with
    one purchase added on LATE by a customer who bought nothing from 30 days before it on."""
    src = materialized.project.spec.dataset("transactions").source.path
    lines = Path(src).read_text().splitlines()
    rows = [ln.split() for ln in lines[1:] if ln.strip()]
    recent = {r[0] for r in rows if r[1] >= f"{LATE - timedelta(days=HORIZON):%Y%m%d}"}
    customer = min(r[0] for r in rows if r[1] < "19970801" and r[0] not in recent)
    late_source = folder / "transactions.txt"
    late_source.write_text("\n".join([*lines, f"{customer} {LATE:%Y%m%d} 3 1000.00"]) + "\n")
    spec = yaml.safe_load(materialized.spec_path.read_text())
    spec["datasets"][0]["source"]["path"] = str(late_source)
    (folder / "mlforge.yaml").write_text(yaml.safe_dump(spec))
    shutil.copytree(materialized.state_dir, folder / "state")
    project = Project.load(folder / "mlforge.yaml", state_dir=folder / "state")
    return project, dg.DagsterInstance.from_config(str(folder / "state" / "dagster")), customer


def test_a_late_file_redoes_every_stored_day_that_reads_it(materialized, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project, instance, customer = _copy(materialized, tmp_path)
    defs = build_definitions(project)
    key = lambda *parts: dg.AssetKey(["churn", *parts])  # noqa: E731
    storage = project.storage
    last = date(1997, 9, 30)
    before_index = read_index(storage, "transactions", last)
    before_labels = read_parquet(storage, layout.label_data("churn", date(1997, 8, 25)))
    before_scores = read_parquet(storage, layout.predictions("churn", last))
    with instance:
        # the first evaluation only starts the cursor (Dagster's initial evaluation handles all)
        first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        runner = Runner(project, instance)
        # what the landing sensor does for a stored day: the raw day alone
        runner.materialize([key("raw", "transactions")], LATE)
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)

        def requested(*parts: str) -> list[str]:
            return sorted(k for k in result.get_requested_partitions(key(*parts)) if k)

        later = [d.isoformat() for d in days_between(LATE, last)]
        assert requested("entities", "transactions") == later  # the fold from the late day on
        assert requested("features", "customer_activity") == later  # every stored snapshot reading it
        # labels stored up to 1997-08-31: those whose 30-day horizon holds the late day
        assert requested("labels", "churn") == [
            d.isoformat() for d in days_between(LATE - timedelta(days=HORIZON), date(1997, 8, 31))
        ]
        assert requested("online", "customer_activity") == [last.isoformat()]
        assert requested("predictions", "churn") == [last.isoformat()]
        for untouched in [
            ("raw", "transactions"),
            ("monitoring", "churn", "drift"),
            ("models", "churn", "trained"),
            ("models", "churn", "registered"),
        ]:
            assert requested(*untouched) == [], untouched

        # run what was requested, as the automation's backfill does (its tag on each run)
        tag = {AUTOMATION_TAG: "true"}
        runner.materialize(
            [key("entities", "transactions"), key("features", "customer_activity")], LATE, last, tags=tag
        )
        runner.materialize(
            [key("labels", "churn")], LATE - timedelta(days=HORIZON), date(1997, 8, 31), tags=tag
        )
        runner.materialize([key("online", "customer_activity"), key("predictions", "churn")], last, tags=tag)
        settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
        assert settled.total_requested == 0, [
            (r.key, r.true_subset.size) for r in settled.results if r.true_subset.size
        ]

    # the late purchase reached every later day
    after_index = read_index(storage, "transactions", last)
    assert after_index.height == before_index.height  # no new customer: the universe is the same
    jk = "customer_id"
    row = lambda f: f.filter(pl.col(jk) == customer).row(0, named=True)  # noqa: E731
    changed = [c for c in after_index.columns if row(after_index)[c] != row(before_index)[c]]
    assert changed, "the customer's lifetime statistics did not change"
    snap = read_snapshots(storage, "customer_activity", [last])
    assert row(snap)["days_since_last"] == (last - LATE).days
    # the customer had churned by every label day whose horizon now holds the purchase; no longer
    after_labels = read_parquet(storage, layout.label_data("churn", date(1997, 8, 25)))
    assert row(before_labels)[LABEL] == 1 and row(after_labels)[LABEL] == 0
    assert after_labels.filter(pl.col(jk) != customer).equals(before_labels.filter(pl.col(jk) != customer))
    after_scores = read_parquet(storage, layout.predictions("churn", last))
    assert after_scores.height == before_scores.height
    assert row(after_scores)["score"] != row(before_scores)["score"]
