"""The cadence arithmetic against Dagster's own partitions, and training days under every cadence.

Pure: no storage, no servers (Dagster's partitions definitions are pure objects).
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import pytest
import yaml

from mlforge.config.project import Project
from mlforge.config.spec import ProjectSpec
from mlforge.io.timeline import Cadence, days_between, training_dates
from mlforge_assets.partitions import partitions_def

START, END = date(1997, 1, 1), date(1998, 6, 30)
CADENCES = [("daily", START), ("weekly", START), ("weekly", date(1997, 1, 6)), ("monthly", START)]
CADENCES += [("monthly", date(1997, 1, 15))]


def project(repo_root, tmp_path, cadence: str, start: date) -> Project:  # type: ignore[no-untyped-def]
    spec = yaml.safe_load((repo_root / "mlforge.yaml").read_text())
    spec["partitions"] = {"start": start.isoformat(), "end": END.isoformat(), "cadence": cadence}
    spec["datasets"][0]["source"]["path"] = str(repo_root / "data" / "cdnow" / "CDNOW_master.txt")
    (tmp_path / "mlforge.yaml").write_text(yaml.safe_dump(spec))
    return Project.load(tmp_path / "mlforge.yaml", state_dir=tmp_path / "state")


@pytest.mark.parametrize(("name", "start"), CADENCES)
def test_periods_are_dagsters(repo_root, tmp_path, name: str, start: date) -> None:  # type: ignore[no-untyped-def]
    """Our keys, periods and snapshot days are exactly Dagster's partitions of the spec."""
    p = project(repo_root, tmp_path, name, start)
    cadence, defn = Cadence.of(p.spec), partitions_def(p)
    keys = defn.get_partition_keys()
    assert [cadence.key_of(d) for d in cadence.snapshot_days(cadence.start, cadence.end)] == keys
    covered: list[date] = []
    for k in keys:
        w = defn.time_window_for_partition_key(k)
        days = cadence.days_of(k)
        assert (days[0], days[-1]) == (w.start.date(), (w.end - timedelta(days=1)).date())
        assert cadence.snapshot_day(k) == days[-1]
        assert {cadence.key_of(d) for d in days} == {k}
        covered += days
    # whole periods from the start, none past the end, no gap, no overlap
    assert covered == days_between(start, covered[-1])
    assert covered[-1] <= END < cadence.next_start(covered[-1]) + timedelta(days=31)
    assert cadence.last_key() == keys[-1]


@pytest.mark.parametrize(("name", "start"), CADENCES)
def test_snap_is_the_newest_snapshot_day_not_after(name: str, start: date) -> None:
    cadence = Cadence(name, start, END)  # type: ignore[arg-type]
    ends = set(cadence.snapshot_days(start, END))
    for d in days_between(date(1997, 3, 1), date(1998, 6, 30)):
        s = cadence.snap(d)
        assert s <= d and s in ends | {cadence.period_start(start) - timedelta(days=1)}
        assert not any(s < e <= d for e in ends)


@pytest.mark.parametrize(("name", "start"), CADENCES)
def test_training_days_are_snapshots_whose_labels_matured(
    repo_root, tmp_path, name: str, start: date
) -> None:  # type: ignore[no-untyped-def]
    p = project(repo_root, tmp_path, name, start)
    spec: ProjectSpec = p.spec
    model, cadence = spec.models[0], Cadence.of(spec)
    h = timedelta(days=model.label.horizon_days)
    snapshots = set(cadence.snapshot_days(START, END))
    for key in dg.TimeWindowPartitionsDefinition.get_partition_keys(partitions_def(p))[-10:]:
        cutoff = cadence.snapshot_day(key)
        train, holdout = training_dates(model, cutoff, cadence)
        # every day is a partition's snapshot day; holdout labels matured by the cutoff, and no
        # training label window reaches into the holdout's
        assert holdout in snapshots and holdout + h <= cutoff
        assert all(d in snapshots or d < start for d in train)
        assert max(train) + h <= holdout
        assert len(train) == len(set(train)) >= model.training.window_days // 31
        if name == "daily":
            assert (train, holdout) == training_dates(model, cutoff)


def test_window_dependencies_cover_the_days_a_stage_reads(repo_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A weekly features partition depends on every raw partition holding its lookback's days."""
    p = project(repo_root, tmp_path, "weekly", START)
    cadence, defn = Cadence.of(p.spec), partitions_def(p)
    from mlforge_assets.partitions import window

    view = p.spec.feature_views[0]
    dep = window(p, dg.AssetKey("raw"), -(view.read_days - 1), 0)
    mapping = dep.partition_mapping
    assert isinstance(mapping, dg.TimeWindowPartitionMapping)
    key = defn.get_partition_keys()[-1]
    d = cadence.snapshot_day(key)
    needed = {cadence.key_of(x) for x in days_between(d - timedelta(days=view.read_days - 1), d)}
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        defn.subset_with_partition_keys([key]), defn, defn
    ).partitions_subset.get_partition_keys()
    assert needed <= set(upstream)
    # and labels: the raw partitions of (d, d + horizon]
    h = p.spec.models[0].label.horizon_days
    lab = window(p, dg.AssetKey("raw"), 1, h).partition_mapping
    assert isinstance(lab, dg.TimeWindowPartitionMapping)
    key = defn.get_partition_keys()[-20]
    d = cadence.snapshot_day(key)
    needed = {cadence.key_of(x) for x in days_between(d + timedelta(days=1), d + timedelta(days=h))}
    upstream = lab.get_upstream_mapped_partitions_result_for_partitions(
        defn.subset_with_partition_keys([key]), defn, defn
    ).partitions_subset.get_partition_keys()
    assert needed <= set(upstream)


def test_a_cadence_without_a_whole_period_is_a_spec_error(repo_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mlforge.errors import SpecError

    with pytest.raises(SpecError, match="day of the month"):
        project(repo_root, tmp_path, "monthly", date(1997, 1, 30))
