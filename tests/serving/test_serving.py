"""The serving app against the materialized example project: real boosters, real online store."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from projects import END

from mlforge.config.project import Project
from mlforge.deployment.manifest import Manifest, read_manifest, write_manifest
from mlforge.deployment.routing import route
from mlforge.features.offline import read_snapshot
from mlforge.features.online import open_online_store
from mlforge.models.predictions import score_frame
from mlforge.models.tracking import load_booster
from mlforge.monitoring.prediction_log import PredictionBatch
from serving.app import create_app

ENDPOINT = "churn-api"
VIEW = "customer_activity"
DAY = END  # the compact example's deployed day
NOT_IN_STORE = "99999"  # no such customer (every known one, active or not, is in the store)
FORBIDDEN = ("dagster", "mlflow", "pandas", "evidently")
# polars only writes the prediction log: the app loads it in its start-up, not at import time
NOT_AT_IMPORT = (*FORBIDDEN, "polars")


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(materialized: Any) -> Project:
    """The quickstart project (trained, registered, deployed, online store filled)."""
    return materialized.project


@pytest.fixture(scope="module")
def manifest(project: Project) -> Manifest:
    """The deployed manifest of churn-api."""
    m = read_manifest(project.storage, ENDPOINT)
    assert m is not None
    return m


@pytest.fixture(scope="module")
def snapshot(project: Project) -> pl.DataFrame:
    """The feature snapshot the online store was filled from."""
    return read_snapshot(project.storage, VIEW, DAY).sort("customer_id")


@pytest.fixture(scope="module")
def client(project: Project) -> Iterator[TestClient]:
    """The app on the shared project (no manifest polling: these tests never change it)."""
    with TestClient(create_app(project, reload_interval_s=0)) as c:
        yield c


def isolated(project: Project, root: Path, copy_deployments: bool = True, **settings: Any) -> Project:
    """The same spec, models and online store, but its own storage holding only the manifests.

    Tests that write manifests use this, so the shared project's deployment stays at its revision.
    """
    new = dataclasses.replace(project.settings, storage_root=str(root / "storage"), **settings)
    copy = Project(project.spec, project.root, new)
    if copy_deployments:
        for key in project.storage.list("deployments/"):
            copy.storage.write_bytes(key, project.storage.read_bytes(key))
    return copy


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def feature_rows(snapshot: pl.DataFrame, ids: list[str], names: list[str]) -> list[dict[str, Any]]:
    """Explicit feature rows for `ids`, in that order, from the snapshot."""
    by_id = {r["customer_id"]: r for r in snapshot.filter(pl.col("customer_id").is_in(ids)).to_dicts()}
    return [{n: by_id[i][n] for n in names} for i in ids]


def post(client: TestClient, body: dict[str, Any], endpoint: str = ENDPOINT) -> Any:
    """POST /predict and return the response."""
    return client.post(f"/predict/{endpoint}", json=body)


def ids_of(snapshot: pl.DataFrame, n: int, seed: int = 7) -> list[str]:
    """`n` distinct ids the online store holds, in a shuffled order."""
    rng = np.random.default_rng(seed)
    return [str(i) for i in rng.choice(snapshot["customer_id"].to_numpy(), size=n, replace=False)]


# ---------------------------------------------------------------------------------------------
# Predictions
# ---------------------------------------------------------------------------------------------


def test_predict_by_id_names_model_version_and_variant(client: TestClient, manifest: Manifest) -> None:
    r = post(client, {"entity_ids": ["00003", "00004", "00005"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["endpoint"] == ENDPOINT
    assert body["model"] == "churn"
    assert body["revision"] == manifest.revision
    assert [p["entity_id"] for p in body["predictions"]] == ["00003", "00004", "00005"]
    for p in body["predictions"]:
        assert p["found"] is True
        assert 0.0 <= p["score"] <= 1.0
        assert p["model_version"] == 1
        assert p["variant"] == "champion"
    assert len({p["score"] for p in body["predictions"]}) > 1  # different customers, different scores


def test_scores_by_id_equal_explicit_features_and_batch_scoring(
    client: TestClient, manifest: Manifest, snapshot: pl.DataFrame
) -> None:
    ids = ids_of(snapshot, 25)
    by_id = post(client, {"entity_ids": ids}).json()["predictions"]
    rows = feature_rows(snapshot, ids, manifest.feature_names)
    for i, row in enumerate(rows[:10]):  # some rows carry the entity key: echoed back
        row["customer_id"] = ids[i]
    r = post(client, {"features": rows})
    assert r.status_code == 200, r.text
    explicit = r.json()["predictions"]
    assert [p["entity_id"] for p in explicit] == ids[:10] + [None] * 15
    assert all(p["found"] and p["variant"] == "champion" and p["model_version"] == 1 for p in explicit)
    online = np.array([p["score"] for p in by_id])
    np.testing.assert_allclose(online, [p["score"] for p in explicit], atol=1e-6, rtol=0)
    # … and equal to the offline batch scorer on the same snapshot.
    booster = load_booster(manifest.variants[0].booster_uri)
    frame = snapshot.filter(pl.col("customer_id").is_in(ids))
    batch = dict(
        score_frame(booster, frame, manifest.feature_names, "customer_id", 1)
        .select("customer_id", "score")
        .iter_rows()
    )
    np.testing.assert_allclose(online, [batch[i] for i in ids], atol=1e-6, rtol=0)


def test_batch_of_50_in_request_order_with_a_missing_entity(
    client: TestClient, snapshot: pl.DataFrame
) -> None:
    ids = ids_of(snapshot, 49, seed=11)
    ids.insert(17, NOT_IN_STORE)
    r = post(client, {"entity_ids": ids})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 50
    assert [p["entity_id"] for p in preds] == ids
    assert [p["found"] for p in preds] == [i != NOT_IN_STORE for i in ids]
    assert all(0.0 <= p["score"] <= 1.0 for p in preds if p["found"])
    # Order really matters: the same ids reversed give the same scores reversed.
    back = post(client, {"entity_ids": ids[::-1]}).json()["predictions"]
    assert [p["score"] for p in back] == [p["score"] for p in preds][::-1]


def test_entity_not_in_online_store_is_not_an_error(client: TestClient) -> None:
    r = post(client, {"entity_ids": [NOT_IN_STORE, "no-such-customer"]})
    assert r.status_code == 200, r.text
    for p in r.json()["predictions"]:
        assert p == {**p, "found": False, "score": None, "variant": "champion", "model_version": 1}


def test_null_features_are_missing_values(client: TestClient, manifest: Manifest) -> None:
    r = post(client, {"features": [dict.fromkeys(manifest.feature_names)]})
    assert r.status_code == 200, r.text
    assert 0.0 <= r.json()["predictions"][0]["score"] <= 1.0


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_unknown_endpoint_is_404_naming_the_known_ones(client: TestClient) -> None:
    r = post(client, {"entity_ids": ["00003"]}, endpoint="nope")
    assert r.status_code == 404
    assert r.json() == {"detail": "unknown endpoint 'nope'; known: ['churn-api']"}


def test_bad_feature_rows_are_422_naming_the_field(
    client: TestClient, manifest: Manifest, snapshot: pl.DataFrame
) -> None:
    row = feature_rows(snapshot, ["00003"], manifest.feature_names)[0]
    missing = {k: v for k, v in row.items() if k != "days_since_last"}
    cases = {
        "days_since_last": missing,
        "favourite_colour": {**row, "favourite_colour": 1.0},
        "event_count": {**row, "event_count": "many"},
    }
    for field, bad in cases.items():
        r = post(client, {"features": [row, bad]})
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert [d["field"] for d in detail] == [f"features[1].{field}"]
        assert field in detail[0]["msg"]
    r = post(client, {"features": [{**row, "event_count": True}]})  # a JSON boolean is not a number
    assert r.status_code == 422 and "event_count" in r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"entity_ids": ["00003"], "features": [{"days_since_last": 1.0}]}, "entity_ids"),
        ({}, "entity_ids"),
        ({"entity_ids": []}, "entity_ids"),
        ({"entity_ids": [f"{i:05d}" for i in range(1001)]}, "entity_ids"),
        ({"entity_ids": [3]}, "entity_ids[0]"),
        ({"entity_ids": ["00003"], "model": "x"}, "model"),
        ({"features": "nope"}, "features"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    r = post(client, body)
    assert r.status_code == 422, r.text
    assert any(field in d["msg"] for d in r.json()["detail"]), r.text


def test_online_store_down_is_503_but_explicit_features_work(
    project: Project, manifest: Manifest, snapshot: pl.DataFrame
) -> None:
    settings = dataclasses.replace(project.settings, online_store_url=f"redis://127.0.0.1:{closed_port()}/0")
    down = Project(project.spec, project.root, settings)
    with TestClient(create_app(down, reload_interval_s=0)) as c:
        r = post(c, {"entity_ids": ["00003"]})
        assert r.status_code == 503
        detail = r.json()["detail"]
        assert "online store" in detail and "unreachable" in detail and "features" in detail
        r = post(c, {"features": feature_rows(snapshot, ["00003"], manifest.feature_names)})
        assert r.status_code == 200, r.text
        assert 0.0 <= r.json()["predictions"][0]["score"] <= 1.0
        assert c.get("/ready").status_code == 200  # the models are loaded; features can still be sent
        assert c.get("/health").json() == {"status": "ok"}


def test_endpoint_never_deployed_is_404_until_its_manifest_appears(
    project: Project, manifest: Manifest, tmp_path: Path
) -> None:
    fresh = isolated(project, tmp_path, copy_deployments=False)
    with TestClient(create_app(fresh, reload_interval_s=0.1)) as c:
        r = post(c, {"entity_ids": ["00003"]})
        assert r.status_code == 404
        assert "materialize deployments/churn-api" in r.json()["detail"]
        assert c.get("/ready").status_code == 200  # nothing is deployed, so nothing is missing
        assert c.get("/endpoints").json()["endpoints"][0]["deployed"] is False
        write_manifest(fresh.storage, manifest)
        deadline = time.monotonic() + 3
        while post(c, {"entity_ids": ["00003"]}).status_code != 200:
            assert time.monotonic() < deadline, "the new deployment was not picked up"
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# Hot swap
# ---------------------------------------------------------------------------------------------


def test_hot_swap_without_failed_requests(project: Project, manifest: Manifest, tmp_path: Path) -> None:
    own = isolated(project, tmp_path)
    with TestClient(create_app(own, reload_interval_s=0.1)) as c:
        before = post(c, {"entity_ids": ["00003"]}).json()["predictions"][0]
        answers: list[tuple[int, int, str, float | None]] = []  # status, revision, variant, score
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                r = post(c, {"entity_ids": ["00003", NOT_IN_STORE]})
                b = r.json() if r.status_code == 200 else {}
                p = b.get("predictions", [{}])[0]
                answers.append((r.status_code, b.get("revision", -1), p.get("variant", ""), p.get("score")))

        workers = [threading.Thread(target=hammer) for _ in range(2)]
        for w in workers:
            w.start()
        try:
            deadline = time.monotonic() + 3
            while len(answers) < 5 and time.monotonic() < deadline:  # traffic before the swap
                time.sleep(0.01)
            green = [v.model_copy(update={"name": "green"}) for v in manifest.variants]
            new = write_manifest(own.storage, manifest.model_copy(update={"variants": green}))
            assert new.revision == manifest.revision + 1
            deadline = time.monotonic() + 3
            while c.get("/endpoints").json()["endpoints"][0]["revision"] != new.revision:
                assert time.monotonic() < deadline, "the new revision never showed in /endpoints"
                time.sleep(0.02)
            n = len(answers)
            while len(answers) < n + 20 and time.monotonic() < deadline:  # some answers after the swap
                time.sleep(0.01)
        finally:
            stop.set()
            for w in workers:
                w.join(timeout=5)
        assert answers and {a[0] for a in answers} == {200}, answers
        assert {a[3] for a in answers} == {before["score"]}
        # Answers came from the old revision, then the new one, and from nothing else.
        assert {a[1:3] for a in answers} == {(manifest.revision, "champion"), (new.revision, "green")}
        assert answers[-1][1:3] == (new.revision, "green")


def test_unloadable_revision_keeps_serving_the_old_one(
    project: Project, manifest: Manifest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mlforge.serving")
    own = isolated(project, tmp_path)
    with TestClient(create_app(own, reload_interval_s=0.1)) as c:
        broken = [
            v.model_copy(update={"booster_uri": str(tmp_path / "missing.ubj")}) for v in manifest.variants
        ]
        bad = write_manifest(own.storage, manifest.model_copy(update={"variants": broken}))
        deadline = time.monotonic() + 3
        while not c.get("/endpoints").json()["endpoints"][0]["error"]:
            assert time.monotonic() < deadline, "the broken revision was never tried"
            r = post(c, {"entity_ids": ["00003"]})
            assert r.status_code == 200
            time.sleep(0.05)
        info = c.get("/endpoints").json()["endpoints"][0]
        assert info["revision"] == manifest.revision
        assert f"revision {bad.revision}" in info["error"] and "missing.ubj" in info["error"]
        r = post(c, {"entity_ids": ["00003"]})
        assert r.status_code == 200 and r.json()["revision"] == manifest.revision
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert any(f"cannot load revision {bad.revision}" in w for w in warnings), warnings


# ---------------------------------------------------------------------------------------------
# Routing: split and shadow
# ---------------------------------------------------------------------------------------------


def test_split_routes_each_entity_to_its_stable_variant(
    project: Project, manifest: Manifest, snapshot: pl.DataFrame, tmp_path: Path
) -> None:
    own = isolated(project, tmp_path)
    champ = manifest.variants[0]
    split = write_manifest(
        own.storage,
        manifest.model_copy(
            update={
                "strategy": "champion_challenger",
                "variants": [
                    champ.model_copy(update={"name": "champion", "traffic": 70}),
                    champ.model_copy(update={"name": "challenger", "traffic": 30}),
                ],
            }
        ),
    )
    ids = ids_of(snapshot, 200, seed=3)
    with TestClient(create_app(own, reload_interval_s=0)) as c:
        preds = post(c, {"entity_ids": ids}).json()["predictions"]
        assert [p["variant"] for p in preds] == [route(split, i).name for i in ids]
        assert 30 < sum(p["variant"] == "challenger" for p in preds) < 90
        rows = feature_rows(snapshot, ids[:40], manifest.feature_names)
        explicit = post(c, {"features": [{**r, "customer_id": i} for r, i in zip(rows, ids, strict=False)]})
        assert [p["variant"] for p in explicit.json()["predictions"]] == [p["variant"] for p in preds[:40]]
        # Without an entity key, rows route by request_id:index, deterministically.
        a = post(c, {"features": rows, "request_id": "req-1"}).json()["predictions"]
        b = post(c, {"features": rows, "request_id": "req-1"}).json()["predictions"]
        assert [p["variant"] for p in a] == [p["variant"] for p in b]
        assert [p["variant"] for p in a] == [route(split, f"req-1:{i}").name for i in range(40)]
        endpoints = c.get("/endpoints").json()["endpoints"][0]
        assert endpoints["strategy"] == "champion_challenger"
        assert [(v["name"], v["version"], v["traffic"], v["shadow"]) for v in endpoints["variants"]] == [
            ("champion", 1, 70, False),
            ("challenger", 1, 30, False),
        ]


def test_shadow_scores_every_request_but_never_answers(
    project: Project, manifest: Manifest, snapshot: pl.DataFrame, tmp_path: Path
) -> None:
    own = isolated(project, tmp_path)
    champ = manifest.variants[0]
    shadow = champ.model_copy(update={"name": "challenger", "traffic": 0, "shadow": True})
    write_manifest(
        own.storage,
        manifest.model_copy(update={"strategy": "champion_challenger", "variants": [champ, shadow]}),
    )
    batches: list[PredictionBatch] = []
    ids = [*ids_of(snapshot, 30, seed=5), NOT_IN_STORE]
    with TestClient(create_app(own, reload_interval_s=0, prediction_sink=batches.append)) as c:
        r = post(c, {"entity_ids": ids})
        assert r.status_code == 200
        assert "challenger" not in r.text
        preds = r.json()["predictions"]
    assert {p["variant"] for p in preds} == {"champion"}
    (batch,) = batches
    assert set(batch.shadow_scores) == {"challenger"}
    found = [p["score"] for p in preds if p["found"]]
    assert len(batch.shadow_scores["challenger"]) == len(found) == 30
    np.testing.assert_allclose(batch.shadow_scores["challenger"], found, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Health, readiness, introspection, backends, imports
# ---------------------------------------------------------------------------------------------


def test_health_ready_and_endpoints(client: TestClient, manifest: Manifest) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200
    assert r.json()["loaded"] == {ENDPOINT: manifest.revision}
    (ep,) = client.get("/endpoints").json()["endpoints"]
    assert ep["endpoint"] == ENDPOINT and ep["loaded"] is True and ep["error"] is None
    assert ep["revision"] == manifest.revision
    assert ep["strategy"] == "blue_green"
    assert ep["variants"] == [
        {"name": "champion", "model_name": "churn", "version": 1, "traffic": 100, "shadow": False}
    ]
    assert client.get("/openapi.json").json()["paths"]["/predict/{endpoint}"]["post"]


@pytest.mark.integration
def test_redis_online_store_gives_the_same_scores(
    project: Project, snapshot: pl.DataFrame, redis_url: str, tmp_path: Path, client: TestClient
) -> None:
    ids = ids_of(snapshot, 40, seed=9)
    settings = project.settings
    source = open_online_store(settings.online_store_url, settings.online_key_prefix)
    width = len(snapshot.columns) - 2  # all but customer_id and event_timestamp
    values, found = source.read(VIEW, ids, width)
    assert found.all()
    prefix = f"{settings.online_key_prefix}:serving-test"
    target = open_online_store(redis_url, prefix)
    target.write(VIEW, ids, [900_000_000] * len(ids), values, ttl_seconds=3600)
    redis_project = Project(
        project.spec,
        project.root,
        dataclasses.replace(settings, online_store_url=redis_url, online_key_prefix=prefix),
    )
    with TestClient(create_app(redis_project, reload_interval_s=0)) as c:
        via_redis = post(c, {"entity_ids": [*ids, NOT_IN_STORE]}).json()["predictions"]
    via_sqlite = post(client, {"entity_ids": [*ids, NOT_IN_STORE]}).json()["predictions"]
    assert via_redis == via_sqlite


def test_serving_imports_no_dagster_mlflow_pandas_or_evidently(project: Project, repo_root: Path) -> None:
    code = f"""
