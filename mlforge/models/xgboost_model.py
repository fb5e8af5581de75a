"""XGBoost behind the model seam (:class:`mlforge.models.base.FittedModel`).

``import xgboost`` (and MLflow's flavor) happen inside the methods that need them, so importing
this module costs nothing beyond numpy. Training is exactly what it was before the seam: the same
params (:func:`xgb_params`), the same DMatrix built from ``TrainingData.matrix("train")`` with the
feature names, ``xgb.train`` — so the booster bytes and their sha256 are unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mlforge.errors import MLForgeError
from mlforge.models.base import SerializedModel, Task

if TYPE_CHECKING:
    import xgboost as xgb

    from mlforge.config.spec import ModelSpec
    from mlforge.models.base import FittedModel
    from mlforge.models.training import TrainingData

#: What MLflow records as the logged model's requirements.
PIP_REQUIREMENTS = ["xgboost-cpu>=3.0", "numpy"]
MODEL_FILE = "model.ubj"


#: The XGBoost objective and eval metric of each task (when the spec's params do not set one).
OBJECTIVES = {
    Task.BINARY: ("binary:logistic", "auc"),
    Task.REGRESSION: ("reg:squarederror", "rmse"),
    Task.MULTICLASS: ("multi:softprob", "mlogloss"),
}


def xgb_params(model: ModelSpec, y: np.ndarray | None = None) -> tuple[dict[str, Any], int]:
    """XGBoost booster params and the number of rounds from the spec's params.

    The objective (and its eval metric) follow the spec's task unless the params set them; a
    multiclass model gets ``num_class`` from :meth:`ModelSpec.class_count` (the spec's
    classes, else those of the training labels `y`). A binary model's params are exactly what they were before tasks existed,
    so its booster bytes are unchanged.
    """
    params = dict(model.params)
    rounds = int(params.pop("n_estimators", params.pop("num_boost_round", 100)))
    params.setdefault("objective", OBJECTIVES[model.model_task][0])
    task = task_of(str(params["objective"]))
    params.setdefault("eval_metric", OBJECTIVES[task][1])
    if task is Task.MULTICLASS and "num_class" not in params:
        if y is None:
            raise MLForgeError("a multiclass XGBoost model needs the training labels for num_class")
        params["num_class"] = model.class_count(y)
    params.setdefault("tree_method", "hist")
    params.setdefault("nthread", 2)
    params["seed"] = model.training.seed
    return params, rounds


def task_of(objective: str) -> Task:
    """The task an XGBoost objective solves."""
    if objective.startswith("binary:"):
        return Task.BINARY
    if objective.startswith(("multi:softprob", "multi:softmax")):
        return Task.MULTICLASS
    if objective.startswith(("reg:", "count:", "survival:")):
        return Task.REGRESSION
    raise MLForgeError(f"XGBoost objective {objective!r} has no task the platform knows")


class XGBoostModel(SerializedModel):
    """An ``xgboost.Booster`` as a FittedModel; ``booster`` is the native object."""

    algorithm: ClassVar[str] = "xgboost"
    flavor: ClassVar[str] = "xgboost"
    model_file: ClassVar[str] = MODEL_FILE

    def __init__(self, booster: xgb.Booster, params: dict[str, Any] | None = None) -> None:
        self.booster = booster
        self._params = dict(params or {})
        self._task: Task | None = None

    def __repr__(self) -> str:
        return f"XGBoostModel({self.booster.num_boosted_rounds()} rounds, {len(self.feature_names)} features)"

    @staticmethod
    def wraps(obj: Any) -> bool:
        """`obj` is a native booster (checked without importing xgboost)."""
        t = type(obj)
        return t.__name__ == "Booster" and t.__module__.startswith("xgboost")

    # -- training ---------------------------------------------------------------------------

    @classmethod
    def fit(cls, data: TrainingData, spec: ModelSpec) -> XGBoostModel:
        """Fit the booster on the training part (deterministic for the same data and params)."""
        import xgboost as xgb

        x, y = data.matrix("train")
        params, rounds = xgb_params(spec, y)
        dtrain = xgb.DMatrix(x, label=y, feature_names=data.features)
        booster = xgb.train(dict(params), dtrain, num_boost_round=rounds)
        return cls(booster, {**params, "num_boost_round": rounds})

    @property
    def params(self) -> dict[str, Any]:
        """The booster params and ``num_boost_round`` it was trained with (empty when loaded)."""
        return dict(self._params)

    # -- what it is -------------------------------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        """The names the booster was trained with (XGBoost's f0, f1, … when it has none)."""
        names = self.booster.feature_names
        if names is None:
            return [f"f{i}" for i in range(self.booster.num_features())]
        return list(names)

    @property
    def task(self) -> Task:
        """From the booster's objective."""
        if self._task is None:
            config = json.loads(self.booster.save_config())
            self._task = task_of(config["learner"]["objective"]["name"])
        return self._task

    # -- scoring ----------------------------------------------------------------------------

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float64 scores of a float32 matrix (``inplace_predict``, no pandas): positive-class
        probabilities or values [rows], class probabilities [rows, classes] for multiclass."""
        if len(x) == 0:
            if self.task is Task.MULTICLASS:
                return np.zeros((0, self.num_class))
            return np.zeros(0)
        return np.asarray(self.booster.inplace_predict(x), dtype=np.float64)

    @property
    def num_class(self) -> int:
        """Classes of a multiclass model (0 for binary and regression, as XGBoost records it)."""
        config = json.loads(self.booster.save_config())
        return int(config["learner"]["learner_model_param"]["num_class"])

    # -- persistence ------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The booster as UBJSON (the format MLflow logs and serving loads)."""
        return bytes(self.booster.save_raw(raw_format="ubj"))

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray) -> XGBoostModel:
        """A booster from serialized bytes (UBJSON or JSON)."""
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(raw))
        return cls(booster)

    def save(self, path: str | Path) -> None:
        """Write the booster; the suffix picks the format (``.ubj`` UBJSON, ``.json`` JSON)."""
        self.booster.save_model(str(path))

    @classmethod
    def load(cls, path: str | Path) -> XGBoostModel:
        """Read a booster file (``model.ubj`` of the logged model, or one written by `save`)."""
        import xgboost as xgb

        return cls(xgb.Booster(model_file=str(path)))

    # -- tracking ---------------------------------------------------------------------------

    def log_mlflow(self, name: str, signature: Any, tags: dict[str, str]) -> Any:
        """``mlflow.xgboost.log_model`` in UBJSON: the logged folder holds ``model.ubj``."""
        import mlflow.xgboost

        return mlflow.xgboost.log_model(
            self.booster,
            name=name,
            signature=signature,
            pip_requirements=PIP_REQUIREMENTS,
            model_format="ubj",
            tags=tags,
        )


if TYPE_CHECKING:  # mypy checks that the class satisfies the protocol
    _: type[FittedModel] = XGBoostModel
