"""Stage `monitoring/<model>/performance`: the champion's live quality once a day's labels matured."""

from __future__ import annotations

from datetime import date

import dagster as dg

from mlforge.config.project import Project
from mlforge.config.spec import ModelSpec
from mlforge.io import layout
from mlforge.io.storage import write_json
from mlforge.io.timeline import key
from mlforge.models.metrics import metric as metric_info
from mlforge.models.metrics import metrics_for
from mlforge.models.registration import champion_or_fail, version_threshold
from mlforge.monitoring.performance import (
    MIN_LOG_ROWS,
    STATUS_OK_DAY,
    DayPerformance,
    check_name,
    evaluate_day,
    read_day_inputs,
    threshold_checks,
)
from mlforge_assets.conditions import after_upstream
from mlforge_assets.metadata import md_table
from mlforge_assets.partitions import asset_key
from mlforge_assets.stage import Stage, StageResult, check, stage_asset

#: summary fields shown as asset metadata, besides the task's label metrics
HEADLINE = (
    "matures_on",
    "quality_source",
    "rows",
    "log_rows",
    "log_labelled_rows",
    "latency_p50_ms",
    "latency_p99_ms",
    "error_rate",
)


def performance_asset(project: Project, model: ModelSpec) -> dg.AssetsDefinition:
    """Daily live performance of one model: quality vs matured labels, latency and errors from the log."""
    spec = project.spec
    join_key = spec.service_entity(model.feature_service).join_key
    horizon = model.label.horizon_days
    endpoints = spec.endpoints_of(model.name)
    thresholds = spec.monitoring_for(model.name).alert_thresholds
    stage_name = f"monitoring/{model.name}/performance"
    task = model.model_task
    headline = (*HEADLINE[:2], *metrics_for(task, live=False), *HEADLINE[2:])

    def run(stage: Stage, days: list[date]) -> StageResult:
        champion = champion_or_fail(stage.tracker, model.name, stage_name)
        threshold = version_threshold(champion, model)
        results: list[DayPerformance] = []
        for d in days:
            inputs = read_day_inputs(stage.storage, model.name, d, endpoints, stage_name)
            perf = evaluate_day(
                d,
                horizon_days=horizon,
                labels=inputs.labels,
                predictions=inputs.predictions,
                log=inputs.log,
                entity_key=join_key,
                champion_version=champion.version,
                endpoints=endpoints,
                threshold=threshold,
                task=task,
            )
            write_json(stage.storage, layout.performance_summary(model.name, d), perf.to_json())
            results.append(perf)
        last = results[-1]
        s = last.to_json()
        if last.status != STATUS_OK_DAY:
            stage.context.log.info(
                f"{stage_name} {key(last.day)}: {last.status} (they mature on {s['matures_on']})"
            )
        table = [
            {"day": key(p.day), "source": source, **q.to_json()}
            for p in results[-5:]
            for source, q in (("batch", p.batch), ("log", p.log))
            if q is not None
        ]
        return StageResult(
            metadata={
                "status": last.status,
                **{k: s[k] for k in headline},
                "champion_version": champion.version,
                "task": str(task),
                **({"threshold": threshold} if task == "binary" else {}),
                "days_evaluated": len(results),
                "quality": md_table(table),
                "summary": dg.MetadataValue.path(
                    stage.storage.uri(layout.performance_summary(model.name, last.day))
                ),
            },
            checks=threshold_checks(last, thresholds),
        )

    return stage_asset(
        project,
        key=asset_key(project, "monitoring", model.name, "performance"),
        group="monitoring",
        description=(
            f"Live quality of the `{model.name}` champion once a day's labels matured ({horizon} days "
            f"later): {', '.join(metrics_for(task, live=False))} on the batch predictions and on the "
            f"served prediction log (checked on the log from {MIN_LOG_ROWS} labelled rows); latency "
            "p50/p99 and error rate of the log."
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
                f"{metric} {metric_info(metric).sign(True)} {limit:g} "
                "(not evaluated while the day has no input for it)",
                blocking=False,
                alert=True,
                threshold=limit,
            )
            for metric, limit in thresholds.items()
        ],
        automation_condition=after_upstream(label="labels of the day matured", only_existing=False),
    )