import json, sys
FORBIDDEN = {FORBIDDEN!r}
import serving.app
after_import = [m for m in {NOT_AT_IMPORT!r} if m in sys.modules]
from fastapi.testclient import TestClient
from mlforge.config.project import Project
project = Project.load(sys.argv[1], state_dir=sys.argv[2])
with TestClient(serving.app.create_app(project, reload_interval_s=0)) as c:
    r = c.post("/predict/churn-api", json={{"entity_ids": ["00003"]}})
    assert r.status_code == 200, r.text
print(json.dumps({{"after_import": after_import, "after_predict": [m for m in FORBIDDEN if m in sys.modules]}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(project.root / "mlforge.yaml"), str(project.settings.state_dir)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"after_import": [], "after_predict": []}


# ---------------------------------------------------------------------------------------------
# The fast path of POST /predict (serving.app.ServingApp) against the FastAPI route
# ---------------------------------------------------------------------------------------------

# FastAPI parses any application/*+json body; the fast path takes only application/json, so the
# same body sent with this type goes through the FastAPI route: the reference answer.
ROUTE_ONLY = {"content-type": "application/vnd.mlforge+json"}
FAST = {"content-type": "application/json"}


def both(client: TestClient, body: Any, endpoint: str = ENDPOINT) -> tuple[Any, Any]:
    """The answer of the fast path and of the FastAPI route to the same body."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    fast = client.post(f"/predict/{endpoint}", content=content, headers=FAST)
    route = client.post(f"/predict/{endpoint}", content=content, headers=ROUTE_ONLY)
    return fast, route


def same_answer(fast: Any, route: Any) -> None:
    assert fast.status_code == route.status_code, (fast.text, route.text)
    assert fast.headers["content-type"] == route.headers["content-type"] == "application/json"
    assert fast.headers["content-length"] == str(len(fast.content))
    assert fast.content == route.content  # the same bytes


def test_fast_path_answers_exactly_like_the_route(
    client: TestClient, manifest: Manifest, snapshot: pl.DataFrame
) -> None:
    ids = ids_of(snapshot, 30, seed=5)
    rows = feature_rows(snapshot, ids[:5], manifest.feature_names)
    rows[0]["customer_id"] = ids[0]
    rows[1]["days_since_last"] = None
    bad = {k: v for k, v in rows[2].items() if k != "event_count"}
    cases: list[tuple[Any, int]] = [
        ({"entity_ids": [ids[0]]}, 200),
        ({"entity_ids": [*ids, NOT_IN_STORE]}, 200),  # batch with a missing entity
        ({"entity_ids": ids[:3], "request_id": "r-1"}, 200),
        ({"features": rows}, 200),  # explicit features, one row with the entity key, one null
        ({"features": rows, "request_id": "req-7"}, 200),
        ({"features": [rows[0], bad, {**rows[3], "colour": 1}]}, 422),  # rows checked by the app
        ({"features": [{**rows[0], "event_count": True}]}, 422),
    ]
    for body, status in cases:
        fast, route = both(client, body)
        assert fast.status_code == status, fast.text
        same_answer(fast, route)
    fast, route = both(client, {"entity_ids": ["00003"]}, endpoint="nope")  # unknown endpoint
    assert fast.status_code == 404
    same_answer(fast, route)


@pytest.mark.parametrize(
    "body",
    [
        b'{"entity_ids": ["00003"',  # malformed JSON
        b"",  # no body
        b"[1, 2]",
        b'{"entity_ids": ["00003"], "features": [{"days_since_last": 1.0}]}',
        b"{}",  # missing field
        b'{"entity_ids": []}',
        b'{"entity_ids": [3]}',  # wrong type
        b'{"entity_ids": "00003"}',
        b'{"entity_ids": [""]}',
        b'{"entity_ids": ["' + b"9" * 257 + b'"]}',
        b'{"entity_ids": ["\\ud800"]}',  # a lone surrogate
        b'{"entity_ids": null}',
        b'{"entity_ids": ["00003"], "model": "x"}',
        b'{"entity_ids": ["00003"], "request_id": 5}',
        b'{"features": "nope"}',
        b'{"features": [1]}',
    ],
)
def test_fast_path_leaves_invalid_bodies_to_fastapi_validation(client: TestClient, body: bytes) -> None:
    fast, route = both(client, body)
    assert fast.status_code == 422, fast.text
    same_answer(fast, route)
    assert all("field" in d and "msg" in d for d in fast.json()["detail"])


def test_fast_path_does_not_go_through_fastapi(
    project: Project, snapshot: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi import FastAPI

    with TestClient(create_app(project, reload_interval_s=0, prediction_sink=lambda b: None)) as c:
        expected = post(c, {"entity_ids": ["00003", NOT_IN_STORE]}).json()

        async def not_here(self: Any, scope: Any, receive: Any, send: Any) -> None:
            raise AssertionError(f"FastAPI called for {scope.get('path')}")

        monkeypatch.setattr(FastAPI, "__call__", not_here)
        assert post(c, {"entity_ids": ["00003", NOT_IN_STORE]}).json() == expected
        monkeypatch.undo()


def test_fast_path_store_down_is_the_same_503(project: Project) -> None:
    settings = dataclasses.replace(project.settings, online_store_url=f"redis://127.0.0.1:{closed_port()}/0")
    down = Project(project.spec, project.root, settings)
    with TestClient(create_app(down, reload_interval_s=0)) as c:
        fast, route = both(c, {"entity_ids": ["00003"]})
        assert fast.status_code == 503
        same_answer(fast, route)
        assert "unreachable" in fast.json()["detail"]


def test_fast_path_counts_metrics_and_logs_predictions(project: Project) -> None:
    batches: list[PredictionBatch] = []
    with TestClient(create_app(project, reload_interval_s=0, prediction_sink=batches.append)) as c:
        r = c.post(f"/predict/{ENDPOINT}", content=b'{"entity_ids": ["00003", "00004"]}', headers=FAST)
        assert r.status_code == 200
        c.post("/predict/nope", content=b'{"entity_ids": ["00003"]}', headers=FAST)
        text = c.get("/metrics").text
    assert 'mlforge_requests_total{endpoint="churn-api",variant="champion",status="200"} 1' in text
    assert 'mlforge_requests_total{endpoint="unknown",variant="none",status="404"} 1' in text
    assert len(batches) == 1 and batches[0].entity_ids == ["00003", "00004"]
    assert batches[0].variants == ["champion", "champion"] and batches[0].versions == [1, 1]


@pytest.mark.integration
def test_redis_reader_reads_like_the_store_and_reconnects(
    project: Project, snapshot: pl.DataFrame, redis_url: str, tmp_path: Path
) -> None:
    from serving.redis_reader import RedisReader

    ids = ids_of(snapshot, 20, seed=3)
    settings = project.settings
    width = len(snapshot.columns) - 2
    values, _ = open_online_store(settings.online_store_url, settings.online_key_prefix).read(
        VIEW, ids, width
    )
    prefix = f"{settings.online_key_prefix}:reader-test"
    store = open_online_store(redis_url, prefix)
    store.write(VIEW, ids, [900_000_000] * len(ids), values, ttl_seconds=3600)
    reader = RedisReader.for_store(store)
    assert reader is not None
    asked = [*ids, NOT_IN_STORE, "ünïcode-id"]
    got = reader.read(VIEW, asked, width)
    assert got is not None
    want = store.read(VIEW, asked, width)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[1].tolist() == [True] * len(ids) + [False, False]
    reader.close()  # a closed connection reconnects on the next read
    again = reader.read(VIEW, ids[:1], width)
    assert again is not None and again[1].tolist() == [True]
    assert RedisReader.for_store(open_online_store(f"sqlite:///{tmp_path / 'x.db'}")) is None


# ---------------------------------------------------------------------------------------------
# Compiled trees (serving.trees) against XGBoost
# ---------------------------------------------------------------------------------------------


def test_compiled_trees_score_bit_identical_to_xgboost(manifest: Manifest, snapshot: pl.DataFrame) -> None:
    from serving.trees import compile_booster

    booster = load_booster(manifest.variants[0].booster_uri)
    n = len(manifest.feature_names)
    compiled = compile_booster(booster, n)
    assert compiled is not None
    rng = np.random.default_rng(42)
    x = rng.normal(0, 60, (3000, n)).astype(np.float32)
    x[rng.random(x.shape) < 0.25] = np.nan
    real = snapshot.select(manifest.feature_names).to_numpy().astype(np.float32)[:1000]
    for rows in (x, real):
        want = np.asarray(booster.inplace_predict(rows), dtype=np.float64)
        got = np.concatenate([compiled(rows[i : i + 1]) for i in range(len(rows))])
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(compiled(rows[:4]), want[:4])


def test_compiled_trees_decline_models_they_do_not_cover() -> None:
    import xgboost as xgb

    from serving.trees import compile_booster

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    multi = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 2},
        xgb.DMatrix(x, label=rng.integers(0, 3, 60)),
        num_boost_round=3,
    )
    assert compile_booster(multi, 3) is None
    reg = xgb.train(
        {"objective": "reg:squarederror", "max_depth": 3},
        xgb.DMatrix(x, label=x[:, 0] * 2 + 1),
        num_boost_round=5,
    )
    compiled = compile_booster(reg, 3)
    assert compiled is not None
    np.testing.assert_array_equal(compiled(x[:1]), np.asarray(reg.inplace_predict(x[:1]), dtype=np.float64))
