"""Serving answers natively for every algorithm and task: LightGBM, scikit-learn and XGBoost
models fitted here on the example's feature snapshot (generated labels), served from their own
model files next to the deployed XGBoost champion, with hot swaps and shadows across algorithms."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient
from projects import END

from mlforge.config.project import Project
from mlforge.deployment.manifest import Manifest, Variant, write_manifest
from mlforge.features.labels import LABEL
from mlforge.models.base import FittedModel, Task, model_class
from mlforge.models.training import TrainingData
from mlforge.monitoring.prediction_log import PredictionBatch
from serving.app import create_app
from tests.serving.test_serving import ENDPOINT, NOT_IN_STORE, ids_of, isolated, post

#: name -> (algorithm, task, params, scaler)
CASES: dict[str, tuple[str, Task, dict[str, Any], str | None]] = {
    "lightgbm-binary": ("lightgbm", Task.BINARY, {"n_estimators": 30, "num_leaves": 7}, None),
    "lightgbm-multiclass": ("lightgbm", Task.MULTICLASS, {"n_estimators": 20, "num_leaves": 5}, None),
    "sklearn-binary": ("sklearn.linear_model.LogisticRegression", Task.BINARY, {"max_iter": 500}, "standard"),
    "sklearn-regression": (
        "sklearn.ensemble.RandomForestRegressor",
        Task.REGRESSION,
        {"n_estimators": 10},
        None,
    ),
    "xgboost-regression": ("xgboost", Task.REGRESSION, {"n_estimators": 20, "max_depth": 3}, None),
    "xgboost-multiclass": ("xgboost", Task.MULTICLASS, {"n_estimators": 10, "max_depth": 3}, None),
}
THRESHOLD = 0.37  # not 0.5: the label must follow the version's threshold


@pytest.fixture(scope="module")
def project(materialized: Any) -> Project:
    """The quickstart project (its online store holds the snapshot below)."""
    return materialized.project


@pytest.fixture(scope="module")
def snapshot(project: Project, manifest: Manifest) -> pl.DataFrame:
    """The served snapshot with generated labels of every task (from the features, so learnable)."""
    from mlforge.features.offline import read_snapshot

    df = read_snapshot(project.storage, "customer_activity", END).sort("customer_id")
    x = df.select(manifest.feature_names).to_numpy().astype(np.float64)
    signal = np.nan_to_num(x[:, 0]) - np.nanmedian(x[:, 0])
    noise = np.random.default_rng(1).normal(0, np.std(signal), len(df))  # scores between 0 and 1
    return df.with_columns(
        binary=pl.Series((signal + noise > 0).astype(np.int8)),
        regression=pl.Series(signal + noise),
        multiclass=pl.Series(np.digitize(signal, np.nanquantile(signal, [1 / 3, 2 / 3])).astype(np.int32)),
    )


@pytest.fixture(scope="module")
def manifest(project: Project) -> Manifest:
    from mlforge.deployment.manifest import read_manifest

    m = read_manifest(project.storage, ENDPOINT)
    assert m is not None
    return m


def fit(project: Project, snapshot: pl.DataFrame, features: list[str], case: str) -> FittedModel:
    """The case's model fitted through the model seam, as training would."""
    algorithm, task, params, scaler = CASES[case]
    spec = project.spec.model("churn").model_copy(
        update={"algorithm": algorithm, "task": task, "params": params, "scaler": scaler}
    )
    train = snapshot.with_columns(pl.col(str(task)).alias(LABEL))
    data = TrainingData(train, train.head(0), features, [END], END)
    return model_class(algorithm).fit(data, spec)


def variant(
    model: FittedModel, algorithm: str, where: Path, version: int, name: str = "champion", **extra: Any
) -> Variant:
    """A variant serving `model` from its own model file under `where`."""
    path = where / f"v{version}" / type(model).model_file
    path.parent.mkdir(parents=True)
    model.save(path)
    return Variant(
        name=name,
        model_name="churn",
        version=version,
        booster_uri=str(path),
        traffic=0 if extra.get("shadow") else 100,
        algorithm=algorithm,
        task=model.task,
        threshold=THRESHOLD if model.task is Task.BINARY else None,
        **extra,
    )


