"""Deployment strategies: canary steps and rollback, champion-challenger promotion, on live metrics.

The decisions are pure functions (`mlforge.canary`) tested on hand-made prediction logs; the
Dagster sensor is tested on log files in storage; and the whole loop — serving answers and logs,
the sensor reads the log and writes the next revision, serving hot-swaps to it — runs against the
materialized example project.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from manifests import manifest as base_manifest
from manifests import variant
from projects import END

from mlforge.config.project import Project
from mlforge.config.spec import DeploymentSpec, PromotionCriteria, StrategySpec
from mlforge.deployment.decisions import Decision, agreement, decide, psi, variant_stats
from mlforge.deployment.manifest import Manifest, Variant, history, read_manifest, write_manifest
from mlforge.deployment.routing import route
from mlforge.deployment.state import VariantRole
from mlforge.deployment.variants import plan_variants
from mlforge.features.offline import read_snapshot
from mlforge.io.storage import LocalStorage
from mlforge.monitoring.prediction_log import PredictionLogger, empty_frame, read_prediction_log
from mlforge_assets.factory import build_definitions
from mlforge_assets.metadata import metadata_values
from mlforge_assets.sensors import canary_sensor
from mlforge_resources import resources_for
from serving.app import create_app

ENDPOINT = "churn-api"
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CANARY = StrategySpec(kind="canary", steps=[5, 25, 50, 100], evaluation_minutes=10, min_requests=100)


# ---------------------------------------------------------------------------------------------
# Helpers: manifests and hand-made prediction logs
# ---------------------------------------------------------------------------------------------


def manifest(variants: list[Variant], strategy: str = "canary", **kw: Any) -> Manifest:
    """A canary manifest created at T0 unless said otherwise."""
    return base_manifest(variants, strategy, **{"created_at": T0.isoformat(), **kw})


def rollout(stable: int = 1, candidate: int = 2, share: int = 5) -> Manifest:
    return manifest(
        [variant(stable, "stable", 100 - share), variant(candidate, "canary", share)],
        state={"step": 0, "live_version": stable, "candidate_version": candidate},
    )


def rows(
    m: Manifest,
    name: str,
    n: int,
    *,
    latency_ms: float = 3.0,
    score: float | np.ndarray = 0.3,
    errors: int = 0,
    shadow: bool = False,
    revision: int | None = None,
    request_ids: list[str] | None = None,
    seed: int = 0,
) -> pl.DataFrame:
    """`n` log rows of variant `name` under `m`'s revision (one request per row)."""
    rng = np.random.default_rng(seed)
    v = next((x for x in m.variants if x.name == name), None)
    scores = (
        np.asarray(score, dtype=np.float64)
        if isinstance(score, np.ndarray)
        else np.clip(rng.normal(score, 0.05, n), 0, 1)
    )
    status = ["error"] * errors + ["ok"] * (n - errors)
    frame = pl.DataFrame(
        {
            "request_id": request_ids or [f"{name}-{seed}-{i}" for i in range(n)],
            "row": [0] * n,
            "endpoint": [m.endpoint] * n,
            "revision": [m.revision if revision is None else revision] * n,
            "entity_id": [f"{i:05d}" for i in range(n)],
            "variant": [name] * n,
            "model_version": [v.version if v else 0] * n,
            "shadow": [shadow] * n,
            "found": [True] * n,
            "status": status,
            "score": [None if s == "error" else float(x) for s, x in zip(status, scores, strict=True)],
            "latency_ms": [latency_ms] * n,
            "timestamp": [T0 + timedelta(seconds=i) for i in range(n)],
        }
    )
    return frame.cast(empty_frame().schema)  # type: ignore[arg-type]


def healthy(m: Manifest, canary_rows: int = 200) -> pl.DataFrame:
    return pl.concat(
        [rows(m, "stable", 1000, score=0.30), rows(m, "canary", canary_rows, score=0.31, seed=1)]
    )


def after(m: Manifest, minutes: float = 11) -> datetime:
    return m.created_at + timedelta(minutes=minutes)


