"""Schedules: the refresh of each new partition and the retrain, in the spec's timezone (off by default).

Their crons follow the cadence unless the spec sets them (:meth:`Cadence.cron`); each run is for
the last partition complete when it fires, and a run key per partition makes a schedule that
fires more often than the cadence (a daily cron on weekly partitions) run each partition once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from mlforge.config.project import Project
from mlforge.io.timeline import Cadence


def last_complete_day(project: Project, when: datetime) -> str:
    """The partition a run scheduled at `when` should process: the last one whose period ended
    before `when`'s day, within the spec."""
    cadence = Cadence.of(project.spec)
    d = cadence.snap((when - timedelta(days=1)).date())
    return cadence.key_of(min(max(d, cadence.first_snapshot()), cadence.snap(cadence.end)))


def day_schedule(project: Project, name: str, cron: str, job: Any, enabled: bool) -> dg.ScheduleDefinition:
    """A schedule that runs `job` for the last complete partition, in the spec's timezone."""

    @dg.schedule(
        name=name,
        cron_schedule=cron,
        job=job,
        execution_timezone=project.spec.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING if enabled else dg.DefaultScheduleStatus.STOPPED,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        partition = last_complete_day(project, context.scheduled_execution_time)
        return dg.RunRequest(run_key=f"{name}-{partition}", partition_key=partition)

    return _schedule
