"""What the served-predictions drift compares: logged inputs and scores, and the scored reference."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import xgboost as xgb

from mlforge.io.storage import LocalStorage
from mlforge.models.predictions import predict_frame
from mlforge.monitoring.drift_inputs import (
    SCORE,
    drift_columns,
    scored_reference,
    served_frame,
    served_inputs,
)
from mlforge.monitoring.prediction_log import PredictionBatch, PredictionLogger, batches_to_frame

DAY = date(1998, 6, 30)
FEATURES = ["a", "b"]
NOON = datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC).timestamp()


def batch(
    endpoint: str,
    x: list[list[float]],
    scores: list[float],
    *,
    found: list[bool] | None = None,
    failed: list[bool] | None = None,
    shadow: list[float] | None = None,
    names: tuple[str, ...] = tuple(FEATURES),
    request_id: str = "r",
) -> PredictionBatch:
    n = len(x)
    return PredictionBatch(
        endpoint=endpoint,
        revision=1,
        entity_ids=[f"e{i}" for i in range(n)],
        features=np.asarray(x, dtype=np.float32),
        found=np.asarray(found if found is not None else [True] * n),
        variants=["champion"] * n,
        scores=np.asarray(scores, dtype=np.float64),
        shadow_scores={"challenger": np.asarray(shadow)} if shadow is not None else {},
        latency_ms=1.0,
        request_id=request_id,
        timestamp=NOON,
        feature_names=names,
        versions=[1] * n,
        shadow_versions={"challenger": 2} if shadow is not None else {},
        failed=np.asarray(failed) if failed is not None else None,
    )


def test_only_answered_scored_rows_are_served_inputs() -> None:
    log = batches_to_frame(
        [
            batch("api", [[1, 10], [2, 20], [3, 30]], [0.1, 0.2, 0.3], failed=[False, True, False]),
            batch("api", [[4, 40], [5, 50]], [0.4, 0.5], found=[True, False], shadow=[0.9], request_id="s"),
        ]
    )
    served = served_frame([log], FEATURES)
    # the failed row, the row without features and the shadow score are left out
    assert served.columns == ["a", "b", SCORE]
    assert served.sort("a").to_dict(as_series=False) == {
        "a": [1.0, 3.0, 4.0],
        "b": [10.0, 30.0, 40.0],
        SCORE: [0.1, 0.3, 0.4],
    }


def test_logs_without_rows_or_features_are_skipped_and_none_is_an_empty_frame() -> None:
    no_features = batches_to_frame([batch("api", [[1, 2]], [0.5], names=())])
    assert "features" not in no_features.columns
    empty = served_frame([no_features, no_features.clear()], FEATURES)
    assert empty.height == 0
    assert empty.schema == pl.Schema({"a": pl.Float32, "b": pl.Float32, SCORE: pl.Float64})
    assert served_frame([], FEATURES).schema == empty.schema


def test_endpoints_with_different_features_line_up_on_the_requested_ones() -> None:
    one = batches_to_frame([batch("one", [[1, 2]], [0.1])])
    other = batches_to_frame([batch("two", [[3, 4, 5]], [0.2], names=("b", "a", "extra"))])
    served = served_frame([one, other], FEATURES)
    assert served.columns == ["a", "b", SCORE]  # requested order; unrequested columns dropped
    assert served.to_dict(as_series=False) == {"a": [1.0, 4.0], "b": [2.0, 3.0], SCORE: [0.1, 0.2]}
    # a feature no endpoint logged is not a column
    assert served_frame([one], [*FEATURES, "missing"]).columns == ["a", "b", SCORE]
    assert drift_columns(served_frame([one], [*FEATURES, "missing"]), [*FEATURES, "missing"]) == [
        "a",
        "b",
        SCORE,
    ]
    assert drift_columns(pl.DataFrame({"b": [1.0]}), FEATURES) == ["b"]


def test_served_inputs_reads_every_endpoint_s_log_of_the_day(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    logger = PredictionLogger(storage)
    logger.log(batch("one", [[1, 2], [3, 4]], [0.1, 0.2]))
    logger.log(batch("two", [[5, 6]], [0.3]))
    assert logger.flush() == 3
    served = served_inputs(storage, ["one", "two", "silent"], DAY, FEATURES)
    assert sorted(served[SCORE].to_list()) == [0.1, 0.2, 0.3]
    assert served_inputs(storage, ["one"], date(1998, 7, 1), FEATURES).height == 0
    assert served_inputs(storage, [], DAY, FEATURES).height == 0


def test_scored_reference_carries_the_champion_s_score() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(x, label=y), num_boost_round=3)
    reference = pl.DataFrame({"customer_id": [str(i) for i in range(200)], "a": x[:, 0], "b": x[:, 1]})
    scored = scored_reference(booster, reference, FEATURES)
    assert scored.columns == ["customer_id", "a", "b", SCORE]
    np.testing.assert_array_equal(scored[SCORE].to_numpy(), predict_frame(booster, reference, FEATURES))
    assert scored.drop(SCORE).equals(reference)