def traffic(m: Manifest) -> list[tuple[str, int, int]]:
    return [(v.name, v.version, v.traffic) for v in m.variants]


# ---------------------------------------------------------------------------------------------
# Canary: pure decisions
# ---------------------------------------------------------------------------------------------


def test_canary_advances_through_every_step_and_records_each(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    write_manifest(storage, manifest([variant(1, "champion", 100)], strategy="blue_green"))
    m = write_manifest(storage, rollout())
    actions = []
    while True:
        d = decide(m, CANARY, healthy(m), after(m))
        if d.manifest is None:
            break
        actions.append((d.action, traffic(d.manifest)))
        m = write_manifest(storage, d.manifest, expected_revision=m.revision)
    assert actions == [
        ("advance", [("stable", 1, 75), ("canary", 2, 25)]),
        ("advance", [("stable", 1, 50), ("canary", 2, 50)]),
        ("promote", [("champion", 2, 100)]),
    ]
    assert d.action == "none"  # nothing left to advance
    revisions = history(storage, ENDPOINT)
    assert [r.revision for r in revisions] == [1, 2, 3, 4, 5]
    steps = [(r.state.get("status"), r.state.get("step")) for r in revisions[2:]]
    assert steps == [("advancing", 1), ("advancing", 2), ("promoted", 3)]
    assert "5% → 25%" in str(revisions[2].state["reason"]) and "canary:" in str(revisions[2].state["reason"])
    assert "promoted canary v2 to 100%" in str(revisions[4].state["reason"])
    assert [r.state.get("decided_on_revision") for r in revisions[2:]] == [2, 3, 4]
    # Re-running the deployment (registry champion = v2) plans exactly what the sensor left: no new revision.
    final = revisions[-1]
    variants, state = plan_variants(CANARY, variant(2, "x", 37), None, final)
    assert variants == final.variants and state == final.state


@pytest.mark.parametrize(
    ("canary_rows", "strategy", "expect"),
    [
        (lambda m: rows(m, "canary", 200, latency_ms=120.0, seed=1), CANARY, "p99 latency 120.0 ms > 50 ms"),
        (lambda m: rows(m, "canary", 200, errors=20, seed=1), CANARY, "error rate 10.00% > 1.00%"),
        (lambda m: rows(m, "canary", 200, score=0.75, seed=1), CANARY, "mean score shift"),
        (
            # same mean as stable, but all mass at the tails: only PSI sees it
            lambda m: rows(m, "canary", 200, score=np.tile([0.05, 0.55], 100), seed=1),
            StrategySpec(kind="canary", min_requests=100, max_score_shift=0.5, max_score_psi=0.25),
            "score PSI",
        ),
    ],
)
def test_canary_breaking_a_bound_rolls_back_to_stable(
    canary_rows: Callable[[Manifest], pl.DataFrame], strategy: StrategySpec, expect: str
) -> None:
    m = rollout().model_copy(update={"revision": 7})
    log = pl.concat([rows(m, "stable", 1000, score=0.30), canary_rows(m)])
    d = decide(m, strategy, log, after(m, minutes=1))  # before the evaluation period ends: no waiting
    assert d.action == "rollback", d.reason
    assert expect in d.reason
    assert d.manifest is not None
    assert traffic(d.manifest) == [("champion", 1, 100)]
    assert d.manifest.state["rejected_version"] == 2
    assert d.manifest.state["status"] == "rolled_back"
    assert d.manifest.state["decided_on_revision"] == 7
    assert d.tags()["mlforge/canary_action"] == "rollback"


def test_canary_failing_hard_rolls_back_before_min_requests() -> None:
    m = rollout()
    log = pl.concat([rows(m, "stable", 300), rows(m, "canary", 5, errors=5, seed=1)])
    d = decide(m, CANARY, log, after(m, minutes=0.5))
    assert d.action == "rollback" and "5 failed rows already exceed" in d.reason


def test_canary_waits_for_time_and_traffic() -> None:
    m = rollout()
    early = decide(m, CANARY, healthy(m), after(m, minutes=4))
    assert early.action == "wait" and "evaluating, 4.0 of 10 min" in early.reason and early.manifest is None
    quiet = decide(m, CANARY, healthy(m, canary_rows=40), after(m))
    assert quiet.action == "wait" and "40 of 100 rows" in quiet.reason
    nothing = decide(m, CANARY, empty_frame(), after(m))
    assert nothing.action == "wait" and "0 of 100 rows" in nothing.reason


def test_canary_judges_only_rows_of_its_own_revision() -> None:
    m = rollout().model_copy(update={"revision": 5})
    bad_earlier_step = rows(m, "canary", 500, latency_ms=500.0, errors=100, revision=4, seed=2)
    d = decide(m, CANARY, pl.concat([healthy(m), bad_earlier_step]), after(m))
    assert d.action == "advance", d.reason
    other_endpoint = healthy(m).with_columns(pl.lit("other").alias("endpoint"))
    assert decide(m, CANARY, other_endpoint, after(m)).action == "wait"


def test_canary_continues_from_a_manually_set_share() -> None:
    m = rollout(share=30)
    d = decide(m, CANARY, healthy(m), after(m))
    assert d.action == "advance" and d.manifest is not None
    assert traffic(d.manifest) == [("stable", 1, 50), ("canary", 2, 50)]


def test_blue_green_and_finished_rollouts_have_nothing_to_decide() -> None:
    bg = manifest([variant(1, "champion", 100)], strategy="blue_green")
    assert decide(bg, CANARY, empty_frame(), T0).action == "none"
    done = manifest([variant(2, "champion", 100)])
    assert decide(done, CANARY, empty_frame(), T0).action == "none"


# --- what the deployment asset plans after a decision ----------------------------------------


def test_a_rolled_back_version_is_not_rolled_out_again() -> None:
    m = rollout()
    d = decide(m, CANARY, pl.concat([healthy(m), rows(m, "canary", 200, errors=50, seed=3)]), after(m))
    assert d.manifest is not None
    rolled = d.manifest
    # registry champion is still v2: the plan keeps serving v1 (same variants and state)
    vs, state = plan_variants(CANARY, variant(2, "x", 100), None, rolled)
    assert vs == rolled.variants and state == rolled.state
    # a newer champion starts a fresh rollout beside the rolled-back-to version
    vs, state = plan_variants(CANARY, variant(3, "x", 100), None, rolled)
    assert traffic(manifest(vs)) == [("stable", 1, 95), ("canary", 3, 5)]
    assert state == {"step": 0, "live_version": 1, "candidate_version": 3}


def test_a_rollout_in_flight_keeps_its_step_when_the_deployment_reruns() -> None:
    m = rollout()
    d = decide(m, CANARY, healthy(m), after(m))
    assert d.manifest is not None
    vs, state = plan_variants(CANARY, variant(2, "x", 100), None, d.manifest)
    assert traffic(manifest(vs)) == [("stable", 1, 75), ("canary", 2, 25)]
    assert state == d.manifest.state


# ---------------------------------------------------------------------------------------------
# Champion-challenger: pure decisions
# ---------------------------------------------------------------------------------------------

SHADOW = StrategySpec(
    kind="champion_challenger",
    mode="shadow",
    promotion_criteria=PromotionCriteria(min_requests=200, min_agreement=0.9, agreement_tolerance=0.1),
)


def shadow_manifest() -> Manifest:
    return manifest(
        [variant(1, "champion", 100), variant(2, "challenger", 0, shadow=True)],
        strategy="champion_challenger",
        state={"mode": "shadow"},
    )


def paired(m: Manifest, n: int, offset: float, seed: int = 0) -> pl.DataFrame:
    """Champion rows and the challenger's shadow rows for the same requests."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.1, 0.7, n)
    ids = [f"req-{i}" for i in range(n)]
    champ = rows(m, "champion", n, score=base, request_ids=ids)
    chall = rows(m, "challenger", n, score=np.clip(base + offset, 0, 1), request_ids=ids, shadow=True)
    return pl.concat([champ, chall])


def test_shadow_challenger_that_agrees_is_promoted() -> None:
    m = shadow_manifest()
    log = paired(m, 300, offset=0.02)
    assert agreement(log, "champion", "challenger", 0.1) == (1.0, 300)
    d = decide(m, SHADOW, log, after(m))
    assert d.action == "promote", d.reason
    assert d.manifest is not None
    assert [(v.name, v.version, v.traffic, v.shadow) for v in d.manifest.variants] == [
        ("champion", 2, 100, False)
    ]
    assert d.manifest.state["promoted_version"] == 2 and "agreement 100.00%" in d.reason
    # the registry still says champion v1 / challenger v2: the plan keeps v2 answering
    vs, state = plan_variants(SHADOW, variant(1, "x", 100), variant(2, "y", 0), d.manifest)
    assert vs == d.manifest.variants and state["promoted_version"] == 2


def test_shadow_challenger_that_disagrees_or_is_unproven_waits() -> None:
    m = shadow_manifest()
    d = decide(m, SHADOW, paired(m, 300, offset=0.3), after(m))
    assert d.action == "wait" and "agreement 0.00% < 90.00%" in d.reason and d.manifest is None
    few = decide(m, SHADOW, paired(m, 50, offset=0.0), after(m))
    assert few.action == "wait" and "50 of 200 rows" in few.reason
    off = StrategySpec(
        kind="champion_challenger", mode="shadow", promotion_criteria=PromotionCriteria(enabled=False)
    )
    assert decide(m, off, paired(m, 300, 0.0), after(m)).action == "none"


def test_split_challenger_failing_is_rejected_and_not_redeployed() -> None:
    split = StrategySpec(kind="champion_challenger", mode="split", challenger_traffic=20, min_requests=50)
    m = manifest(
        [variant(1, "champion", 80), variant(2, "challenger", 20)],
        strategy="champion_challenger",
        state={"mode": "split"},
    )
    log = pl.concat([rows(m, "champion", 400), rows(m, "challenger", 100, errors=30, seed=4)])
    d = decide(m, split, log, after(m))
    assert d.action == "reject" and "error rate 30.00%" in d.reason
    assert d.manifest is not None and traffic(d.manifest) == [("champion", 1, 100)]
    vs, state = plan_variants(split, variant(1, "x", 100), variant(2, "y", 100), d.manifest)
    assert traffic(manifest(vs)) == [("champion", 1, 100)] and state["rejected_version"] == 2


def test_split_challenger_is_promoted_on_mean_shift_alone() -> None:
    split = StrategySpec(
        kind="champion_challenger", mode="split", promotion_criteria=PromotionCriteria(min_requests=100)
    )
    m = manifest([variant(1, "champion", 90), variant(2, "challenger", 10)], strategy="champion_challenger")
    ok = decide(
        m,
        split,
        pl.concat([rows(m, "champion", 900), rows(m, "challenger", 150, score=0.32, seed=5)]),
        after(m),
    )
    assert ok.action == "promote", ok.reason
    far = decide(
        m,
        split,
        pl.concat([rows(m, "champion", 900), rows(m, "challenger", 150, score=0.5, seed=5)]),
        after(m),
    )
    assert far.action == "wait" and "mean score shift" in far.reason


def test_stats_and_psi() -> None:
    m = rollout()
    stats = variant_stats(
        pl.concat([rows(m, "stable", 100, latency_ms=4.0), rows(m, "canary", 10, errors=2)])
    )
    assert stats["stable"].rows == 100 and stats["stable"].latency_p99_ms == pytest.approx(4.0)
    assert stats["canary"].errors == 2 and stats["canary"].error_rate == pytest.approx(0.2)
    assert stats["canary"].scores.size == 8
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, 5000)
    assert psi(a, rng.uniform(0, 1, 5000)) < 0.02
    assert psi(a, rng.uniform(0.5, 1, 5000)) > 0.5


# ---------------------------------------------------------------------------------------------
# The Dagster sensor on log files in storage
# ---------------------------------------------------------------------------------------------


def canary_project(project: Project, root: Path, strategy: StrategySpec) -> Project:
    """The example project with `strategy` on churn-api, its own storage root and its own registry.

    The registry is a copy of the shared one (the sensor moves the champion alias; the shared
    state must stay as the other tests expect it).
    """
    spec = project.spec.model_copy(
        update={"deployments": [DeploymentSpec(endpoint=ENDPOINT, model="churn", strategy=strategy)]}
    )
    db = Path(project.settings.tracking_uri.removeprefix("sqlite:///"))
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(db, root / "mlflow.db")
    settings = dataclasses.replace(
        project.settings, storage_root=str(root / "storage"), tracking_uri=f"sqlite:///{root / 'mlflow.db'}"
    )
    return Project(spec, project.root, settings)


def tick(sensor: dg.SensorDefinition, project: Project, cursor: str | None = None) -> Any:
    resources = resources_for(project)
    ctx = dg.build_sensor_context(
        cursor=cursor, resources={"storage": resources["storage"], "mlflow": resources["mlflow"]}
    )
    return sensor.evaluate_tick(ctx)


def test_sensor_is_registered_only_for_canary_and_challenger_endpoints(
    materialized: Any, tmp_path: Path
) -> None:
    base = materialized.project
    names = {s.name for s in build_definitions(base).get_repository_def().sensor_defs}
    # the example is blue-green: no canary sensor (other sensors, e.g. drift retrain, may exist)
    assert "churn_churn_drift_retrain" in names
    assert not [n for n in names if n.endswith("_canary")], names
    for strategy in (CANARY, SHADOW):
        defs = build_definitions(canary_project(base, tmp_path, strategy))
        sensor = defs.get_repository_def().get_sensor_def("churn_churn_api_canary")
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_sensor_reads_the_log_writes_each_step_and_records_it(materialized: Any, tmp_path: Path) -> None:
    project = canary_project(materialized.project, tmp_path, CANARY)
    storage = project.storage
    write_manifest(storage, manifest([variant(1, "champion", 100)], strategy="blue_green"))
    m = write_manifest(storage, rollout().model_copy(update={"created_at": datetime.now(UTC)}))
    clock = {"now": datetime.now(UTC)}
    sensor = canary_sensor(project, project.spec.deployment(ENDPOINT), clock=lambda: clock["now"])

    first = tick(sensor, project)
    assert first.skip_message.startswith("canary v2 at 5%: evaluating, 0.0 of 10 min, 0 rows")
    assert not first.asset_events and read_manifest(storage, ENDPOINT) == m

    logger = PredictionLogger(storage)
    cursor = None
    for expected in (25, 50, 100):
        _log_frame(logger, healthy(m))
        clock["now"] = datetime.now(UTC) + timedelta(minutes=11)
        result = tick(sensor, project, cursor)
        cursor = result.cursor
        (obs,) = result.asset_events
        assert obs.asset_key == dg.AssetKey(["churn", "deployments", ENDPOINT])
        meta = metadata_values(obs.metadata)
        assert meta["mlforge/canary_action"] == ("promote" if expected == 100 else "advance")
        assert meta["canary_rows"] == 200 and meta["stable_rows"] == 1000
        new = read_manifest(storage, ENDPOINT)
        assert new is not None and result.cursor == str(new.revision) == meta["mlforge/canary_new_revision"]
        assert new.revision == m.revision + 1
        m = new
    assert traffic(m) == [("champion", 2, 100)] and m.state["status"] == "promoted"
    assert tick(sensor, project, cursor).skip_message == "no canary rollout in progress"


def test_sensor_rolls_back_a_misbehaving_canary(materialized: Any, tmp_path: Path) -> None:
    project = canary_project(materialized.project, tmp_path, CANARY)
    storage = project.storage
    write_manifest(storage, manifest([variant(1, "champion", 100)], strategy="blue_green"))
    m = write_manifest(storage, rollout().model_copy(update={"created_at": datetime.now(UTC)}))
    logger = PredictionLogger(storage)
    _log_frame(logger, pl.concat([rows(m, "stable", 500), rows(m, "canary", 150, latency_ms=400.0, seed=1)]))
    sensor = canary_sensor(
        project, project.spec.deployment(ENDPOINT)
    )  # the real clock: no waiting for a breach
    result = tick(sensor, project)
    meta = metadata_values(result.asset_events[0].metadata)
    assert meta["mlforge/canary_action"] == "rollback" and "p99 latency" in meta["mlforge/canary_reason"]
    assert meta["canary_latency_p99_ms"] == 400.0
    current = read_manifest(storage, ENDPOINT)
    assert current is not None and traffic(current) == [("champion", 1, 100)]
    assert current.state["rejected_version"] == 2


def _log_frame(logger: PredictionLogger, frame: pl.DataFrame) -> None:
    """Write a hand-made frame where the serving log would put it (timestamps moved to now)."""
    from mlforge.io import layout
    from mlforge.monitoring.prediction_log import uuid7

    now = datetime.now(UTC)
    frame = frame.with_columns(pl.lit(now).dt.cast_time_unit("us").alias("timestamp"))
    import io

    buf = io.BytesIO()
    frame.write_parquet(buf)
    logger.storage.write_bytes(layout.prediction_log_file(ENDPOINT, now.date(), str(uuid7())), buf.getvalue())


# ---------------------------------------------------------------------------------------------
# The whole loop against the materialized project: serve → log → sensor → manifest → serve
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(materialized: Any) -> Project:
    return materialized.project


@pytest.fixture(scope="module")
def served(project: Project) -> Manifest:
    m = read_manifest(project.storage, ENDPOINT)
    assert m is not None
    return m


@pytest.fixture(scope="module")
def entity_ids(project: Project) -> list[str]:
    # customers active in the lookback: live traffic (the inactive majority scores ~0.94 churn
    # with any model, which would hide the bad model's score shift this module tests)
    snap = read_snapshot(project.storage, "customer_activity", END)
    snap = snap.filter(snap["event_count"] > 0)
    rng = np.random.default_rng(11)
    return [str(i) for i in rng.choice(snap["customer_id"].to_numpy(), size=600, replace=False)]


@pytest.fixture(scope="module")
def other_booster(served: Manifest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A booster on the same features that scores very differently (a 'bad' model version)."""
    import xgboost as xgb

    rng = np.random.default_rng(0)
    n = len(served.feature_names)
    x = rng.uniform(0, 100, (400, n)).astype(np.float32)
    y = (rng.uniform(0, 1, 400) < 0.97).astype(np.float32)  # nearly everyone churns
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 2},
        xgb.DMatrix(x, label=y, feature_names=served.feature_names),
        num_boost_round=5,
    )
    path = tmp_path_factory.mktemp("boosters") / "other.ubj"
    booster.save_model(str(path))
    return path.as_uri()


