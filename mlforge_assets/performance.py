"""Stage `monitoring/<model>/performance`: the champion's live quality once a day's labels matured."""

from __future__ import annotations

from datetime import date

import dagster as dg
import polars as pl

from mlforge.errors import MissingPartitionsError
from mlforge.features import service_features
from mlforge.labels import label_key, label_meta_key
from mlforge.lifecycle import champion_or_fail
from mlforge.performance import (
    DEFAULT_THRESHOLD,
    MIN_LOG_ROWS,
    STATUS_OK_DAY,
    THRESHOLDS,
    DayPerformance,
    check_name,
    evaluate_day,
    summary_key,
    threshold_checks,
)
from mlforge.prediction_log import empty_frame, read_prediction_log
from mlforge.predictions import predictions_key
from mlforge.project import Project
from mlforge.spec import ModelSpec
from mlforge.storage import read_parquet, write_json
from mlforge.timeline import key
from mlforge_assets.common import Stage, StageResult, asset_key, check, md_table, stage_asset


def labels_matured_condition() -> dg.AutomationCondition:
    """Materialize a partition when a dependency of it (its labels, its predictions) is updated and
    none is missing or running — i.e. when the labels of that day arrive. Historic partitions count
    too (no latest-time-window restriction): labels always arrive a horizon after their day."""
    return (
        dg.AutomationCondition.any_deps_match(dg.AutomationCondition.newly_updated())
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("labels_matured")


def performance_asset(project: Project, model: ModelSpec) -> dg.AssetsDefinition:
    """Daily live performance of one model: quality vs matured labels, latency and errors from the log."""
    spec = project.spec
    pairs = service_features(spec, model.feature_service)
    join_key = spec.entity(spec.feature_view(pairs[0][0]).entity).join_key
    horizon = model.label.horizon_days
    endpoints = [d.endpoint for d in spec.deployments if d.model == model.name]
    thresholds = {
        k: v for k, v in spec.monitoring_for(model.name).alert_thresholds.items() if k in THRESHOLDS
    }
    stage_name = f"monitoring/{model.name}/performance"

    def run(stage: Stage, days: list[date]) -> StageResult:
        champion = champion_or_fail(stage.tracker, model.name, stage_name)
        results: list[DayPerformance] = []
        for d in days:
            labels = None
            predictions = None
            if stage.storage.exists(label_meta_key(model.name, d)):
                labels = read_parquet(stage.storage, label_key(model.name, d))
                if not stage.storage.exists(predictions_key(model.name, d)):
                    raise MissingPartitionsError(
                        stage_name, f"predictions/{model.name}", [key(d)], "Materialize them first."
                    )
                predictions = read_parquet(stage.storage, predictions_key(model.name, d))
            logs = [f for ep in endpoints if (f := read_prediction_log(stage.storage, ep, d)).height]
            log = pl.concat(logs, how="diagonal_relaxed") if logs else empty_frame()
            perf = evaluate_day(
                d,
                horizon_days=horizon,
                labels=labels,
                predictions=predictions,
                log=log,
                entity_key=join_key,
                champion_version=champion.version,
                endpoints=endpoints,
            )
            write_json(stage.storage, summary_key(model.name, d), perf.to_json())
            results.append(perf)
        last = results[-1]
        s = last.to_json()
        if last.status != STATUS_OK_DAY:
            stage.context.log.info(
                f"{stage_name} {key(last.day)}: {last.status} (they mature on {s['matures_on']})"
            )
        table = []
        for p in results[-5:]:
            for source, q in (("batch", p.batch), ("log", p.log)):
                if q is None:
                    continue
                table.append(
                    {
                        "day": key(p.day),
                        "source": source,
                        "rows": q.rows,
                        "auc": q.auc,
                        "precision": q.precision,
                        "recall": q.recall,
                        "f1": q.f1,
                        "brier": q.brier,
                        "ece": q.ece,
                        "positive_rate": q.positive_rate,
                        "mean_score": q.mean_score,
                    }
                )
        return StageResult(
            metadata={
                "status": last.status,
                "matures_on": s["matures_on"],
                "quality_source": s["quality_source"],
                "auc": s["auc"],
                "f1": s["f1"],
                "precision": s["precision"],
                "recall": s["recall"],
                "brier": s["brier"],
                "ece": s["ece"],
                "rows": s["rows"],
                "log_rows": s["log_rows"],
                "log_labelled_rows": s["log_labelled_rows"],
                "latency_p50_ms": s["latency_p50_ms"],
                "latency_p99_ms": s["latency_p99_ms"],
                "error_rate": s["error_rate"],
                "champion_version": champion.version,
                "threshold": DEFAULT_THRESHOLD,
                "days_evaluated": len(results),
                "quality": md_table(table),
                "summary": dg.MetadataValue.path(stage.storage.uri(summary_key(model.name, last.day))),
            },
            checks=threshold_checks(last, thresholds),
        )

    return stage_asset(
        project,
        key=asset_key(project, "monitoring", model.name, "performance"),
        group="monitoring",
        description=(
            f"Live quality of the `{model.name}` champion once a day's labels matured ({horizon} days "
            f"later): AUC, precision/recall/F1 at {DEFAULT_THRESHOLD}, Brier, calibration on the batch "
            f"predictions and on the served prediction log (checked on the log from {MIN_LOG_ROWS} "
            "labelled rows); latency p50/p99 and error rate of the log."
        ),
        kinds={"polars", "scikitlearn"},
        deps=[
            dg.AssetDep(asset_key(project, "labels", model.name)),
            dg.AssetDep(asset_key(project, "predictions", model.name)),
        ],
        run=run,
        checks=[
            check(
                check_name(metric),
                f"{metric} {'≥' if THRESHOLDS[metric] == 'min' else '≤'} {limit:g} "
                "(not evaluated while the day has no input for it)",
                blocking=False,
                alert=True,
                threshold=limit,
            )
            for metric, limit in thresholds.items()
        ],
        automation_condition=labels_matured_condition(),
    )
