"""Drift of what serving answered: logged inputs and scores against the champion's reference."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from projects import END, copy_state

from mlforge.config.project import Project
from mlforge.features.offline import service_frame
from mlforge.features.refs import service_features
from mlforge.io import layout
from mlforge.io.storage import read_json
from mlforge.monitoring.drift import MIN_DRIFT_LOG_ROWS
from mlforge.monitoring.prediction_log import PredictionBatch, PredictionLogger
from mlforge_assets.runner import Runner

CLEAN, SHIFTED = END - timedelta(days=1), END  # the compact example's last two days
ROWS = 600


@pytest.fixture(scope="module")
def state(materialized, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    dst = tmp_path_factory.mktemp("driftlog") / "state"
    copy_state(materialized.state_dir, dst, {CLEAN.isoformat(), SHIFTED.isoformat()})
    return dst


def _log_day(project: Project, runner: Runner, d: date, shift: bool) -> None:
    """ROWS answered predictions on day `d`: the day's real features (spend ×4, recency 0 if
    `shift`), scored by the champion, logged as serving logs them (one request of 10 rows each)."""
    spec = project.spec
    features = [f for _, f in service_features(spec, "churn_features")]
    frame = service_frame(project.storage, spec, "churn_features", d).head(ROWS)
    if shift:
        spend = [f for f in features if "dollar_value" in f]
        frame = frame.with_columns([pl.col(c) * 4 for c in spend] + [pl.lit(0.0).alias("days_since_last")])
    x = frame.select(features).to_numpy().astype(np.float32)
    tracker = runner.resources["mlflow"].get()  # type: ignore[attr-defined]
    champion = tracker.alias("churn", "champion")
    scores = np.asarray(tracker.load_booster(champion.booster_uri).inplace_predict(x), dtype=np.float64)
    logger = PredictionLogger(project.storage)
    at = datetime(d.year, d.month, d.day, 12, tzinfo=UTC).timestamp()
    ids = frame["customer_id"].to_list()
    for start in range(0, ROWS, 10):
        sl = slice(start, start + 10)
        logger.log(
            PredictionBatch(
                endpoint="churn-api",
                revision=1,
                entity_ids=ids[sl],
                features=x[sl],
                found=np.ones(10, dtype=bool),
                variants=["champion"] * 10,
                scores=scores[sl],
                shadow_scores={},
                latency_ms=1.0,
                request_id=f"{d}-{start}",
                timestamp=at + start,
                feature_names=tuple(features),
                versions=[champion.version] * 10,
                shadow_versions={},
                failed=np.zeros(10, dtype=bool),
            )
        )
    assert logger.flush() == ROWS


def test_served_inputs_and_scores_are_tested_for_drift(materialized, state: Path) -> None:  # type: ignore[no-untyped-def]
    project = Project.load(materialized.spec_path, state_dir=state)
    runner = Runner(project, dg.DagsterInstance.ephemeral())
    key = runner.key("monitoring", "churn", "drift")
    assert ROWS >= MIN_DRIFT_LOG_ROWS
    _log_day(project, runner, CLEAN, shift=False)
    _log_day(project, runner, SHIFTED, shift=True)

    clean = runner.materialize([key], CLEAN).metadata["churn/monitoring/churn/drift"]
    assert clean["log_rows"] == ROWS
    assert clean["drift_share"] < 0.5 and clean["log_drift_share"] < 0.5, clean
    assert clean["score_drift"] is False

    shifted = runner.materialize([key], SHIFTED).metadata["churn/monitoring/churn/drift"]
    # the features the batch snapshot sees did not change; what serving answered did
    assert shifted["drift_share"] < 0.5 <= shifted["log_drift_share"], shifted
    assert shifted["score_drift"] is True
    summary = read_json(project.storage, layout.drift_summary("churn", SHIFTED))
    assert summary["log_rows"] == ROWS and summary["log_drift_share"] == shifted["log_drift_share"]
    html = project.storage.read_bytes(layout.drift_report("churn", SHIFTED, "html", served=True))
    assert html.lstrip().startswith(b"<") and b"score" in html
    assert str(shifted["log_report_html"]).endswith(f"date={SHIFTED}/log_report.html")
