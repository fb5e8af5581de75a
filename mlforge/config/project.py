"""A loaded project: the spec, the folder it lives in, and every setting resolved from spec + env.

Environment variables override the spec so that the same `mlforge.yaml` runs on a laptop and on
real servers; the environment is read through `mlforge.config.settings` (typed, validated, one
place). One S3 endpoint (`infrastructure.storage.endpoint_url` / MLFORGE_S3_ENDPOINT_URL)
serves the storage root and an s3:// artifact root alike (MLFLOW_S3_ENDPOINT_URL, when set,
overrides it for the artifacts). Secrets (S3 keys, Redis passwords in URLs) are read from the
environment by the clients themselves and never stored on this object's printable fields.

`resolve_spec_path` is the one rule that decides which spec a command, the code location or the
serving app loads.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from mlforge.config.settings import env_name, get_settings, secret_value
from mlforge.config.spec import DatasetSpec, ProjectSpec, load_spec
from mlforge.errors import SpecError
from mlforge.io.storage import Storage, open_storage

if TYPE_CHECKING:
    import polars as pl

    from mlforge.models.tracking import Tracker

SPEC_ENV = env_name("spec")
SPEC_FILE = "mlforge.yaml"


def resolve_spec_path(path: str | Path | None = None) -> Path:
    """The spec every command, the code location and serving load; one rule for all of them.

    In order: `path` (a file, or a folder holding mlforge.yaml); else $MLFORGE_SPEC (same
    forms); else the nearest mlforge.yaml from the working folder upwards. A spec that was named
    but does not exist is an error, never a silent fallback to another one.
    """
    if path:
        return _named_spec(Path(path), "")
    env = get_settings().spec
    if env:
        return _named_spec(env, f" (named by ${SPEC_ENV})")
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / SPEC_FILE
        if candidate.is_file():
            return candidate
    raise SpecError(str(here / SPEC_FILE), [f"file not found (set {SPEC_ENV} or run inside a project)"])


def _named_spec(path: Path, origin: str) -> Path:
    p = path.expanduser().resolve()
    if p.is_dir():
        p = p / SPEC_FILE
    if not p.is_file():
        raise SpecError(str(p), [f"file not found{origin}"])
    return p


@dataclass(frozen=True)
class ProjectSettings:
    """Resolved locations of every external part (spec values overridden by the environment)."""

    state_dir: Path
    storage_root: str
    storage_endpoint_url: str | None
    storage_region: str | None
    online_store_url: str
    online_key_prefix: str
    tracking_uri: str
    artifact_root: str
    # S3 endpoint of an s3:// artifact root (MLflow's MLFLOW_S3_ENDPOINT_URL; serving reads boosters there)
    artifact_endpoint_url: str | None = None

    def describe(self) -> dict[str, str]:
        """A printable summary with credentials stripped from URLs."""
        out = {
            "state_dir": str(self.state_dir),
            "storage": self.storage_root,
            "online_store": redact_url(self.online_store_url),
            "tracking": redact_url(self.tracking_uri),
            "artifacts": self.artifact_root,
        }
        if self.storage_endpoint_url:
            out["storage_endpoint"] = redact_url(self.storage_endpoint_url)
        if self.artifact_endpoint_url and self.artifact_endpoint_url != self.storage_endpoint_url:
            out["artifact_endpoint"] = redact_url(self.artifact_endpoint_url)
        return out


def redact_url(url: str) -> str:
    """Hide the password in scheme://user:password@host URLs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
    return url


