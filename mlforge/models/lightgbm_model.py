"""LightGBM behind the model seam (:class:`mlforge.models.base.FittedModel`).

``import lightgbm`` (and MLflow's flavor) happen inside the methods that need them, so importing
this module costs nothing beyond numpy. The model is a ``lightgbm.Booster`` serialized in
LightGBM's text format (``model_to_string``), the file MLflow's flavor logs as ``model.lgb``.
Training is deterministic: ``deterministic=True``, a fixed thread count and the spec's seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mlforge.errors import MLForgeError
from mlforge.models.base import SerializedModel, Task

if TYPE_CHECKING:
    import lightgbm as lgb

    from mlforge.config.spec import ModelSpec
    from mlforge.models.base import FittedModel
    from mlforge.models.training import TrainingData

#: What MLflow records as the logged model's requirements.
PIP_REQUIREMENTS = ["lightgbm>=4.0", "numpy"]
MODEL_FILE = "model.lgb"

#: The LightGBM objective of each task (when the spec's params do not set one).
OBJECTIVES = {Task.BINARY: "binary", Task.REGRESSION: "regression", Task.MULTICLASS: "multiclass"}


def lgb_params(model: ModelSpec, y: np.ndarray | None = None) -> tuple[dict[str, Any], int]:
    """LightGBM params and the number of rounds from the spec's params.

    The objective follows the spec's task unless the params set one; a multiclass model gets
    ``num_class`` from :meth:`ModelSpec.class_count` (the spec's classes, else those of `y`).
    """
    params = dict(model.params)
    rounds = int(params.pop("n_estimators", params.pop("num_boost_round", 100)))
    params.setdefault("objective", OBJECTIVES[model.model_task])
    if task_of(str(params["objective"])) is Task.MULTICLASS and "num_class" not in params:
        if y is None:
            raise MLForgeError("a multiclass LightGBM model needs the training labels for num_class")
        params["num_class"] = model.class_count(y)
    params["deterministic"] = True
    params.setdefault("num_threads", 2)
    params["seed"] = model.training.seed
    params["verbose"] = -1
    return params, rounds


def task_of(objective: str) -> Task:
    """The task a LightGBM objective (or its alias, as the model file writes it) solves."""
    name = objective.split()[0] if objective.strip() else objective
    if name in ("binary", "cross_entropy", "xentropy"):
        return Task.BINARY
    if name in ("multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr"):
        return Task.MULTICLASS
    regression = {
        "regression", "regression_l2", "l2", "mean_squared_error", "mse", "l2_root", "root_mean_squared_error",
        "rmse", "regression_l1", "l1", "mean_absolute_error", "mae", "huber", "fair", "poisson", "quantile",
        "mape", "mean_absolute_percentage_error", "gamma", "tweedie",
    }  # fmt: skip
    if name in regression:
        return Task.REGRESSION
    raise MLForgeError(f"LightGBM objective {objective!r} has no task the platform knows")


class LightGBMModel(SerializedModel):
    """A ``lightgbm.Booster`` as a FittedModel; ``booster`` is the native object."""

    algorithm: ClassVar[str] = "lightgbm"
    flavor: ClassVar[str] = "lightgbm"
    model_file: ClassVar[str] = MODEL_FILE

    def __init__(self, booster: lgb.Booster, params: dict[str, Any] | None = None) -> None:
        self.booster = booster
        self._params = dict(params or {})
        self._task: Task | None = None

    def __repr__(self) -> str:
        return f"LightGBMModel({self.booster.num_trees()} trees, {len(self.feature_names)} features)"

    # -- training ---------------------------------------------------------------------------

    @classmethod
    def fit(cls, data: TrainingData, spec: ModelSpec) -> LightGBMModel:
        """Fit the booster on the training part (deterministic for the same data and params)."""
        import lightgbm as lgb

        x, y = data.matrix("train")
        params, rounds = lgb_params(spec, y)
        # category codes split natively (LightGBM keeps them in the model file, serving included)
        cats = [f for f in data.categorical if f in data.features]
        dtrain = lgb.Dataset(
            x,
            label=y,
            feature_name=list(data.features),
            categorical_feature=cats or "auto",
            free_raw_data=True,
        )
        booster = lgb.train(dict(params), dtrain, num_boost_round=rounds)
        return cls(booster, {**params, "num_boost_round": rounds})

    @property
    def params(self) -> dict[str, Any]:
        """The params and ``num_boost_round`` it was trained with (empty when loaded)."""
        return dict(self._params)

    # -- what it is -------------------------------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        """The names the booster was trained with (LightGBM's Column_0, … when it has none)."""
        return list(self.booster.feature_name())

    @property
    def task(self) -> Task:
        """From the booster's objective (as the model file records it)."""
        if self._task is None:
            objective = self.booster.dump_model(num_iteration=0).get("objective", "")
            self._task = task_of(str(objective))
        return self._task

    # -- scoring ----------------------------------------------------------------------------

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float64 scores: probabilities (binary [rows], multiclass [rows, classes]) or values."""
        if len(x) == 0:
            if self.task is Task.MULTICLASS:
                return np.zeros((0, self.booster.num_model_per_iteration()))
            return np.zeros(0)
        return np.asarray(self.booster.predict(x), dtype=np.float64)

    # -- persistence ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The booster in LightGBM's text model format (UTF-8), what ``model.lgb`` holds."""
        return self.booster.model_to_string().encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray) -> LightGBMModel:
        """A booster from its text model format."""
        import lightgbm as lgb

        return cls(lgb.Booster(model_str=bytes(raw).decode("utf-8")))

    def save(self, path: str | Path) -> None:
        """Write the booster's text model file."""
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> LightGBMModel:
        """Read a text model file (``model.lgb`` of the logged model, or one written by `save`)."""
        import lightgbm as lgb

        return cls(lgb.Booster(model_file=str(path)))

    # -- tracking ---------------------------------------------------------------------------

    def log_mlflow(self, name: str, signature: Any, tags: dict[str, str]) -> Any:
        """``mlflow.lightgbm.log_model`` of the booster: the logged folder holds ``model.lgb``."""
        import mlflow.lightgbm

        return mlflow.lightgbm.log_model(
            self.booster,
            name=name,
            signature=signature,
            pip_requirements=PIP_REQUIREMENTS,
            tags=tags,
        )


if TYPE_CHECKING:  # mypy checks that the class satisfies the protocol
    _: type[FittedModel] = LightGBMModel
