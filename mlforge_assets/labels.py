"""Stage `labels/<model>`: the target of each snapshot, once its horizon has passed."""

from __future__ import annotations

from datetime import date

import dagster as dg

from mlforge.config.project import Project
from mlforge.config.spec import ModelSpec
from mlforge.data.raw import day_column, load_days, missing_days
from mlforge.errors import MissingPartitionsError, MLForgeError
from mlforge.features.labels import LABEL, churn_labels
from mlforge.features.offline import missing_snapshots, read_snapshot
from mlforge.features.refs import service_features
from mlforge.io import layout
from mlforge.io.storage import write_json, write_parquet
from mlforge.io.timeline import days_between, label_window
from mlforge_assets.conditions import when_matured
from mlforge_assets.partitions import asset_key, window
from mlforge_assets.stage import Stage, StageResult, stage_asset


def label_asset(project: Project, model: ModelSpec) -> dg.AssetsDefinition:
    """Labels of one model for each snapshot day."""
    spec = project.spec
    ds = spec.dataset(model.label.dataset)
    view = spec.feature_view(service_features(spec, model.feature_service)[0][0])
    join_key = spec.entity(view.entity).join_key
    h = model.label.horizon_days

    def run(stage: Stage, days: list[date]) -> StageResult:
        last_needed = label_window(model, days[-1])[1]
        if last_needed > spec.partitions.end:
            raise MLForgeError(
                f"labels/{model.name}: the {h}-day horizon of {days[-1]} has not passed yet "
                f"(needs raw/{ds.name} up to {last_needed}; the last partition is {spec.partitions.end}). "
                f"The last materializable day is {date.fromordinal(spec.partitions.end.toordinal() - h)}."
            )
        stage_name = f"labels/{model.name}"
        missing = missing_snapshots(stage.storage, view.name, days)
        if missing:
            raise MissingPartitionsError(stage_name, f"features/{view.name}", missing)
        future = days_between(label_window(model, days[0])[0], last_needed)
        missing = missing_days(stage.storage, ds.name, future)
        if missing:
            raise MissingPartitionsError(
                stage_name, f"raw/{ds.name}", missing, "Materialize (backfill) them first."
            )
        events = load_days(stage.storage, ds, future).with_columns(day_column(ds).alias("__day"))
        total, positives = 0, 0
        for d in days:
            entities = read_snapshot(stage.storage, view.name, d)[join_key]
            labels = churn_labels(model, entities, events, join_key, "__day", d)
            digest = write_parquet(stage.storage, layout.label_data(model.name, d), labels)
            write_json(
                stage.storage, layout.label_meta(model.name, d), {"rows": labels.height, "sha256": digest}
            )
            total += labels.height
            positives += int(labels[LABEL].sum())
        return StageResult(
            metadata={
                "dagster/row_count": total,
                "positive_rate": positives / total if total else 0.0,
                "horizon_days": h,
            },
            data_version=digest,
        )

    return stage_asset(
        project,
        key=asset_key(project, "labels", model.name),
        group="features",
        description=f"`{model.name}` target per {join_key}: no event in the {h} days after the snapshot.",
        kinds={"parquet", "polars"},
        deps=[
            dg.AssetDep(asset_key(project, "features", view.name)),
            window(asset_key(project, "raw", ds.name), 1, h),
        ],
        run=run,
        automation_condition=when_matured(h),
    )
