"""Batch predictions: score every entity of a day's snapshot with a model version."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from mlforge.models.base import FittedModel, Task, as_model

#: The predicted class column of batch predictions (not `label`: that is the matured label's
#: column, and a join of predictions with labels must not collide).
PREDICTED_LABEL = "predicted_label"


def predict_frame(model: FittedModel | Any, frame: pl.DataFrame, features: list[str]) -> np.ndarray:
    """Scores of every row of `frame` from its `features` columns: [rows] positive-class
    probabilities or predictions, [rows, classes] probabilities for a multiclass model.

    `model` is a FittedModel (a native XGBoost booster is accepted and wrapped); the rows go to its
    ``predict`` as float32.
    """
    x = frame.select(features).to_numpy().astype(np.float32)
    return as_model(model).predict(x) if len(x) else np.zeros(0)


def score_frame(
    model: FittedModel | Any,
    frame: pl.DataFrame,
    features: list[str],
    entity_key: str,
    version: int,
    threshold: float = 0.5,
) -> pl.DataFrame:
    """(entity, score, [predicted_label], [probabilities], model_version) for every row of `frame`.

    binary: `score` is the positive-class probability, `predicted_label` 1 when it is ≥
    `threshold`; regression: `score` is the prediction; multiclass: `probabilities` per class,
    `predicted_label` the most probable class and `score` its probability (serving answers the
    same, with the class as `label`).
    """
    fitted = as_model(model)
    scores = predict_frame(fitted, frame, features)
    cols: dict[str, Any] = {entity_key: frame[entity_key]}
    if fitted.task is Task.MULTICLASS:
        probs = scores.reshape(frame.height, -1)
        cols |= {
            "score": probs.max(axis=1) if frame.height else np.zeros(0),
            PREDICTED_LABEL: probs.argmax(axis=1).astype(np.int32) if frame.height else np.zeros(0, np.int32),
            "probabilities": probs.tolist(),
        }
    elif fitted.task is Task.BINARY:
        cols |= {"score": scores, PREDICTED_LABEL: (scores >= threshold).astype(np.int8)}
    else:
        cols |= {"score": scores}
    cols["model_version"] = [version] * frame.height
    return pl.DataFrame(
        cols,
        schema_overrides={"model_version": pl.Int64}
        | ({"probabilities": pl.List(pl.Float64)} if "probabilities" in cols else {}),
    )
