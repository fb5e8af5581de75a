"""Batch predictions: score every entity of a day's snapshot with a model version."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    import xgboost as xgb


def predict_frame(booster: xgb.Booster, frame: pl.DataFrame, features: list[str]) -> np.ndarray:
    """Positive-class probabilities of every row of `frame` from its `features` columns (float32)."""
    x = frame.select(features).to_numpy().astype(np.float32)
    return np.asarray(booster.inplace_predict(x), dtype=np.float64) if len(x) else np.zeros(0)


def score_frame(
    booster: xgb.Booster, frame: pl.DataFrame, features: list[str], entity_key: str, version: int
) -> pl.DataFrame:
    """(entity, score, model_version) for every row of `frame`."""
    scores = predict_frame(booster, frame, features)
    return pl.DataFrame(
        {entity_key: frame[entity_key], "score": scores, "model_version": [version] * frame.height},
        schema_overrides={"model_version": pl.Int64},
    )
