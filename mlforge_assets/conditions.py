"""Declarative automation where a dependency says it better than a sensor.

Dagster's built-in `eager()` / `on_missing()` consider only the latest time partition; these
conditions apply to every day, because a replay or a late arrival makes historic days current.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg


def when_matured(horizon_days: int) -> dg.AutomationCondition:
    """Labels of a day, once: the tick its last upstream day (day + horizon) lands.

    The last `horizon_days` partitions never mature inside the spec's range, so they are excluded
    (they would only fail). "Ready" is every upstream day present and none being written: it fires
    when it becomes true, so a dependency that was still running on the tick the last day landed
    (a late file re-materializing an old day of the horizon) delays the labels, never skips them.
    A failed attempt is not retried until an upstream day changes again.
    """
    ready = ~dg.AutomationCondition.any_deps_missing() & ~dg.AutomationCondition.any_deps_in_progress()
    return (
        ~dg.AutomationCondition.in_latest_time_window(timedelta(days=horizon_days))
        & dg.AutomationCondition.missing()
        & ready.newly_true()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"labels matured ({horizon_days} days)")


def after_upstream(*upstream: dg.AssetKey, label: str, only_existing: bool = True) -> dg.AutomationCondition:
    """A day is (re)done when an upstream day updates (any dependency, or only `upstream`) and no
    dependency is missing or running; `only_existing` redoes only days already materialized."""
    updated = dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
    if upstream:
        updated = updated.allow(dg.AssetSelection.assets(*upstream))
    condition = (
        updated
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    )
    if only_existing:
        condition = ~dg.AutomationCondition.missing() & condition
    return condition.with_label(label)
