"""MLflow tracking and registry, behind a small client of ours.

`import mlflow` costs seconds, so it happens inside the methods that need it. Every run is tagged
with what produced it (the Dagster run, asset key, partition, data versions) so a model version
can be traced back to the exact data it read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mlforge.errors import ModelNotFoundError, StoreUnavailableError
from mlforge.models.base import ALGORITHM_TAG, FittedModel, Task, model_class

if TYPE_CHECKING:
    import xgboost as xgb

#: File of the native model inside a logged XGBoost model: what a version without an
#: mlforge.algorithm tag (registered before other algorithms existed) holds. Every other version's
#: file is its algorithm's `model_file` (see :func:`model_file_of`).
MODEL_FILE = "model.ubj"


def model_file_of(algorithm: str | None) -> str:
    """The native model file inside a logged model of `algorithm` (None: an untagged XGBoost one)."""
    return model_class(algorithm).model_file if algorithm else MODEL_FILE


@dataclass(frozen=True)
class LoggedModel:
    """A training run and the model it logged."""

    run_id: str
    model_id: str
    model_uri: str  # models:/m-…
    artifact_location: str  # folder holding MLmodel and the booster
    experiment_id: str
    model_file: str = MODEL_FILE  # the FittedModel's model_file

    @property
    def booster_uri(self) -> str:
        """Location of the native booster file inside the artifacts."""
        return f"{self.artifact_location.rstrip('/')}/{self.model_file}"


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered model version."""

    name: str
    version: int
    run_id: str | None
    source: str
    booster_uri: str
    tags: dict[str, str]
    aliases: tuple[str, ...] = ()


