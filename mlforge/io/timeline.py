"""Pure date arithmetic of the one daily partitioning every stage shares.

A partition key is an ISO day 'YYYY-MM-DD'. A day's data covers [day 00:00, day+1 00:00) in the
project's timezone; a snapshot "as of" a day includes everything up to the end of that day.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from mlforge.config.spec import FeatureViewSpec, ModelSpec, ProjectSpec


def day(key: str | date) -> date:
    """Parse a partition key (or pass a date through)."""
    return key if isinstance(key, date) else date.fromisoformat(key)


def key(d: date) -> str:
    """Partition key of a date."""
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


def training_dates(model: ModelSpec, cutoff: date) -> tuple[list[date], date]:
    """Snapshot days a model trained at `cutoff` learns from, and its holdout day.

    Only snapshots whose labels have matured by the cutoff are used: the holdout snapshot is
    `cutoff - horizon`, and training snapshots end another horizon earlier so their labels never
    look into the holdout period. Snapshots step back `snapshot_step_days` over `window_days`.
    """
    h = timedelta(days=model.label.horizon_days)
    holdout = cutoff - h
    train_end = holdout - h
    step = model.training.snapshot_step_days
    n = model.training.window_days // step + 1
    train = sorted(train_end - timedelta(days=k * step) for k in range(n))
    return train, holdout


def training_offsets(model: ModelSpec) -> tuple[int, int]:
    """(start, end) offsets in days, relative to the cutoff, of every snapshot training may read."""
    h = model.label.horizon_days
    return -(2 * h + model.training.window_days), -h
