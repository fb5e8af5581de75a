"""The whole graph on S3: every store and the MLflow artifacts on a real SeaweedFS server.

The project is configured the way a deployment is — environment variables only (storage root,
S3 endpoint, artifact root, AWS_* keys) — on a compact copy of the example spec (short lookback and horizon, partitions from the first
training snapshot of the cutoff's model, 1997-04-30, to 1997-09-30) so the run stays fast. Nothing
may land in the local state folder's storage.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from projects import CUTOFF, TRAIN_START, compact_spec, starting, write_spec

from mlforge.config.project import Project
from mlforge.deployment.manifest import read_manifest
from mlforge.errors import MLForgeError, StoreUnavailableError
from mlforge.features.offline import service_frame
from mlforge.io import layout
from mlforge.io.storage import S3Storage, read_parquet
from mlforge.models.predictions import score_frame
from mlforge.models.tracking import load_booster
from mlforge_assets.runner import Runner
from servers import s3_client
from serving.app import create_app

pytestmark = pytest.mark.integration

ENDPOINT = "churn-api"
STAGES = ("raw", "features", "labels", "models", "deployments", "monitoring", "predictions")
# Variables that would point the project (or boto3/MLflow) somewhere else than this test says.
FOREIGN_ENV = (
    "MLFORGE_HOME",
    "MLFORGE_SPEC",
    "MLFORGE_ONLINE_STORE_URL",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)


def _write_compact_spec(folder: Path, repo_root: Path) -> Path:
    """The compact example project reading the bundled CDNOW file, from the first training day."""
    source = str(repo_root / "data" / "cdnow" / "CDNOW_master.txt")
    return write_spec(folder, starting(compact_spec(repo_root, source), TRAIN_START))


@dataclass
class S3Env:
    """Where this test's project lives on the S3 server."""

    server: Any
    run: str
    storage_prefix: str
    artifact_prefix: str
    spec_path: Path
    state_dir: Path

    @property
    def storage_root(self) -> str:
        return f"s3://{self.server.bucket}/{self.storage_prefix}"

    @property
    def artifact_root(self) -> str:
        return f"s3://{self.server.bucket}/{self.artifact_prefix}"

    def keys_under(self, prefix: str) -> list[str]:
        """Every object key under `prefix` of the bucket, listed with a plain boto3 client."""
        client = s3_client(self.server.endpoint_url, self.server.access_key, self.server.secret_key)
        out: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=self.server.bucket, Prefix=f"{prefix}/"
        ):
            out += [o["Key"][len(prefix) + 1 :] for o in page.get("Contents", [])]
        return out


