"""Stages `models/<model>/trained` and `models/<model>/registered`."""

from __future__ import annotations

from datetime import date

import dagster as dg

from mlforge.config.project import Project
from mlforge.config.spec import ModelSpec
from mlforge.features.refs import service_views
from mlforge.io.timeline import Cadence, training_offsets
from mlforge.models.metrics import metric, min_quality
from mlforge.models.registration import register_cutoff
from mlforge.models.training import train_cutoff
from mlforge_assets.metadata import md_table
from mlforge_assets.partitions import asset_key, window
from mlforge_assets.stage import Stage, StageResult, algorithm_kind, check, stage_asset


def trained_asset(project: Project, model: ModelSpec) -> dg.AssetsDefinition:
    """Training for each cutoff day; blocked from registration below the quality minimum."""
    spec = project.spec
    start, end = training_offsets(model)
    cadence = Cadence.of(spec)
    views = service_views(spec, model.feature_service)
    gate, gate_metric = model.gate, model.gate_metric

    def run(stage: Stage, days: list[date]) -> StageResult:
        results = []
        for d in days:
            tags = stage.lineage_tags(cadence.key_of(d))
            results.append(train_cutoff(stage.storage, stage.tracker, spec, model, d, tags))
        last = results[-1]
        run_url = stage.tracker.run_url(last.experiment_id, last.run_id)
        extra: dict[str, object] = {f"validation_{k}": v for k, v in last.validation.items()}
        if last.threshold is not None:
            extra["threshold"] = last.threshold
        # the key holdout diagnostics as tables, every figure as a link (MLflow UI or local file)
        extra.update({f"holdout_{name}": md_table(rows, limit=15) for name, rows in last.diagnostics.items()})
        for plot, link in stage.tracker.artifact_links(last.experiment_id, last.run_id, last.plots).items():
            name = "plot_" + plot.rsplit("/", 1)[-1].removesuffix(".png")
            extra[name] = (
                dg.MetadataValue.url(link) if link.startswith("http") else dg.MetadataValue.path(link)
            )
        worst = metric(gate_metric).worst(results, lambda r: r.metrics[gate_metric])
        return StageResult(
            metadata={
                **{f"holdout_{k}": v for k, v in last.metrics.items()},
                "train_rows": last.train_rows,
                "holdout_rows": last.holdout_rows,
                "mlflow_run_id": last.run_id,
                # a link the UI opens when MLflow is a server (a file store has no page to open)
                "mlflow_run": dg.MetadataValue.url(run_url) if run_url.startswith("http") else run_url,
                "task": str(model.model_task),
                "algorithm": model.algorithm,
                **extra,
                "model_uri": last.model_uri,
                "booster_sha256": last.booster_sha256,
                "data_version": last.data_version,
                "cutoffs": md_table(
                    [{"cutoff": str(r.cutoff), gate_metric: r.metrics[gate_metric]} for r in results]
                ),
            },
            checks=[min_quality(worst.metrics, gate_metric, gate.min)],
            data_version=last.booster_sha256,
        )

    return stage_asset(
        project,
        key=asset_key(project, "models", model.name, "trained"),
        group="models",
        description=model.description
        or f"`{model.name}` trained on snapshots whose labels matured by the cutoff.",
        kinds={algorithm_kind(model.algorithm), "mlflow"},
        # the training snapshots, and the cutoff's own (the drift reference: the population served)
        deps=[window(project, asset_key(project, "features", v), start, 0) for v in views]
        + [window(project, asset_key(project, "labels", model.name), start, end)],
        run=run,
        checks=[
            check(
                "min_quality",
                f"Holdout {gate_metric} {metric(gate_metric).sign(True)} {gate.min} before registration."
                if gate.min is not None
                else f"Holdout {gate_metric} computed before registration (no bound set).",
                threshold=gate.min,
            )
        ],
    )


def registered_asset(project: Project, model: ModelSpec) -> dg.AssetsDefinition:
    """A new MLflow model version per cutoff, `challenger`, promoted to `champion` by the gate."""
    cadence = Cadence.of(project.spec)

    def run(stage: Stage, days: list[date]) -> StageResult:
        regs = [
            register_cutoff(stage.storage, stage.tracker, model, d, stage.lineage_tags(cadence.key_of(d)))
            for d in days
        ]
        last = regs[-1]
        return StageResult(
            metadata={
                "model_version": last.version,
                "promoted": last.decision.promote,
                "contended": last.contended,
                "gate": last.decision.reason,
                "champion_version": last.champion_version or 0,
                f"candidate_{model.gate_metric}": last.decision.candidate,
                f"champion_{model.gate_metric}": last.decision.champion
                if last.decision.champion is not None
                else float("nan"),
                "registry_uri": f"models:/{model.name}@champion",
            },
            data_version=f"{model.name}-v{last.version}",
        )

    return stage_asset(
        project,
        key=asset_key(project, "models", model.name, "registered"),
        group="models",
        description=f"`{model.name}` model version in the MLflow registry; champion only through the gate.",
        kinds={"mlflow"},
        deps=[dg.AssetDep(asset_key(project, "models", model.name, "trained"))],
        run=run,
    )
