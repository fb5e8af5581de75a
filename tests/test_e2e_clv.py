"""The second example project end to end: examples/clv (compact window), two problems that are not
churn — a LightGBM regression of 30-day spend and a scikit-learn propensity model with validation
folds and a chosen threshold — through training, the gate, registry, deployment, serving, drift,
batch predictions and live performance, on real MLflow (SQLite) and a real Dagster instance."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from conftest import Materialized
from fastapi.testclient import TestClient
from projects import CUTOFF, END, compact_clv_spec, write_spec

from mlforge.config.project import Project
from mlforge.deployment.manifest import read_manifest
from mlforge.features.labels import LABEL
from mlforge.features.offline import read_snapshot
from mlforge.io import layout
from mlforge.io.storage import read_parquet
from mlforge.models.base import ALGORITHM_TAG, TASK_TAG, THRESHOLD_TAG
from mlforge.models.gate import CHAMPION
from mlforge.models.metrics import evaluate
from mlforge.models.registration import version_model
from mlforge.models.training import read_trained
from mlforge_assets.runner import Runner
from serving.app import create_app

pytestmark = pytest.mark.e2e

CLV, PROPENSITY = "clv_90d", "buys_again_30d"


@pytest.fixture(scope="module")
def clv(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Materialized]:
    folder = tmp_path_factory.mktemp("clv")
    source = str(repo_root / "data" / "cdnow" / "CDNOW_master.txt")
    project = Project.load(
        write_spec(folder, compact_clv_spec(repo_root, source)), state_dir=folder / "state"
    )
    (folder / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(folder / "dagster")) as instance:
        runner = Runner(project, instance)
        steps = runner.run_plan(runner.quickstart_plan(cutoff=CUTOFF, history_end=END))
        yield Materialized(project, runner, instance, steps, folder / "state")


def holdout(run: Materialized, model: str) -> tuple[pl.DataFrame, list[str]]:
    trained = read_trained(run.project.storage, model, CUTOFF)
    return read_parquet(run.project.storage, layout.model_holdout(model, CUTOFF)), trained.features


def test_both_models_are_registered_champions_with_their_algorithm_task_and_threshold(
    clv: Materialized,
) -> None:
    tracker = clv.project.tracker
    reg = tracker.alias(CLV, CHAMPION)
    prop = tracker.alias(PROPENSITY, CHAMPION)
    assert reg is not None and prop is not None
    assert (reg.tags[ALGORITHM_TAG], reg.tags[TASK_TAG]) == ("lightgbm", "regression")
    assert reg.booster_uri.endswith("/model.lgb") and THRESHOLD_TAG not in reg.tags
    assert prop.tags[ALGORITHM_TAG] == "sklearn.linear_model.LogisticRegression"
    assert prop.tags[TASK_TAG] == "binary" and prop.booster_uri.endswith(".skops")
    threshold = float(prop.tags[THRESHOLD_TAG])
    trained = read_trained(clv.project.storage, PROPENSITY, CUTOFF)
    # chosen by F1 on the two validation folds, not the default 0.5
    assert threshold == trained.threshold and 0.05 < threshold < 0.95 and threshold != 0.5
    assert {"cv1_auc", "cv2_auc", "cv_mean_auc"} <= set(trained.validation)
    assert 0.6 < trained.validation["cv_mean_auc"] <= 1.0
    meta = clv.meta(f"clv/models/{PROPENSITY}/trained")
    assert meta["threshold"] == threshold and meta["algorithm"] == prop.tags[ALGORITHM_TAG]
    assert {"holdout_calibration", "holdout_permutation_importance", "plot_roc"} <= set(meta)
    assert {"holdout_deciles", "plot_predicted_vs_actual"} <= set(clv.meta(f"clv/models/{CLV}/trained"))
    # the figures are in the run's artifacts
    run_files = {a.path for a in tracker.client.list_artifacts(trained.run_id, "plots")}
    assert {"plots/roc.png", "plots/calibration.png", "plots/permutation_importance.png"} <= run_files


def test_holdout_metrics_beat_the_simple_baselines_on_the_same_rows(clv: Materialized) -> None:
    """The stored metrics are the registered models' on the holdout; each beats its baseline."""
    for name, task in ((CLV, "regression"), (PROPENSITY, "binary")):
        df, features = holdout(clv, name)
        trained = read_trained(clv.project.storage, name, CUTOFF)
        version = clv.project.tracker.alias(name, CHAMPION)
        assert version is not None
        model = version_model(clv.project.tracker, version, clv.project.spec.model(name))
        x = df.select(features).to_numpy().astype(np.float32)
        y = df[LABEL].to_numpy()
        assert trained.holdout_rows == df.height > 500
        spec = clv.project.spec.model(name)
        got = evaluate(model.predict(x), y, trained.threshold or 0.5, spec.model_task)
        assert got == pytest.approx(trained.metrics, nan_ok=True)
        if task == "regression":
            constant = evaluate(np.full(len(y), float(np.mean(y))), y, task=spec.model_task)
            recent = evaluate(df["dollar_value_sum_30d"].fill_null(0).to_numpy(), y, task=spec.model_task)
            assert got["rmse"] < constant["rmse"]
            assert got["top_decile_capture"] > 0.3 and got["spearman"] > 0.2
            assert got["top_decile_capture"] >= recent["top_decile_capture"] - 0.05
        else:
            rate = float(np.mean(y))
            constant = evaluate(np.full(len(y), rate), y, 0.5, spec.model_task)
            assert 0.65 < got["auc"] <= 1.0 and got["logloss"] < constant["logloss"]


