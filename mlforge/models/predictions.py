"""Batch predictions: score every entity of a day's snapshot with a model version."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from mlforge.models.base import FittedModel, as_model


def predict_frame(model: FittedModel | Any, frame: pl.DataFrame, features: list[str]) -> np.ndarray:
    """Scores (positive-class probabilities) of every row of `frame` from its `features` columns.

    `model` is a FittedModel (a native XGBoost booster is accepted and wrapped); the rows go to its
    ``predict`` as float32.
    """
    x = frame.select(features).to_numpy().astype(np.float32)
    return as_model(model).predict(x) if len(x) else np.zeros(0)


def score_frame(
    model: FittedModel | Any, frame: pl.DataFrame, features: list[str], entity_key: str, version: int
) -> pl.DataFrame:
    """(entity, score, model_version) for every row of `frame`."""
    scores = predict_frame(model, frame, features)
    return pl.DataFrame(
        {entity_key: frame[entity_key], "score": scores, "model_version": [version] * frame.height},
        schema_overrides={"model_version": pl.Int64},
    )
