"""Dagster resources: configuration + environment → MLForge core clients.

Each resource is a small Pythonic `ConfigurableResource` whose fields show in the Launchpad; its
methods hand out the core client (storage, online store, MLflow tracker). Values that may carry
secrets are wired with `dg.EnvVar` so Dagster never stores or displays them.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field, SecretStr

from mlforge.config.project import Project
from mlforge.config.settings import Settings, env_name, get_settings
from mlforge.features.online import OnlineStore, open_online_store
from mlforge.io.storage import Storage, open_storage
from mlforge.models.tracking import Tracker
from mlforge.monitoring.alerts import AlertChannel

__all__ = ["AlertsResource", "MLflowResource", "OnlineStoreResource", "StorageResource", "resources_for"]


def _value(v: str | None) -> str | None:
    """A field's value; an EnvVar left unresolved (`.get()` called outside a run) is read here."""
    return v.get_value() if isinstance(v, dg.EnvVar) else v


class _S3Keys(dg.ConfigurableResource):
    """S3 keys; `resources_for` wires them as dg.EnvVar so Dagster shows the variable, not the value.

    Left empty, boto3's standard chain applies (AWS_* environment, AWS_PROFILE, instance roles).
    """

    aws_access_key_id: str | None = Field(None, description="S3 access key (EnvVar AWS_ACCESS_KEY_ID).")
    aws_secret_access_key: str | None = Field(
        None, description="S3 secret key (EnvVar AWS_SECRET_ACCESS_KEY)."
    )
    aws_session_token: str | None = Field(None, description="S3 session token (EnvVar AWS_SESSION_TOKEN).")

    def _s3_keys(self) -> dict[str, str | None]:
        return {
            "aws_access_key_id": _value(self.aws_access_key_id),
            "aws_secret_access_key": _value(self.aws_secret_access_key),
            "aws_session_token": _value(self.aws_session_token),
        }


class StorageResource(_S3Keys):
    """Object storage for datasets, features, manifests, reports and logs (local folder or S3)."""

    root: str = Field(description="Local folder or s3://bucket/prefix.")
    endpoint_url: str | None = Field(None, description="S3 endpoint URL (MinIO, SeaweedFS, …).")
    region: str | None = Field(None, description="S3 region.")

    def get(self) -> Storage:
        """The core storage client."""
        root = _value(self.root)
        assert root is not None
        return open_storage(root, self.endpoint_url, self.region, **self._s3_keys())


class OnlineStoreResource(dg.ConfigurableResource):
    """The online feature store: embedded SQLite (sqlite:///…) or Redis (redis://…)."""

    url: str = Field(description="sqlite:///path or redis://host:port/db")
    key_prefix: str = Field("mlforge", description="Prefix of every key in a shared Redis.")

    def get(self) -> OnlineStore:
        """The core online-store client."""
        return open_online_store(_value(self.url) or "", self.key_prefix)


class MLflowResource(_S3Keys):
    """MLflow tracking + registry (our own Pythonic resource; see docs/decisions.md)."""

    tracking_uri: str = Field(description="sqlite:///…, file:…, or http(s)://mlflow-server")
    artifact_root: str = Field(description="Artifact location of new experiments (folder or s3://…).")
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint of an s3:// artifact root (MLFLOW_S3_ENDPOINT_URL for MLflow)."
    )
    s3_region: str | None = Field(None, description="S3 region of an s3:// artifact root.")

    def get(self) -> Tracker:
        """The core tracker."""
        return Tracker(
            _value(self.tracking_uri) or "",
            _value(self.artifact_root) or "",
            self.s3_endpoint_url,
            self.s3_region,
            **self._s3_keys(),
        )


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go: the log, and a webhook when its URL is set (wired as an EnvVar: it holds a token)."""

    webhook_url: str | None = Field(None, description="Webhook receiving alert JSON (EnvVar).")
    dagster_url: str = Field("http://localhost:3000", description="Dagster UI base URL for links.")
    timeout_seconds: float = Field(5.0, description="Webhook timeout.")

    def channel(self) -> AlertChannel:
        """The core alert channel."""
        return AlertChannel(_value(self.webhook_url), self.timeout_seconds)


def _env_or(env: Settings, field: str, value: str) -> str | dg.EnvVar:
    """dg.EnvVar when the value came from that field's variable, so Dagster shows its name, never the value."""
    raw = getattr(env, field)
    from_env = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
    return dg.EnvVar(env_name(field)) if from_env == value else value


def _s3_key_env_vars(env: Settings) -> dict[str, dg.EnvVar]:
    """S3 key fields as dg.EnvVar for each AWS_* variable that is set (else boto3's default chain)."""
    # The resources' field names are the settings' field names.
    fields = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    return {f: dg.EnvVar(env_name(f)) for f in fields if getattr(env, f) is not None}


def resources_for(project: Project) -> dict[str, dg.ConfigurableResource]:
    """The resources of a project (storage, online store, alerts, MLflow), from its spec and the environment."""
    s = project.settings
    a = project.spec.alerts
    env = get_settings()
    return {
        "storage": StorageResource(
            root=_env_or(env, "storage_root", s.storage_root),  # type: ignore[arg-type]
            endpoint_url=s.storage_endpoint_url,
            region=s.storage_region,
            **_s3_key_env_vars(env),  # type: ignore[arg-type]
        ),
        "online_store": OnlineStoreResource(
            url=_env_or(env, "online_store_url", s.online_store_url),  # type: ignore[arg-type]
            key_prefix=s.online_key_prefix,
        ),
        "alerts": AlertsResource(
            webhook_url=dg.EnvVar(a.webhook_url_env) if env.alert_webhook(a.webhook_url_env) else None,  # type: ignore[arg-type]
            dagster_url=env.dagster_url or a.dagster_url,
            timeout_seconds=a.timeout_seconds,
        ),
        "mlflow": MLflowResource(
            tracking_uri=_env_or(env, "mlflow_tracking_uri", s.tracking_uri),  # type: ignore[arg-type]
            artifact_root=_env_or(env, "artifact_root", s.artifact_root),  # type: ignore[arg-type]
            s3_endpoint_url=s.artifact_endpoint_url,
            s3_region=s.storage_region,
            **_s3_key_env_vars(env),  # type: ignore[arg-type]
        ),
    }