def own_storage(project: Project, root: Path, strategy: StrategySpec) -> Project:
    """canary_project + a copy of the deployed manifests (the shared project stays untouched)."""
    own = canary_project(project, root, strategy)
    for key in project.storage.list(f"deployments/{ENDPOINT}/"):
        own.storage.write_bytes(key, project.storage.read_bytes(key))
    return own


@pytest.fixture
def app_factory() -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(project: Project, **kw: Any) -> TestClient:
        c = TestClient(create_app(project, reload_interval_s=0.05, **kw))
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def wait_for_revision(c: TestClient, revision: int) -> None:
    deadline = time.monotonic() + 5
    while c.get("/endpoints").json()["endpoints"][0]["revision"] != revision:
        assert time.monotonic() < deadline, f"revision {revision} was never loaded"
        time.sleep(0.02)


def send(c: TestClient, ids: list[str], batch: int = 50) -> list[dict[str, Any]]:
    out = []
    for i in range(0, len(ids), batch):
        r = c.post(f"/predict/{ENDPOINT}", json={"entity_ids": ids[i : i + batch]})
        assert r.status_code == 200, r.text
        out += r.json()["predictions"]
    return out


def test_live_canary_advances_to_100_through_serving_and_the_sensor(
    project: Project, served: Manifest, entity_ids: list[str], tmp_path: Path, app_factory: Any
) -> None:
    strategy = StrategySpec(kind="canary", steps=[10, 50, 100], evaluation_minutes=5, min_requests=20)
    own = own_storage(project, tmp_path, strategy)
    base = served.variants[0]
    m = write_manifest(
        own.storage,
        served.model_copy(
            update={
                "strategy": "canary",
                "variants": [
                    base.model_copy(update={"name": VariantRole.STABLE, "traffic": 90}),
                    base.model_copy(update={"name": VariantRole.CANARY, "version": 2, "traffic": 10}),
                ],
                "state": {"step": 0, "live_version": 1, "candidate_version": 2},
            }
        ),
    )
    logger = PredictionLogger(own.storage, interval_s=3600)
    c = app_factory(own, prediction_log=logger)
    clock = {"now": datetime.now(UTC)}
    sensor = canary_sensor(own, own.spec.deployment(ENDPOINT), clock=lambda: clock["now"])
    shares = []
    for _ in range(2):  # 10% → 50%, then 50% → promoted
        wait_for_revision(c, m.revision)
        # before the evaluation period ends the sensor only waits
        assert tick(sensor, own).skip_message.startswith(f"canary v2 at {m.variants[1].traffic}%")
        preds = send(c, entity_ids)
        assert {p["variant"] for p in preds} == {"stable", "canary"}
        assert all(p["variant"] == route(m, p["entity_id"]).name for p in preds)
        canary_share = sum(p["variant"] == "canary" for p in preds) / len(preds)
        shares.append(canary_share)
        logger.flush()
        clock["now"] = datetime.now(UTC) + timedelta(minutes=6)
        result = tick(sensor, own)
        assert result.asset_events, result.skip_message
        m = read_manifest(own.storage, ENDPOINT)  # type: ignore[assignment]
    assert shares == pytest.approx([0.1, 0.5], abs=0.06)
    assert traffic(m) == [("champion", 2, 100)]
    wait_for_revision(c, m.revision)
    assert {(p["variant"], p["model_version"]) for p in send(c, entity_ids[:100])} == {("champion", 2)}
    steps = [(r.state.get("status"), [v.traffic for v in r.variants]) for r in history(own.storage, ENDPOINT)]
    assert steps[-2:] == [("advancing", [50, 50]), ("promoted", [100])]


