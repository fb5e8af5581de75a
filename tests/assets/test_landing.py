"""The landing-area sensor: each new file once, its days refreshed; a bad file quarantined with the
file, row and column named, and nothing stored changed; the freshness check of a late source."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from projects import compact_spec, write_spec

from mlforge.config.project import Project
from mlforge.data.landing import QUARANTINE, inspect_file, landing_of
from mlforge.io.timeline import days_between
from mlforge_assets.factory import build_definitions

HEADER = "customer_id date number_of_cds dollar_value"


@pytest.fixture
def project(tmp_path: Path, repo_root: Path) -> Project:
    """The compact example whose transactions are a watched landing folder holding the history."""
    lines = (repo_root / "data/cdnow/CDNOW_master.txt").read_text().splitlines()
    landing = tmp_path / "landing"
    landing.mkdir()
    history = [ln for ln in lines[1:] if ln.split() and ln.split()[1] <= "19970925"]
    (landing / "history.txt").write_text("\n".join([HEADER, *history]) + "\n")
    spec = compact_spec(repo_root, "landing/*.txt")
    spec["datasets"][0]["source"] |= {"watch": True, "deadline_cron": "0 6 * * *"}
    return Project.load(write_spec(tmp_path, spec), state_dir=tmp_path / ".state")


def _sensor(project: Project) -> tuple[dg.SensorDefinition, dg.Definitions]:
    defs = build_definitions(project)
    return defs.get_sensor_def("churn_transactions_landing"), defs


def _tick(
    sensor: tuple[dg.SensorDefinition, dg.Definitions], instance: dg.DagsterInstance, cursor: str | None
) -> tuple[list[dg.RunRequest], str | None, str | None]:
    sensor_def, defs = sensor
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as ctx:
        result = sensor_def.evaluate_tick(ctx)
    return list(result.run_requests or []), result.cursor, result.skip_message


def _stored(instance: dg.DagsterInstance, first: date, last: date) -> None:
    """Record raw and entity-index materializations of first..last in the instance (what the
    landing sensor reads to tell a late day from a new one)."""
    for d in days_between(first, last):
        for stage in ("raw", "entities"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    dg.AssetKey(["churn", stage, "transactions"]), partition=d.isoformat()
                )
            )


def test_each_new_file_requests_its_days_once(project: Project) -> None:
    sensor = _sensor(project)
    landing = project.root / "landing"
    raw = dg.AssetKey(["churn", "raw", "transactions"])
    with dg.instance_for_test() as instance:
        _stored(instance, date(1997, 1, 1), date(1997, 9, 25))  # the history, backfilled
        runs, cursor, skip = _tick(sensor, instance, None)
        # the first tick records the history already there, it does not re-run the past
        assert runs == [] and json.loads(cursor or "{}") == {"history.txt": "present"}
        assert skip is not None and "1 file(s) already there" in skip
        # a new file with two days: a new one (a daily refresh) and a late one (the raw day alone;
        # the automation redoes what reads it, tests/assets/test_late_data.py)
        (landing / "day-0926.txt").write_text(f"{HEADER}\n90001 19970926 2 30.50\n00003 19970910 1 9.99\n")
        runs, cursor, _ = _tick(sensor, instance, cursor)
        by_day = {r.partition_key: r for r in runs}
        assert sorted(by_day) == ["1997-09-10", "1997-09-26"]
        assert by_day["1997-09-10"].asset_selection == [raw]
        assert by_day["1997-09-26"].asset_selection is None  # the whole daily refresh
        assert all(r.tags["mlforge/landing_file"] == "day-0926.txt" for r in runs)
        # nothing new: nothing requested, and the file is never inspected twice
        again, cursor2, skip = _tick(sensor, instance, cursor)
        assert again == [] and cursor2 in (None, cursor) and "no new file" in (skip or "")
        # a file for a day after the next one waits (the index of a day folds the day before's)
        (landing / "day-0928.txt").write_text(f"{HEADER}\n90002 19970928 1 12.00\n")
        waiting, cursor3, skip = _tick(sensor, instance, cursor)
        assert waiting == [] and "wait" in (skip or "") and cursor3 in (None, cursor)
        _stored(instance, date(1997, 9, 26), date(1997, 9, 27))
        runs, cursor, _ = _tick(sensor, instance, cursor)
        assert [(r.partition_key, r.asset_selection) for r in runs] == [("1997-09-28", None)]
        assert "day-0928.txt" in json.loads(cursor or "{}")
        # two new days in one file: one run over both
        _stored(instance, date(1997, 9, 28), date(1997, 9, 28))
        (landing / "days.txt").write_text(f"{HEADER}\n90003 19970929 1 5.00\n90003 19970930 1 6.00\n")
        (span,), _, _ = _tick(sensor, instance, cursor)
        assert span.partition_key is None and span.asset_selection is None
        assert span.tags["dagster/asset_partition_range_start"] == "1997-09-29"
        assert span.tags["dagster/asset_partition_range_end"] == "1997-09-30"
    assert sensor[0].job_name == "churn_daily_refresh"


def test_a_file_that_does_not_fit_is_quarantined_and_nothing_is_requested(project: Project) -> None:
    sensor = _sensor(project)
    landing = project.root / "landing"
    history = (landing / "history.txt").read_bytes()
    bad = f"{HEADER}\n90001 19970926 2 30.50\n90002 19970926 two 10.00\n"
    with dg.instance_for_test() as instance:
        _, cursor, _ = _tick(sensor, instance, None)
        (landing / "bad.txt").write_text(bad)
        runs, cursor, _ = _tick(sensor, instance, cursor)
    assert runs == []
    assert not (landing / "bad.txt").exists()  # out of the glob: the raw asset never reads it
    assert (landing / QUARANTINE / "bad.txt").read_text() == bad  # kept, byte for byte
    note = (landing / QUARANTINE / "bad.txt.error.txt").read_text()
    assert "bad.txt" in note and "column 'number_of_cds' row 2" in note and "'two'" in note
    assert (landing / "history.txt").read_bytes() == history  # nothing else touched
    assert json.loads(cursor or "{}")["bad.txt"]  # judged once
    assert not (project.settings.state_dir / "storage" / "raw").exists()  # nothing stored


def test_out_of_range_values_name_the_row_and_column(project: Project) -> None:
    ds = project.spec.dataset("transactions")
    landing = landing_of(ds, project.root)
    (project.root / "landing" / "neg.txt").write_text(
        f"{HEADER}\n90001 19970926 1 5.00\n90001 19970927 1 -3.00\n"
    )
    found = inspect_file(project.spec, ds, landing, "neg.txt")
    assert found.error is not None and found.days == []
    assert "column 'dollar_value' row 2: -3.0 is outside [0.0, 10000.0]" in found.error
    ok = landing_of(ds, project.root)
    (project.root / "landing" / "good.txt").write_text(
        f"{HEADER}\n90001 19970926 1 5.00\n90001 19991231 1 5.00\n"
    )
    good = inspect_file(project.spec, ds, ok, "good.txt")
    assert (
        good.error is None and good.rows == 2 and good.days == [date(1997, 9, 26)]
    )  # outside the partitions: no run


def test_a_source_with_a_deadline_gets_a_freshness_check(project: Project) -> None:
    defs = build_definitions(project)
    checks = [k for k in defs.resolve_asset_graph().asset_check_keys if "fresh" in k.name]
    assert [k.asset_key.to_user_string() for k in checks] == ["churn/raw/transactions"]
    assert defs.get_sensor_def("churn_freshness") is not None
