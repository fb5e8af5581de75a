"""The one daily partitioning, asset keys prefixed by the project, and cross-day dependency windows."""

from __future__ import annotations

from datetime import date

import dagster as dg

from mlforge.config.project import Project


def daily_partitions(project: Project) -> dg.DailyPartitionsDefinition:
    """The one time partitioning every stage shares, from the spec."""
    p = project.spec.partitions
    end = date.fromordinal(p.end.toordinal() + 1)  # Dagster's end date is exclusive
    return dg.DailyPartitionsDefinition(
        start_date=p.start.isoformat(), end_date=end.isoformat(), timezone=project.spec.timezone
    )


def asset_key(project: Project, *parts: str) -> dg.AssetKey:
    """Asset keys are prefixed by the project name."""
    return dg.AssetKey([project.spec.project, *parts])


def window(upstream: dg.AssetKey, start_offset: int, end_offset: int) -> dg.AssetDep:
    """A dependency on a window of upstream days relative to each partition."""
    return dg.AssetDep(
        upstream,
        partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=start_offset, end_offset=end_offset, allow_nonexistent_upstream_partitions=True
        ),
    )


def partition_days(context: dg.AssetExecutionContext) -> list[date]:
    """The days a run covers: one partition or a whole range (single-run backfill)."""
    return [date.fromisoformat(k) for k in context.partition_keys]
