"""Admin endpoints (API key, rollback, traffic, reload), /metrics, OpenAPI, and the deploy CLI."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mlforge.config.project import Project
from mlforge.deployment.manifest import Manifest, history, read_manifest, write_manifest
from mlforge.deployment.state import VariantRole
from serving.app import create_app

ENDPOINT = "churn-api"
KEY = "s3cr3t-admin-key-0123456789abcdef"


@pytest.fixture(scope="module")
def project(materialized: Any) -> Project:
    return materialized.project


@pytest.fixture(scope="module")
def deployed(project: Project) -> Manifest:
    m = read_manifest(project.storage, ENDPOINT)
    assert m is not None
    return m


def isolated(project: Project, root: Path) -> Project:
    """The same project with its own storage holding a copy of the manifests (the shared one stays)."""
    own = Project(project.spec, project.root, dataclasses.replace(project.settings, storage_root=str(root)))
    for key in project.storage.list("deployments/"):
        own.storage.write_bytes(key, project.storage.read_bytes(key))
    return own


@pytest.fixture
def own(project: Project, tmp_path: Path) -> Project:
    return isolated(project, tmp_path / "storage")


@pytest.fixture
def admin(own: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("MLFORGE_ADMIN_API_KEY", KEY)
    monkeypatch.setenv("MLFORGE_PREDICTION_LOG", "off")
    with TestClient(create_app(own, reload_interval_s=0)) as c:
        yield c


def served(c: TestClient) -> tuple[int, list[tuple[str, int, int]]]:
    body = c.post(f"/predict/{ENDPOINT}", json={"entity_ids": ["00003"]}).json()
    info = c.get("/endpoints").json()["endpoints"][0]
    return body["revision"], [(v["name"], v["version"], v["traffic"]) for v in info["variants"]]


# ---------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------

ADMIN_CALLS = [
    ("/admin/reload", None),
    (f"/admin/{ENDPOINT}/rollback", None),
    (f"/admin/{ENDPOINT}/traffic", {"traffic": {"champion": 100}}),
]


@pytest.mark.parametrize(("path", "body"), ADMIN_CALLS)
def test_admin_needs_the_key(admin: TestClient, path: str, body: Any) -> None:
    r = admin.post(path, json=body)
    assert r.status_code == 401 and r.json() == {"detail": "missing X-API-Key header"}
    r = admin.post(path, json=body, headers={"X-API-Key": "wrong"})
    assert r.status_code == 403 and r.json() == {"detail": "invalid API key"}
    r = admin.post(path, json=body, headers={"X-API-Key": KEY[:-1]})  # a prefix is not the key
    assert r.status_code == 403


@pytest.mark.parametrize(("path", "body"), ADMIN_CALLS)
def test_admin_is_disabled_without_the_env_var(
    own: Project, monkeypatch: pytest.MonkeyPatch, path: str, body: Any
) -> None:
    monkeypatch.delenv("MLFORGE_ADMIN_API_KEY", raising=False)
    monkeypatch.setenv("MLFORGE_PREDICTION_LOG", "off")
    with TestClient(create_app(own, reload_interval_s=0)) as c:
        for headers in ({}, {"X-API-Key": KEY}, {"X-API-Key": ""}):
            r = c.post(path, json=body, headers=headers)
            assert r.status_code == 403, r.text
            assert r.json()["detail"].startswith("admin API disabled")
        assert read_manifest(own.storage, ENDPOINT).revision == 1  # type: ignore[union-attr]


def test_key_never_appears_in_logs_or_responses(
    own: Project, deployed: Manifest, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    monkeypatch.setenv("MLFORGE_ADMIN_API_KEY", KEY)
    monkeypatch.setenv("MLFORGE_PREDICTION_LOG", "off")
    texts = []
    with TestClient(create_app(own, reload_interval_s=0)) as c:
        write_manifest(own.storage, deployed.model_copy(update={"variants": deployed.variants}))
        h = {"X-API-Key": KEY}
        for r in (
            c.post("/admin/reload", headers=h),
            c.post(f"/admin/{ENDPOINT}/rollback", headers=h),
            c.post(f"/admin/{ENDPOINT}/rollback", headers=h),
            c.post(f"/admin/{ENDPOINT}/traffic", headers=h, json={"traffic": {"champion": 100}}),
            c.post(f"/admin/{ENDPOINT}/traffic", headers=h, json={"traffic": {"nope": 100}}),
            c.post(f"/admin/{ENDPOINT}/traffic", headers=h, json={"traffic": "x"}),
            c.post("/admin/nope/rollback", headers=h),
            c.post("/admin/reload", headers={"X-API-Key": KEY + "x"}),
            c.get("/metrics"),
            c.get("/openapi.json"),
            c.get("/endpoints"),
        ):
            texts.append(r.text + str(r.headers))
    assert any("admin:" in rec.getMessage() for rec in caplog.records)  # admin actions are logged …
    for rec in caplog.records:  # … but never with the key
        assert KEY not in rec.getMessage() and KEY not in str(rec.args) and KEY not in str(rec.__dict__)
    assert KEY not in caplog.text
    assert all(KEY not in t for t in texts)


# ---------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------


def test_rollback_through_the_api_changes_the_served_revision(
    admin: TestClient, own: Project, deployed: Manifest
) -> None:
    green = [v.model_copy(update={"name": VariantRole.GREEN}) for v in deployed.variants]
    new = write_manifest(own.storage, deployed.model_copy(update={"variants": green}))
    r = admin.post("/admin/reload", headers={"X-API-Key": KEY})
    assert r.status_code == 200 and r.json()["loaded"] == {ENDPOINT: new.revision}
    assert served(admin) == (2, [("green", 1, 100)])
    r = admin.post(f"/admin/{ENDPOINT}/rollback", headers={"X-API-Key": KEY})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["revision"] == 3 and body["loaded_revision"] == 3
    assert body["variants"] == [{"name": "champion", "version": 1, "traffic": 100, "shadow": False}]
    assert served(admin) == (3, [("champion", 1, 100)])  # served at once, no polling needed
    assert [m.revision for m in history(own.storage, ENDPOINT)] == [1, 2, 3]


def test_rollback_without_history_and_unknown_endpoint(admin: TestClient) -> None:
    r = admin.post(f"/admin/{ENDPOINT}/rollback", headers={"X-API-Key": KEY})
    assert r.status_code == 409 and "no earlier revision" in r.json()["detail"]
    r = admin.post("/admin/nope/rollback", headers={"X-API-Key": KEY})
    assert r.status_code == 404 and "unknown endpoint 'nope'" in r.json()["detail"]


def test_traffic_split_writes_a_new_revision(admin: TestClient, own: Project, deployed: Manifest) -> None:
    champ = deployed.variants[0]
    write_manifest(
        own.storage,
        deployed.model_copy(
            update={
                "strategy": "champion_challenger",
                "variants": [
                    champ.model_copy(update={"traffic": 90}),
                    champ.model_copy(update={"name": VariantRole.CHALLENGER, "traffic": 10}),
                    champ.model_copy(update={"name": "shadow", "traffic": 0, "shadow": True}),
                ],
            }
        ),
    )
    h = {"X-API-Key": KEY}
    admin.post("/admin/reload", headers=h)
    r = admin.post(
        f"/admin/{ENDPOINT}/traffic", headers=h, json={"traffic": {"champion": 40, "challenger": 60}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["revision"] == 3 and r.json()["loaded_revision"] == 3
    assert served(admin)[1] == [("champion", 1, 40), ("challenger", 1, 60), ("shadow", 1, 0)]
    m = read_manifest(own.storage, ENDPOINT)
    assert m is not None and m.state["status"] == "manual_traffic"
    assert "champion=40%, challenger=60%" in str(m.state["reason"])
    ids = [f"{i:05d}" for i in range(3, 400)]
    preds = admin.post(f"/predict/{ENDPOINT}", json={"entity_ids": ids}).json()["predictions"]
    share = sum(p["variant"] == "challenger" for p in preds) / len(preds)
    assert 0.45 < share < 0.75
    for bad, msg in (
        ({"champion": 50}, "must add up to 100, got 110"),
        ({"nope": 100}, "unknown variant(s) ['nope']"),
        ({"shadow": 10, "champion": 30}, "shadow variant(s) ['shadow'] answer no traffic"),
    ):
        r = admin.post(f"/admin/{ENDPOINT}/traffic", headers=h, json={"traffic": bad})
        assert r.status_code == 422 and msg in r.json()["detail"], r.text
    r = admin.post(f"/admin/{ENDPOINT}/traffic", headers=h, json={"traffic": {"champion": 101}})
    assert r.status_code == 422
    assert read_manifest(own.storage, ENDPOINT).revision == 3  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# /metrics and OpenAPI
# ---------------------------------------------------------------------------------------------


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    series = f"{name}{{{want}}}" if labels else name
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_move_with_requests(admin: TestClient) -> None:
    before = admin.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain; version=0.0.4")
    t0 = before.text
    for _ in range(3):
        assert admin.post(f"/predict/{ENDPOINT}", json={"entity_ids": ["00003", "00010"]}).status_code == 200
    assert admin.post("/predict/nope", json={"entity_ids": ["1"]}).status_code == 404
    assert admin.post(f"/predict/{ENDPOINT}", json={"entity_ids": "x"}).status_code == 422
    t1 = admin.get("/metrics").text
    ok = {"endpoint": ENDPOINT, "variant": "champion", "status": "200"}
    assert sample(t1, "mlforge_requests_total", **ok) - sample(t0, "mlforge_requests_total", **ok) == 3
    miss = {"endpoint": "unknown", "variant": "none", "status": "404"}
    assert sample(t1, "mlforge_errors_total", **miss) - sample(t0, "mlforge_errors_total", **miss) == 1
    assert sample(t1, "mlforge_requests_total", **miss) - sample(t0, "mlforge_requests_total", **miss) == 1
    bad = {"endpoint": ENDPOINT, "variant": "none", "status": "422"}
    assert sample(t1, "mlforge_errors_total", **bad) - sample(t0, "mlforge_errors_total", **bad) == 1
    assert sample(t1, "mlforge_errors_total", **ok) == 0
    rows = {"endpoint": ENDPOINT, "variant": "champion", "shadow": "false"}
    assert (
        sample(t1, "mlforge_predictions_total", **rows) - sample(t0, "mlforge_predictions_total", **rows) == 6
    )
    lat = {"endpoint": ENDPOINT, "variant": "champion"}
    n0 = sample(t0, "mlforge_request_latency_seconds_count", **lat)
    assert sample(t1, "mlforge_request_latency_seconds_count", **lat) - n0 == 3
    assert sample(t1, "mlforge_request_latency_seconds_sum", **lat) > 0
    inf = sample(t1, "mlforge_request_latency_seconds_bucket", **lat, le="+Inf")
    assert inf == sample(t1, "mlforge_request_latency_seconds_count", **lat)
    buckets = [
        float(v)
        for v in re.findall(
            r'latency_seconds_bucket\{endpoint="churn-api",variant="champion",le="[^"]+"\} (\S+)', t1
        )
    ]
    assert buckets == sorted(buckets)  # cumulative
    assert sample(t1, "mlforge_manifest_revision", endpoint=ENDPOINT) == 1
    for family in ("requests_total", "errors_total", "request_latency_seconds"):
        assert f"# TYPE mlforge_{family} " in t1


def test_metrics_count_the_prediction_log(own: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFORGE_PREDICTION_LOG", raising=False)
    with TestClient(create_app(own, reload_interval_s=0)) as c:
        c.post(f"/predict/{ENDPOINT}", json={"entity_ids": ["00003", "00010"]})
        text = c.get("/metrics").text
    assert sample(text, "mlforge_prediction_log_buffered_rows") == 2
    assert "mlforge_prediction_log_dropped_rows_total 0" in text


def test_openapi_documents_predict_metrics_and_admin(admin: TestClient) -> None:
    spec = admin.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/predict/{endpoint}",
        "/metrics",
        "/admin/reload",
        "/admin/{endpoint}/rollback",
        "/admin/{endpoint}/traffic",
    ):
        assert path in paths, path
    assert spec["components"]["securitySchemes"]["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "$MLFORGE_ADMIN_API_KEY",
    }
    assert admin.get("/docs").status_code == 200


# ---------------------------------------------------------------------------------------------
# The deploy CLI
# ---------------------------------------------------------------------------------------------


def cli(
    args: list[str], project: Project, storage_root: Path, repo_root: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFORGE_", "DAGSTER_", "MLFLOW_"))}
    env["MLFORGE_STORAGE_ROOT"] = str(storage_root)
    exe = Path(sys.executable).parent / "mlforge"
    return subprocess.run(
        [
            str(exe),
            "deploy",
            *args,
            "--spec",
            str(project.root / "mlforge.yaml"),
            "--home",
            str(project.settings.state_dir),
        ],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_deploy_cli_rollback_traffic_history(
    project: Project, deployed: Manifest, tmp_path: Path, repo_root: Path
) -> None:
    root = tmp_path / "storage"
    own = isolated(project, root)
    champ = deployed.variants[0]
    write_manifest(
        own.storage,
        deployed.model_copy(
            update={
                "strategy": "canary",
                "variants": [
                    champ.model_copy(update={"name": VariantRole.STABLE, "traffic": 95}),
                    champ.model_copy(update={"name": VariantRole.CANARY, "version": 2, "traffic": 5}),
                ],
                "state": {"step": 0, "status": "advancing", "reason": "started"},
            }
        ),
    )
    out = cli(["traffic", ENDPOINT, "stable=75", "canary=25"], project, root, repo_root)
    assert out.returncode == 0, out.stderr
    assert "revision 3 serves stable=v1 (75%), canary=v2 (25%)" in out.stdout
    bad = cli(["traffic", ENDPOINT, "stable=80"], project, root, repo_root)  # canary keeps its 25
    assert bad.returncode == 2 and "must add up to 100, got 105" in bad.stderr
    out = cli(["rollback", ENDPOINT], project, root, repo_root)
    assert out.returncode == 0, out.stderr
    assert "rolled back; revision 4 serves v1 (95%), v2 (5%)" in out.stdout
    m = read_manifest(own.storage, ENDPOINT)
    assert m is not None and m.revision == 4 and [v.traffic for v in m.variants] == [95, 5]
    out = cli(["history", ENDPOINT], project, root, repo_root)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if re.match(r"\s+\d+\s", line)]
    assert [int(line.split()[0]) for line in lines] == [1, 2, 3, 4]
    assert "canary=v2:25%" in lines[2] and "manual_traffic" in lines[2]
    out = cli(["status", ENDPOINT], project, root, repo_root)
    assert "revision 4" in out.stdout and "state.status = advancing" in out.stdout
    # a second rollback restores the revision before the current one (the 75/25 split)
    out = cli(["rollback", ENDPOINT], project, root, repo_root)
    assert "revision 5 serves v1 (75%), v2 (25%)" in out.stdout
    assert read_manifest(project.storage, ENDPOINT).revision == deployed.revision  # type: ignore[union-attr]
