"""Raw datasets: read a source, validate it against the spec, store one parquet per day.

Each stored day carries a small `_meta.json` beside it (row count, schema, sha256 of the parquet
bytes). That hash is the partition's data version: Dagster shows it, trained models record the
versions they read, and DVC (when enabled) versions the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from mlforge.config.spec import DatasetSpec
from mlforge.io import layout
from mlforge.io.storage import Storage, parquet_bytes, read_json, read_parquet, write_json
from mlforge.io.timeline import key

_POLARS_TYPES: dict[str, Any] = {
    "string": pl.String,
    "int": pl.Int64,
    "float": pl.Float64,
    "bool": pl.Boolean,
    "date": pl.Date,
    "datetime": pl.Datetime("us"),
}


def polars_schema(ds: DatasetSpec) -> dict[str, Any]:
    """The polars dtype of each of the dataset's columns, as stored."""
    return {c: _POLARS_TYPES[s.type] for c, s in ds.columns.items()}


#: The day of every row of a static profile (no valid_from): before any partition, so stored in
#: the first one (see `store_days`' `carry_before`).
STATIC_DAY = date(1, 1, 1)


def day_column(ds: DatasetSpec) -> pl.Expr:
    """Expression giving the event day (a profile's valid_from day) of each row."""
    if ds.time_column is None:
        return pl.lit(STATIC_DAY, dtype=pl.Date)
    ts = pl.col(ds.time_column)
    return ts if ds.columns[ds.time_column].type == "date" else ts.dt.date()


def partition_day(ds: DatasetSpec, start: date | None = None) -> pl.Expr:
    """The partition a source row is stored in: its day, except that a profile's rows dated before
    `start` (the first partition) go into it — attributes valid before the history still hold."""
    day = day_column(ds)
    return pl.max_horizontal(day, pl.lit(start)) if ds.kind == "profile" and start is not None else day


@dataclass(frozen=True)
class StoredPartition:
    """What was written for one day."""

    day: date
    rows: int
    sha256: str
    dvc_md5: str | None = None


def store_days(
    storage: Storage,
    ds: DatasetSpec,
    frame: pl.DataFrame,
    days: list[date],
    version: Callable[[dict[str, bytes]], dict[str, str]] | None = None,
    start: date | None = None,
) -> list[StoredPartition]:
    """Write one parquet + sidecar per day in `days` (an empty parquet for a day with no rows).

    Each row goes to its `partition_day` (`start`: the first partition of the project); rows of
    other days are not stored.

    `version`, when given, receives {day key: the exact parquet bytes written} once for the whole
    range (DVC versions them in one batch) and returns {day key: md5}; the md5s go into the
    sidecars. Sidecars are written even if `version` raises, so each one always describes the
    parquet beside it; the error then propagates.
    """
    tagged = frame.with_columns(partition_day(ds, start).alias("__day")).filter(pl.col("__day").is_in(days))
    by_day: dict[date, pl.DataFrame] = {}
    for (d,), g in tagged.group_by("__day", maintain_order=True):
        by_day[d] = g.drop("__day")
    empty = frame.clear()
    written: dict[str, tuple[pl.DataFrame, bytes, str]] = {}
    for d in days:
        part = by_day.get(d, empty).sort(list(frame.columns))
        data = parquet_bytes(part)
        storage.write_bytes(layout.raw_data(ds.name, d), data)
        written[key(d)] = (part, data, hashlib.sha256(data).hexdigest())
    md5s: dict[str, str] = {}
    try:
        if version is not None:
            md5s = version({k: data for k, (_, data, _) in written.items()})
    finally:
        for d in days:
            part, _, digest = written[key(d)]
            meta: dict[str, object] = {
                "rows": part.height,
                "sha256": digest,
                "schema": {c: str(t) for c, t in part.schema.items()},
            }
            if key(d) in md5s:
                meta["dvc_md5"] = md5s[key(d)]
            write_json(storage, layout.raw_meta(ds.name, d), meta)
    return [StoredPartition(d, written[key(d)][0].height, written[key(d)][2], md5s.get(key(d))) for d in days]


def missing_days(storage: Storage, dataset: str, days: list[date]) -> list[str]:
    """Days in `days` that have no stored partition of `dataset`."""
    return [key(d) for d in days if not storage.exists(layout.raw_meta(dataset, d))]


def stored_partition_days(storage: Storage, dataset: str) -> list[date]:
    """Every day with a stored partition of `dataset` (one listing), oldest first."""
    listing = storage.list(layout.raw_prefix(dataset))
    return sorted(layout.stored_days(listing, lambda d: layout.raw_meta(dataset, d)))


def load_days(
    storage: Storage, ds: DatasetSpec, days: list[date], day_col: str | None = None
) -> pl.DataFrame:
    """The stored rows of `days`, concatenated (the caller checks completeness first); with
    `day_col`, each row's partition day in that column."""
    frames = [read_parquet(storage, layout.raw_data(ds.name, d)) for d in days]
    if day_col is not None:
        frames = [
            f.with_columns(pl.lit(d, pl.Date).alias(day_col)) for f, d in zip(frames, days, strict=True)
        ]
    if not frames:
        schema = polars_schema(ds)
        return pl.DataFrame(schema={**schema, day_col: pl.Date} if day_col else schema)
    return pl.concat(frames, how="vertical_relaxed")


def data_versions(storage: Storage, dataset: str, days: list[date]) -> dict[str, str]:
    """{day: sha256} of stored partitions."""
    return {key(d): read_json(storage, layout.raw_meta(dataset, d))["sha256"] for d in days}
