"""Offline store: feature snapshots as day-partitioned parquet under the storage root.

`point_in_time_join` is the join behind `FeatureStore.get_historical_features` and every training
set: for each (entity, event timestamp) row it takes the latest snapshot at or before that time
and within the view's TTL — never one from after it. `join_service` applies it to every view
of a feature service, a view keyed by another entity through the key its main-entity view held
at the same time (a two-step point-in-time join).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import polars as pl

from mlforge.config.spec import ProjectSpec
from mlforge.errors import DataError, MissingPartitionsError
from mlforge.features.read_plan import JoinKey
from mlforge.features.refs import service_features, service_views
from mlforge.features.snapshots import EVENT_TS
from mlforge.io import layout
from mlforge.io.storage import Storage, read_json, read_parquet, write_json, write_parquet
from mlforge.io.timeline import end_of, key


def write_snapshot(
    storage: Storage,
    view: str,
    d: date,
    df: pl.DataFrame,
    lineage: dict[str, str],
    entity_index: str | None = None,
) -> str:
    """Store one snapshot and its sidecar (row count, hash, the raw data versions of its lookback,
    the sha256 of the entity index it drew its universe and lifetime values from)."""
    digest = write_parquet(storage, layout.snapshot_data(view, d), df)
    meta: dict[str, object] = {"rows": df.height, "sha256": digest, "lineage": lineage}
    if entity_index is not None:
        meta["entity_index"] = entity_index
    write_json(storage, layout.snapshot_meta(view, d), meta)
    return digest


def missing_snapshots(storage: Storage, view: str, days: list[date]) -> list[str]:
    """Days with no stored snapshot of `view`."""
    return [key(d) for d in days if not storage.exists(layout.snapshot_meta(view, d))]


def stored_snapshot_days(storage: Storage, view: str) -> list[date]:
    """Every day with a stored snapshot of `view` (one listing), oldest first."""
    listing = storage.list(layout.snapshot_prefix(view))
    return sorted(layout.stored_days(listing, lambda d: layout.snapshot_meta(view, d)))


def read_snapshot(storage: Storage, view: str, d: date) -> pl.DataFrame:
    """One stored snapshot."""
    return read_parquet(storage, layout.snapshot_data(view, d))


def snapshot_versions(storage: Storage, view: str, days: list[date]) -> dict[str, str]:
    """{day: sha256} of stored snapshots."""
    return {key(d): read_json(storage, layout.snapshot_meta(view, d))["sha256"] for d in days}


def read_snapshots(storage: Storage, view: str, days: list[date]) -> pl.DataFrame:
    """Stored snapshots of `days`, concatenated."""
    frames = [read_snapshot(storage, view, d) for d in days]
    if not frames:
        raise DataError(f"no snapshots of feature view {view} requested")
    return pl.concat(frames, how="vertical_relaxed")


def point_in_time_join(
    entity_df: pl.DataFrame,
    features: pl.DataFrame,
    entity_key: str,
    ttl: timedelta,
    columns: list[str],
    timestamp_col: str = EVENT_TS,
) -> pl.DataFrame:
    """Join the latest `features` row at or before each entity row's timestamp, within `ttl`.

    A DuckDB ASOF join over Arrow data (no copies through pandas). Rows with no such feature row
    keep nulls. The result preserves `entity_df`'s rows, order and columns, followed by `columns`.
    """
    import duckdb

    left = entity_df.with_row_index("__row").with_columns(
        pl.col(timestamp_col).cast(pl.Datetime("us")).alias("__entity_ts")
    )
    right = features.select(
        entity_key, pl.col(EVENT_TS).cast(pl.Datetime("us")).alias("__feature_ts"), *columns
    )
    ttl_us = int(ttl.total_seconds() * 1_000_000)
    picked = ", ".join(
        f'CASE WHEN epoch_us(l.__entity_ts) - epoch_us(r.__feature_ts) <= {ttl_us} THEN r."{c}" END AS "{c}"'
        for c in columns
    )
    con = duckdb.connect()
    try:
        con.register("l", left.select("__row", entity_key, "__entity_ts").to_arrow())
        con.register("r", right.to_arrow())
        matched = con.sql(
            f"SELECT l.__row, {picked} FROM l ASOF LEFT JOIN r "
            f'ON l."{entity_key}" = r."{entity_key}" AND l.__entity_ts >= r.__feature_ts ORDER BY l.__row'
        ).pl()
    finally:
        con.close()
    matched = matched.with_columns(
        pl.col("__row").cast(pl.UInt32), *[pl.col(c).cast(features.schema[c]) for c in columns]
    )
    return left.drop("__entity_ts").join(matched, on="__row", how="left").sort("__row").drop("__row")


def join_service(
    rows: pl.DataFrame, spec: ProjectSpec, service: str, snapshots: Callable[[str], pl.DataFrame]
) -> pl.DataFrame:
    """Every feature of `service`, point-in-time, onto `rows` of (main join key, event_timestamp).

    `snapshots(view)` gives the view's stored snapshots (read once per view). A joined view's row
    is the one of the key its main-entity feature held at the row's time (a missing key or no
    such row: nulls), then as of that same time within the view's TTL.
    """
    pairs = service_features(spec, service)
    main_key = spec.service_entity(service).join_key
    joins = {j.view: JoinKey.of(spec, j) for j in spec.feature_service(service).joins}
    cache: dict[str, pl.DataFrame] = {}

    def snaps(view: str) -> pl.DataFrame:
        if view not in cache:
            cache[view] = snapshots(view)
        return cache[view]

    def ttl(view: str) -> timedelta:
        return timedelta(days=spec.feature_view(view).ttl_days)

    out = rows
    for view in dict.fromkeys(v for v, _ in pairs):
        cols = [f for v, f in pairs if v == view]
        via = joins.get(view)
        if via is None:
            out = point_in_time_join(out, snaps(view), main_key, ttl(view), cols)
            continue
        held = point_in_time_join(
            out.select(main_key, EVENT_TS), snaps(via.view), main_key, ttl(via.view), [via.feature]
        )
        right = snaps(view)
        other = spec.join_key(view)
        keys = pl.Series("__via", via.keys(held[via.feature].to_numpy()), dtype=pl.String)
        joined = point_in_time_join(
            out.with_columns(keys.cast(right.schema[other])),
            right.rename({other: "__via"}),
            "__via",
            ttl(view),
            cols,
        )
        out = joined.drop("__via")
    return out


def service_frame(storage: Storage, spec: ProjectSpec, service: str, d: date) -> pl.DataFrame:
    """Every entity's features of a feature service as of day `d`: one row per entity of the main
    views' snapshots (the union of their universes), joined views through their keys."""
    pairs = service_features(spec, service)
    views = list(dict.fromkeys(v for v, _ in pairs))
    joins = spec.feature_service(service).joins
    for view_name in service_views(spec, service):
        missing = missing_snapshots(storage, view_name, [d])
        if missing:
            raise MissingPartitionsError(f"service {service}", f"features/{view_name}", missing)
    main_key = spec.service_entity(service).join_key
    joined = {j.view for j in joins}
    entities: pl.DataFrame | None = None
    for view_name in views:
        if view_name in joined:
            continue
        ids = read_snapshot(storage, view_name, d).select(main_key)
        entities = ids if entities is None else entities.join(ids, on=main_key, how="full", coalesce=True)
    if entities is None:
        raise DataError(f"feature service {service} names no features")
    rows = entities.with_columns(pl.lit(end_of(d)).cast(pl.Datetime("us")).alias(EVENT_TS))
    frame = join_service(rows, spec, service, lambda v: read_snapshot(storage, v, d))
    return frame.drop(EVENT_TS)
