"""Schedules: the daily refresh and the weekly retrain, in the spec's timezone (off by default)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import dagster as dg

from mlforge.config.project import Project


def last_complete_day(project: Project, when: datetime) -> str:
    """The partition a run scheduled at `when` should process: the day before, within the spec."""
    d = (when - timedelta(days=1)).date()
    p = project.spec.partitions
    return min(max(d, p.start), p.end).isoformat()


def day_schedule(project: Project, name: str, cron: str, job: Any, enabled: bool) -> dg.ScheduleDefinition:
    """A schedule that runs `job` for the last complete day, in the spec's timezone."""

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
