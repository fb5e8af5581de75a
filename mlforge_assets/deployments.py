"""Stage `deployments/<endpoint>`: the manifest serving reads."""

from __future__ import annotations

from datetime import date

import dagster as dg

from mlforge.config.project import Project
from mlforge.config.spec import DeploymentSpec
from mlforge.deployment.rollout import deploy_endpoint
from mlforge.io import layout
from mlforge_assets.metadata import md_table
from mlforge_assets.partitions import asset_key
from mlforge_assets.stage import Stage, StageResult, stage_asset


def deployment_asset(project: Project, dep: DeploymentSpec) -> dg.AssetsDefinition:
    """The endpoint's deployment manifest, written atomically to storage."""

    def run(stage: Stage, days: list[date]) -> StageResult:
        manifest, changed = deploy_endpoint(stage.storage, stage.tracker, project.spec, dep, days[-1])
        summary = manifest.summary()
        return StageResult(
            metadata={
                "revision": summary.revision,
                "changed": changed,
                "strategy": summary.strategy,
                "served": summary.served(),
                "variants": md_table([dict(v.to_dict(model=True)) for v in summary.variants]),
                "manifest": stage.storage.uri(layout.manifest(dep.endpoint)),
            },
            data_version=f"rev{manifest.revision}",
        )

    return stage_asset(
        project,
        key=asset_key(project, "deployments", dep.endpoint),
        group="deployments",
        description=f"Deployment manifest of endpoint `{dep.endpoint}` ({dep.strategy.kind}).",
        kinds={"json"},
        deps=[dg.AssetDep(asset_key(project, "models", dep.model, "registered"))],
        run=run,
    )
