"""Dagster resources: configuration + environment → MLForge core clients.

Each resource is a small Pythonic `ConfigurableResource` whose fields show in the Launchpad; its
methods hand out the core client (storage, online store, MLflow tracker). Values that may carry
secrets are wired with `dg.EnvVar` so Dagster never stores or displays them.
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from mlforge.online_store import OnlineStore, open_online_store
from mlforge.project import Project
from mlforge.storage import Storage, open_storage
from mlforge.tracking import Tracker

__all__ = ["MLflowResource", "OnlineStoreResource", "StorageResource", "resources_for"]


class StorageResource(dg.ConfigurableResource):
    """Object storage for datasets, features, manifests, reports and logs (local folder or S3)."""

    root: str = Field(description="Local folder or s3://bucket/prefix.")
    endpoint_url: str | None = Field(None, description="S3 endpoint URL (MinIO, SeaweedFS, …).")
    region: str | None = Field(None, description="S3 region.")

    def get(self) -> Storage:
        """The core storage client (credentials come from the AWS_* environment)."""
        return open_storage(self.root, self.endpoint_url, self.region)


class OnlineStoreResource(dg.ConfigurableResource):
    """The online feature store: embedded SQLite (sqlite:///…) or Redis (redis://…)."""

    url: str = Field(description="sqlite:///path or redis://host:port/db")
    key_prefix: str = Field("mlforge", description="Prefix of every key in a shared Redis.")

    def get(self) -> OnlineStore:
        """The core online-store client."""
        return open_online_store(self.url, self.key_prefix)


class MLflowResource(dg.ConfigurableResource):
    """MLflow tracking + registry (our own Pythonic resource; see docs/decisions.md)."""

    tracking_uri: str = Field(description="sqlite:///…, file:…, or http(s)://mlflow-server")
    artifact_root: str = Field(description="Artifact location of new experiments.")

    def get(self) -> Tracker:
        """The core tracker."""
        return Tracker(self.tracking_uri, self.artifact_root)


def _env_or(name: str, value: str) -> str | dg.EnvVar:
    """dg.EnvVar when the value came from that variable, so Dagster shows its name, never the value."""
    return dg.EnvVar(name) if os.environ.get(name) == value else value


def resources_for(project: Project) -> dict[str, dg.ConfigurableResource]:
    """The three resources of a project, from its spec and the environment."""
    s = project.settings
    return {
        "storage": StorageResource(
            root=_env_or("MLFORGE_STORAGE_ROOT", s.storage_root),  # type: ignore[arg-type]
            endpoint_url=s.storage_endpoint_url,
            region=s.storage_region,
        ),
        "online_store": OnlineStoreResource(
            url=_env_or("MLFORGE_ONLINE_STORE_URL", s.online_store_url),  # type: ignore[arg-type]
            key_prefix=s.online_key_prefix,
        ),
        "mlflow": MLflowResource(
            tracking_uri=_env_or("MLFLOW_TRACKING_URI", s.tracking_uri),  # type: ignore[arg-type]
            artifact_root=s.artifact_root,
        ),
    }
