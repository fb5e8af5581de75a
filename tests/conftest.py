"""Shared fixtures: the compact example project materialized once per session, and real servers.

Servers (Redis, S3) are started from binaries the dev dependencies install, once per session, on
free loopback ports — or taken from MLFORGE_TEST_REDIS_URL / MLFORGE_TEST_S3_* when set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from projects import compact_spec, write_spec

from mlforge.config.project import Project
from mlforge_assets.runner import Runner, StepResult
from servers import Receiver, start_redis, start_s3

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "data" / "cdnow" / "CDNOW_master.txt"


def _temp_in_memory(folder: Path = Path("/dev/shm"), room: int = 4 << 30) -> None:
    """Temporary folders (pytest's tmp_path, every subprocess's TMPDIR) on tmpfs when the machine
    has one with room and nobody chose a TMPDIR: the suite's Dagster instances write their SQLite
    event log with an fsync per event (~10 ms each on these disks, a third of a compact run)."""
    if "TMPDIR" in os.environ or not folder.is_dir() or not os.access(folder, os.W_OK):
        return
    if shutil.disk_usage(folder).free < room:
        return
    os.environ["TMPDIR"] = tempfile.tempdir = str(folder)


_temp_in_memory()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO


@dataclass
class Materialized:
    """A project after the quickstart path ran into a temporary state folder."""

    project: Project
    runner: Runner
    instance: dg.DagsterInstance
    steps: list[StepResult]
    state_dir: Path

    def meta(self, key: str) -> dict[str, object]:
        """Metadata of the last materialization of `key` in the quickstart."""
        for step in reversed(self.steps):
            if key in step.metadata:
                return step.metadata[key]
        raise KeyError(key)

    @property
    def spec_path(self) -> Path:
        """The project's mlforge.yaml (to load it again, e.g. on a copy of the state)."""
        return self.project.root / "mlforge.yaml"


@pytest.fixture(scope="session")
def materialized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Materialized]:
    """Run the quickstart plan once on the compact example (tests/projects.py: the example spec
    over Jan–Sep 1997 reading the bundled CDNOW file; cutoff and last day 1997-09-30), with real
    MLflow on SQLite and a real Dagster instance on disk."""
    folder = tmp_path_factory.mktemp("mlforge-project")
    state = folder / "state"
    project = Project.load(write_spec(folder, compact_spec(REPO, str(SOURCE))), state_dir=state)
    (state / "dagster").mkdir(parents=True)
    with dg.instance_for_test(temp_dir=str(state / "dagster")) as instance:
        runner = Runner(project, instance)
        steps = runner.run_plan(runner.quickstart_plan())
        yield Materialized(project, runner, instance, steps, state)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: $MLFORGE_TEST_REDIS_URL or a redis-server started for this session."""
    env = os.environ.get("MLFORGE_TEST_REDIS_URL")
    if env:
        yield env
        return
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()


@dataclass(frozen=True)
class S3Server:
    """Where the test S3 server listens and how to authenticate."""

    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server (SeaweedFS) or $MLFORGE_TEST_S3_ENDPOINT_URL + keys."""
    env = os.environ.get("MLFORGE_TEST_S3_ENDPOINT_URL")
    if env:
        yield S3Server(
            env,
            os.environ.get("MLFORGE_TEST_S3_BUCKET", "mlforge-test"),
            os.environ["MLFORGE_TEST_S3_ACCESS_KEY"],
            os.environ["MLFORGE_TEST_S3_SECRET_KEY"],
        )
        return
    bucket, key, secret = "mlforge-test", "mlforge-test-key", "mlforge-test-secret-0123456789"
    server = start_s3(tmp_path_factory.mktemp("s3"), bucket, key, secret)
    try:
        yield S3Server(server.url, bucket, key, secret)
    finally:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local webhook receiver on 127.0.0.1 (stopped after the test)."""
    r = Receiver()
    yield r
    r.close()
