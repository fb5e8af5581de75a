"""Live performance: the pure metrics on generated data, and the asset on a copy of the quickstart
state of the compact example (batch and served quality once labels matured, the not-matured
status, latency alerts)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml
from projects import END, HORIZON, copy_state

from mlforge.config.project import Project
from mlforge.config.spec import parse_spec
from mlforge.errors import SpecError
from mlforge.features.labels import LABEL
from mlforge.io import layout
from mlforge.io.storage import Storage, read_json, read_parquet
from mlforge.models.metrics import expected_calibration_error
from mlforge.monitoring.performance import (
    MIN_LOG_ROWS,
    STATUS_NOT_MATURED,
    evaluate_day,
    operations,
    quality,
    threshold_checks,
)
from mlforge.monitoring.prediction_log import PredictionBatch, PredictionLogger, batches_to_frame, empty_frame
from mlforge_assets.runner import Runner
from servers import Receiver

# the compact example's days (its history ends on 1997-09-30, its labels look 30 days ahead)
MATURED = END - timedelta(days=HORIZON)  # 1997-08-31: the last day whose labels exist (the holdout day)
LATE = END  # labels mature on 1997-10-30, after the history ends
LATE_MATURES = END + timedelta(days=HORIZON)


# ---------------------------------------------------------------------------------------------
# Pure logic
# ---------------------------------------------------------------------------------------------


def test_quality_matches_sklearn() -> None:
    from sklearn.metrics import brier_score_loss, f1_score, precision_score, recall_score, roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 5_000)
    p = np.clip(0.35 * y + rng.normal(0.35, 0.2, y.size), 0, 1)
    q = quality(y, p)
    pred = (p >= 0.5).astype(int)
    assert q.rows == 5_000 and q.value("positives") == int(y.sum())
    assert q.value("auc") == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert q.value("precision") == pytest.approx(precision_score(y, pred))
    assert q.value("recall") == pytest.approx(recall_score(y, pred))
    assert q.value("f1") == pytest.approx(f1_score(y, pred))
    assert q.value("brier") == pytest.approx(brier_score_loss(y, p))
    assert q.value("positive_rate") == pytest.approx(y.mean()) and q.value("mean_score") == pytest.approx(
        p.mean()
    )
    # another threshold moves precision/recall, not AUC
    q8 = quality(y, p, threshold=0.8)
    assert (
        q8.value("auc") == q.value("auc")
        and q8.value("recall") is not None
        and q8.value("recall") < q.value("recall")
    )  # type: ignore[operator]


def test_quality_of_regression_and_multiclass_predictions() -> None:
    from scipy.stats import spearmanr
    from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, r2_score

    from mlforge.models.base import Task

    rng = np.random.default_rng(5)
    y = rng.gamma(2.0, 50.0, 2_000)
    pred = y * 0.8 + rng.normal(0, 20, y.size)
    q = quality(y, pred, task=Task.REGRESSION)
    assert q.rows == 2_000 and q.threshold is None and "auc" not in q.metrics
    assert q.value("rmse") == pytest.approx(float(np.sqrt(np.mean((y - pred) ** 2))))
    assert q.value("mae") == pytest.approx(mean_absolute_error(y, pred))
    assert q.value("r2") == pytest.approx(r2_score(y, pred))
    assert q.value("spearman") == pytest.approx(spearmanr(pred, y).statistic)
    top = np.argsort(-pred)[:200]
    assert q.value("top_decile_capture") == pytest.approx(y[top].sum() / y.sum())
    assert 0.1 < q.value("top_decile_capture") < 1  # type: ignore[operator]

    k = rng.integers(0, 3, 1_500)
    probs = rng.dirichlet(np.ones(3), k.size)
    probs[np.arange(k.size), k] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    m = quality(k, probs, task=Task.MULTICLASS)
    assert m.value("accuracy") == pytest.approx(accuracy_score(k, probs.argmax(1)))
    assert m.value("macro_f1") == pytest.approx(f1_score(k, probs.argmax(1), average="macro"))
    assert m.value("logloss") == pytest.approx(log_loss(k, probs), rel=1e-6)
    assert m.value("accuracy") > 0.6  # type: ignore[operator]  # well above a third (chance)
    assert quality(np.array([]), np.zeros((0, 3)), task=Task.MULTICLASS).value("accuracy") is None


def test_expected_calibration_error_by_hand() -> None:
    # bin [0.1, 0.2): scores 0.1, 0.1 with labels 0, 1 → |0.1 - 0.5| × 2/5
    # bin [0.9, 1.0]: scores 0.9, 0.95, 1.0 with labels 1, 1, 0 → |0.95 - 2/3| × 3/5
    y = np.array([0, 1, 1, 1, 0])
    p = np.array([0.1, 0.1, 0.9, 0.95, 1.0])
    expected = abs(0.1 - 0.5) * 2 / 5 + abs(0.95 - 2 / 3) * 3 / 5
    assert expected_calibration_error(y, p) == pytest.approx(expected)
    # perfectly calibrated scores in each bin → 0
    assert expected_calibration_error(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([]), np.array([])) is None


def test_one_class_has_no_auc_and_empty_has_no_metrics() -> None:
    q = quality(np.ones(50, dtype=int), np.linspace(0.2, 0.9, 50))
    assert q.value("auc") is None and q.rows == 50 and q.value("positive_rate") == 1.0
    assert q.value("precision") == 1.0 and q.value("recall") is not None and 0 < q.value("recall") < 1
    empty = quality(np.array([]), np.array([]))
    assert (
        empty.rows == 0
        and empty.value("auc") is None
        and empty.value("brier") is None
        and empty.value("f1") is None
    )


def _batch(
    day: datetime, n: int, latency: float, rid: str, failed: int = 0, not_found: int = 0, shadow: bool = False
) -> PredictionBatch:
    found = np.ones(n, dtype=bool)
    found[:not_found] = False
    fail = np.zeros(n, dtype=bool)
    fail[not_found : not_found + failed] = True
    return PredictionBatch(
        endpoint="churn-api",
        revision=1,
        entity_ids=[f"{i:05d}" for i in range(1, n + 1)],
        features=np.zeros((n, 2), dtype=np.float32),
        found=found,
        variants=["champion"] * n,
        scores=np.linspace(0.1, 0.9, n),
        shadow_scores={"challenger": np.full(int(found.sum()), 0.5)} if shadow else {},
        latency_ms=latency,
        request_id=rid,
        timestamp=day.timestamp(),
        feature_names=("a", "b"),
        versions=[1] * n,
        shadow_versions={"challenger": 2} if shadow else {},
        failed=fail,
    )


def test_operations_latency_per_request_and_error_rate() -> None:
    day = datetime(1998, 6, 10, 12, tzinfo=UTC)
    latencies = [5.0 + i for i in range(97)] + [400.0, 500.0, 900.0]
    batches = [_batch(day, 3, lat, f"r{i}", shadow=(i % 10 == 0)) for i, lat in enumerate(latencies)]
    batches[0] = _batch(day, 3, latencies[0], "r0", failed=1, not_found=1)
    log = batches_to_frame(batches)
    ops = operations(log)
    assert ops.requests == 100 and ops.log_rows == 300  # shadow rows are not answers
    assert ops.latency_p50_ms == pytest.approx(np.percentile(latencies, 50))
    assert ops.latency_p99_ms == pytest.approx(np.percentile(latencies, 99))
    assert ops.latency_p99_ms > 400  # type: ignore[operator]
    assert ops.error_rate == pytest.approx(2 / 300)  # one error, one not_found: status != ok
    none = operations(empty_frame())
    assert none.log_rows == 0 and none.latency_p99_ms is None and none.error_rate is None


def test_not_matured_day_reports_status_never_zeros() -> None:
    log = batches_to_frame([_batch(datetime(1998, 6, 30, 8, tzinfo=UTC), 4, 80.0, "r")])
    perf = evaluate_day(
        date(1998, 6, 30),
        horizon_days=90,
        labels=None,
        predictions=None,
        log=log,
        entity_key="customer_id",
        champion_version=1,
    )
    s = perf.to_json()
    assert s["status"] == STATUS_NOT_MATURED and s["matures_on"] == "1998-09-28"
    assert all(s[m] is None for m in ("auc", "f1", "precision", "recall", "brier", "ece", "rows"))
    assert s["latency_p99_ms"] == pytest.approx(80.0) and s["error_rate"] == 0.0  # operations need no labels
    checks = {c.name: c for c in threshold_checks(perf, {"auc": 0.7, "latency_p99_ms": 50})}
    assert checks["min_auc"].passed and checks["min_auc"].metadata["evaluated"] is False
    assert "not evaluated" in checks["min_auc"].description and "1998-09-28" in checks["min_auc"].description
    assert checks["max_latency_p99_ms"].passed is False
    assert checks["max_latency_p99_ms"].metadata == {
        "value": pytest.approx(80.0),
        "threshold": 50,
        "day": "1998-06-30",
        "evaluated": True,
        "source": "log",
    }


def test_log_quality_is_checked_from_enough_labelled_rows() -> None:
    rng = np.random.default_rng(5)
    n = 400
    ids = [f"{i:05d}" for i in range(n)]
    y = rng.integers(0, 2, n)
    batch_scores = np.clip(0.4 * y + rng.uniform(0, 0.6, n), 0, 1)
    labels = pl.DataFrame({"customer_id": ids, LABEL: y.astype(np.int8)})
    preds = pl.DataFrame({"customer_id": ids, "score": batch_scores, "model_version": [1] * n})
    day = datetime(1998, 4, 1, 9, tzinfo=UTC)
    matured = day.date()

    def log_of(k: int) -> pl.DataFrame:
        b = _batch(day, k, 12.0, "r")
        return batches_to_frame([b])

    few = evaluate_day(
        matured, horizon_days=90, labels=labels, predictions=preds, log=log_of(MIN_LOG_ROWS - 1),
        entity_key="customer_id", champion_version=1,
    )  # fmt: skip
    assert few.quality_source == "batch" and few.log is not None and few.log.rows == MIN_LOG_ROWS - 1
    assert few.value("auc") == pytest.approx(quality(y, batch_scores).value("auc"))
    many = evaluate_day(
        matured, horizon_days=90, labels=labels, predictions=preds, log=log_of(n - 1),
        entity_key="customer_id", champion_version=1,
    )  # fmt: skip
    assert many.quality_source == "log" and many.log is not None and many.log.rows == n - 1
    # _batch ids start at 00001: the log's rows join their own labels
    log_scores = np.linspace(0.1, 0.9, n - 1)
    assert many.value("auc") == pytest.approx(quality(y[1:], log_scores).value("auc"))
    assert many.to_json()["batch"]["auc"] == pytest.approx(quality(y, batch_scores).value("auc"))


def test_unknown_alert_threshold_fails_spec_validation(repo_root: Path) -> None:
    data = yaml.safe_load((repo_root / "mlforge.yaml").read_text())
    data["monitoring"][0]["alert_thresholds"]["latency_p95_ms"] = 30
    with pytest.raises(SpecError) as err:
        parse_spec(data, "mlforge.yaml")
    assert "monitoring[0].alert_thresholds: ['latency_p95_ms'] not metrics of a binary model" in str(
        err.value
    )
    assert "drift_share" in str(err.value)  # names the known ones
    data["monitoring"][0]["alert_thresholds"] = {"rmse": 3.0}  # a regression metric on a binary model
    with pytest.raises(SpecError, match=r"\['rmse'\] not metrics of a binary model"):
        parse_spec(data)
    data["monitoring"][0]["alert_thresholds"] = {"f1": 0.5, "error_rate": 0.01, "drift_share": 0.5}
    assert parse_spec(data).monitoring[0].alert_thresholds["f1"] == 0.5


# ---------------------------------------------------------------------------------------------
# The asset, on a private copy of the quickstart state
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def perf_state(materialized, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    dst = tmp_path_factory.mktemp("perf") / "state"
    copy_state(materialized.state_dir, dst, {MATURED.isoformat(), LATE.isoformat()})
    return dst


def _runner(state: Path, spec: Path) -> Runner:
    return Runner(Project.load(spec, state_dir=state), dg.DagsterInstance.ephemeral())


def _perf_key(runner: Runner) -> dg.AssetKey:
    return runner.key("monitoring", "churn", "performance")


def _write_log(storage: Storage, batches: list[PredictionBatch]) -> None:
    logger = PredictionLogger(storage)
    for b in batches:
        logger.log(b)
    assert logger.flush() == sum(b.rows for b in batches)


def test_asset_on_a_matured_day_batch_and_served(materialized, perf_state: Path) -> None:  # type: ignore[no-untyped-def]
    runner = _runner(perf_state, materialized.spec_path)
    storage = runner.project.storage
    res = runner.materialize([runner.key("predictions", "churn"), _perf_key(runner)], MATURED)
    meta = res.metadata["churn/monitoring/churn/performance"]
    assert meta["status"] == "ok" and meta["quality_source"] == "batch" and meta["log_rows"] == 0
    assert 0.6 <= meta["auc"] <= 0.9  # type: ignore[operator]
    assert meta["rows"] == res.metadata["churn/predictions/churn"]["dagster/row_count"]
    assert meta["champion_version"] == 1 and meta["latency_p99_ms"] is None
    labels = read_parquet(storage, layout.label_data("churn", MATURED))
    preds = read_parquet(storage, layout.predictions("churn", MATURED))
    joined = preds.join(labels, on="customer_id")
    expected = quality(joined[LABEL].to_numpy(), joined["score"].to_numpy())
    assert meta["auc"] == pytest.approx(expected.value("auc")) and meta["f1"] == pytest.approx(
        expected.value("f1")
    )
    assert meta["ece"] == pytest.approx(expected.value("ece")) and meta["brier"] == pytest.approx(
        expected.value("brier")
    )
    summary = read_json(storage, layout.performance_summary("churn", MATURED))
    assert summary["status"] == "ok" and summary["auc"] == pytest.approx(meta["auc"])

    # served that day: 300 scored customers in 30 requests (the batch scores), 10 unknown ids, 5 errors
    at = datetime(MATURED.year, MATURED.month, MATURED.day, 10, tzinfo=UTC)
    ids = joined["customer_id"].to_list()[:300]
    scores = joined["score"].to_numpy()[:300]
    batches = []
    for r in range(30):
        part = slice(r * 10, r * 10 + 10)
        batches.append(
            PredictionBatch(
                endpoint="churn-api",
                revision=1,
                entity_ids=ids[part],
                features=np.zeros((10, 1), dtype=np.float32),
                found=np.ones(10, dtype=bool),
                variants=["champion"] * 10,
                scores=scores[part],
                shadow_scores={},
                latency_ms=4.0 + r,
                request_id=f"ok-{r}",
                timestamp=at.timestamp(),
                feature_names=("x",),
                versions=[1] * 10,
            )
        )
    batches.append(
        PredictionBatch(
            endpoint="churn-api", revision=1, entity_ids=[f"nope{i}" for i in range(10)],
            features=np.full((10, 1), np.nan, dtype=np.float32), found=np.zeros(10, dtype=bool),
            variants=["champion"] * 10, scores=np.zeros(10), shadow_scores={}, latency_ms=2.0,
            request_id="unknown", timestamp=at.timestamp(), feature_names=("x",), versions=[1] * 10,
        )
    )  # fmt: skip
    batches.append(
        PredictionBatch(
            endpoint="churn-api", revision=1, entity_ids=ids[:5], features=np.zeros((5, 1), dtype=np.float32),
            found=np.ones(5, dtype=bool), variants=["champion"] * 5, scores=np.zeros(5), shadow_scores={},
            latency_ms=30.0, request_id="failed", timestamp=at.timestamp(), feature_names=("x",),
            versions=[1] * 5, failed=np.ones(5, dtype=bool),
        )
    )  # fmt: skip
    _write_log(storage, batches)
    meta = runner.materialize([_perf_key(runner)], MATURED).metadata["churn/monitoring/churn/performance"]
    assert meta["log_rows"] == 315 and meta["log_labelled_rows"] == 300 and meta["quality_source"] == "log"
    live = quality(joined[LABEL].to_numpy()[:300], scores)
    assert meta["auc"] == pytest.approx(live.value("auc")) and 0.6 <= meta["auc"] <= 0.9  # type: ignore[operator]
    assert meta["error_rate"] == pytest.approx(15 / 315)
    per_request = [4.0 + r for r in range(30)] + [2.0, 30.0]
    assert meta["latency_p50_ms"] == pytest.approx(np.percentile(per_request, 50))
    assert meta["latency_p99_ms"] == pytest.approx(np.percentile(per_request, 99))
    summary = read_json(storage, layout.performance_summary("churn", MATURED))
    assert summary["batch"]["auc"] == pytest.approx(expected.value("auc")) and summary["log"]["rows"] == 300
    # the checks ran on the served quality and latency (within the spec's thresholds)
    instance = runner.instance
    for name in ("min_auc", "max_latency_p99_ms"):
        rec = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(_perf_key(runner), name)]
        )[dg.AssetCheckKey(_perf_key(runner), name)]
        ev = rec.event.dagster_event.event_specific_data  # type: ignore[union-attr]
        assert ev.passed is True and ev.metadata["evaluated"].value is True  # type: ignore[union-attr]


def test_asset_on_a_day_whose_labels_have_not_matured(materialized, perf_state: Path) -> None:  # type: ignore[no-untyped-def]
    runner = _runner(perf_state, materialized.spec_path)
    meta = runner.materialize([_perf_key(runner)], LATE).metadata["churn/monitoring/churn/performance"]
    assert meta["status"] == "labels not matured" and meta["matures_on"] == LATE_MATURES.isoformat()
    assert meta["auc"] is None and meta["f1"] is None and meta["rows"] is None
    summary = read_json(runner.project.storage, layout.performance_summary("churn", LATE))
    assert summary["status"] == "labels not matured" and summary["auc"] is None


@pytest.fixture
def webhook(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the alert webhook received (the receiver runs on 127.0.0.1)."""
    monkeypatch.setenv("MLFORGE_ALERT_WEBHOOK_URL", receiver.url)
    return receiver.received


