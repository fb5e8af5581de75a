"""Stage `labels/<model>`: the target of each snapshot, once its horizon has passed."""

from __future__ import annotations

from datetime import date

import dagster as dg

from mlforge.config.project import Project
from mlforge.config.spec import ModelSpec
from mlforge.features.labels import build_labels, describe_label, label_view, label_views
from mlforge.models.base import Task
from mlforge_assets.conditions import after_upstream, when_matured
from mlforge_assets.partitions import asset_key, window
from mlforge_assets.stage import Stage, StageResult, stage_asset


def label_asset(project: Project, model: ModelSpec) -> dg.AssetsDefinition:
    """Labels of one model for each snapshot day."""
    spec = project.spec
    ds = spec.dataset(model.label.dataset)
    view = label_view(spec, model)
    join_key = spec.entity(view.entity).join_key
    h = model.label.horizon_days

    def run(stage: Stage, days: list[date]) -> StageResult:
        stored = build_labels(stage.storage, spec, model, days)
        total = sum(p.rows for p in stored)
        share = sum(p.label_sum for p in stored) / total if total else 0.0
        # binary: the share of positives; regression: the mean value; multiclass: the mean class
        name = "positive_rate" if model.model_task is Task.BINARY else "label_mean"
        return StageResult(
            metadata={
                "dagster/row_count": total,
                name: share,
                "horizon_days": h,
                "task": str(model.model_task),
            },
            data_version=stored[-1].sha256,
        )

    return stage_asset(
        project,
        key=asset_key(project, "labels", model.name),
        group="features",
        description=f"`{model.name}` target per {join_key}: {describe_label(model)}.",
        kinds={"parquet", "polars"},
        deps=[
            *[dg.AssetDep(asset_key(project, "features", v.name)) for v in label_views(spec, model)],
            window(project, asset_key(project, "raw", ds.name), 1, h),
        ],
        run=run,
        # once when they mature, again when a day they read changed (a late file)
        automation_condition=when_matured(h) | after_upstream(label="relabel after an input day changed"),
    )
