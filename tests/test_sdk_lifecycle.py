"""The SDK over the lifecycle, against the real stores of a copy of the materialized compact example
(MLflow on SQLite, the Dagster instance, storage, the embedded online store): models, an ad-hoc
experiment, materialize through Dagster, deploy_model with a strategy, deployments."""

from __future__ import annotations

import shutil

import dagster as dg
import mlflow
import pytest

from mlforge import MLForgeClient
from mlforge.errors import MLForgeError
from mlforge.features.offline import service_frame


@pytest.fixture(scope="module")
def client(materialized, tmp_path_factory: pytest.TempPathFactory) -> MLForgeClient:  # type: ignore[no-untyped-def]
    """A client on a private copy of the materialized example's state."""
    dst = tmp_path_factory.mktemp("sdk") / "state"
    shutil.copytree(materialized.state_dir, dst)
    return MLForgeClient(materialized.spec_path, home=dst)


def test_models_versions_aliases_load_and_predict(client: MLForgeClient) -> None:
    versions = client.models.versions("churn")
    assert [v.version for v in versions] == [1] and "champion" in versions[0].aliases
    assert client.models.aliases("churn")["champion"] == 1
    model = client.models.load("churn")
    assert model.task == "binary"
    project = client.project
    offline = service_frame(project.storage, project.spec, "churn_features", project.spec.partitions.end)
    ids = offline["customer_id"].head(20).to_list()
    by_id = client.models.predict("churn", entity_ids=ids)
    assert by_id["customer_id"].to_list() == ids and by_id["model_version"].unique().to_list() == [1]
    assert by_id["score"].is_between(0, 1).all()
    # the online store holds the last day's snapshot: scoring it offline gives the same scores
    by_frame = client.models.predict("churn", frame=offline.head(20).to_pandas())
    assert by_frame["score"].to_list() == pytest.approx(by_id["score"].to_list(), rel=1e-6)
    with pytest.raises(MLForgeError, match="exactly one of frame= or entity_ids="):
        client.models.predict("churn")
    with pytest.raises(MLForgeError, match="lacks"):
        client.models.predict("churn", frame=offline.select("customer_id").head(3))
    with pytest.raises(MLForgeError, match="unknown model 'nope'"):
        client.models.versions("nope")


def test_experiment_ends_finished_or_failed_next_to_the_pipeline_runs(client: MLForgeClient) -> None:
    with client.experiment("notebook", tags={"analyst": "ana"}) as run:
        mlflow.log_metric("auc", 0.81)
    with pytest.raises(ZeroDivisionError), client.experiment("notebook") as failed:
        _ = 1 / 0
    runs = {r["run_id"]: r for r in client.project.tracker.runs("notebook")}
    ok, bad = runs[run.info.run_id], runs[failed.info.run_id]
    assert ok["status"] == "FINISHED" and ok["metrics"] == {"auc": 0.81}
    assert ok["tags"]["mlforge.project"] == "churn" and ok["tags"]["analyst"] == "ana"
    assert bad["status"] == "FAILED"
    # the pipeline's experiment lives in the same store
    assert "churn/churn" in {name for _, name in client.project.tracker.experiments()}


def test_materialize_then_deploy_with_a_strategy(client: MLForgeClient) -> None:
    meta = client.materialize(["models/churn/trained", "models/churn/registered"], "1997-08-31")
    assert meta["churn/models/churn/registered"]["model_version"] == 2
    with dg.DagsterInstance.from_config(str(client.project.settings.state_dir / "dagster")) as instance:
        run = instance.get_runs(limit=1)[0]
        assert run.tags["dagster/partition"] == "1997-08-31"  # in the project's instance: the UI shows it
    with pytest.raises(MLForgeError, match="unknown asset"):
        client.materialize("models/nope", "1997-08-31")

    before = client.deployments.status("churn-api").revision
    manifest, changed = client.deploy_model(
        "churn", 2, "churn-api", strategy={"kind": "canary", "steps": [20, 100]}
    )
    assert changed and manifest.revision == before + 1 and manifest.strategy == "canary"
    assert [(v.name, v.version, v.traffic) for v in manifest.variants] == [
        ("stable", 1, 80),
        ("canary", 2, 20),
    ]
    moved = client.deployments.traffic("churn-api", {"stable": 50, "canary": 50})
    assert [v.traffic for v in moved.variants] == [50, 50] and moved.revision == before + 2
    back = client.deployments.rollback("churn-api")
    assert [v.traffic for v in back.variants] == [80, 20]
    with pytest.raises(MLForgeError, match=r"strategy\.steps"):
        client.deploy_model("churn", 2, "churn-api", strategy={"kind": "canary", "steps": [50, 0]})
    with pytest.raises(MLForgeError, match="version 9 is not registered"):
        client.deploy_model("churn", 9, "churn-api")
    assert client.deployments.status("churn-api").revision == back.revision  # nothing written


def test_feature_store_in_feasts_shape_and_datasets(client: MLForgeClient, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fs = client.feature_store
    rows = [{"customer_id": "00001"}, {"customer_id": "00002"}]
    by_rows = fs.get_online_features(["customer_activity:event_count"], entity_rows=rows)
    by_ids = fs.get_online_features(["customer_activity:event_count"], ["00001", "00002"])
    assert by_rows.to_dict() == by_ids.to_dict() and list(by_rows.to_df().columns) == [
        "entity_id",
        "customer_activity:event_count",
    ]
    with pytest.raises(MLForgeError, match=r"entity_rows\[1\] has no 'customer_id'"):
        fs.get_online_features(["customer_activity:event_count"], entity_rows=[rows[0], {"id": "x"}])
    with pytest.raises(MLForgeError, match="exactly one of entity_ids or entity_rows"):
        fs.get_online_features(["customer_activity:event_count"], ["00001"], entity_rows=rows)

    (summary,) = client.datasets.list()
    assert summary.name == "transactions" and len(summary.days) == 273 and summary.rows > 40_000
    versions = client.datasets.versions("transactions")
    assert len(versions) == 273 and all(versions.values())
    first = sorted(versions)[:3]
    assert client.datasets.pull(tmp_path / "restored", "transactions", days=first) == 3
    assert len(list((tmp_path / "restored").rglob("data.parquet"))) == 3
    with pytest.raises(MLForgeError, match="give a dataset, or model= and version="):
        client.datasets.pull(tmp_path / "x")
    reg = client.datasets.register(
        "again", summary_path(client), "whitespace", "date", "%Y%m%d", columns=["dollar_value:float"]
    )
    assert reg.entry["columns"]["customer_id"]["type"] == "string" and all(c.passed for c in reg.checks)


def summary_path(client: MLForgeClient) -> str:
    """The example's source path (registering it again under another name)."""
    return client.project.spec.dataset("transactions").source.path