@pytest.fixture
def s3_env(
    s3_server: Any, tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[S3Env]:
    """Environment of a deployment: storage and artifacts on S3, keys in AWS_*, state in tmp_path."""
    for name in FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)
    run = uuid.uuid4().hex[:12]
    env = S3Env(
        server=s3_server,
        run=run,
        storage_prefix=f"pipeline-{run}",
        artifact_prefix=f"mlflow-{run}",
        spec_path=_write_compact_spec(tmp_path / "repo", repo_root),
        state_dir=tmp_path,
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("MLFORGE_STORAGE_ROOT", env.storage_root)
    monkeypatch.setenv("MLFORGE_S3_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("MLFORGE_ARTIFACT_ROOT", env.artifact_root)
    yield env


def test_whole_graph_runs_on_s3(s3_env: S3Env, monkeypatch: pytest.MonkeyPatch) -> None:
    project = Project.load(s3_env.spec_path, state_dir=s3_env.state_dir)
    settings = project.settings
    assert settings.storage_root == s3_env.storage_root
    assert settings.storage_endpoint_url == settings.artifact_endpoint_url == s3_env.server.endpoint_url
    assert settings.artifact_root == s3_env.artifact_root
    assert settings.tracking_uri.startswith("sqlite:///")  # the tracking DB may stay local

    runner = Runner(project)
    # secrets reach Dagster as EnvVar: the resource shows the variable's name, never the value
    for res in ("storage", "mlflow"):
        shown = repr(runner.resources[res])
        assert "AWS_SECRET_ACCESS_KEY" in shown and s3_env.server.secret_key not in shown

    t0 = time.perf_counter()
    steps = runner.run_plan(runner.quickstart_plan(CUTOFF))
    seconds = time.perf_counter() - t0
    print(f"\nwhole graph on S3 (SeaweedFS): {seconds:.1f}s in {len(steps)} runs")
    assert [s.first for s in steps] == ["1997-04-30"] * 3 + ["1997-08-31"]
    assert steps[0].last == "1997-09-30" and steps[2].last == "1997-08-31"

    # MLflow's S3 endpoint was set for the tracker's operations only, never left in the process
    assert "MLFLOW_S3_ENDPOINT_URL" not in os.environ

    # every store wrote its objects under the storage prefix, the models under the artifact prefix
    stored = s3_env.keys_under(s3_env.storage_prefix)
    assert set(STAGES) <= {k.split("/", 1)[0] for k in stored}
    for expected in (
        "raw/transactions/date=1997-04-30/data.parquet",
        "raw/transactions/date=1997-09-30/_meta.json",
        f"features/customer_activity/date={CUTOFF}/data.parquet",
        "labels/churn/date=1997-08-31/data.parquet",
        f"models/churn/cutoff={CUTOFF}/run.json",
        f"models/churn/cutoff={CUTOFF}/registration.json",
        f"deployments/{ENDPOINT}/manifest.json",
        f"monitoring/churn/drift/date={CUTOFF}/report.html",
        f"monitoring/churn/drift/date={CUTOFF}/summary.json",
        layout.predictions("churn", CUTOFF),
    ):
        assert expected in stored, expected
    artifacts = s3_env.keys_under(s3_env.artifact_prefix)
    assert any(k.endswith("/model.ubj") for k in artifacts) and any(k.endswith("/MLmodel") for k in artifacts)

    # the manifest names the booster on S3; it loads from the configured endpoint alone
    manifest = read_manifest(project.storage, ENDPOINT)
    assert manifest is not None
    (variant,) = manifest.variants
    assert variant.booster_uri.startswith(f"{s3_env.artifact_root}/")
    assert variant.booster_uri.endswith("/model.ubj")
    monkeypatch.delenv("MLFORGE_S3_ENDPOINT_URL")  # no environment fallback: the endpoint is passed
    booster = load_booster(variant.booster_uri, endpoint_url=settings.artifact_endpoint_url)
    tracker = runner.resources["mlflow"].get()
    assert tracker.load_booster(variant.booster_uri).save_raw() == booster.save_raw()

    # … and scores the cutoff's snapshot exactly as the stored batch predictions
    spec, model = project.spec, project.spec.model("churn")
    frame = service_frame(project.storage, spec, model.feature_service, CUTOFF)
    rescored = score_frame(booster, frame, manifest.feature_names, "customer_id", variant.version)
    stored_preds = read_parquet(project.storage, layout.predictions("churn", CUTOFF))
    assert stored_preds.height == rescored.height > 1_000
    assert stored_preds.sort("customer_id").equals(rescored.sort("customer_id"))

    # serving answers from the S3-stored manifest and model
    ids = stored_preds.sort("customer_id")["customer_id"].head(25).to_list()
    with TestClient(create_app(project, reload_interval_s=0)) as client:
        assert client.get("/ready").json()["status"] == "ready"
        resp = client.post(f"/predict/{ENDPOINT}", json={"entity_ids": ids})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["revision"] == manifest.revision
    expected = dict(zip(stored_preds["customer_id"], stored_preds["score"], strict=True))
    got = {p["entity_id"]: p["score"] for p in body["predictions"]}
    assert all(p["found"] for p in body["predictions"])
    assert np.allclose([got[i] for i in ids], [expected[i] for i in ids], rtol=1e-6)

    # nothing went to the local state folder's storage or artifact folders
    local = s3_env.state_dir / "storage"
    assert not local.exists() or not any(local.rglob("*"))
    artifacts_dir = s3_env.state_dir / "mlflow" / "artifacts"
    assert not artifacts_dir.exists() or not any(artifacts_dir.rglob("*"))


def test_wrong_secret_key_is_a_clear_store_unavailable_error(
    s3_env: S3Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "definitely-not-the-secret-key-42"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    project = Project.load(s3_env.spec_path, state_dir=s3_env.state_dir)
    with pytest.raises(StoreUnavailableError) as err:
        project.storage.list("raw/")
    msg = str(err.value)
    assert msg.startswith(f"S3 list failed on {s3_env.storage_root}: ")
    assert "SignatureDoesNotMatch" in msg and "AWS_SECRET_ACCESS_KEY" in msg
    assert wrong not in msg and s3_env.server.access_key not in msg and "Traceback" not in msg

    # through the graph: the raw stage fails with the same message, not a botocore traceback
    runner = Runner(project)
    with pytest.raises(MLForgeError) as run_err:
        runner.materialize([runner.key("raw", "transactions")], TRAIN_START)
    text = str(run_err.value)
    assert "S3 put failed on" in text and "SignatureDoesNotMatch" in text
    assert wrong not in text and "botocore" not in text
    assert s3_env.keys_under(s3_env.storage_prefix) == []


def test_missing_credentials_are_a_clear_store_unavailable_error(
    s3_env: S3Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    # no profile files and no instance metadata lookup: boto3 finds no credentials at all
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    project = Project.load(s3_env.spec_path, state_dir=s3_env.state_dir)
    with pytest.raises(StoreUnavailableError, match=r"S3 get failed on .*Unable to locate credentials"):
        project.storage.read_bytes("deployments/churn-api/manifest.json")


def test_s3_overwrite_is_never_seen_half_written(s3_env: S3Env) -> None:
    """A reader racing a 20 MB overwrite gets the complete old or the complete new bytes, never a mix."""
    server = s3_env.server
    store = S3Storage(f"{s3_env.storage_root}/atomic", endpoint_url=server.endpoint_url)
    old, new = os.urandom(20 * 2**20), os.urandom(20 * 2**20)
    digests = {hashlib.sha256(old).hexdigest(): "old", hashlib.sha256(new).hexdigest(): "new"}
    store.write_bytes("big.bin", old)

    stop = threading.Event()
    writes: list[str] = []
    failures: list[BaseException] = []

    def overwrite() -> None:
        try:
            while not stop.is_set():
                which = "new" if len(writes) % 2 == 0 else "old"
                store.write_bytes("big.bin", new if which == "new" else old)
                writes.append(which)
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    seen: list[str] = []
    reader = S3Storage(store.root, endpoint_url=server.endpoint_url)  # its own client
    writer = threading.Thread(target=overwrite, daemon=True)
    writer.start()
    deadline, hard_stop = time.monotonic() + 2.0, time.monotonic() + 30.0
    try:
        # ~2 s, but at least two completed overwrites so the reads really overlapped writes
        while (time.monotonic() < deadline or len(writes) < 2) and time.monotonic() < hard_stop:
            data = reader.read_bytes("big.bin")
            seen.append(digests.get(hashlib.sha256(data).hexdigest(), f"torn ({len(data)} bytes)"))
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not failures, failures
    assert len(writes) >= 2 and len(seen) >= 2
    assert set(seen) <= {"old", "new"}, [s for s in seen if s not in ("old", "new")]
    print(f"\n{len(seen)} reads during {len(writes)} overwrites of 20 MB: {sorted(set(seen))}")
