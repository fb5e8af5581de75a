"""Labels: the target as known once the horizon after a snapshot has passed.

The label of snapshot D looks only at the rows of (D, D + horizon] of its dataset: churn (no
event), event (at least one), an aggregate (sum, count, mean; binned for multiclass) or a column
of a labels dataset (see :func:`compute_labels`). It can only be computed once every raw
partition of that horizon exists; until then it is not materializable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from mlforge.config.spec import (
    AggregateLabel,
    ChurnLabel,
    ColumnLabel,
    Condition,
    EventLabel,
    FeatureViewSpec,
    ModelSpec,
    ProjectSpec,
)
from mlforge.data.raw import load_days, missing_days
from mlforge.errors import DataError, MissingPartitionsError, MLForgeError
from mlforge.features.offline import missing_snapshots, read_snapshot
from mlforge.features.refs import service_features
from mlforge.features.snapshots import EVENT_TS
from mlforge.io import layout
from mlforge.io.storage import Storage, write_json, write_parquet
from mlforge.io.timeline import days_between, end_of, key, label_window
from mlforge.models.base import Task

LABEL = "label"

_OPS = {
    "eq": lambda c, v: c == v,
    "ne": lambda c, v: c != v,
    "gt": lambda c, v: c > v,
    "ge": lambda c, v: c >= v,
    "lt": lambda c, v: c < v,
    "le": lambda c, v: c <= v,
    "in": lambda c, v: c.is_in(v),
}

#: The stored dtype of a label by task (binary 0/1, class index, real value).
LABEL_DTYPES: dict[Task, type[pl.DataType]] = {
    Task.BINARY: pl.Int8,
    Task.MULTICLASS: pl.Int32,
    Task.REGRESSION: pl.Float64,
}


def row_filter(where: list[Condition]) -> pl.Expr:
    """The polars expression keeping the rows that meet every condition (all rows without any)."""
    expr = pl.lit(True)
    for c in where:
        expr = expr & _OPS[c.op](pl.col(c.column), c.value)
    return expr


def describe_label(model: ModelSpec) -> str:
    """One line saying what the label of a snapshot D is (the labels asset's description)."""
    lab = model.label
    h = f"the {lab.horizon_days} days after the snapshot"
    if isinstance(lab, ColumnLabel):
        return f"`{lab.column}` of `{lab.dataset}` recorded in {h} ({lab.several} of several)"
    rows = f"`{lab.dataset}` rows" + (" matching the filter" if lab.where else "")
    if isinstance(lab, ChurnLabel):
        return f"1 when no {rows} fall in {h}"
    if isinstance(lab, EventLabel):
        return f"1 when at least one of the {rows} falls in {h}"
    what = f"{lab.function} of `{lab.column}`" if lab.column else "count"
    binned = f", binned at {lab.bins}" if lab.bins else ""
    return f"{what} over {rows} in {h}{binned}"


def compute_labels(
    model: ModelSpec,
    entities: pl.Series,
    future_events: pl.DataFrame,
    entity_key: str,
    day_col: str,
    d: date,
    timestamp: str | None = None,
) -> pl.DataFrame:
    """(entity, event_timestamp, label) of every entity of the snapshot at `d`, sorted by entity.

    Only rows whose day falls in (d, d + horizon] (and that meet the label's `where`) count, so a
    label never reads anything its horizon does not cover. `timestamp` (the dataset's event-time
    column) orders several rows of one entity for a column label's ``first`` / ``last``; rows of
    the same instant keep their stored order. A column label without a row in the horizon gets
    its ``fill_value``, or no row at all when that is null (the entity is left out of training).
    """
    lab = model.label
    first, last = label_window(model, d)
    window = future_events.filter(pl.col(day_col).is_between(first, last))
    if not isinstance(lab, ColumnLabel) and lab.where:
        window = window.filter(row_filter(lab.where))
    base = pl.DataFrame({entity_key: entities})
    dtype = LABEL_DTYPES[model.model_task]
    if isinstance(lab, ChurnLabel | EventLabel):
        seen = pl.col(entity_key).is_in(window[entity_key].unique().implode())
        labelled = base.with_columns((seen.not_() if isinstance(lab, ChurnLabel) else seen).alias(LABEL))
    elif isinstance(lab, AggregateLabel):
        agg = {
            "sum": pl.col(lab.column or entity_key).sum(),
            "count": pl.len(),
            "mean": pl.col(lab.column or entity_key).mean(),
        }[lab.function]
        per = window.group_by(entity_key).agg(agg.cast(pl.Float64).alias(LABEL))
        labelled = base.join(per, on=entity_key, how="left").with_columns(
            pl.col(LABEL).fill_null(lab.fill_value)
        )
        if lab.bins is not None:
            codes = np.searchsorted(np.asarray(lab.bins), labelled[LABEL].to_numpy(), side="right")
            labelled = labelled.with_columns(pl.Series(LABEL, codes))
    else:
        labelled = _column_labels(model, lab, base, window, entity_key, timestamp)
    return (
        labelled.with_columns(
            pl.col(LABEL).cast(dtype),
            pl.lit(end_of(d)).cast(pl.Datetime("us")).alias(EVENT_TS),
        )
        .select(entity_key, EVENT_TS, LABEL)
        .sort(entity_key)
    )


def _column_labels(
    model: ModelSpec,
    lab: ColumnLabel,
    base: pl.DataFrame,
    window: pl.DataFrame,
    entity_key: str,
    timestamp: str | None,
) -> pl.DataFrame:
    """The value of `lab.column` per entity in the window, by the `several` rule, checked by task."""
    if timestamp is not None:
        window = window.sort(timestamp, maintain_order=True)
    value = pl.col(lab.column).cast(pl.Float64)
    pick = {
        "last": value.last(),
        "first": value.first(),
        "max": value.max(),
        "min": value.min(),
        "mean": value.mean(),
    }[lab.several]
    per = window.group_by(entity_key, maintain_order=True).agg(pick.alias(LABEL))
    labelled = base.join(per, on=entity_key, how="left")
    if lab.fill_value is None:
        labelled = labelled.filter(pl.col(LABEL).is_not_null())
    else:
        labelled = labelled.with_columns(pl.col(LABEL).fill_null(lab.fill_value))
    task = model.model_task
    values = labelled[LABEL]
    bad = None
    if task is Task.BINARY and not values.is_in([0.0, 1.0]).all():
        bad = "0 or 1"
    elif task is Task.MULTICLASS and not ((values >= 0) & (values == values.floor())).all():
        bad = "a class index 0, 1, 2, …"
    if bad is not None:
        odd = values.filter(~values.is_in([0.0, 1.0]) if task is Task.BINARY else values != values.floor())
        raise DataError(
            f"labels/{model.name}: '{lab.column}' of dataset '{lab.dataset}' must be {bad} for a "
            f"{task} model (found {odd.head(3).to_list()})"
        )
    return labelled


def missing_labels(storage: Storage, model: str, days: list[date]) -> list[str]:
    """Days with no stored labels."""
    return [key(d) for d in days if not storage.exists(layout.label_meta(model, d))]


@dataclass(frozen=True)
class StoredLabels:
    """What was written for the labels of one snapshot day."""

    day: date
    rows: int
    label_sum: float  # binary: the positives
    sha256: str


def label_view(spec: ProjectSpec, model: ModelSpec) -> FeatureViewSpec:
    """The first view of the model's service keyed by its main entity (the model's entity)."""
    return label_views(spec, model)[0]


def label_views(spec: ProjectSpec, model: ModelSpec) -> list[FeatureViewSpec]:
    """The service's views of the model's entity: the entities of their snapshots (the union of
    their universes) get labelled."""
    entity = spec.service_entity(model.feature_service).name
    names = dict.fromkeys(v for v, _ in service_features(spec, model.feature_service))
    return [spec.feature_view(n) for n in names if spec.feature_view(n).entity == entity]


def write_labels(storage: Storage, model: str, d: date, labels: pl.DataFrame) -> StoredLabels:
    """Store the labels of day `d` and their sidecar (row count and sha256 of the parquet)."""
    digest = write_parquet(storage, layout.label_data(model, d), labels)
    write_json(storage, layout.label_meta(model, d), {"rows": labels.height, "sha256": digest})
    return StoredLabels(d, labels.height, float(labels[LABEL].sum()), digest)


def build_labels(
    storage: Storage, spec: ProjectSpec, model: ModelSpec, days: list[date]
) -> list[StoredLabels]:
    """Compute and store the labels of every snapshot day in `days` (sorted), one partition each.

    Refuses days whose horizon reaches past the project's last partition, and any missing
    snapshot or raw partition of the horizons, before anything is written.
    """
    ds = spec.dataset(model.label.dataset)
    view = label_view(spec, model)
    join_key = spec.entity(view.entity).join_key
    h = model.label.horizon_days
    last_needed = label_window(model, days[-1])[1]
    if last_needed > spec.partitions.end:
        raise MLForgeError(
            f"labels/{model.name}: the {h}-day horizon of {days[-1]} has not passed yet "
            f"(needs raw/{ds.name} up to {last_needed}; the last partition is {spec.partitions.end}). "
            f"The last materializable day is {date.fromordinal(spec.partitions.end.toordinal() - h)}."
        )
    stage_name = f"labels/{model.name}"
    views = label_views(spec, model)
    for v in views:
        missing = missing_snapshots(storage, v.name, days)
        if missing:
            raise MissingPartitionsError(stage_name, f"features/{v.name}", missing)
    future = days_between(label_window(model, days[0])[0], last_needed)
    missing = missing_days(storage, ds.name, future)
    if missing:
        raise MissingPartitionsError(
            stage_name, f"raw/{ds.name}", missing, "Materialize (backfill) them first."
        )
    # one read of every raw day the horizons cover, shared by all the days' labels
    events = load_days(storage, ds, future, day_col="__day")
    stored = []
    for d in days:
        keys = [read_snapshot(storage, v.name, d)[join_key] for v in views]
        entities = keys[0] if len(keys) == 1 else pl.concat(keys).unique().sort()
        stored.append(
            write_labels(
                storage,
                model.name,
                d,
                compute_labels(model, entities, events, join_key, "__day", d, ds.event_time.column),
            )
        )
    return stored