def test_live_canary_with_a_bad_model_is_rolled_back(
    project: Project,
    served: Manifest,
    entity_ids: list[str],
    other_booster: str,
    tmp_path: Path,
    app_factory: Any,
) -> None:
    strategy = StrategySpec(kind="canary", evaluation_minutes=5, min_requests=20, max_score_shift=0.1)
    own = own_storage(project, tmp_path, strategy)
    base = served.variants[0]
    bad = base.model_copy(
        update={"name": VariantRole.CANARY, "version": 2, "traffic": 25, "booster_uri": other_booster}
    )
    m = write_manifest(
        own.storage,
        served.model_copy(
            update={
                "strategy": "canary",
                "variants": [base.model_copy(update={"name": VariantRole.STABLE, "traffic": 75}), bad],
                "state": {"step": 1, "live_version": 1, "candidate_version": 2},
            }
        ),
    )
    logger = PredictionLogger(own.storage, interval_s=3600)
    c = app_factory(own, prediction_log=logger)
    preds = send(c, entity_ids)
    by_variant = {
        n: [p["score"] for p in preds if p["variant"] == n and p["found"]] for n in ("stable", "canary")
    }
    assert np.mean(by_variant["canary"]) - np.mean(by_variant["stable"]) > 0.1  # the bad model shows
    logger.flush()
    result = tick(canary_sensor(own, own.spec.deployment(ENDPOINT)), own)  # breach: no waiting period
    meta = metadata_values(result.asset_events[0].metadata)
    assert meta["mlforge/canary_action"] == "rollback" and "mean score shift" in meta["mlforge/canary_reason"]
    rolled = read_manifest(own.storage, ENDPOINT)
    assert rolled is not None and rolled.revision == m.revision + 1
    assert traffic(rolled) == [("champion", 1, 100)]
    wait_for_revision(c, rolled.revision)
    after_rb = send(c, entity_ids[:200])
    assert {(p["variant"], p["model_version"]) for p in after_rb} == {("champion", 1)}