class Tracker:
    """MLflow client for one tracking URI and artifact root.

    An s3:// artifact root lives on `s3_endpoint_url` (MinIO, SeaweedFS, …; None: AWS). MLflow only
    reads that endpoint from MLFLOW_S3_ENDPOINT_URL, so the tracker exports it (and the region and
    explicit keys, if given) for the duration of its own artifact operations and restores the
    environment afterwards: nothing leaks into the process.
    """

    def __init__(
        self,
        tracking_uri: str,
        artifact_root: str,
        s3_endpoint_url: str | None = None,
        s3_region: str | None = None,
        *,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root.rstrip("/")
        self.s3_endpoint_url = s3_endpoint_url or None
        self.s3_region = s3_region or None
        self._keys = {
            "AWS_ACCESS_KEY_ID": aws_access_key_id or None,
            "AWS_SECRET_ACCESS_KEY": aws_secret_access_key or None,
            "AWS_SESSION_TOKEN": aws_session_token or None,
        }
        self._client: Any = None

    def __repr__(self) -> str:
        return (
            f"Tracker({self.tracking_uri!r}, {self.artifact_root!r}, "
            f"s3_endpoint_url={self.s3_endpoint_url!r})"
        )

    def _artifact_env(self) -> dict[str, str]:
        """What MLflow's S3 artifact repository needs in the environment (empty for local artifacts)."""
        if not self.artifact_root.startswith("s3://"):
            return {}
        env = {k: v for k, v in self._keys.items() if v}
        if self.s3_endpoint_url:
            env["MLFLOW_S3_ENDPOINT_URL"] = self.s3_endpoint_url
        if self.s3_region:
            env["AWS_DEFAULT_REGION"] = self.s3_region
        return env

    def load_model(self, uri: str, algorithm: str = "xgboost") -> FittedModel:
        """A model of this tracker's artifacts (an s3:// URI is read from its endpoint)."""
        return load_model(
            uri,
            algorithm,
            endpoint_url=self.s3_endpoint_url,
            region=self.s3_region,
            aws_access_key_id=self._keys["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self._keys["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=self._keys["AWS_SESSION_TOKEN"],
        )

    def load_booster(self, uri: str) -> xgb.Booster:
        """The native XGBoost booster at `uri` (for callers that need the library's object)."""
        from mlforge.models.xgboost_model import XGBoostModel

        model = self.load_model(uri, XGBoostModel.algorithm)
        assert isinstance(model, XGBoostModel)
        return model.booster

    @property
    def client(self) -> Any:
        """The MlflowClient, created on first use (creates the SQLite schema if needed)."""
        if self._client is None:
            if self.tracking_uri.startswith("sqlite:///"):
                Path(self.tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            if self.artifact_root.startswith("file://"):
                Path(urlparse(self.artifact_root).path).mkdir(parents=True, exist_ok=True)
            from mlflow import MlflowClient

            try:
                self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
            except Exception as exc:
                raise StoreUnavailableError(
                    f"MLflow tracking at {self.tracking_uri} unusable: {exc}"
                ) from None
        return self._client

    def experiment_id(self, name: str) -> str:
        """Id of experiment `name`, created with an explicit artifact location if new."""
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        safe = name.replace("/", "-")
        return str(self.client.create_experiment(name, artifact_location=f"{self.artifact_root}/{safe}"))

    def log_training(
        self,
        experiment: str,
        run_name: str,
        model: FittedModel,
        metrics: dict[str, float],
        tags: dict[str, str],
        artifacts: dict[str, bytes] | None = None,
    ) -> LoggedModel:
        """Log one training run: the model's params, metrics, tags, the model (its MLflow flavor)
        with its signature, and extra artifacts."""
        import mlflow
        import numpy as np
        from mlflow.models import infer_signature

        feature_names = model.feature_names
        exp_id = self.experiment_id(experiment)
        example = np.zeros((1, len(feature_names)), dtype=np.float32)
        import pandas as pd

        sig_input = pd.DataFrame(example, columns=feature_names)
        # the output by task: [rows] scores, or [rows, classes] probabilities for multiclass
        sig_output: np.ndarray
        if model.task is Task.MULTICLASS:
            sig_output = np.zeros((1, np.shape(model.predict(example))[1]), dtype=np.float64)
        else:
            sig_output = np.zeros(1, dtype=np.float64)
        signature = infer_signature(sig_input, sig_output)
        # A run started here must end here even on error, or the next asset in this process
        # would silently log into it (the trap dagster-mlflow's hook exists for).
        with (
            _scoped_env(self._artifact_env()),
            _fluent_uri(self.tracking_uri),
            mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags) as run,
        ):
            mlflow.log_params({k: str(v) for k, v in model.params.items()})
            mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})  # drop NaN
            info = model.log_mlflow("model", signature, tags)
            for fname, data in (artifacts or {}).items():
                folder, _, base = fname.rpartition("/")  # "plots/roc.png" goes to the run's plots/
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / base
                    path.write_bytes(data)
                    mlflow.log_artifact(str(path), artifact_path=folder or None)
        logged = self.client.get_logged_model(info.model_id)
        return LoggedModel(
            run_id=run.info.run_id,
            model_id=info.model_id,
            model_uri=f"models:/{info.model_id}",
            artifact_location=str(logged.artifact_location),
            experiment_id=exp_id,
            model_file=model.model_file,
        )

    def register(self, name: str, logged: LoggedModel, tags: dict[str, str]) -> ModelVersionInfo:
        """Create a new version of registered model `name` from a logged model."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name)
        # create_model_version resolves a models:/ source through MLflow's global tracking URI
        with _scoped_env(self._artifact_env()), _fluent_uri(self.tracking_uri):
            mv = self.client.create_model_version(
                name, source=logged.model_uri, run_id=logged.run_id, tags=tags, model_id=logged.model_id
            )
        return self.version(name, int(mv.version))

    def version(self, name: str, version: int) -> ModelVersionInfo:
        """A registered version with the location of its native booster."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version(name, str(version))
        except MlflowException:
            raise ModelNotFoundError(f"model {name} version {version} is not registered") from None
        return self._info(mv)

    def version_of_run(self, name: str, run_id: str) -> ModelVersionInfo | None:
        """The version of `name` registered from `run_id`, if any (re-registering must not duplicate)."""
        found = self.client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
        return self.version(name, int(found[0].version)) if found else None

    def _info(self, mv: Any) -> ModelVersionInfo:
        source = str(mv.source)
        model_id = getattr(mv, "model_id", None) or (
            source[len("models:/") :] if source.startswith("models:/m-") else None
        )
        location = (
            str(self.client.get_logged_model(model_id).artifact_location) if model_id else str(mv.source)
        )
        tags = dict(mv.tags or {})
        algorithm = tags.get(ALGORITHM_TAG)
        if algorithm is None and mv.run_id:  # the version was registered without it: the run's
            algorithm = self.client.get_run(mv.run_id).data.tags.get(ALGORITHM_TAG)
            if algorithm is not None:  # so every reader of the version's tags finds it
                tags[ALGORITHM_TAG] = algorithm
        return ModelVersionInfo(
            name=mv.name,
            version=int(mv.version),
            run_id=mv.run_id,
            source=str(mv.source),
            booster_uri=f"{location.rstrip('/')}/{model_file_of(algorithm)}",
            tags=tags,
            aliases=tuple(sorted(getattr(mv, "aliases", None) or ())),
        )

    def versions(self, name: str) -> list[ModelVersionInfo]:
        """Every registered version of `name`, newest first (none: an empty list)."""
        from dataclasses import replace

        found = self.client.search_model_versions(f"name='{name}'")
        if not found:
            return []
        # a search does not return aliases on every store: the registered model holds them
        held: dict[int, list[str]] = {}
        for alias, version in (self.client.get_registered_model(name).aliases or {}).items():
            held.setdefault(int(version), []).append(alias)
        infos = (self._info(mv) for mv in found)
        return sorted(
            (replace(v, aliases=tuple(sorted(held.get(v.version, [])))) for v in infos),
            key=lambda v: -v.version,
        )

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """The final value of each metric a run logged."""
        return dict(self.client.get_run(run_id).data.metrics)

    def experiments(self) -> list[tuple[str, str]]:
        """(id, name) of every active experiment, by name."""
        return sorted(
            ((str(e.experiment_id), str(e.name)) for e in self.client.search_experiments()),
            key=lambda e: e[1],
        )

    def runs(self, experiment: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest runs of experiment `experiment` (by name): id, name, status, tags, metrics."""
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            known = ", ".join(name for _, name in self.experiments()) or "none"
            raise ModelNotFoundError(f"no MLflow experiment named {experiment!r} (known: {known})")
        found = self.client.search_runs(
            [exp.experiment_id], max_results=limit, order_by=["attributes.start_time DESC"]
        )
        return [
            {
                "run_id": r.info.run_id,
                "name": r.info.run_name,
                "status": r.info.status,
                "tags": dict(r.data.tags),
                "metrics": dict(r.data.metrics),
            }
            for r in found
        ]

    @contextmanager
    def fluent(self) -> Iterator[None]:
        """MLflow's fluent API (``mlflow.start_run``, ``log_metric`` …) on this store for the block."""
        with _scoped_env(self._artifact_env()), _fluent_uri(self.tracking_uri):
            yield

    def alias(self, name: str, alias: str) -> ModelVersionInfo | None:
        """The version an alias points at, or None."""
        from mlflow.exceptions import MlflowException

        try:
            return self._info(self.client.get_model_version_by_alias(name, alias))
        except MlflowException:
            return None

    def resolve(self, name: str, version: int | None = None, alias: str = "champion") -> ModelVersionInfo:
        """Version `version` of `name`, or the one `alias` names (by default the champion)."""
        if version is not None:
            return self.version(name, version)
        found = self.alias(name, alias)
        if found is None:
            raise ModelNotFoundError(f"model {name} has no alias {alias!r} (see `mlforge models list`)")
        return found

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point `alias` at `version`."""
        self.client.set_registered_model_alias(name, alias, str(version))

    def set_version_tags(self, name: str, version: int, tags: dict[str, str]) -> None:
        """Add tags to a model version (e.g. the gate's verdict)."""
        for k, v in tags.items():
            self.client.set_model_version_tag(name, str(version), k, v)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """A link to the run (the MLflow UI when the tracking URI is a server)."""
        if self.tracking_uri.startswith("http"):
            return f"{self.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"mlflow-run:{run_id}"

    def artifact_links(self, experiment_id: str, run_id: str, paths: list[str]) -> dict[str, str]:
        """Where each of a run's artifact `paths` opens: its page in the MLflow UI when the tracking
        URI is a server, else the artifact's own URI (a local file for a file artifact root)."""
        if self.tracking_uri.startswith("http"):
            page = self.run_url(experiment_id, run_id)
            return {p: f"{page}/artifacts/{p}" for p in paths}
        if not paths:
            return {}
        root = str(self.client.get_run(run_id).info.artifact_uri).rstrip("/")  # one lookup per run
        uris = {p: f"{root}/{p}" for p in paths}
        return {p: urlparse(u).path if u.startswith("file://") else u for p, u in uris.items()}


@contextmanager
def _fluent_uri(uri: str) -> Iterator[None]:
    """Point MLflow's global (fluent) API at `uri` for a block, then restore it.

    `mlflow.set_tracking_uri` also exports MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI into the process
    environment; left there, every project loaded later in the same process would silently track
    into this one's store.
    """
    import mlflow

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        # None unsets both the global and the environment variable
        mlflow.set_tracking_uri(saved["MLFLOW_TRACKING_URI"])  # type: ignore[arg-type]
        mlflow.set_registry_uri(saved["MLFLOW_REGISTRY_URI"])  # type: ignore[arg-type]
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


@contextmanager
def _scoped_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for a block, then restore each to its previous value (or unset)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_model(
    uri: str,
    algorithm: str = "xgboost",
    endpoint_url: str | None = None,
    region: str | None = None,
    *,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    aws_session_token: str | None = None,
) -> FittedModel:
    """Load a model of `algorithm` from a local path, file:// URI or s3:// URI.

    An s3:// URI is read from `endpoint_url` (pass the artifact endpoint of the settings /
    `Tracker.load_model`). Without one it falls back to MLFLOW_S3_ENDPOINT_URL, then
    MLFORGE_S3_ENDPOINT_URL — where MLflow and MLForge would look — then AWS. Keys: explicit, else
    the standard AWS_* chain.
    """
    cls = model_class(algorithm)
    if uri.startswith("s3://"):
        from mlforge.errors import DataError
        from mlforge.io.storage import S3Storage

        root, _, name = uri.rpartition("/")
        from mlforge.config.settings import get_settings

        env = get_settings()
        endpoint = endpoint_url or env.mlflow_s3_endpoint_url or env.s3_endpoint_url or None
        store = S3Storage(
            root,
            endpoint_url=endpoint,
            region=region,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            aws_session_token=aws_session_token,
        )
        try:
            raw = store.read_bytes(name)
        except DataError:
            raise ModelNotFoundError(f"model file not found: {uri} (on {endpoint or 'AWS S3'})") from None
        return cls.from_bytes(raw)
    path = urlparse(uri).path if uri.startswith("file://") else uri
    if not Path(path).is_file():
        raise ModelNotFoundError(f"model file not found: {uri}")
    return cls.load(path)


def load_booster(
    uri: str,
    endpoint_url: str | None = None,
    region: str | None = None,
    *,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    aws_session_token: str | None = None,
) -> xgb.Booster:
    """The native XGBoost booster at `uri` (local path, file:// or s3://; see :func:`load_model`)."""
    from mlforge.models.xgboost_model import XGBoostModel

    model = load_model(
        uri,
        XGBoostModel.algorithm,
        endpoint_url,
        region,
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        aws_session_token=aws_session_token,
    )
    assert isinstance(model, XGBoostModel)
    return model.booster
