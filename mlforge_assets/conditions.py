"""Declarative automation where a dependency says it better than a sensor.

Dagster's built-in `eager()` / `on_missing()` consider only the latest time partition; these
conditions apply to every day, because a replay or a late arrival makes historic days current:
a late file for an old day re-materializes that raw day, and every stored day that reads it
(the entity index from that day on, features, labels, the online store, predictions,
performance) is redone by the automation sensor, in one backfill per tick. Drift reports are
not redone: each is the record of what was observed on its day and what the sensors acted on.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

#: the tag Dagster puts on every run (and backfill) the automation sensor launches
AUTOMATION_TAG = "dagster/from_automation_condition"


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
    """A day is (re)done once a day it reads (of any dependency, or only of `upstream`) changed
    since it was last handled, with no dependency missing or running; `only_existing` redoes
    only days already materialized (what a late file or a new registration made stale).

    Like Dagster's ``any_deps_updated()`` inside ``eager()``, without its latest-partition
    restriction: an update made by a run that also targeted this asset does not count (that run
    already did it), nor one made by the automation's own runs (what they redo was requested on
    the same tick, through ``will_be_requested``, or it would run twice); one still pending
    behind a running dependency is remembered until it can run (``since_last_handled``).
    """
    by_others = (
        dg.AutomationCondition.newly_updated()
        & ~dg.AutomationCondition.executed_with_root_target()
        & ~dg.AutomationCondition.executed_with_tags(tag_keys={AUTOMATION_TAG})
    ).with_label("updated by another run")
    updated = dg.AutomationCondition.any_deps_match(by_others | dg.AutomationCondition.will_be_requested())
    if upstream:
        updated = updated.allow(dg.AssetSelection.assets(*upstream))
    condition = (
        updated.since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    )
    if only_existing:
        condition = ~dg.AutomationCondition.missing() & condition
    return condition.with_label(label)
