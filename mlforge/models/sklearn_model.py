"""Any scikit-learn-API estimator behind the model seam (:class:`mlforge.models.base.FittedModel`).

The spec names the estimator by import path (``algorithm: sklearn.linear_model.LogisticRegression``
or ``package.module:Class``); :func:`mlforge.models.algorithms.resolve` hands such a name to
:meth:`SklearnModel.bound`, a subclass that knows its estimator. With ``scaler`` set the fitted
object is ``Pipeline([("scaler", …), ("model", estimator)])``, else the estimator itself: that is
what ``predict`` calls, what is serialized and what ``mlflow.sklearn`` logs.

Serialization is ``skops.io`` (no pickle): loading trusts skops' default types plus those of
scikit-learn and of the estimator's own top-level package, nothing else; a file holding any other
type is refused with an error naming it. skops names the array files inside its zip after object
ids, records those ids in its schema and stamps the files with the current time, so :meth:`SklearnModel.to_bytes` rewrites the archive
canonically (files and ids numbered in schema order, a fixed
timestamp): the same fit gives the same
bytes, and equal sha256 mean identical models. (A model read back may share its small immutable
values differently, so its bytes can differ from the fitted one's while its predictions do not.) The features' names are kept on the fitted object
as ``mlforge_feature_names_`` (fitting on a DataFrame instead would make every numpy predict warn).

``import sklearn`` / ``skops`` / ``mlflow`` happen inside the methods that need them.
"""

from __future__ import annotations

import inspect
import io
import json
import re
import zipfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mlforge.errors import MLForgeError
from mlforge.models.algorithms import import_path
from mlforge.models.base import SerializedModel, Task

if TYPE_CHECKING:
    from mlforge.config.spec import ModelSpec
    from mlforge.models.base import FittedModel
    from mlforge.models.training import TrainingData

MODEL_FILE = "model.skops"
#: Attribute of the fitted object holding the input column names.
FEATURES_ATTR = "mlforge_feature_names_"
#: Attribute holding a multiclass model's number of classes (the spec's, which a training window
#: may not all contain: predict_proba has a column per class seen, the model one per class).
CLASSES_ATTR = "mlforge_n_classes_"
#: The zip timestamp of every member of a canonical skops archive.
_EPOCH = (1980, 1, 1, 0, 0, 0)

SCALERS = {
    "standard": "StandardScaler",
    "minmax": "MinMaxScaler",
    "robust": "RobustScaler",
}


def _package(path: str) -> str:
    return path.replace(":", ".").split(".")[0]


#: Types skops leaves to the caller that hold data only (a fitted SimpleImputer keeps its dtype).
DATA_TYPES = frozenset({"numpy.dtype"})


def _takes_missing_values(estimator: Any) -> bool:
    """Whether a scikit-learn estimator accepts NaN inputs (its ``allow_nan`` input tag)."""
    from sklearn.utils import get_tags

    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except Exception:  # an estimator outside scikit-learn's tag system: impute to be safe
        return False


