"""Labels: the target as known once the horizon after a snapshot has passed.

churn(entity, D) = 1 when the entity has no event in (D, D + horizon]. The label of D can only be
computed once every raw partition of that horizon exists; until then it is not materializable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from mlforge.config.spec import FeatureViewSpec, ModelSpec, ProjectSpec
from mlforge.data.raw import day_column, load_days, missing_days
from mlforge.errors import MissingPartitionsError, MLForgeError
from mlforge.features.offline import missing_snapshots, read_snapshot
from mlforge.features.refs import service_features
from mlforge.features.snapshots import EVENT_TS
from mlforge.io import layout
from mlforge.io.storage import Storage, write_json, write_parquet
from mlforge.io.timeline import days_between, end_of, key, label_window

LABEL = "label"


def churn_labels(
    model: ModelSpec,
    entities: pl.Series,
    future_events: pl.DataFrame,
    entity_key: str,
    day_col: str,
    d: date,
) -> pl.DataFrame:
    """Label every entity of the snapshot at `d`: 1 = no event in the horizon after d."""
    first, last = label_window(model, d)
    active = future_events.filter(pl.col(day_col).is_between(first, last)).select(entity_key).unique()
    return (
        pl.DataFrame({entity_key: entities})
        .with_columns(
            pl.col(entity_key).is_in(active[entity_key].implode()).not_().cast(pl.Int8).alias(LABEL),
            pl.lit(end_of(d)).cast(pl.Datetime("us")).alias(EVENT_TS),
        )
        .select(entity_key, EVENT_TS, LABEL)
        .sort(entity_key)
    )


def missing_labels(storage: Storage, model: str, days: list[date]) -> list[str]:
    """Days with no stored labels."""
    return [key(d) for d in days if not storage.exists(layout.label_meta(model, d))]


@dataclass(frozen=True)
class StoredLabels:
    """What was written for the labels of one snapshot day."""

    day: date
    rows: int
    positives: int
    sha256: str


def label_view(spec: ProjectSpec, model: ModelSpec) -> FeatureViewSpec:
    """The feature view whose snapshot entities get labelled: the first of the model's service."""
    return spec.feature_view(service_features(spec, model.feature_service)[0][0])


def write_labels(storage: Storage, model: str, d: date, labels: pl.DataFrame) -> StoredLabels:
    """Store the labels of day `d` and their sidecar (row count and sha256 of the parquet)."""
    digest = write_parquet(storage, layout.label_data(model, d), labels)
    write_json(storage, layout.label_meta(model, d), {"rows": labels.height, "sha256": digest})
    return StoredLabels(d, labels.height, int(labels[LABEL].sum()), digest)


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
    missing = missing_snapshots(storage, view.name, days)
    if missing:
        raise MissingPartitionsError(stage_name, f"features/{view.name}", missing)
    future = days_between(label_window(model, days[0])[0], last_needed)
    missing = missing_days(storage, ds.name, future)
    if missing:
        raise MissingPartitionsError(
            stage_name, f"raw/{ds.name}", missing, "Materialize (backfill) them first."
        )
    # one read of every raw day the horizons cover, shared by all the days' labels
    events = load_days(storage, ds, future).with_columns(day_column(ds).alias("__day"))
    stored = []
    for d in days:
        entities = read_snapshot(storage, view.name, d)[join_key]
        stored.append(
            write_labels(storage, model.name, d, churn_labels(model, entities, events, join_key, "__day", d))
        )
    return stored