def test_latency_breach_fires_once_and_resolves(materialized, perf_state: Path, webhook) -> None:  # type: ignore[no-untyped-def]
    runner = _runner(perf_state, materialized.spec_path)  # built after the webhook variable is set
    storage = runner.project.storage
    slow = [date(1997, 9, 10), date(1997, 9, 11)]  # days whose labels mature after the history
    fine = date(1997, 9, 12)
    for d in [*slow, fine]:
        at = datetime(d.year, d.month, d.day, 14, tzinfo=UTC)
        high = 120.0 if d in slow else 20.0
        # 50 requests of 2 rows: 48 fast, 2 at `high` ms → p99 between 20 and `high`
        _write_log(
            storage,
            [_batch(at, 2, 8.0 if i < 48 else high, f"{d}-{i}", failed=int(i == 0)) for i in range(50)],
        )
    metas = [
        runner.materialize([_perf_key(runner)], d).metadata["churn/monitoring/churn/performance"]
        for d in [*slow, fine]
    ]
    expected_p99 = [np.percentile([8.0] * 48 + [h, h], 99) for h in (120.0, 120.0, 20.0)]
    assert [m["latency_p99_ms"] for m in metas] == pytest.approx(expected_p99)
    assert [m["error_rate"] for m in metas] == pytest.approx([1 / 100] * 3)
    assert all(m["status"] == "labels not matured" for m in metas)
    latency = [a for a in webhook if a["key"].endswith(":max_latency_p99_ms")]
    assert [a["status"] for a in latency] == ["firing", "resolved"]
    assert latency[0]["partition"] == "1997-09-10" and latency[0]["threshold"] == 50.0
    assert latency[0]["value"] == pytest.approx(expected_p99[0])
    assert latency[1]["partition"] == "1997-09-12"
    assert latency[0]["key"] == "churn/monitoring/churn/performance:max_latency_p99_ms"
    # the AUC check was not evaluated on these days: it neither fired nor resolved anything
    assert webhook == latency


def test_quickstart_plan_adds_performance_only_when_the_day_has_labels(
    repo_root: Path, tmp_path: Path
) -> None:
    runner = Runner(Project.load(repo_root / "mlforge.yaml", state_dir=tmp_path))
    perf = runner.key("monitoring", "churn", "performance")
    default = runner.quickstart_plan()  # predicts 1998-06-30, whose labels mature after the history
    assert all(perf not in keys for _, keys, _, _ in default)
    matured = date(1998, 4, 1)  # the last day whose 90-day labels exist in the full history
    early = runner.quickstart_plan(matured)
    *_, (_, keys, first, last) = early
    assert perf in keys and first == last == matured
    assert early[2][3] == matured  # the labels step reaches the predicted day
