"""Jobs: the daily refresh (raw → features → online → drift → predictions) and the retrain."""

from __future__ import annotations

import dagster as dg

from mlforge.config.project import Project
from mlforge_assets.partitions import asset_key


def refresh_job(project: Project) -> dg.UnresolvedAssetJobDefinition:
    """raw → features → online → drift → predictions for one day (labels and performance mature later)."""
    p = project.spec.project
    # labels and live performance wait for their horizon: declarative automation runs them
    later = [asset_key(project, "labels", m.name) for m in project.spec.models]
    later += [asset_key(project, "monitoring", m.name, "performance") for m in project.spec.models]
    sel = dg.AssetSelection.groups(
        "datasets", "features", "monitoring", "predictions"
    ) - dg.AssetSelection.assets(*later)
    return dg.define_asset_job(
        f"{p}_daily_refresh",
        selection=sel,
        description="Daily refresh: raw → features → online → drift → predictions.",
    )


def retrain_job(project: Project, model: str) -> dg.UnresolvedAssetJobDefinition:
    """trained → registered → deployments of one model for one cutoff."""
    keys = [asset_key(project, "models", model, "trained"), asset_key(project, "models", model, "registered")]
    keys += [asset_key(project, "deployments", endpoint) for endpoint in project.spec.endpoints_of(model)]
    return dg.define_asset_job(
        f"{project.spec.project}_{model}_retrain",
        selection=dg.AssetSelection.assets(*keys),
        description=f"Retrain `{model}` for a cutoff, register it through the gate, redeploy its endpoints.",
    )