def test_shadow_challenger_is_logged_but_never_answers(
    project: Project,
    served: Manifest,
    entity_ids: list[str],
    other_booster: str,
    tmp_path: Path,
    app_factory: Any,
) -> None:
    own = own_storage(project, tmp_path, SHADOW)
    champ = served.variants[0]
    shadow = champ.model_copy(
        update={
            "name": VariantRole.CHALLENGER,
            "version": 2,
            "traffic": 0,
            "shadow": True,
            "booster_uri": other_booster,
        }
    )
    m = write_manifest(
        own.storage,
        served.model_copy(update={"strategy": "champion_challenger", "variants": [champ, shadow]}),
    )
    logger = PredictionLogger(own.storage, interval_s=3600)
    c = app_factory(own, prediction_log=logger)
    ids = [*entity_ids[:120], "no-such-customer"]
    r = c.post(f"/predict/{ENDPOINT}", json={"entity_ids": ids, "request_id": "shadow-test"})
    assert r.status_code == 200 and "challenger" not in r.text
    answered = {p["entity_id"]: p["score"] for p in r.json()["predictions"]}
    logger.flush()
    log = read_prediction_log(own.storage, ENDPOINT, datetime.now(UTC))
    log = log.filter(pl.col("request_id") == "shadow-test")
    main = log.filter(~pl.col("shadow"))
    shadows = log.filter(pl.col("shadow"))
    assert main.height == len(ids) and set(main["variant"]) == {"champion"}
    assert shadows.height == 120 and set(shadows["variant"]) == {"challenger"}
    assert set(shadows["model_version"]) == {2} and set(shadows["revision"]) == {m.revision}
    assert "no-such-customer" not in shadows["entity_id"].to_list()
    # the logged champion scores are the answers; the challenger's differ and were never returned
    for row in main.filter(pl.col("found")).iter_rows(named=True):
        assert row["score"] == pytest.approx(answered[row["entity_id"]])
    diffs = [abs(s["score"] - answered[s["entity_id"]]) for s in shadows.iter_rows(named=True)]
    assert np.mean(diffs) > 0.05
    assert agreement(log, "champion", "challenger", 0.01)[1] == 120


