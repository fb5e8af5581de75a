"""Stages `features/<view>` (offline snapshots) and `online/<view>` (latest values per entity)."""

from __future__ import annotations

from datetime import date
from functools import partial

import dagster as dg

from mlforge.config.project import Project
from mlforge.config.spec import FeatureViewSpec
from mlforge.data import checks as core_checks
from mlforge.data.raw import data_versions, load_days, missing_days
from mlforge.errors import MissingPartitionsError
from mlforge.features.entities import index_versions, missing_index_days, read_index
from mlforge.features.offline import missing_snapshots, read_snapshots, write_snapshot
from mlforge.features.online import load_latest
from mlforge.features.refs import feature_names
from mlforge.features.snapshots import EVENT_TS, iter_snapshots
from mlforge.io.timeline import clip, days_between, feature_window, key
from mlforge_assets.conditions import after_upstream
from mlforge_assets.metadata import md_table
from mlforge_assets.partitions import asset_key, window
from mlforge_assets.stage import Stage, StageResult, check, stage_asset


def feature_asset(project: Project, view: FeatureViewSpec) -> dg.AssetsDefinition:
    """Offline snapshots of one feature view, one per day."""
    spec = project.spec
    ds = spec.dataset(view.source)
    join_key = spec.entity(view.entity).join_key

    # the sources whose lookback rows a snapshot reads (a profile view reads its dataset's index only)
    sources = [] if view.kind == "profile" else [spec.dataset(n) for n in [view.source, *view.extra_sources]]

    def run(stage: Stage, days: list[date]) -> StageResult:
        first, _ = feature_window(view, days[0])
        needed = clip(spec, days_between(first, days[-1])) if sources else []
        for src in sources:
            missing = missing_days(stage.storage, src.name, needed)
            if missing:
                raise MissingPartitionsError(
                    f"features/{view.name}", f"raw/{src.name}", missing, "Materialize (backfill) them first."
                )
        unindexed = missing_index_days(stage.storage, ds.name, days)
        if unindexed:
            raise MissingPartitionsError(f"features/{view.name}", f"entities/{ds.name}", unindexed)
        tables = {src.name: load_days(stage.storage, src, needed, day_col="__day") for src in sources}
        events = tables.pop(ds.name) if sources else load_days(stage.storage, ds, [], day_col="__day")
        versions = data_versions(stage.storage, ds.name, needed)
        indexed = index_versions(stage.storage, ds.name, days)
        outcomes, total, last = [], 0, None
        # One pass over the range (sorted once, one window filter per day), not one per day over
        # all events; each snapshot is bit-identical to compute_snapshot's and written as it comes.
        index = partial(read_index, stage.storage, ds.name)
        for d, snap in iter_snapshots(view, events, join_key, "__day", days, index, tables):
            lo, hi = feature_window(view, d)
            lineage = {k: v for k, v in versions.items() if lo.isoformat() <= k <= hi.isoformat()}
            last_hash = write_snapshot(stage.storage, view.name, d, snap, lineage, indexed[key(d)])
            outcomes.append((core_checks.unique_keys(snap, [join_key]), core_checks.no_future_data(snap, d)))
            total += snap.height
            last = snap
        assert last is not None
        worst = [next((o[i] for o in outcomes if not o[i].passed), outcomes[-1][i]) for i in (0, 1)]
        return StageResult(
            metadata={
                "dagster/row_count": total,
                "entities_last_day": last.height,
                "features": feature_names(view),
                "preview": md_table(last.drop(EVENT_TS).head(5).to_dicts()),
            },
            checks=worst,
            data_version=last_hash,
        )

    return stage_asset(
        project,
        key=asset_key(project, "features", view.name),
        group="features",
        description=view.description or f"Snapshot of `{view.name}` as of the end of the day.",
        kinds={"parquet", "polars"},
        deps=[
            *[
                window(project, asset_key(project, "raw", src.name), -(view.read_days - 1), 0)
                for src in sources
            ],
            dg.AssetDep(asset_key(project, "entities", ds.name)),
        ],
        run=run,
        checks=[
            check("unique_keys", f"One row per {join_key}.", keys=[join_key]),
            check("no_future_data", "No event after the snapshot day was read."),
        ],
        automation_condition=after_upstream(label="recompute after an input day changed"),
    )


def online_asset(project: Project, view: FeatureViewSpec) -> dg.AssetsDefinition:
    """Latest values of one feature view in the online store, with the view's TTL."""
    join_key = project.spec.join_key(view.name)
    names = feature_names(view)

    def run(stage: Stage, days: list[date]) -> StageResult:
        missing = missing_snapshots(stage.storage, view.name, days)
        if missing:
            raise MissingPartitionsError(f"online/{view.name}", f"features/{view.name}", missing)
        snaps = read_snapshots(stage.storage, view.name, days)
        load = load_latest(stage.online, view.name, snaps, join_key, names, view.ttl_days)
        return StageResult(
            metadata={
                "entities": load.entities,
                "written": load.written,
                "skipped_older": load.entities - load.written,
                "ttl_seconds": load.ttl_seconds,
            }
        )

    return stage_asset(
        project,
        key=asset_key(project, "online", view.name),
        group="features",
        description=f"Latest `{view.name}` values per {join_key} in the online store.",
        kinds={"redis" if project.settings.online_store_url.startswith("redis") else "sqlite"},
        deps=[dg.AssetDep(asset_key(project, "features", view.name))],
        run=run,
        automation_condition=after_upstream(label="reload after the snapshot changed"),
    )
