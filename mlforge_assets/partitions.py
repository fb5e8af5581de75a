"""The one time partitioning, asset keys prefixed by the project, and cross-partition dependency windows."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from mlforge.config.project import Project
from mlforge.io.timeline import Cadence


def partitions_def(project: Project) -> dg.TimeWindowPartitionsDefinition:
    """The one time partitioning every stage shares, from the spec (daily, weekly or monthly).

    Periods start on the spec's start day; the last partition is the last whole period that ends
    by the spec's end (Dagster's end date is exclusive and keeps only whole periods).
    """
    p = project.spec.partitions
    cadence = Cadence.of(project.spec)
    start, tz = p.start.isoformat(), project.spec.timezone
    end = (cadence.snap(p.end) + timedelta(days=1)).isoformat()
    if p.cadence == "weekly":
        # Dagster's weekday numbers start at Sunday = 0
        return dg.WeeklyPartitionsDefinition(
            start_date=start, end_date=end, timezone=tz, day_offset=p.start.isoweekday() % 7
        )
    if p.cadence == "monthly":
        return dg.MonthlyPartitionsDefinition(
            start_date=start, end_date=end, timezone=tz, day_offset=p.start.day
        )
    return dg.DailyPartitionsDefinition(start_date=start, end_date=end, timezone=tz)


def asset_key(project: Project, *parts: str) -> dg.AssetKey:
    """Asset keys are prefixed by the project name."""
    return dg.AssetKey([project.spec.project, *parts])


def window(project: Project, upstream: dg.AssetKey, start_days: int, end_days: int) -> dg.AssetDep:
    """A dependency on the upstream partitions holding the days `start_days..end_days` relative to
    each partition's snapshot day (whole partitions: a weekly partition reads its neighbours'
    days through their periods)."""
    cadence = Cadence.of(project.spec)
    return dg.AssetDep(
        upstream,
        partition_mapping=dg.TimeWindowPartitionMapping(
            # widen, never narrow: the start rounds down and the end up to whole partitions
            start_offset=cadence.offset(start_days, toward_zero=start_days > 0),
            end_offset=cadence.offset(end_days, toward_zero=end_days < 0),
            allow_nonexistent_upstream_partitions=True,
        ),
    )


def history(project: Project, upstream: dg.AssetKey) -> dg.AssetDep:
    """A dependency on every upstream partition up to this one (a fold over the whole history:
    a change to any earlier day makes every later partition stale)."""
    n = len(partitions_def(project).get_partition_keys())
    return dg.AssetDep(
        upstream,
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-max(n - 1, 0), end_offset=0, allow_nonexistent_upstream_partitions=True
        ),
    )


def previous(upstream: dg.AssetKey) -> dg.AssetDep:
    """A dependency on the partition before (a self-dependency chains a fold)."""
    return dg.AssetDep(
        upstream,
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
        ),
    )


def partition_days(project: Project, context: dg.AssetExecutionContext, every_day: bool) -> list[date]:
    """The days a run covers (one partition or a range): every day of their periods when
    `every_day` (raw data and the entity index are stored per day), else their snapshot days."""
    cadence = Cadence.of(project.spec)
    if every_day:
        return [d for k in context.partition_keys for d in cadence.days_of(k)]
    return [cadence.snapshot_day(k) for k in context.partition_keys]
