"""`mlforge train`, `mlforge deploy MODEL`, `mlforge models` and `mlforge experiments`, as a user runs
them (the venv's `mlforge`), on a copy of the materialized compact example: a Dagster run with its
tags, an MLflow run in the named experiment, a new manifest revision that serving answers from,
and one-line errors with exit code 2 that write nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from fastapi.testclient import TestClient

from mlforge.config.project import Project
from mlforge.deployment.manifest import read_manifest
from serving.app import create_app

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def state(materialized, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """A private copy of the materialized example's state (its Dagster instance and MLflow store)."""
    dst = tmp_path_factory.mktemp("cli") / "state"
    shutil.copytree(materialized.state_dir, dst)
    return dst


def _mlforge(materialized, state: Path, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFORGE_", "DAGSTER_", "MLFLOW_"))}
    cmd = [str(BIN / "mlforge"), *args, "--spec", str(materialized.spec_path), "--home", str(state)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _runs(state: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
        return list(instance.get_runs())


def test_train_registers_through_the_dagster_graph(materialized, state: Path) -> None:  # type: ignore[no-untyped-def]
    before = len(_runs(state))
    out = _mlforge(
        materialized, state, "train", "churn", "--cutoff", "1997-08-31", "--experiment", "notebook"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "version           churn v2 (champion: v1)" in out.stdout
    # an earlier cutoff than the champion's never contends: the gate says why
    assert "does not contend" in out.stdout and "holdout           " in out.stdout
    runs = _runs(state)
    assert len(runs) == before + 1
    run = next(r for r in runs if r.run_id in out.stdout)
    assert run.run_id in out.stdout and run.tags["mlforge/trigger"] == "cli"
    assert run.tags["mlforge/experiment"] == "notebook" and run.tags["dagster/partition"] == "1997-08-31"
    project = Project.load(materialized.spec_path, state_dir=state)
    v2 = project.tracker.version("churn", 2)
    assert v2.tags["mlforge.cutoff"] == "1997-08-31" and v2.tags["dagster.run_id"] == run.run_id
    assert [r["tags"]["mlforge.cutoff"] for r in project.tracker.runs("notebook")] == ["1997-08-31"]

    listed = _mlforge(materialized, state, "models", "list")
    assert listed.returncode == 0, listed.stderr
    assert "v2   cutoff 1997-08-31" in listed.stdout and "@champion" in listed.stdout
    shown = _mlforge(materialized, state, "models", "show", "churn", "--version", "2")
    assert "mlforge.experiment = notebook" in shown.stdout and "metric   holdout_auc = " in shown.stdout
    compared = _mlforge(materialized, state, "experiments", "compare", "notebook", "--metrics", "holdout_auc")
    assert compared.returncode == 0 and "1997-08-31" in compared.stdout
    assert "notebook  (1 runs)" in _mlforge(materialized, state, "experiments", "list").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "nope"], "unknown model 'nope'"),
        (["train", "churn", "--cutoff", "1999-01-01"], "outside the partitions 1997-01-01..1997-09-30"),
        (["train", "churn", "--cutoff", "1997-04-01"], "before the first partition 1997-01-01"),
        (["train", "churn", "--cutoff", "31/08/1997"], "--cutoff must be a day like"),
        (["deploy", "churn", "--version", "9", "--endpoint", "churn-api"], "version 9 is not registered"),
        (["deploy", "churn", "--endpoint", "churn-api"], "exactly one of --version N or --alias NAME"),
        (["deploy", "churn", "--version", "1", "--endpoint", "nope"], "unknown endpoint 'nope'"),
        (
            [
                "deploy",
                "churn",
                "--version",
                "1",
                "--endpoint",
                "churn-api",
                "--strategy",
                "canary",
                "--steps",
                "50,20",
            ],
            "steps must increase strictly",
        ),
        (["deploy", "traffic", "churn-api", "champion=60"], "100"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    materialized, state: Path, args: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    project = Project.load(materialized.spec_path, state_dir=state)
    revision = read_manifest(project.storage, "churn-api").revision  # type: ignore[union-attr]
    runs = len(_runs(state))
    out = _mlforge(materialized, state, *args)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr
    assert read_manifest(project.storage, "churn-api").revision == revision  # type: ignore[union-attr]
    assert len(_runs(state)) == runs


def test_deploy_a_version_as_a_canary_then_serve_it(materialized, state: Path) -> None:  # type: ignore[no-untyped-def]
    project = Project.load(materialized.spec_path, state_dir=state)
    if project.tracker.alias("churn", "champion") is None or len(project.tracker.versions("churn")) < 2:
        out = _mlforge(materialized, state, "train", "churn", "--cutoff", "1997-08-31")
        assert out.returncode == 0, out.stderr
    before = read_manifest(project.storage, "churn-api")
    assert before is not None
    out = _mlforge(
        materialized,
        state,
        "deploy",
        "churn",
        "--version",
        "2",
        "--endpoint",
        "churn-api",
        "--strategy",
        "canary",
        "--steps",
        "20,100",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    after = read_manifest(project.storage, "churn-api")
    assert after is not None and after.revision == before.revision + 1 and after.strategy == "canary"
    assert [(v.name, v.version, v.traffic) for v in after.variants] == [("stable", 1, 80), ("canary", 2, 20)]
    # serving answers from the new revision: both versions score requests
    with TestClient(create_app(project, reload_interval_s=0)) as c:
        versions = set()
        for i in range(40):
            r = c.post("/predict/churn-api", json={"entity_ids": [f"{i:05d}"]})
            assert r.status_code == 200, r.text
            versions |= {p["model_version"] for p in r.json()["predictions"] if p["found"]}
    assert versions == {1, 2}


def test_train_on_unmaterialized_labels_names_them_and_writes_nothing(materialized, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty-state"
    out = _mlforge(materialized, empty, "train", "churn", "--cutoff", "1997-08-31")
    assert out.returncode == 2, out.stdout + out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert "labels/churn is not materialized for" in line and "mlforge quickstart --cutoff 1997-08-31" in line
    assert _runs(empty) == []  # no run was started
    assert not (empty / "mlflow").exists() or not any((empty / "mlflow").rglob("MLmodel"))