def resolve_settings(spec: ProjectSpec, root: Path, state_dir: str | Path | None = None) -> ProjectSettings:
    """Spec values, overridden by environment variables, with embedded defaults under the state folder.

    `state_dir` (tests, the CLI's --home) wins over MLFORGE_HOME and the spec.
    """
    env = get_settings()
    infra = spec.infrastructure
    state = Path(state_dir or env.home or (root / infra.state_dir)).expanduser().resolve()
    storage_root = env.storage_root or infra.storage.root or str(state / "storage")
    if "://" not in storage_root and not Path(storage_root).is_absolute():
        storage_root = str((root / storage_root).resolve())
    online = secret_value(env.online_store_url) or infra.online_store.url
    if online == "embedded":
        online = f"sqlite:///{state / 'online' / 'online.db'}"
    tracking = (
        secret_value(env.mlflow_tracking_uri)
        or infra.tracking.uri
        or f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
    )
    artifacts = env.artifact_root or infra.tracking.artifact_root or (state / "mlflow" / "artifacts").as_uri()
    endpoint = env.s3_endpoint_url or infra.storage.endpoint_url
    # An s3:// artifact root lives on MLFLOW_S3_ENDPOINT_URL when that is set, else on the storage's
    # own S3 endpoint (one S3 server for everything).
    artifact_endpoint = (env.mlflow_s3_endpoint_url or endpoint) if artifacts.startswith("s3://") else None
    return ProjectSettings(
        state_dir=state,
        storage_root=storage_root,
        storage_endpoint_url=endpoint,
        storage_region=env.aws_region or infra.storage.region,
        online_store_url=online,
        online_key_prefix=f"{infra.online_store.key_prefix}:{spec.project}",
        tracking_uri=tracking,
        artifact_root=artifacts,
        artifact_endpoint_url=artifact_endpoint,
    )


class Project:
    """A spec plus its folder and settings; builds the core clients on first use.

    `spec_path` is the file the spec was loaded from (what every command prints); a project built
    from a spec in memory names `<root>/mlforge.yaml`.
    """

    def __init__(
        self,
        spec: ProjectSpec,
        root: Path,
        settings: ProjectSettings | None = None,
        spec_path: Path | None = None,
    ) -> None:
        self.spec = spec
        self.root = root
        self.spec_path = spec_path or root / SPEC_FILE
        self.settings = settings or resolve_settings(spec, root)

    @classmethod
    def load(cls, path: str | Path | None = None, state_dir: str | Path | None = None) -> Project:
        """Load the project whose spec `resolve_spec_path(path)` names (a YAML or a Python spec)."""
        spec_path = resolve_spec_path(path)
        spec = load_spec(spec_path)
        root = spec_path.parent
        return cls(spec, root, resolve_settings(spec, root, state_dir), spec_path)

    @cached_property
    def storage(self) -> Storage:
        """The project's object storage."""
        return open_storage(
            self.settings.storage_root,
            self.settings.storage_endpoint_url,
            self.settings.storage_region,
        )

    @cached_property
    def tracker(self) -> Tracker:
        """The project's MLflow tracker (MLflow itself is imported on first use)."""
        from mlforge.models.tracking import Tracker

        s = self.settings
        return Tracker(s.tracking_uri, s.artifact_root, s.artifact_endpoint_url, s.storage_region)

    def read_source(self, ds: DatasetSpec, path: str | None = None) -> pl.DataFrame:
        """Every row of a dataset's source (or of `path` read as that dataset), on the project's S3."""
        from mlforge.data.sources import read_source

        return read_source(ds, self.source_path(path or ds.source.path), self.settings.storage_endpoint_url)

    def source_path(self, path: str) -> str:
        """A dataset source path resolved against the project folder (URIs pass through)."""
        if "://" in path or Path(path).is_absolute():
            return path
        return str(self.root / path)


def dagster_home(state_dir: Path, project_root: Path | None = None) -> Path:
    """<state>/dagster with the project's dagster.yaml (else MLForge's), exported as DAGSTER_HOME."""
    from mlforge.templates import bundled

    home = state_dir / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    own = project_root / "dagster.yaml" if project_root else None
    try:
        template: Path | None = own if own and own.is_file() else bundled("dagster.yaml")
    except FileNotFoundError:
        template = None
    if template and not (home / "dagster.yaml").exists():
        shutil.copyfile(template, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home
