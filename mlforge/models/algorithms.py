"""Which class fits a spec's ``models[].algorithm``, and whether its params make sense.

One home for the resolution every caller goes through (:func:`mlforge.models.base.model_class`
delegates here):

* ``xgboost`` / ``lightgbm`` (the keys of :data:`mlforge.models.base.ALGORITHMS`): built in;
* ``sklearn``: :class:`SklearnModel` itself (trusts scikit-learn's types only when loading);
* an import path ``pkg.mod.Class`` or ``pkg.mod:Class``: the class is imported. A class that
  implements :class:`~mlforge.models.base.FittedModel` (the methods and the ClassVars
  ``algorithm``, ``flavor``, ``model_file``) is a team's *plug-in* and is used as it is; a
  scikit-learn estimator (``fit`` and ``get_params``) is wrapped by :class:`SklearnModel`.

:func:`check_params` is what the spec loader (:func:`mlforge.config.spec.parse_spec`) adds to its
problems, so ``mlforge validate`` and every command fail before anything runs on a misspelled or
mistyped parameter or an algorithm that cannot be imported. Validating an import path imports
it (scikit-learn costs about a second); the built-in names import nothing.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import TYPE_CHECKING, Any, cast

from mlforge.errors import MLForgeError
from mlforge.models.base import ALGORITHMS

if TYPE_CHECKING:
    from mlforge.config.spec import ModelSpec
    from mlforge.models.base import FittedModel

#: What a class needs to be a FittedModel plug-in.
PLUGIN_METHODS = (
    "fit",
    "predict",
    "to_bytes",
    "from_bytes",
    "save",
    "load",
    "sha256",
    "log_mlflow",
    "scorer",
)
PLUGIN_CLASSVARS = ("algorithm", "flavor", "model_file")

_NUMBER = (int, float)
_TEXT = (str,)
_TEXTS = (str, list)

#: The documented core params of the built-in algorithms and the types they take.
KNOWN_PARAMS: dict[str, dict[str, tuple[type, ...]]] = {
    "xgboost": {
        "max_depth": (int,),
        "eta": _NUMBER,
        "learning_rate": _NUMBER,
        "n_estimators": (int,),
        "num_boost_round": (int,),
        "subsample": _NUMBER,
        "colsample_bytree": _NUMBER,
        "min_child_weight": _NUMBER,
        "gamma": _NUMBER,
        "reg_lambda": _NUMBER,
        "lambda": _NUMBER,
        "reg_alpha": _NUMBER,
        "alpha": _NUMBER,
        "objective": _TEXT,
        "eval_metric": _TEXTS,
        "tree_method": _TEXT,
        "max_bin": (int,),
        "scale_pos_weight": _NUMBER,
        "nthread": (int,),
        "seed": (int,),
        "num_class": (int,),
    },
    "lightgbm": {
        "num_leaves": (int,),
        "learning_rate": _NUMBER,
        "n_estimators": (int,),
        "num_boost_round": (int,),
        "max_depth": (int,),
        "min_data_in_leaf": (int,),
        "min_child_samples": (int,),
        "feature_fraction": _NUMBER,
        "bagging_fraction": _NUMBER,
        "bagging_freq": (int,),
        "lambda_l1": _NUMBER,
        "lambda_l2": _NUMBER,
        "reg_alpha": _NUMBER,
        "reg_lambda": _NUMBER,
        "objective": _TEXT,
        "metric": _TEXTS,
        "max_bin": (int,),
        "num_threads": (int,),
        "seed": (int,),
        "num_class": (int,),
    },
}

_TYPE_NAMES: dict[tuple[type, ...], str] = {
    (int,): "an int",
    _NUMBER: "a number",
    _TEXT: "a string",
    _TEXTS: "a string or a list",
    (bool,): "a bool",
}


def import_path(path: str) -> Any:
    """The object an import path names (``pkg.mod.Class`` or ``pkg.mod:Class``)."""
    module, sep, name = path.partition(":")
    if not sep:
        module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise MLForgeError(f"cannot import {path!r} ({type(exc).__name__}: {exc})") from None


def is_plugin(cls: Any) -> bool:
    """`cls` implements FittedModel: the methods and string ClassVars algorithm/flavor/model_file."""
    return (
        isinstance(cls, type)
        and all(callable(getattr(cls, m, None)) for m in PLUGIN_METHODS)
        and all(isinstance(getattr(cls, v, None), str) for v in PLUGIN_CLASSVARS)
    )


def is_estimator(cls: Any) -> bool:
    """`cls` is a scikit-learn-API estimator class (``fit`` and ``get_params``)."""
    return (
        isinstance(cls, type)
        and callable(getattr(cls, "fit", None))
        and callable(getattr(cls, "get_params", None))
    )


def resolve(algorithm: str) -> type[FittedModel]:
    """The FittedModel class of a spec's `algorithm` (see the module doc); MLForgeError if none."""
    if algorithm in ALGORITHMS:
        module, _, name = ALGORITHMS[algorithm].partition(":")
        return cast("type[FittedModel]", getattr(importlib.import_module(module), name))
    from mlforge.models.sklearn_model import SklearnModel

    if algorithm == SklearnModel.algorithm:
        return SklearnModel
    if "." not in algorithm and ":" not in algorithm:
        raise MLForgeError(
            f"unknown algorithm {algorithm!r} (known: {', '.join(sorted(ALGORITHMS))}); "
            "or the import path of a scikit-learn estimator (sklearn.linear_model.LogisticRegression) "
            "or of a FittedModel plug-in"
        )
    cls = import_path(algorithm)
    if is_plugin(cls):
        return cast("type[FittedModel]", cls)
    if is_estimator(cls):
        return SklearnModel.bound(algorithm)
    what = cls.__name__ if isinstance(cls, type) else type(cls).__name__
    raise MLForgeError(
        f"{algorithm!r} ({what}) is neither a FittedModel plug-in (methods "
        f"{', '.join(PLUGIN_METHODS)} and ClassVars {', '.join(PLUGIN_CLASSVARS)}) "
        "nor a scikit-learn estimator (fit and get_params)"
    )


