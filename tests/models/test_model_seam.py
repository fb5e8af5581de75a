"""The model seam: the FittedModel protocol, its XGBoost implementation, and who goes through it.

Tiny models on generated data; no Dagster, no servers (MLflow runs on a SQLite file).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from mlforge.config.spec import ChurnLabel, ModelSpec, TrainingSpec
from mlforge.errors import MLForgeError
from mlforge.features.labels import LABEL
from mlforge.models.base import (
    ALGORITHM_TAG,
    FittedModel,
    ScorerCandidate,
    Task,
    as_model,
    load_model,
    model_class,
)
from mlforge.models.predictions import predict_frame, score_frame
from mlforge.models.registration import version_model
from mlforge.models.tracking import ModelVersionInfo
from mlforge.models.training import TrainingData, train_model
from mlforge.models.xgboost_model import XGBoostModel, task_of, xgb_params

FEATURES = ["recency", "frequency", "monetary", "tenure"]


def _frame(rng: np.random.Generator, n: int) -> pl.DataFrame:
    x = rng.gamma(2.0, 20.0, (n, len(FEATURES))).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    logit = 0.04 * np.nan_to_num(x[:, 0]) - 0.3 * np.log1p(np.nan_to_num(x[:, 1])) - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return pl.DataFrame(
        {
            "customer_id": [f"{i:05d}" for i in range(n)],
            **{f: x[:, j] for j, f in enumerate(FEATURES)},
            LABEL: y,
        }
    )


@pytest.fixture(scope="module")
def data() -> TrainingData:
    rng = np.random.default_rng(3)
    return TrainingData(
        train=_frame(rng, 1500),
        holdout=_frame(rng, 400),
        features=FEATURES,
        train_days=[date(1997, 6, 1)],
        holdout_day=date(1997, 7, 1),
    )


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec(
        name="churn",
        feature_service="churn_features",
        label=ChurnLabel(dataset="transactions", horizon_days=30),
        params={"n_estimators": 25, "max_depth": 3, "learning_rate": 0.2, "subsample": 0.9},
        training=TrainingSpec(seed=11),
    )


@pytest.fixture(scope="module")
def fitted(data: TrainingData, spec: ModelSpec) -> XGBoostModel:
    model = train_model(data, spec)
    assert isinstance(model, XGBoostModel)
    return model


def test_training_goes_through_the_protocol_and_trains_exactly_as_before(
    fitted: XGBoostModel, data: TrainingData, spec: ModelSpec
) -> None:
    import xgboost as xgb

    assert isinstance(fitted, FittedModel)
    assert model_class(spec.algorithm) is XGBoostModel
    # the booster the code before the seam trained (training.train_model): same bytes, same scores
    x, y = data.matrix("train")
    params, rounds = xgb_params(spec)
    before = xgb.train(params, xgb.DMatrix(x, label=y, feature_names=data.features), num_boost_round=rounds)
    assert fitted.to_bytes() == bytes(before.save_raw(raw_format="ubj"))
    assert fitted.sha256() == XGBoostModel(before).sha256()
    xh, _ = data.matrix("holdout")
    np.testing.assert_array_equal(
        fitted.predict(xh), np.asarray(before.inplace_predict(xh), dtype=np.float64)
    )
    assert fitted.params == {**params, "num_boost_round": 25}
    assert fitted.params["seed"] == 11


def test_features_task_and_flavor(fitted: XGBoostModel) -> None:
    assert fitted.feature_names == FEATURES
    assert fitted.task is Task.BINARY
    assert (fitted.algorithm, fitted.flavor, fitted.model_file) == ("xgboost", "xgboost", "model.ubj")
    assert task_of("reg:squarederror") is Task.REGRESSION
    assert task_of("multi:softprob") is Task.MULTICLASS
    with pytest.raises(MLForgeError, match="rank:pairwise"):
        task_of("rank:pairwise")


def test_save_load_round_trips_bit_identical(
    fitted: XGBoostModel, data: TrainingData, tmp_path: Path
) -> None:
    x, _ = data.matrix("holdout")
    want = fitted.predict(x)
    fitted.save(tmp_path / "model.ubj")
    fitted.save(tmp_path / "model.json")
    loaded = [
        XGBoostModel.from_bytes(fitted.to_bytes()),
        XGBoostModel.load(tmp_path / "model.ubj"),
        XGBoostModel.load(str(tmp_path / "model.json")),
        load_model("xgboost", fitted.to_bytes()),
        load_model("xgboost", tmp_path / "model.ubj"),
    ]
    for m in loaded:
        assert isinstance(m, XGBoostModel)
        np.testing.assert_array_equal(m.predict(x), want)
        np.testing.assert_array_equal(m.predict(x[:1]), want[:1])
        assert m.feature_names == FEATURES and m.task is Task.BINARY
        assert m.params == {}  # a loaded model does not know how it was trained
    assert loaded[0].sha256() == loaded[1].sha256() == fitted.sha256()
    assert fitted.predict(x[:0]).shape == (0,)


def test_unknown_algorithm_is_named() -> None:
    with pytest.raises(MLForgeError, match=r"unknown algorithm 'catboost' \(known: lightgbm, xgboost\)"):
        model_class("catboost")
    with pytest.raises(MLForgeError, match="not a model"):
        as_model(object())


class _Spy(XGBoostModel):
    calls: list[int]

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(len(x))
        return super().predict(x)


def test_batch_predictions_go_through_the_protocol(fitted: XGBoostModel, data: TrainingData) -> None:
    spy = _Spy(fitted.booster)
    spy.calls = []
    frame = data.holdout
    scored = score_frame(spy, frame, FEATURES, "customer_id", 3)
    assert spy.calls == [frame.height]
    x, _ = data.matrix("holdout")
    np.testing.assert_array_equal(scored["score"].to_numpy(), fitted.predict(x))
    assert scored.columns == ["customer_id", "score", "predicted_label", "model_version"]
    # the binary decision is the score against the default threshold of 0.5
    np.testing.assert_array_equal(
        scored["predicted_label"].to_numpy(), (scored["score"].to_numpy() >= 0.5).astype(np.int8)
    )
    assert scored["model_version"].unique().to_list() == [3]
    # a native booster (what serving and older callers hold) is wrapped, with the same scores
    np.testing.assert_array_equal(predict_frame(fitted.booster, frame, FEATURES), scored["score"].to_numpy())
    assert predict_frame(spy, frame.head(0), FEATURES).shape == (0,)


def test_registered_versions_load_with_their_algorithm(spec: ModelSpec) -> None:
    seen: list[tuple[str, str]] = []

    class Tracker:
        def load_model(self, uri: str, algorithm: str) -> Any:
            seen.append((uri, algorithm))
            return None

    def info(tags: dict[str, str]) -> ModelVersionInfo:
        return ModelVersionInfo("churn", 1, "r", "models:/m-1", "file:///a/model.ubj", tags)

    version_model(Tracker(), info({ALGORITHM_TAG: "xgboost"}), spec)  # type: ignore[arg-type]
    version_model(Tracker(), info({}), spec)  # type: ignore[arg-type]  # registered before the tag
    assert seen == [("file:///a/model.ubj", "xgboost")] * 2


def test_tracker_logs_the_flavor_and_loads_the_model_back(
    fitted: XGBoostModel, data: TrainingData, tmp_path: Path
) -> None:
    from mlforge.models.tracking import Tracker, load_booster

    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", (tmp_path / "artifacts").as_uri())
    logged = tracker.log_training(
        experiment="p/churn",
        run_name="churn-1",
        model=fitted,
        metrics={"holdout_auc": 0.7, "nan": float("nan")},
        tags={"mlforge.model": "churn", ALGORITHM_TAG: "xgboost"},
        artifacts={"data_versions.json": b"{}"},
    )
    assert logged.booster_uri.endswith("/model.ubj")
    folder = Path(logged.booster_uri.removeprefix("file://")).parent
    assert {"MLmodel", "model.ubj", "requirements.txt"} <= {p.name for p in folder.iterdir()}
    assert "xgboost:" in (folder / "MLmodel").read_text()
    assert (folder / "model.ubj").read_bytes() == fitted.to_bytes()
    run = tracker.client.get_run(logged.run_id)
    assert run.data.params["num_boost_round"] == "25" and run.data.params["seed"] == "11"
    assert run.data.metrics == {"holdout_auc": 0.7}
    x, _ = data.matrix("holdout")
    back = tracker.load_model(logged.booster_uri, "xgboost")
    assert isinstance(back, XGBoostModel) and back.sha256() == fitted.sha256()
    np.testing.assert_array_equal(back.predict(x), fitted.predict(x))
    assert bytes(tracker.load_booster(logged.booster_uri).save_raw("ubj")) == fitted.to_bytes()
    assert bytes(load_booster(logged.booster_uri).save_raw("ubj")) == fitted.to_bytes()


# --- the small-request hook -------------------------------------------------------------------


def test_scorer_without_candidates_is_the_library_call(fitted: XGBoostModel) -> None:
    assert fitted.scorer(4) == fitted.predict


def test_scorer_uses_verified_candidates_by_row_count(fitted: XGBoostModel, data: TrainingData) -> None:
    from serving.trees import compile_booster

    used: list[str] = []

    def counting(name: str, fn: Any) -> Any:
        def score(x: np.ndarray) -> np.ndarray:
            used.append(name)
            return np.asarray(fn(x))

        return score

    scorer = fitted.scorer(
        100,
        [
            ScorerCandidate(
                "compiled", lambda m: counting("compiled", compile_booster(m.booster, 4)), max_rows=4
            ),
            ScorerCandidate("plain", lambda m: counting("plain", m.booster.inplace_predict), max_rows=50),
        ],
    )
    x, _ = data.matrix("holdout")
    used.clear()
    for n in (1, 4, 5, 50, 51, 400):
        np.testing.assert_array_equal(scorer(x[:n]), fitted.predict(x[:n]))
    assert used == ["compiled", "compiled", "plain", "plain"]  # 51 and 400 rows: the library call


def test_scorer_falls_back_to_the_library_call_with_a_warning(
    fitted: XGBoostModel, data: TrainingData, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: Any) -> Any:
        raise RuntimeError("no such symbol")

    candidates = [
        ScorerCandidate("off by a bit", lambda m: lambda x: m.predict(x) + 1e-12, max_rows=4),
        ScorerCandidate("declines", lambda m: None, max_rows=4),
        ScorerCandidate("broken", broken),
    ]
    with caplog.at_level(logging.WARNING, logger="mlforge.models"):
        scorer = fitted.scorer(8, candidates)
    assert scorer == fitted.predict
    messages = [r.getMessage() for r in caplog.records if r.name == "mlforge.models"]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name == "mlforge.models")
    assert len(messages) == 3
    assert "'off by a bit' gives scores that differ" in messages[0] and "xgboost predict()" in messages[0]
    assert "'declines' does not cover this model" in messages[1]
    assert "'broken' failed (no such symbol)" in messages[2]
    x, _ = data.matrix("holdout")
    np.testing.assert_array_equal(scorer(x[:3]), fitted.predict(x[:3]))


def test_rejected_small_candidate_falls_back_to_the_next_verified_one(
    fitted: XGBoostModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mlforge.models"):
        scorer = fitted.scorer(
            16,
            [
                ScorerCandidate("wrong", lambda m: lambda x: np.zeros(len(x)), max_rows=4),
                ScorerCandidate("C API stand-in", lambda m: m.booster.inplace_predict),
            ],
        )
    assert [r.getMessage() for r in caplog.records if r.name == "mlforge.models"] == [
        "xgboost scorer 'wrong' gives scores that differ from the library call on probe rows; "
        "requests of ≤ 4 rows use C API stand-in instead"
    ]
    x = np.full((2, 4), 10.0, dtype=np.float32)
    np.testing.assert_array_equal(scorer(x), fitted.predict(x))


def test_native_booster_of_another_task(fitted: XGBoostModel) -> None:
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    reg = xgb.train({"objective": "reg:squarederror", "max_depth": 2}, xgb.DMatrix(x, label=x[:, 0]), 3)
    wrapped = as_model(reg)
    assert isinstance(wrapped, XGBoostModel) and wrapped.task is Task.REGRESSION
    assert wrapped.feature_names == ["f0", "f1", "f2"]
    assert as_model(fitted) is fitted


def test_importing_the_seam_imports_no_library() -> None:
    code = (
        "import sys, mlforge.models.base, mlforge.models.xgboost_model, mlforge.models.training, "
        "mlforge.models.registration, mlforge.models.predictions, mlforge.models.tracking\n"
        "heavy = [m for m in ('xgboost', 'mlflow', 'sklearn', 'dagster', 'fastapi') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("algorithm", ["sklearn.linear_model.LogisticRegression", "lightgbm", "xgboost"])
def test_multiclass_has_every_class_of_the_spec_even_when_training_misses_one(algorithm: str) -> None:
    """bins [10, 50] make 3 classes; a training window holding only classes 0 and 1 still gives a
    model with 3 probability columns (the missing class at ~0), and bytes round-trip."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)  # classes 0 and 1 only
    train = pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], LABEL: y})
    spec = ModelSpec.model_validate(
        {
            "name": "tiers",
            "feature_service": "s",
            "label": {
                "kind": "aggregate",
                "dataset": "t",
                "horizon_days": 30,
                "function": "sum",
                "column": "v",
                "bins": [10.0, 50.0],
            },
            "algorithm": algorithm,
            "params": {"max_iter": 200} if algorithm.startswith("sklearn") else {"n_estimators": 10},
        }
    )
    data = TrainingData(train, train.head(0), ["a", "b", "c"], [date(2020, 1, 1)], date(2020, 1, 2))
    model = model_class(algorithm).fit(data, spec)
    p = model.predict(x[:50])
    assert model.task is Task.MULTICLASS and p.shape == (50, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    assert p[:, 2].max() < 0.05 and (p[:, :2].argmax(axis=1) == y[:50]).mean() > 0.9
    again = type(model).from_bytes(model.to_bytes())
    assert np.array_equal(again.predict(x[:50]), p)