def test_both_endpoints_serve_what_the_registry_holds(clv: Materialized) -> None:
    project = clv.project
    with TestClient(create_app(project, reload_interval_s=0)) as c:
        for endpoint, name in (("clv-api", CLV), ("buys-again-api", PROPENSITY)):
            manifest = read_manifest(project.storage, endpoint)
            assert manifest is not None
            (variant,) = manifest.variants
            snap = read_snapshot(project.storage, "customer_activity", CUTOFF).sort("customer_id").head(40)
            ids = snap["customer_id"].to_list()
            r = c.post(f"/predict/{endpoint}", json={"entity_ids": ids})
            assert r.status_code == 200, r.text
            preds = r.json()["predictions"]
            version = project.tracker.alias(name, CHAMPION)
            assert version is not None and {p["model_version"] for p in preds} == {version.version}
            model = version_model(project.tracker, version, project.spec.model(name))
            want = model.predict(snap.select(manifest.feature_names).to_numpy().astype(np.float32))
            assert [p["score"] for p in preds] == want.tolist()
            if name == PROPENSITY:
                assert variant.threshold == float(version.tags[THRESHOLD_TAG])
                assert [p["label"] for p in preds] == [int(s >= variant.threshold) for s in want]
            else:
                assert variant.task == "regression" and all("label" not in p for p in preds)


def test_batch_predictions_drift_and_live_performance_speak_each_task(clv: Materialized) -> None:
    reg = clv.meta(f"clv/predictions/{CLV}")
    prop = clv.meta(f"clv/predictions/{PROPENSITY}")
    assert reg["dagster/row_count"] == prop["dagster/row_count"] > 1000
    assert "positive_share" in prop and "positive_share" not in reg
    batch = read_parquet(clv.project.storage, layout.predictions(PROPENSITY, CUTOFF))
    version = clv.project.tracker.alias(PROPENSITY, CHAMPION)
    assert version is not None
    threshold = float(version.tags[THRESHOLD_TAG])
    assert batch["predicted_label"].to_list() == (batch["score"] >= threshold).cast(pl.Int64).to_list()
    for name in (CLV, PROPENSITY):
        drift = clv.meta(f"clv/monitoring/{name}/drift")
        assert 0.0 <= float(drift["drift_share"]) <= 1.0
    perf = clv.meta(f"clv/monitoring/{CLV}/performance")
    assert perf["task"] == "regression" and perf["status"] == "ok"
    assert float(perf["rmse"]) > 0 and 0.0 < float(perf["top_decile_capture"]) <= 1.0
    perf = clv.meta(f"clv/monitoring/{PROPENSITY}/performance")
    assert perf["threshold"] == threshold and 0.5 < float(perf["auc"]) <= 1.0


def test_champions_load_with_mlflow_as_models_uri_at_champion(clv: Materialized) -> None:
    """Each version is logged with its algorithm's MLflow flavor and signature: `models:/<name>@champion`
    loads with MLflow's own pyfunc and predicts like MLForge on the same rows."""
    import mlflow

    project = clv.project
    snap = read_snapshot(project.storage, "customer_activity", CUTOFF).sort("customer_id").head(50)
    mlflow.set_tracking_uri(project.settings.tracking_uri)
    mlflow.set_registry_uri(project.settings.tracking_uri)
    try:
        for name in (CLV, PROPENSITY):
            version = project.tracker.alias(name, CHAMPION)
            assert version is not None
            ours = version_model(project.tracker, version, project.spec.model(name))
            features = ours.feature_names
            frame = snap.select(features).to_pandas().astype("float32")
            pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@champion")
            assert [c.name for c in pyfunc.metadata.get_input_schema().inputs] == features
            got = np.asarray(pyfunc.predict(frame), dtype=np.float64).reshape(-1)
            want = ours.predict(frame.to_numpy())
            if name == CLV:  # LightGBM's pyfunc predicts the regression value itself
                np.testing.assert_allclose(got, want, rtol=1e-6)
            else:  # scikit-learn's pyfunc predicts the class at 0.5
                assert got.tolist() == (want >= 0.5).astype(np.float64).tolist()
    finally:
        mlflow.set_tracking_uri("")
        mlflow.set_registry_uri("")
