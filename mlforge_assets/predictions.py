"""Stage `predictions/<model>`: batch scores of every entity with the champion."""

from __future__ import annotations

from datetime import date

import dagster as dg

from mlforge.config.project import Project
from mlforge.config.spec import ModelSpec
from mlforge.features.offline import service_frame
from mlforge.features.refs import service_features, service_views
from mlforge.io import layout
from mlforge.io.storage import write_parquet
from mlforge.models.predictions import PREDICTED_LABEL, score_frame
from mlforge.models.registration import champion_or_fail, version_model, version_threshold
from mlforge_assets.conditions import after_upstream
from mlforge_assets.metadata import md_table
from mlforge_assets.partitions import asset_key
from mlforge_assets.stage import Stage, StageResult, algorithm_kind, stage_asset


def predictions_asset(project: Project, model: ModelSpec) -> dg.AssetsDefinition:
    """Daily batch predictions of one model."""
    spec = project.spec
    pairs = service_features(spec, model.feature_service)
    features = [f for _, f in pairs]
    join_key = spec.service_entity(model.feature_service).join_key

    registered = asset_key(project, "models", model.name, "registered")

    def run(stage: Stage, days: list[date]) -> StageResult:
        champion = champion_or_fail(stage.tracker, model.name, f"predictions/{model.name}")
        champion_model = version_model(stage.tracker, champion, model)
        threshold = version_threshold(champion, model)
        total, last = 0, None
        for d in days:
            frame = service_frame(stage.storage, spec, model.feature_service, d)
            last = score_frame(champion_model, frame, features, join_key, champion.version, threshold)
            write_parquet(stage.storage, layout.predictions(model.name, d), last)
            total += last.height
        assert last is not None
        return StageResult(
            metadata={
                "dagster/row_count": total,
                "model_version": champion.version,
                "mean_score": float(last["score"].mean() or 0.0),
                **(
                    {"positive_share": float(last[PREDICTED_LABEL].mean() or 0.0)}
                    if model.model_task == "binary"
                    else {}
                ),
                "preview": md_table(
                    last.drop("probabilities", strict=False).sort("score", descending=True).head(5).to_dicts()
                ),
            }
        )

    return stage_asset(
        project,
        key=asset_key(project, "predictions", model.name),
        group="predictions",
        description=f"Scores of every {join_key} by the `{model.name}` champion, for offline consumers.",
        kinds={"parquet", algorithm_kind(model.algorithm)},
        deps=[
            dg.AssetDep(asset_key(project, "features", v)) for v in service_views(spec, model.feature_service)
        ]
        + [dg.AssetDep(registered)],
        run=run,
        automation_condition=after_upstream(label="rescore after a new registration or changed features"),
    )
