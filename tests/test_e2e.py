"""End to end, as a user runs it: the quickstart CLI, Dagster's own CLI, and `mlforge serve` over HTTP,
on the compact example (tests/projects.py: the example over Jan–Sep 1997 reading the bundled file)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import polars as pl
import pytest
from projects import CUTOFF, END, compact_spec, write_spec

from mlforge.config.project import Project
from mlforge.deployment.manifest import read_manifest
from servers import free_port

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent


def _run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_quickstart_dagster_cli_and_serving(tmp_path: Path, repo_root: Path) -> None:
    state = tmp_path / "state"
    spec_path = write_spec(
        tmp_path / "project", compact_spec(repo_root, str(repo_root / "data/cdnow/CDNOW_master.txt"))
    )
    project = Project.load(spec_path, state_dir=state)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFORGE_", "DAGSTER_", "MLFLOW_"))}
    tx = project.read_source(project.spec.dataset("transactions"))
    rows = tx.filter(pl.col("date") <= END).height  # the history's rows (49,086 of the file's 69,659)

    # 1. the README's first command, on the embedded defaults (the spec's folder as the project)
    t0 = time.perf_counter()
    qs = _run(
        [str(BIN / "mlforge"), "quickstart", "--spec", str(spec_path), "--home", str(state)], env, repo_root
    )
    quickstart_s = time.perf_counter() - t0
    out = qs.stdout
    assert f"raw rows          {rows:,}" in out and rows < tx.height
    auc = float(re.search(r"holdout\s+auc ([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    assert 0.70 <= auc <= 0.90
    assert (
        "model             churn v1 [binary, xgboost]" in out
        and "endpoint          churn-api (revision 1" in out
    )
    print(f"quickstart wall time {quickstart_s:.1f} s, AUC {auc:.4f}")

    # 2. Dagster's CLI: one day across the whole graph (the last whose labels matured), after the
    # history was backfilled
    day = CUTOFF.isoformat()
    denv = {
        **env,
        "MLFORGE_SPEC": str(spec_path),
        "MLFORGE_HOME": str(state),
        "DAGSTER_HOME": str(state / "dagster"),
    }
    _run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "mlforge_assets.definitions",
            "--select",
            "*",
            "--partition",
            day,
        ],
        denv,
        repo_root,
    )
    import dagster as dg

    with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
        for key in ("churn/raw/transactions", "churn/models/churn/registered", "churn/predictions/churn"):
            ev = instance.get_latest_materialization_event(dg.AssetKey.from_user_string(key))
            assert ev is not None and ev.asset_materialization.partition == day, key  # type: ignore[union-attr]
        reg = instance.get_latest_materialization_event(
            dg.AssetKey.from_user_string("churn/models/churn/registered")
        )
        version = reg.asset_materialization.metadata["model_version"].value  # type: ignore[union-attr]
        assert version == 2
    manifest = read_manifest(project.storage, "churn-api")
    assert manifest is not None
    served_version = manifest.variants[0].version  # v2 if it passed the gate, else still v1

    # 3. serving what the deployment asset wrote, over real HTTP
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "mlforge"), "serve", "--spec", str(spec_path), "--home", str(state), "--port", str(port)],
        cwd=repo_root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail("serving did not become ready in 60 s")
        r = httpx.post(
            f"{url}/predict/churn-api", json={"entity_ids": ["00003", "00010", "nobody"]}, timeout=5
        )
        assert r.status_code == 200, r.text
        body = r.json()
        preds = body["predictions"]
        assert [p["entity_id"] for p in preds] == ["00003", "00010", "nobody"]
        assert 0.0 <= preds[0]["score"] <= 1.0 and preds[0]["model_version"] == served_version
        assert preds[2]["found"] is False and preds[2]["score"] is None
        assert httpx.post(f"{url}/predict/nope", json={"entity_ids": ["1"]}, timeout=5).status_code == 404
        bad = httpx.post(f"{url}/predict/churn-api", json={"entity_ids": "00003"}, timeout=5)
        assert bad.status_code == 422 and "entity_ids" in bad.text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