def test_split_routing_is_sticky_and_logged_as_answered(
    project: Project,
    served: Manifest,
    entity_ids: list[str],
    other_booster: str,
    tmp_path: Path,
    app_factory: Any,
) -> None:
    own = own_storage(project, tmp_path, StrategySpec(kind="champion_challenger", challenger_traffic=30))
    champ = served.variants[0]
    m = write_manifest(
        own.storage,
        served.model_copy(
            update={
                "strategy": "champion_challenger",
                "variants": [
                    champ.model_copy(update={"traffic": 70}),
                    champ.model_copy(
                        update={
                            "name": VariantRole.CHALLENGER,
                            "version": 2,
                            "traffic": 30,
                            "booster_uri": other_booster,
                        }
                    ),
                ],
            }
        ),
    )
    logger = PredictionLogger(own.storage, interval_s=3600)
    c = app_factory(own, prediction_log=logger)
    first = {p["entity_id"]: (p["variant"], p["model_version"]) for p in send(c, entity_ids, batch=100)}
    shuffled = list(reversed(entity_ids))
    again = {p["entity_id"]: (p["variant"], p["model_version"]) for p in send(c, shuffled, batch=7)}
    assert first == again  # one customer, one variant, whatever the batch or order
    assert all(first[i][0] == route(m, i).name for i in entity_ids)
    assert {v for v, _ in first.values()} == {"champion", "challenger"}
    assert 0.2 < sum(v == "challenger" for v, _ in first.values()) / len(first) < 0.4
    logger.flush()
    log = read_prediction_log(own.storage, ENDPOINT, datetime.now(UTC))
    pairs = {(r["entity_id"], r["variant"], r["model_version"]) for r in log.iter_rows(named=True)}
    assert pairs == {(i, v, ver) for i, (v, ver) in first.items()}


def test_decision_type_is_exported() -> None:
    assert Decision("none", "x").tags()["mlforge/canary_action"] == "none"
