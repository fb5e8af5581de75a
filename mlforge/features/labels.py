"""Labels: the target as known once the horizon after a snapshot has passed.

churn(entity, D) = 1 when the entity has no event in (D, D + horizon]. The label of D can only be
computed once every raw partition of that horizon exists; until then it is not materializable.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from mlforge.config.spec import ModelSpec
from mlforge.features.snapshots import EVENT_TS
from mlforge.io import layout
from mlforge.io.storage import Storage
from mlforge.io.timeline import end_of, key, label_window

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
