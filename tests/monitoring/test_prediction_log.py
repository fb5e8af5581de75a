"""The prediction log: buffered, flushed in batches by a background thread, partitioned by endpoint
and day, flushed on shutdown (one and two serving workers), and read back as a polars frame."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
from fastapi.testclient import TestClient

from mlforge.config.project import Project
from mlforge.deployment.manifest import read_manifest
from mlforge.errors import StoreUnavailableError
from mlforge.io import layout
from mlforge.io.storage import LocalStorage
from mlforge.monitoring.prediction_log import (
    BASE_COLUMNS,
    PredictionBatch,
    PredictionLogger,
    read_prediction_log,
    read_prediction_logs,
    uuid7_time,
)
from servers import free_port
from serving.app import create_app

ENDPOINT = "churn-api"
NAMES = ("f1", "f2", "f3")
DAY1 = datetime(2026, 11, 2, 23, 59, 59, tzinfo=UTC)
DAY2 = datetime(2026, 11, 3, 0, 0, 1, tzinfo=UTC)


def batch(
    n: int = 10,
    endpoint: str = ENDPOINT,
    at: datetime = DAY1,
    shadow: bool = False,
    request_id: str = "r",
    found: np.ndarray | None = None,
) -> PredictionBatch:
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    f = np.ones(n, dtype=bool) if found is None else found
    scores = np.linspace(0.1, 0.9, n)
    return PredictionBatch(
        endpoint=endpoint,
        revision=3,
        entity_ids=[f"{i:05d}" for i in range(n)],
        features=x,
        found=f,
        variants=["champion"] * n,
        scores=scores,
        shadow_scores={"challenger": scores[f] / 2} if shadow else {},
        latency_ms=1.5,
        request_id=request_id,
        timestamp=at.timestamp(),
        feature_names=NAMES,
        versions=[1] * n,
        shadow_versions={"challenger": 2} if shadow else {},
    )


def wait_until(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# The logger and the reader
# ---------------------------------------------------------------------------------------------


def test_rows_schema_and_reader(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    logger = PredictionLogger(storage)
    missing = np.array([True, False, True, True])
    logger.log(batch(4, shadow=True, found=missing, request_id="req-a"))
    assert logger.flush() == 4 + 3  # 4 answering rows + the challenger's 3 found rows
    frame = read_prediction_log(storage, ENDPOINT, DAY1.date())
    assert list(frame.columns) == [*BASE_COLUMNS, "features"]
    assert frame.schema["timestamp"] == pl.Datetime("us", "UTC")
    main = frame.filter(~pl.col("shadow"))
    assert main["status"].to_list() == ["ok", "not_found", "ok", "ok"]
    assert main["score"].to_list()[1] is None
    assert main["entity_id"].to_list() == ["00000", "00001", "00002", "00003"]
    assert set(main["request_id"]) == {"req-a"} and set(main["revision"]) == {3}
    assert main["features"].struct.field("f2").to_list() == [1.0, 4.0, 7.0, 10.0]
    shadow = frame.filter(pl.col("shadow"))
    assert shadow["variant"].to_list() == ["challenger"] * 3
    assert shadow["model_version"].to_list() == [2, 2, 2]
    assert shadow["row"].to_list() == [0, 2, 3]
    assert shadow["entity_id"].to_list() == ["00000", "00002", "00003"]
    np.testing.assert_allclose(shadow["score"].to_numpy(), main["score"].to_numpy()[[0, 2, 3]] / 2)
    assert frame["timestamp"][0] == DAY1


def test_partitioned_by_endpoint_and_utc_day_one_new_object_per_flush(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    logger = PredictionLogger(storage)
    logger.log(batch(5, at=DAY1))
    logger.log(batch(6, at=DAY2))
    logger.log(batch(7, endpoint="other-api", at=DAY2))
    assert logger.flush() == 18
    logger.log(batch(2, at=DAY2))
    logger.flush()
    keys = storage.list("logs/predictions/")
    assert [k.rsplit("/", 1)[0] for k in keys] == [
        "logs/predictions/endpoint=churn-api/date=2026-11-02",
        "logs/predictions/endpoint=churn-api/date=2026-11-03",
        "logs/predictions/endpoint=churn-api/date=2026-11-03",
        "logs/predictions/endpoint=other-api/date=2026-11-03",
    ]
    assert all(uuid7_time(k) is not None for k in keys)  # file names are UUIDv7 (flush time)
    assert read_prediction_log(storage, ENDPOINT, "2026-11-02").height == 5
    assert read_prediction_log(storage, ENDPOINT, date(2026, 11, 3)).height == 8
    assert read_prediction_log(storage, "other-api", DAY2).height == 7
    assert read_prediction_log(storage, ENDPOINT, "2026-11-04").height == 0
    both = read_prediction_logs(storage, ENDPOINT, [DAY1.date(), DAY2.date()])
    assert both.height == 13 and both["timestamp"].is_sorted()
    # `since` filters rows, and skips files flushed before it by their name alone
    assert read_prediction_log(storage, ENDPOINT, DAY2, since=DAY2).height == 8
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert read_prediction_log(storage, ENDPOINT, DAY2, since=later).height == 0


def test_background_thread_flushes_by_size_and_by_interval(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    by_size = PredictionLogger(storage, batch_rows=50, interval_s=3600).start()
    try:
        for i in range(4):
            by_size.log(batch(10, request_id=f"s{i}"))
        time.sleep(0.2)
        assert by_size.written_rows == 0 and by_size.buffered_rows == 40  # below the batch size
        by_size.log(batch(10, request_id="s4"))  # 50 rows: the writer wakes up
        wait_until(lambda: by_size.written_rows == 50)
        assert by_size.written_files == 1 and by_size.buffered_rows == 0
    finally:
        by_size.close()
    by_time = PredictionLogger(LocalStorage(tmp_path / "t"), batch_rows=10_000, interval_s=0.2).start()
    try:
        by_time.log(batch(3))
        wait_until(lambda: by_time.written_rows == 3, timeout=3)
    finally:
        by_time.close()


class SlowStorage(LocalStorage):
    """Writes take `delay` seconds; `fail` makes them raise like an unreachable S3."""

    delay = 0.0
    fail = False

    def write_bytes(self, key: str, data: bytes) -> None:
        time.sleep(self.delay)
        if self.fail:
            raise StoreUnavailableError("storage unreachable (test)")
        super().write_bytes(key, data)


def test_logging_never_waits_for_storage(tmp_path: Path) -> None:
    storage = SlowStorage(tmp_path)
    storage.delay = 1.0
    logger = PredictionLogger(storage, batch_rows=10, interval_s=3600).start()
    try:
        logger.log(batch(10))  # wakes the writer, which now spends a second in write_bytes
        wait_until(lambda: logger.buffered_rows == 0)
        t0 = time.perf_counter()
        for i in range(200):
            logger.log(batch(1, request_id=f"q{i}"))
        assert time.perf_counter() - t0 < 0.2  # buffered while the write is in progress
    finally:
        storage.delay = 0.0
        logger.close()
    assert read_prediction_log(storage, ENDPOINT, DAY1).height == 210


def test_storage_failure_keeps_rows_and_the_buffer_is_bounded(tmp_path: Path, caplog: Any) -> None:
    storage = SlowStorage(tmp_path)
    storage.fail = True
    logger = PredictionLogger(storage, max_buffered_rows=25)
    logger.log(batch(10))
    logger.log(batch(10))
    assert logger.flush() == 0 and logger.failed_flushes == 1 and logger.buffered_rows == 20
    assert "kept for the next flush" in caplog.text
    logger.log(batch(10))  # 30 > 25: dropped, counted
    assert logger.dropped_rows == 10 and logger.buffered_rows == 20
    storage.fail = False
    assert logger.flush() == 20 and logger.buffered_rows == 0
    assert read_prediction_log(storage, ENDPOINT, DAY1).height == 20


def test_concurrent_logging_loses_no_rows(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    logger = PredictionLogger(storage, batch_rows=100, interval_s=0.05).start()

    def worker(k: int) -> None:
        for i in range(200):
            logger.log(batch(3, request_id=f"{k}-{i}"))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logger.close()
    frame = read_prediction_log(storage, ENDPOINT, DAY1)
    assert frame.height == 4 * 200 * 3
    assert frame["request_id"].n_unique() == 800
    assert logger.written_files > 1  # several batches, not one file at the end


# ---------------------------------------------------------------------------------------------
# Serving: the default sink, flushed on shutdown
# ---------------------------------------------------------------------------------------------


def isolated(project: Project, root: Path) -> Project:
    """The materialized project with its own storage holding a copy of the manifests."""
    own = Project(project.spec, project.root, dataclasses.replace(project.settings, storage_root=str(root)))
    for key in project.storage.list("deployments/"):
        own.storage.write_bytes(key, project.storage.read_bytes(key))
    return own


def test_serving_logs_every_prediction_and_flushes_on_shutdown(materialized: Any, tmp_path: Path) -> None:
    own = isolated(materialized.project, tmp_path / "storage")
    manifest = read_manifest(own.storage, ENDPOINT)
    assert manifest is not None
    app = create_app(own, reload_interval_s=0)  # the default sink: a PredictionLogger on storage
    logger = app.state.prediction_log
    assert isinstance(logger, PredictionLogger) and logger.interval_s == 5.0
    ids = ["00003", "00004", "99999"]  # 99999 is no customer: not in the online store
    with TestClient(app) as c:
        for i in range(20):
            r = c.post(f"/predict/{ENDPOINT}", json={"entity_ids": ids, "request_id": f"req-{i}"})
            assert r.status_code == 200
        row = {n: 1.0 for n in manifest.feature_names}
        assert c.post(f"/predict/{ENDPOINT}", json={"features": [row]}).status_code == 200
        assert logger.written_rows == 0  # nothing was due yet: all of it sits in the buffer
    # the lifespan exit flushed the buffer: no lost rows
    frame = read_prediction_log(own.storage, ENDPOINT, datetime.now(UTC))
    assert frame.height == 20 * 3 + 1
    assert frame["request_id"].n_unique() == 21
    by_id = frame.filter(pl.col("request_id") == "req-0").sort("row")
    assert by_id["entity_id"].to_list() == ids
    assert by_id["status"].to_list() == ["ok", "ok", "not_found"]
    assert set(by_id["model_version"]) == {1} and set(by_id["variant"]) == {"champion"}
    assert set(frame["revision"]) == {manifest.revision}
    assert frame["latency_ms"].min() > 0
    assert frame.schema["features"].fields[0].name == manifest.feature_names[0]  # type: ignore[union-attr]
    explicit = frame.filter(pl.col("entity_id").is_null())
    assert explicit.height == 1 and explicit["features"].struct.field(manifest.feature_names[0])[0] == 1.0


def test_prediction_log_can_be_switched_off(materialized: Any, tmp_path: Path, monkeypatch: Any) -> None:
    own = isolated(materialized.project, tmp_path / "storage")
    monkeypatch.setenv("MLFORGE_PREDICTION_LOG", "off")
    app = create_app(own, reload_interval_s=0)
    assert app.state.prediction_log is None
    with TestClient(app) as c:
        assert c.post(f"/predict/{ENDPOINT}", json={"entity_ids": ["00003"]}).status_code == 200
    assert own.storage.list("logs/") == []


def test_two_workers_serve_and_flush_every_row_on_sigterm(
    materialized: Any, tmp_path: Path, repo_root: Path
) -> None:
    """`mlforge serve --workers 2`: both workers answer, each logs, a clean stop loses nothing."""
    project = materialized.project
    storage_root = tmp_path / "storage"
    own = isolated(project, storage_root)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFORGE_", "DAGSTER_", "MLFLOW_"))}
    env |= {"MLFORGE_STORAGE_ROOT": str(storage_root), "MLFORGE_PREDICTION_LOG_INTERVAL_S": "3600"}
    exe = Path(sys.executable).parent / "mlforge"
    cmd = [
        str(exe),
        "serve",
        "--spec",
        str(project.root / "mlforge.yaml"),
        "--home",
        str(project.settings.state_dir),
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    server = subprocess.Popen(
        cmd, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    n = 60
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "2 workers did not become ready"
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            time.sleep(0.3)
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert len(children) >= 2, children  # uvicorn's supervisor + 2 worker processes
        with httpx.Client(base_url=url, timeout=10) as client:
            for i in range(n):
                r = client.post(
                    f"/predict/{ENDPOINT}", json={"entity_ids": ["00003", "00010"], "request_id": f"w{i}"}
                )
                assert r.status_code == 200, r.text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            out, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            out, _ = server.communicate()
    text = out.decode(errors="replace")
    assert text.count("prediction log flushed") == 2, text[-3000:]
    frame = read_prediction_log(own.storage, ENDPOINT, datetime.now(UTC))
    assert frame.height == 2 * n, text[-3000:]
    assert frame["request_id"].n_unique() == n
    files = own.storage.list(layout.prediction_log_day_prefix(ENDPOINT, datetime.now(UTC).date()))
    assert 1 <= len(files) <= 2  # one flush per worker that answered


def test_empty_flush_writes_nothing(tmp_path: Path) -> None:
    logger = PredictionLogger(LocalStorage(tmp_path))
    assert logger.flush() == 0 and logger.close() == 0
    assert LocalStorage(tmp_path).list("") == []


def test_a_failing_variant_is_a_500_logged_as_error_rows_and_counted(
    materialized: Any, tmp_path: Path
) -> None:
    """What the canary's error rate is made of: rows of a variant that failed to score."""
    from types import MappingProxyType

    from mlforge.deployment.manifest import write_manifest

    own = isolated(materialized.project, tmp_path / "storage")
    deployed = read_manifest(own.storage, ENDPOINT)
    assert deployed is not None
    base = deployed.variants[0]
    write_manifest(
        own.storage,
        deployed.model_copy(
            update={
                "strategy": "canary",
                "variants": [
                    base.model_copy(update={"name": "stable", "traffic": 50}),
                    base.model_copy(update={"name": "canary", "version": 2, "traffic": 50}),
                    base.model_copy(update={"name": "shadow", "version": 3, "traffic": 0, "shadow": True}),
                ],
            }
        ),
    )
    logger = PredictionLogger(own.storage, interval_s=3600)
    app = create_app(own, reload_interval_s=0, prediction_log=logger)

    def broken(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("booster exploded")

    with TestClient(app) as c:
        state = app.state.serving
        ep = state.live[ENDPOINT]
        scorers = dict(ep.scorers)
        scorers[("churn", 2)] = broken
        scorers[("churn", 3)] = broken
        state.live = MappingProxyType({ENDPOINT: dataclasses.replace(ep, scorers=MappingProxyType(scorers))})
        ids = [f"{i:05d}" for i in range(3, 43)]
        stable_only = [i for i in ids if ep.answering[ep.route_index(i)].name == "stable"]
        ok = c.post(f"/predict/{ENDPOINT}", json={"entity_ids": stable_only, "request_id": "ok"})
        assert ok.status_code == 200, ok.text  # a failing shadow never fails a request
        bad = c.post(f"/predict/{ENDPOINT}", json={"entity_ids": ids, "request_id": "bad"})
        assert bad.status_code == 500
        assert bad.json()["detail"] == (
            "internal error (RuntimeError) while scoring with variant canary (v2); see the server log"
        )
        metrics = c.get("/metrics").text
    assert 'mlforge_errors_total{endpoint="churn-api",variant="canary",status="500"} 1' in metrics
    assert 'mlforge_requests_total{endpoint="churn-api",variant="stable",status="200"} 1' in metrics
    frame = read_prediction_log(own.storage, ENDPOINT, datetime.now(UTC))
    failed = frame.filter(pl.col("request_id") == "bad")
    by_variant = {
        (r["variant"], r["status"])
        for r in failed.filter(pl.col("found")).select("variant", "status").to_dicts()
    }
    assert ("canary", "error") in by_variant and ("stable", "ok") in by_variant
    assert ("shadow", "error") in by_variant  # the shadow failed on every request
    assert (
        failed.filter(pl.col("status") == "error")["score"].null_count()
        == failed.filter(pl.col("status") == "error").height
    )
    shadow_ok_request = frame.filter((pl.col("request_id") == "ok") & pl.col("shadow"))
    assert set(shadow_ok_request["status"]) == {"error"}


def test_frame_without_shadows_equals_the_general_frame() -> None:
    from mlforge.monitoring.prediction_log import _frame_general, _frame_no_shadows

    rng = np.random.default_rng(3)
    batches = []
    for k in range(40):
        n = int(rng.integers(0, 5))
        found = rng.random(n) < 0.7
        b = batch(max(n, 0), request_id=f"r{k}", found=found)
        if k % 7 == 0 and n:
            b = dataclasses.replace(b, failed=found & (rng.random(n) < 0.5))
        if k % 5 == 0:
            b = dataclasses.replace(b, versions=[])  # unknown versions log as 0
        if k % 3 == 0 and n:
            b = dataclasses.replace(b, entity_ids=[None] * n)  # explicit rows without entity key
        batches.append(b)
    fast = _frame_no_shadows(batches, NAMES)
    general = _frame_general(batches, NAMES)
    assert fast.height == sum(len(b.entity_ids) for b in batches) > 0
    assert fast.schema == general.schema
    assert fast.equals(general)
    assert _frame_no_shadows([batch(0)], NAMES).height == 0
