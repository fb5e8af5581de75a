"""What the drift of served predictions compares: a day's logged inputs and scores, and the reference.

The served side is what the champion answered with (no shadow rows, errors or misses), with the
logged feature struct unnested into one column per feature beside the score. The reference side
is the champion's holdout reference scored by the champion itself, so both sides carry a `score`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from mlforge.io.storage import Storage
from mlforge.models.predictions import predict_frame
from mlforge.monitoring.prediction_log import answering_rows, ok_scored_rows, read_prediction_log

if TYPE_CHECKING:
    from mlforge.models.base import FittedModel

#: The score column on both sides of the served-predictions drift report.
SCORE = "score"


def served_frame(logs: Iterable[pl.DataFrame], features: list[str]) -> pl.DataFrame:
    """The answered, scored rows of prediction-log frames as `features` + `score` columns.

    Logs without rows or without a `features` struct are left out; no log at all gives an empty
    frame with every feature (Float32) and the score (Float64). Only columns among `features` and
    the score are kept, in that order.
    """
    frames = []
    for log in logs:
        if log.height == 0 or "features" not in log.columns:
            continue
        ok = ok_scored_rows(answering_rows(log))
        frames.append(ok.select(pl.col("features").struct.unnest(), pl.col(SCORE)))
    if not frames:
        return pl.DataFrame(schema={**dict.fromkeys(features, pl.Float32), SCORE: pl.Float64})
    frame = pl.concat(frames, how="diagonal_relaxed")
    return frame.select(drift_columns(frame, features))


def served_inputs(storage: Storage, endpoints: list[str], d: date, features: list[str]) -> pl.DataFrame:
    """The inputs and scores the champion answered with on day `d` over `endpoints` (see served_frame)."""
    return served_frame((read_prediction_log(storage, ep, d) for ep in endpoints), features)


def drift_columns(served: pl.DataFrame, features: list[str]) -> list[str]:
    """The columns of `served` the served-predictions drift report tests: features, then the score."""
    return [c for c in [*features, SCORE] if c in served.columns]


def scored_reference(model: FittedModel, reference: pl.DataFrame, features: list[str]) -> pl.DataFrame:
    """The reference with the champion's score of every row, to compare served scores against."""
    return reference.with_columns(pl.Series(SCORE, predict_frame(model, reference, features)))