def _type_problem(value: Any, types: tuple[type, ...]) -> str | None:
    """Why `value` is not one of `types` (a bool is not a number), or None when it is."""
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    return None if ok else f"{value!r} is not {_TYPE_NAMES.get(types, types[0].__name__)}"


def _unknown(name: str, known: list[str], owner: str) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"not a parameter of {owner}{hint}"


def _estimator_params(cls: type) -> tuple[dict[str, tuple[type, ...] | None], bool]:
    """{param: types its default implies (None: anything)} of an estimator's constructor, and
    whether it takes ``**kwargs`` (then any name goes)."""
    params: dict[str, tuple[type, ...] | None] = {}
    open_ended = False
    for p in inspect.signature(cls).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            open_ended = True
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        d = p.default
        # an int default also takes a float (min_samples_leaf=1 or 0.05); a str default often
        # takes other kinds too (max_features="sqrt" or 3), so it is not checked
        if isinstance(d, bool):
            params[p.name] = (bool,)
        elif isinstance(d, int | float):
            params[p.name] = _NUMBER
        else:
            params[p.name] = None
    return params, open_ended


def check_params(model: ModelSpec, where: str) -> list[str]:
    """Problems with `model`'s algorithm and params, each prefixed with the field path `where`
    (``models[0]``): an algorithm that cannot be imported, unknown or mistyped params."""
    try:
        cls = resolve(model.algorithm)
    except MLForgeError as exc:
        return [f"{where}.algorithm: {exc}"]
    problems: list[str] = []
    path = getattr(cls, "estimator_path", None)
    if model.scaler is not None and path is None:
        problems.append(f"{where}.scaler: only scikit-learn estimators take a scaler")
    if model.algorithm in KNOWN_PARAMS:
        known = KNOWN_PARAMS[model.algorithm]
        for name, value in model.params.items():
            if name not in known:
                problems.append(f"{where}.params.{name}: {_unknown(name, list(known), model.algorithm)}")
            elif (why := _type_problem(value, known[name])) is not None:
                problems.append(f"{where}.params.{name}: {why}")
        return problems
    if path is None:
        return problems  # a plug-in checks its own params when it fits
    types, open_ended = _estimator_params(import_path(path))
    for name, value in model.params.items():
        if name not in types:
            if not open_ended:
                problems.append(f"{where}.params.{name}: {_unknown(name, list(types), path)}")
            continue
        expected = types[name]
        if expected is not None and (why := _type_problem(value, expected)) is not None:
            problems.append(f"{where}.params.{name}: {why}")
    return problems