@pytest.mark.parametrize("case", list(CASES))
def test_each_algorithm_and_task_is_served_like_its_library_predicts(
    project: Project, manifest: Manifest, snapshot: pl.DataFrame, tmp_path: Path, case: str
) -> None:
    algorithm, task, _, _ = CASES[case]
    model = fit(project, snapshot, manifest.feature_names, case)
    assert model.task is task
    own = isolated(project, tmp_path)
    v = variant(model, algorithm, tmp_path, 7)
    write_manifest(own.storage, manifest.model_copy(update={"variants": [v]}))
    ids = [*ids_of(snapshot, 60, seed=11), NOT_IN_STORE]
    # the rows in request order, as serving scores them (found ones only)
    by_id = snapshot.filter(pl.col("customer_id").is_in(ids))
    order = {c: i for i, c in enumerate(i for i in ids if i in set(by_id["customer_id"].to_list()))}
    rows = by_id.join(
        pl.DataFrame({"customer_id": list(order), "_o": list(order.values())}), on="customer_id"
    )
    x = rows.sort("_o").select(manifest.feature_names).to_numpy().astype(np.float32)
    expected = model.predict(x)
    with TestClient(create_app(own, reload_interval_s=0)) as c:
        r = post(c, {"entity_ids": ids})
        assert r.status_code == 200, r.text
        preds = r.json()["predictions"]
        one = post(c, {"entity_ids": ids[:1]}).json()["predictions"][0]  # the one-row path
    assert preds[-1] == {
        "entity_id": NOT_IN_STORE,
        "score": None,
        "found": False,
        "model_version": 7,
        "variant": "champion",
    }
    found = [p for p in preds if p["found"]]
    assert len(found) == 60 and {p["model_version"] for p in found} == {7}
    # a one-row request is compared with the library on that row alone: scikit-learn's float32
    # arithmetic (BLAS) may differ in the last bits between a batch and a single row
    alone = model.predict(x[order[one["entity_id"]] : order[one["entity_id"]] + 1])[0]
    for p in [*found, one]:
        want = alone if p is one else expected[order[p["entity_id"]]]
        if task is Task.MULTICLASS:
            assert p["probabilities"] == want.tolist()  # bit-identical to the library's call
            assert p["label"] == int(np.argmax(want)) and p["score"] == float(want.max())
        elif task is Task.BINARY:
            assert p["score"] == float(want)
            assert p["label"] == int(want >= THRESHOLD)
        else:
            assert p["score"] == float(want) and "label" not in p
    if task is Task.BINARY:  # the threshold decides, not 0.5
        assert any((p["score"] >= THRESHOLD) != (p["score"] >= 0.5) for p in found)
    if task is Task.MULTICLASS:
        assert len({p["label"] for p in found}) > 1


def test_hot_swap_across_algorithms_with_a_shadow_of_a_third(
    project: Project, manifest: Manifest, snapshot: pl.DataFrame, tmp_path: Path
) -> None:
    """XGBoost champion → LightGBM champion with a scikit-learn shadow, no failed request."""
    lgbm = fit(project, snapshot, manifest.feature_names, "lightgbm-binary")
    logreg = fit(project, snapshot, manifest.feature_names, "sklearn-binary")
    own = isolated(project, tmp_path)
    ids = ids_of(snapshot, 20, seed=2)
    batches: list[PredictionBatch] = []
    with TestClient(create_app(own, reload_interval_s=0.1, prediction_sink=batches.append)) as c:
        before = post(c, {"entity_ids": ids}).json()
        assert before["revision"] == manifest.revision
        new = write_manifest(
            own.storage,
            manifest.model_copy(
                update={
                    "strategy": "champion_challenger",
                    "variants": [
                        variant(lgbm, "lightgbm", tmp_path, 8),
                        variant(logreg, CASES["sklearn-binary"][0], tmp_path, 9, "challenger", shadow=True),
                    ],
                }
            ),
        )
        deadline = time.monotonic() + 10
        statuses = []
        while True:
            r = post(c, {"entity_ids": ids})
            statuses.append(r.status_code)
            if r.json().get("revision") == new.revision:
                break
            assert time.monotonic() < deadline, c.get("/endpoints").json()
            time.sleep(0.05)
        after = r.json()["predictions"]
    assert set(statuses) == {200}
    rows = snapshot.filter(pl.col("customer_id").is_in(ids)).sort(
        pl.col("customer_id").replace_strict({i: k for k, i in enumerate(ids)}, return_dtype=pl.Int64)
    )
    x = rows.select(manifest.feature_names).to_numpy().astype(np.float32)
    assert [p["score"] for p in after] == lgbm.predict(x).tolist()
    assert {(p["model_version"], p["variant"]) for p in after} == {(8, "champion")}
    assert [p["score"] for p in after] != [p["score"] for p in before["predictions"]]
    last = batches[-1]
    assert last.revision == new.revision and set(last.shadow_scores) == {"challenger"}
    assert last.shadow_scores["challenger"].tolist() == logreg.predict(x).tolist()
