"""The stored inputs of a day's live performance: labels, batch predictions, served log rows."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlforge.errors import MissingPartitionsError
from mlforge.features.labels import LABEL, write_labels
from mlforge.io import layout
from mlforge.io.storage import LocalStorage, Storage, write_parquet
from mlforge.monitoring.performance import DayInputs, concat_logs, read_day_inputs
from mlforge.monitoring.prediction_log import PredictionBatch, PredictionLogger, empty_frame

DAY = date(1998, 3, 1)


def log_rows(storage: Storage, endpoint: str, n: int, names: tuple[str, ...] = ("f",)) -> None:
    at = datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC).timestamp()
    logger = PredictionLogger(storage)
    logger.log(
        PredictionBatch(
            endpoint=endpoint,
            revision=1,
            entity_ids=[f"e{i}" for i in range(n)],
            features=np.ones((n, len(names)), dtype=np.float32),
            found=np.ones(n, dtype=bool),
            variants=["champion"] * n,
            scores=np.full(n, 0.5),
            shadow_scores={},
            latency_ms=2.0,
            request_id=endpoint,
            timestamp=at,
            feature_names=names,
            versions=[1] * n,
        )
    )
    assert logger.flush() == n


def labels_frame() -> pl.DataFrame:
    return pl.DataFrame({"customer_id": ["a", "b"], LABEL: pl.Series([0, 1], dtype=pl.Int8)})


def predictions_frame() -> pl.DataFrame:
    return pl.DataFrame({"customer_id": ["a", "b"], "score": [0.2, 0.7], "model_version": [1, 1]})


def test_a_matured_day_has_labels_predictions_and_every_endpoint_s_log(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    write_labels(storage, "churn", DAY, labels_frame())
    write_parquet(storage, layout.predictions("churn", DAY), predictions_frame())
    log_rows(storage, "one", 3)
    log_rows(storage, "two", 2, names=("f", "g"))

    inputs = read_day_inputs(storage, "churn", DAY, ["one", "two", "silent"])

    assert inputs.labels is not None and inputs.labels.equals(labels_frame())
    assert inputs.predictions is not None and inputs.predictions.equals(predictions_frame())
    assert inputs.log.height == 5 and sorted(set(inputs.log["endpoint"])) == ["one", "two"]


def test_a_day_whose_labels_have_not_matured_reads_only_the_log(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    write_parquet(storage, layout.predictions("churn", DAY), predictions_frame())  # not read without labels
    log_rows(storage, "one", 4)
    inputs = read_day_inputs(storage, "churn", DAY, ["one"])
    assert inputs.labels is None and inputs.predictions is None and inputs.log.height == 4
    nothing = read_day_inputs(storage, "churn", DAY, [])
    assert nothing == DayInputs(None, None, nothing.log) and nothing.log.equals(empty_frame())


def test_labels_without_the_day_s_predictions_are_a_missing_partition(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    write_labels(storage, "churn", DAY, labels_frame())
    with pytest.raises(MissingPartitionsError) as err:
        read_day_inputs(storage, "churn", DAY, [])
    assert err.value.stage == "monitoring/churn/performance"
    assert err.value.upstream == "predictions/churn" and err.value.missing == ["1998-03-01"]
    with pytest.raises(MissingPartitionsError, match=r"^my/stage needs"):
        read_day_inputs(storage, "churn", DAY, [], stage="my/stage")


def test_concat_logs_skips_empty_frames_and_aligns_columns() -> None:
    assert concat_logs([]).equals(empty_frame())
    assert concat_logs([empty_frame(), empty_frame()]).equals(empty_frame())
    one = pl.DataFrame({"score": [0.1], "a": [1]})
    other = pl.DataFrame({"score": [0.2], "b": ["x"]})
    both = concat_logs([one, empty_frame().clear(), other])
    assert both.to_dict(as_series=False) == {"score": [0.1, 0.2], "a": [1, None], "b": [None, "x"]}
