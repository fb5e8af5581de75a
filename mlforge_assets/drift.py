"""Stage `monitoring/<model>/drift`: Evidently drift of a day's features and served predictions.

Both are compared with the reference of the version that is champion when the partition runs:
the feature snapshot of the day against the champion's holdout snapshot, and — when serving
logged enough predictions that day — the logged inputs and scores against the same reference and
the champion's scores on it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from mlforge.config.project import Project
from mlforge.config.spec import ModelSpec
from mlforge.data.checks import CheckOutcome
from mlforge.errors import DataError
from mlforge.features.offline import service_frame
from mlforge.features.refs import service_features, service_views
from mlforge.io import layout
from mlforge.io.storage import read_parquet, write_json
from mlforge.models.base import CUTOFF_TAG
from mlforge.models.registration import champion_or_fail, version_model
from mlforge.models.tracking import ModelVersionInfo
from mlforge.monitoring.drift import MIN_DRIFT_LOG_ROWS, DriftResult, drift_report
from mlforge.monitoring.drift_inputs import SCORE, drift_columns, scored_reference, served_inputs
from mlforge_assets.metadata import md_table
from mlforge_assets.partitions import asset_key
from mlforge_assets.stage import Stage, StageResult, check, stage_asset


def drift_asset(project: Project, model: ModelSpec) -> dg.AssetsDefinition:
    """Daily drift report of one model's features and served predictions."""
    spec = project.spec
    monitoring = spec.monitoring_for(model.name)
    mon = monitoring.drift
    alert_at = monitoring.alert_thresholds.get("drift_share", mon.threshold)
    pairs = service_features(spec, model.feature_service)
    features = [f for _, f in pairs]
    endpoints = spec.endpoints_of(model.name)

    def reference_for(stage: Stage, champion: ModelVersionInfo) -> pl.DataFrame:
        cutoff = champion.tags.get(CUTOFF_TAG)
        if not cutoff:
            raise DataError(f"champion v{champion.version} of {model.name} has no mlforge.cutoff tag")
        return read_parquet(stage.storage, layout.model_reference(model.name, date.fromisoformat(cutoff)))

    def write_report(stage: Stage, d: date, res: DriftResult, *, served: bool) -> None:
        stage.storage.write_bytes(layout.drift_report(model.name, d, "html", served=served), res.html)
        stage.storage.write_bytes(layout.drift_report(model.name, d, "json", served=served), res.json)

    def run(stage: Stage, days: list[date]) -> StageResult:
        champion = champion_or_fail(stage.tracker, model.name, f"monitoring/{model.name}/drift")
        reference = reference_for(stage, champion)
        scored: pl.DataFrame | None = None
        res: DriftResult | None = None
        log_res: DriftResult | None = None
        summary: dict[str, Any] = {}
        for d in days:
            current = service_frame(stage.storage, spec, model.feature_service, d)
            res = drift_report(reference, current, features, mon.method, mon.threshold)
            write_report(stage, d, res, served=False)
            served = served_inputs(stage.storage, endpoints, d, features)
            log_res = None
            if served.height >= MIN_DRIFT_LOG_ROWS:
                if scored is None:  # scored once per run, only if a day has enough served rows
                    champion_model = version_model(stage.tracker, champion, model)
                    scored = scored_reference(champion_model, reference, features)
                cols = drift_columns(served, features)
                log_res = drift_report(scored, served, cols, mon.method, mon.threshold)
                write_report(stage, d, log_res, served=True)
            summary = {
                "drift_share": res.drift_share,
                "dataset_drift": res.dataset_drift,
                "column_scores": res.column_scores,
                "drifted_columns": sorted(c for c, f in res.column_drifted.items() if f),
                "champion_version": champion.version,
                "champion_cutoff": champion.tags.get(CUTOFF_TAG),
                "rows": current.height,
                "threshold": mon.threshold,
                "log_rows": served.height,
                "log_drift_share": log_res.drift_share if log_res else None,
                "score_drift": log_res.column_drifted.get(SCORE) if log_res else None,
                "report_html": stage.storage.uri(layout.drift_report(model.name, d, "html")),
            }
            write_json(stage.storage, layout.drift_summary(model.name, d), summary)
        assert res is not None
        last = days[-1]
        share = max(res.drift_share, log_res.drift_share if log_res else 0.0)
        metadata: dict[str, Any] = {
            "drift_share": res.drift_share,
            "dataset_drift": res.dataset_drift,
            "drifted_columns": res.drifted_columns,
            "threshold": mon.threshold,
            "champion_version": champion.version,
            "rows": summary["rows"],
            "top_columns": md_table(res.top_columns()),
            "report_html": dg.MetadataValue.path(
                stage.storage.uri(layout.drift_report(model.name, last, "html"))
            ),
            "log_rows": summary["log_rows"],
        }
        if log_res is not None:
            metadata |= {
                "log_drift_share": log_res.drift_share,
                "score_drift": bool(log_res.column_drifted.get(SCORE, False)),
                "log_top_columns": md_table(log_res.top_columns()),
                "log_report_html": dg.MetadataValue.path(
                    stage.storage.uri(layout.drift_report(model.name, last, "html", served=True))
                ),
            }
        passed = share < alert_at
        outcome = CheckOutcome(
            "drift_share",
            passed,
            f"drift share {share:.2f} {'<' if passed else '≥'} threshold {alert_at} on {last}",
            {"value": share, "threshold": alert_at, "drifted": summary["drifted_columns"]},
        )
        return StageResult(metadata=metadata, checks=[outcome])

    return stage_asset(
        project,
        key=asset_key(project, "monitoring", model.name, "drift"),
        group="monitoring",
        description=(
            f"Evidently data drift of `{model.name}`'s features (and of its served inputs and scores) "
            "against the champion's reference."
        ),
        kinds={"evidently", "html"},
        deps=[
            dg.AssetDep(asset_key(project, "features", v)) for v in service_views(spec, model.feature_service)
        ]
        + [dg.AssetDep(asset_key(project, "models", model.name, "registered"))],
        run=run,
        checks=[
            check(
                "drift_share",
                f"Share of drifted columns below {alert_at} (features and served inputs).",
                blocking=False,
                alert=True,
                threshold=alert_at,
            )
        ],
    )
