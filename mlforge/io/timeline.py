"""Pure date arithmetic of the one partitioning every stage shares.

A day's data covers [day 00:00, day+1 00:00) in the project's timezone; a snapshot "as of" a day
includes everything up to the end of that day. The spec's cadence groups days into partitions
(:class:`Cadence`): a daily, weekly or monthly partition's key is the ISO day its period starts
('YYYY-MM-DD', Dagster's key for all three). Raw data and the entity index are stored per day of
the period; features, labels, models, predictions and monitoring are computed as of the
period's last day (its *snapshot day*). Lookbacks, windows and horizons stay counted in days
back or forward from that snapshot day, so the same spec is valid under every cadence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from mlforge.config.spec import FeatureViewSpec, ModelSpec, ProjectSpec

CadenceName = Literal["daily", "weekly", "monthly"]


@dataclass(frozen=True)
class Cadence:
    """How days group into partitions: periods anchored at the spec's start day."""

    name: CadenceName
    start: date
    end: date

    @classmethod
    def of(cls, spec: ProjectSpec) -> Cadence:
        """The project's cadence."""
        p = spec.partitions
        return cls(p.cadence, p.start, p.end)

    @property
    def daily(self) -> bool:
        """One partition per day (every day is a snapshot day)."""
        return self.name == "daily"

    def period_start(self, d: date) -> date:
        """First day of the period holding `d`."""
        if self.name == "daily":
            return d
        if self.name == "weekly":
            return d - timedelta(days=(d - self.start).days % 7)
        anchor = self.start.day  # monthly periods start on the start's day of the month (<= 28)
        if d.day >= anchor:
            return d.replace(day=anchor)
        y, m = (d.year, d.month - 1) if d.month > 1 else (d.year - 1, 12)
        return date(y, m, anchor)

    def next_start(self, d: date) -> date:
        """First day of the period after the one holding `d`."""
        first = self.period_start(d)
        if self.name == "daily":
            return first + timedelta(days=1)
        if self.name == "weekly":
            return first + timedelta(days=7)
        y, m = (first.year, first.month + 1) if first.month < 12 else (first.year + 1, 1)
        return date(y, m, first.day)

    def period_end(self, d: date) -> date:
        """Last day of the period holding `d`: the snapshot day of its partition."""
        return self.next_start(d) - timedelta(days=1)

    def key_of(self, d: date) -> str:
        """Partition key of the period holding `d`."""
        return self.period_start(d).isoformat()

    def snapshot_day(self, partition: str) -> date:
        """The day a partition's snapshot is taken as of (its period's last day)."""
        return self.period_end(day(partition))

    def days_of(self, partition: str) -> list[date]:
        """Every day of a partition's period."""
        first = day(partition)
        return days_between(first, self.period_end(first))

    def snap(self, d: date) -> date:
        """The newest snapshot day at or before `d` (`d` itself under a daily cadence)."""
        end = self.period_end(d)
        return end if end == d else self.period_start(d) - timedelta(days=1)

    def last_key(self) -> str:
        """The last partition: the last complete period within the spec's days."""
        return self.key_of(self.snap(self.end))

    def first_snapshot(self) -> date:
        """The first partition's snapshot day."""
        return self.period_end(self.start)

    def snapshot_days(self, first: date, last: date) -> list[date]:
        """Snapshot days of the partitions in first..last (by period), within the spec's partitions."""
        out, d = [], self.period_start(max(first, self.start))
        stop = min(last, self.snap(self.end))
        while (end := self.period_end(d)) <= stop:
            out.append(end)
            d = end + timedelta(days=1)
        return out

    def offset(self, days: int, toward_zero: bool = False) -> int:
        """A day offset from a snapshot day as a partition offset that covers it.

        Away from zero by default (a window's far end: include every partition it may touch);
        `toward_zero` for a window's near end (never cut off a partition it needs).
        """
        if self.daily or days == 0:
            return days
        shortest, longest = (7, 7) if self.name == "weekly" else (28, 31)
        n = abs(days) // longest if toward_zero else math.ceil(abs(days) / shortest) + 1
        return n if days > 0 else -n

    def cron(self, hour: int, weekly: bool = False) -> str:
        """A cron for `hour`:00 on the first day of each period (every day when daily); `weekly`:
        at most once a week (a daily cadence's retrain), on the start's weekday."""
        if self.name == "daily" and not weekly:
            return f"0 {hour} * * *"
        if self.name != "monthly":
            return f"0 {hour} * * {self.start.isoweekday() % 7}"
        return f"0 {hour} {self.start.day} * *"


def day(key: str | date) -> date:
    """Parse a partition key (or pass a date through)."""
    return key if isinstance(key, date) else date.fromisoformat(key)


def key(d: date) -> str:
    """ISO key of a day (storage paths, metadata; a daily partition's key)."""
    return d.isoformat()


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, inclusive."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def clip(spec: ProjectSpec, days: list[date]) -> list[date]:
    """Keep the days that are partitions of the project."""
    return [d for d in days if spec.partitions.start <= d <= spec.partitions.end]


def end_of(d: date) -> datetime:
    """The instant a day's window closes: features 'as of' d are valid from here."""
    return datetime(d.year, d.month, d.day) + timedelta(days=1)


def feature_window(view: FeatureViewSpec, d: date) -> tuple[date, date]:
    """Raw days a snapshot of `view` as of `d` reads: the lookback ending at d (for a lifetime
    view its longest window; the rest comes from the entity index)."""
    return d - timedelta(days=view.read_days - 1), d


def label_window(model: ModelSpec, d: date) -> tuple[date, date]:
    """Raw days the label of a snapshot at `d` looks at: the horizon after d."""
    return d + timedelta(days=1), d + timedelta(days=model.label.horizon_days)


def training_dates(model: ModelSpec, cutoff: date, cadence: Cadence | None = None) -> tuple[list[date], date]:
    """Snapshot days a model trained at `cutoff` learns from, and its holdout day.

    Only snapshots whose labels have matured by the cutoff are used: the holdout snapshot is
    `cutoff - horizon`, and training snapshots end another horizon earlier so their labels never
    look into the holdout period. Snapshots step back `snapshot_step_days` over `window_days`.
    Under a weekly or monthly cadence each day moves back to the newest snapshot day at or before
    it (earlier, never later: a label still matures by the cutoff); days that meet are one.
    """
    snap = cadence.snap if cadence is not None else (lambda d: d)
    h = timedelta(days=model.label.horizon_days)
    holdout = snap(cutoff - h)
    train_end = snap(holdout - h)
    step = model.training.snapshot_step_days
    n = model.training.window_days // step + 1
    train = sorted({snap(train_end - timedelta(days=k * step)) for k in range(n)})
    return train, holdout


def training_offsets(model: ModelSpec) -> tuple[int, int]:
    """(start, end) offsets in days, relative to the cutoff, of every snapshot training may read."""
    h = model.label.horizon_days
    return -(2 * h + model.training.window_days), -h
