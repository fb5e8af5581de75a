"""Stage `monitoring/<model>/drift`: Evidently drift of a day's features vs the champion's reference."""

from __future__ import annotations

from datetime import date

import dagster as dg

from mlforge.drift import drift_report
from mlforge.errors import DataError
from mlforge.features import service_features
from mlforge.lifecycle import champion_or_fail, model_dir, service_frame
from mlforge.project import Project
from mlforge.spec import ModelSpec
from mlforge.storage import read_parquet, write_json
from mlforge.timeline import key
from mlforge_assets.common import Stage, StageResult, asset_key, md_table, stage_asset


def drift_key(model: str, d: date, name: str) -> str:
    """Storage key of a drift report file."""
    return f"monitoring/{model}/drift/date={key(d)}/{name}"


def drift_asset(project: Project, model: ModelSpec) -> dg.AssetsDefinition:
    """Daily drift report of one model's features."""
    spec = project.spec
    mon = spec.monitoring_for(model.name).drift
    features = [f for _, f in service_features(spec, model.feature_service)]

    def run(stage: Stage, days: list[date]) -> StageResult:
        champion = champion_or_fail(stage.tracker, model.name, f"monitoring/{model.name}/drift")
        cutoff = champion.tags.get("mlforge.cutoff")
        if not cutoff:
            raise DataError(f"champion v{champion.version} of {model.name} has no mlforge.cutoff tag")
        reference = read_parquet(
            stage.storage, f"{model_dir(model.name, date.fromisoformat(cutoff))}/reference.parquet"
        )
        res = None
        for d in days:
            current = service_frame(stage.storage, spec, model.feature_service, d)
            res = drift_report(reference, current, features, mon.method, mon.threshold)
            stage.storage.write_bytes(drift_key(model.name, d, "report.html"), res.html)
            stage.storage.write_bytes(drift_key(model.name, d, "report.json"), res.json)
            write_json(
                stage.storage,
                drift_key(model.name, d, "summary.json"),
                {
                    "drift_share": res.drift_share,
                    "dataset_drift": res.dataset_drift,
                    "column_scores": res.column_scores,
                    "champion_version": champion.version,
                    "rows": current.height,
                },
            )
        assert res is not None
        top = sorted(res.column_scores.items(), key=lambda kv: kv[1])[:10]
        return StageResult(
            metadata={
                "drift_share": res.drift_share,
                "dataset_drift": res.dataset_drift,
                "drifted_columns": res.drifted_columns,
                "threshold": mon.threshold,
                "champion_version": champion.version,
                "top_columns": md_table([{"column": c, "score": s} for c, s in top]),
                "report_html": dg.MetadataValue.path(
                    stage.storage.uri(drift_key(model.name, days[-1], "report.html"))
                ),
            }
        )

    return stage_asset(
        project,
        key=asset_key(project, "monitoring", model.name, "drift"),
        group="monitoring",
        description=f"Evidently data drift of `{model.name}`'s features against the champion's training reference.",
        kinds={"evidently", "html"},
        deps=[
            dg.AssetDep(asset_key(project, "features", v))
            for v in sorted({v for v, _ in service_features(spec, model.feature_service)})
        ]
        + [dg.AssetDep(asset_key(project, "models", model.name, "registered"))],
        run=run,
    )