def canonical(raw: bytes) -> bytes:
    """A skops archive rewritten so that equal models give equal bytes (see the module doc)."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    schema = src.read("schema.json").decode("utf-8")
    names = [n for n in src.namelist() if n != "schema.json"]
    # number the member files in the order the schema names them (ids are not stable)
    order = sorted(names, key=lambda n: (schema.find(json.dumps(n)), n))
    renamed = {old: f"{i}{Path(old).suffix}" for i, old in enumerate(order)}
    for old, new in renamed.items():
        schema = schema.replace(json.dumps(old), json.dumps(new))
    # object ids mark shared references: number them in order of first appearance
    ids: dict[str, int] = {}
    schema = re.sub(r'"__id__": (\d+)', lambda m: f'"__id__": {ids.setdefault(m[1], len(ids))}', schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name, data in [("schema.json", schema.encode("utf-8"))] + [
            (renamed[old], src.read(old)) for old in order
        ]:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, data)
    return out.getvalue()


class SklearnModel(SerializedModel):
    """A fitted scikit-learn estimator (or scaler + estimator pipeline) as a FittedModel.

    ``estimator`` is the fitted native object. Use :meth:`bound` for the class of one estimator
    path: its ``fit`` builds that estimator and its ``load``/``from_bytes`` trust that package.
    """

    algorithm: ClassVar[str] = "sklearn"
    flavor: ClassVar[str] = "sklearn"
    model_file: ClassVar[str] = MODEL_FILE
    #: import path of the estimator (None: the unbound base class, which trusts scikit-learn only)
    estimator_path: ClassVar[str | None] = None

    def __init__(self, estimator: Any, params: dict[str, Any] | None = None) -> None:
        self.estimator = estimator
        self._params = dict(params or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.estimator!r})"

    @classmethod
    @cache
    def bound(cls, path: str) -> type[SklearnModel]:
        """The SklearnModel class of the estimator at import path `path` (one class per path)."""
        return type(f"SklearnModel[{path}]", (SklearnModel,), {"estimator_path": path})

    # -- training ---------------------------------------------------------------------------

    @classmethod
    def fit(cls, data: TrainingData, spec: ModelSpec) -> SklearnModel:
        """Fit the spec's estimator (behind its scaler) on the training part.

        ``random_state`` is the spec's seed when the estimator takes one and the params do not set
        it; the params are the estimator's keyword arguments.
        """
        path = cls.estimator_path or spec.algorithm
        est_cls = import_path(path)
        kwargs = dict(spec.params)
        if "random_state" in inspect.signature(est_cls).parameters:
            kwargs.setdefault("random_state", spec.training.seed)
        try:
            est = est_cls(**kwargs)
        except TypeError as exc:
            raise MLForgeError(f"{path}: {exc}") from None
        steps: list[tuple[str, Any]] = []
        if not _takes_missing_values(est):
            # Features are NaN where an entity has no history in a window; an estimator that
            # refuses NaN (LogisticRegression, SVC, …) gets the training medians in their place
            # (a column that is all-missing in training stays, as 0).
            from sklearn.impute import SimpleImputer

            steps.append(("imputer", SimpleImputer(strategy="median", keep_empty_features=True)))
        if spec.scaler is not None:
            import sklearn.preprocessing

            steps.append(("scaler", getattr(sklearn.preprocessing, SCALERS[spec.scaler])()))
        if steps:
            from sklearn.pipeline import Pipeline

            est = Pipeline([*steps, ("model", est)])
        x, y = data.matrix("train")
        if spec.model_task is not Task.REGRESSION:
            y = y.astype(np.int64)
        est.fit(x, y)
        setattr(est, FEATURES_ATTR, list(data.features))
        if spec.model_task is Task.MULTICLASS:
            setattr(est, CLASSES_ATTR, spec.class_count(y))
        params: dict[str, Any] = {"estimator": path, **kwargs}
        if spec.scaler is not None:
            params["scaler"] = spec.scaler
        if steps and steps[0][0] == "imputer":
            params["imputer"] = "median"
        return cls.bound(path)(est, params)

    @property
    def params(self) -> dict[str, Any]:
        """The estimator path, its keyword arguments and the scaler (empty when loaded)."""
        return dict(self._params)

    # -- what it is -------------------------------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        """The names it was trained with (f0, f1, … for an estimator fitted elsewhere)."""
        names = getattr(self.estimator, FEATURES_ATTR, None)
        if names is not None:
            return list(names)
        return [f"f{i}" for i in range(int(self.estimator.n_features_in_))]

    @property
    def task(self) -> Task:
        """A classifier with two classes is binary, with more multiclass; anything else regression."""
        from sklearn.base import is_classifier

        if getattr(self.estimator, CLASSES_ATTR, None) is not None:
            return Task.MULTICLASS
        if is_classifier(self.estimator):
            return Task.BINARY if len(self.estimator.classes_) == 2 else Task.MULTICLASS
        return Task.REGRESSION

    # -- scoring ----------------------------------------------------------------------------

    def _n_classes(self) -> int:
        return int(getattr(self.estimator, CLASSES_ATTR, None) or len(self.estimator.classes_))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float64: ``predict_proba[:, 1]`` (binary), ``predict_proba`` (multiclass), ``predict``."""
        task = self.task
        # one memory layout: BLAS kernels differ in the last bits between C- and F-ordered input,
        # and serving (C order) must score exactly what batch predictions do
        x = np.ascontiguousarray(x, dtype=np.float32)
        if len(x) == 0:
            if task is Task.MULTICLASS:
                return np.zeros((0, self._n_classes()))
            return np.zeros(0)
        if task is Task.BINARY:
            return np.asarray(self.estimator.predict_proba(x)[:, 1], dtype=np.float64)
        if task is Task.MULTICLASS:
            proba = np.asarray(self.estimator.predict_proba(x), dtype=np.float64)
            k = self._n_classes()
            if proba.shape[1] == k:
                return proba
            out = np.zeros((len(x), k))  # a class the training window never held: probability 0
            out[:, np.asarray(self.estimator.classes_, dtype=np.int64)] = proba
            return out
        return np.asarray(self.estimator.predict(x), dtype=np.float64).reshape(len(x))

    # -- persistence ------------------------------------------------------------------------

    def _untrusted(self) -> list[str]:
        """The types skops does not trust by default in this model (all of them allowed ones)."""
        import skops.io

        return self._allowed(skops.io.get_untrusted_types(data=skops.io.dumps(self.estimator)))

    @classmethod
    def _allowed(cls, untrusted: list[str]) -> list[str]:
        """`untrusted` if every type is scikit-learn's or the estimator package's; else an error."""
        packages = {"sklearn"} | ({_package(cls.estimator_path)} if cls.estimator_path else set())
        refused = [t for t in untrusted if t.split(".")[0] not in packages and t not in DATA_TYPES]
        if refused:
            raise MLForgeError(
                f"the model file holds types that are neither scikit-learn's nor the estimator's "
                f"({', '.join(sorted(packages))}): {', '.join(refused)}"
            )
        return untrusted

    def to_bytes(self) -> bytes:
        """The fitted object in skops format, canonical (equal models, equal bytes)."""
        import skops.io

        return canonical(skops.io.dumps(self.estimator))

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray) -> SklearnModel:
        """A model from skops bytes, trusting only scikit-learn's and the estimator's types."""
        import skops.io

        data = bytes(raw)
        trusted = cls._allowed(skops.io.get_untrusted_types(data=data))
        return cls(skops.io.loads(data, trusted=trusted))

    def save(self, path: str | Path) -> None:
        """Write the skops file."""
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> SklearnModel:
        """Read a skops file (``model.skops`` of the logged model, or one written by `save`)."""
        return cls.from_bytes(Path(path).read_bytes())

    # -- tracking ---------------------------------------------------------------------------

    def log_mlflow(self, name: str, signature: Any, tags: dict[str, str]) -> Any:
        """``mlflow.sklearn.log_model`` in skops format (``model.skops``), trusting its types."""
        import mlflow.sklearn
        import sklearn

        return mlflow.sklearn.log_model(
            self.estimator,
            name=name,
            signature=signature,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", "skops", "numpy"],
            serialization_format="skops",
            skops_trusted_types=self._untrusted(),
            tags=tags,
        )


if TYPE_CHECKING:  # mypy checks that the class satisfies the protocol
    _: type[FittedModel] = SklearnModel
