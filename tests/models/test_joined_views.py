"""A view keyed by another entity (a store), joined through a column of the customer's profile,
point-in-time — offline in training and batch predictions, online as a second read in serving.

Each customer has a home store that changes over time (a profile with `valid_from`); each store
has daily sales (an events dataset of the store entity). The model's store features of snapshot D
are those of the store the customer belonged to at the end of D, over the store's sales up to D.
Proofs: the values equal an independent polars computation from the files; the model for D is
bit-identical when every profile row and store sale after D is rewritten (and new ones added),
while the store snapshot of a later day does change; serving answers with the two-hop read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
from conftest import Materialized
from fastapi.testclient import TestClient
from projects import CUTOFF, END, HORIZON, START, TRAIN_START, compact_spec, starting, write_spec

from mlforge.config.project import Project
from mlforge.deployment.manifest import read_manifest
from mlforge.errors import SpecError
from mlforge.features.offline import service_frame
from mlforge.io import layout
from mlforge.io.storage import read_json
from mlforge.models.gate import CHAMPION
from mlforge.models.registration import version_model
from mlforge.models.training import read_trained
from mlforge_assets.runner import Runner
from serving.app import create_app

pytestmark = pytest.mark.e2e

STORES, HOMES = 12, "data/homes.csv"
SALES = "data/store_sales.csv"
CUT = CUTOFF.strftime("%Y%m%d")


def _customers(repo_root: Path) -> list[str]:
    lines = (repo_root / "data/cdnow/CDNOW_master.txt").read_text().splitlines()
    return sorted({ln.split()[0] for ln in lines[1:] if ln.strip()})


def _homes(customers: list[str], tampered: bool) -> list[str]:
    """Home store per customer from before the history; every fourth moves in May, every seventh
    after the cutoff (tampered: every row after the cutoff elsewhere, and a move for everyone)."""
    rows = []
    for i, c in enumerate(customers):
        rows.append((c, "19961201", i % STORES))
        if i % 4 == 0:
            rows.append((c, "19970515", (i + 5) % STORES))
        if i % 7 == 0:
            rows.append((c, "19970910", (i + 3) % STORES))
    if tampered:
        rows = [r if r[1] <= CUT else (r[0], r[1], (r[2] + 1) % STORES) for r in rows]
        rows += [(c, "19970920", 0) for c in customers]
    return ["customer_id,valid_from,store_id", *(f"{c},{d},{s}" for c, d, s in rows)]


def _sales(tampered: bool) -> list[str]:
    """A sale per store and day with a store-specific level and a weekly pattern."""
    rows = []
    for k in range((END - START).days + 1):
        d = START + timedelta(days=k)
        for s in range(STORES):
            amount = 100 + 25 * s + 10 * (d.weekday() == 5) + (k * (s + 1)) % 17
            if tampered and d > CUTOFF:
                amount = 5000 - amount
            rows.append((s, d.strftime("%Y%m%d"), amount))
    return ["store_id,date,amount", *(f"{s},{d},{a}" for s, d, a in rows)]


def _project(folder: Path, repo_root: Path, tampered: bool) -> Project:
    (folder / "data").mkdir(parents=True)
    (folder / HOMES).write_text("\n".join(_homes(_customers(repo_root), tampered)) + "\n")
    (folder / SALES).write_text("\n".join(_sales(tampered)) + "\n")
    # partitions from the model's first training snapshot: every day it reads, and no more
    spec = starting(compact_spec(repo_root, str(repo_root / "data/cdnow/CDNOW_master.txt")), TRAIN_START)
    spec["entities"].append({"name": "store", "join_key": "store_id"})
    spec["datasets"] += [
        {
            "name": "homes",
            "kind": "profile",
            "source": {"path": HOMES, "format": "csv"},
            "timestamp": {"column": "valid_from", "format": "%Y%m%d"},
            "entity": "customer",
            "columns": {
                "customer_id": {"type": "string", "nullable": False},
                "valid_from": {"type": "date", "nullable": False},
                "store_id": {"type": "int", "nullable": False},
            },
        },
        {
            "name": "store_sales",
            "source": {"path": SALES, "format": "csv"},
            "timestamp": {"column": "date", "format": "%Y%m%d"},
            "entity": "store",
            "columns": {
                "store_id": {"type": "int", "nullable": False},
                "date": {"type": "date", "nullable": False},
                "amount": {"type": "float", "nullable": False},
            },
        },
    ]
    spec["feature_views"] += [
        {
            "name": "customer_home",
            "entity": "customer",
            "source": "homes",
            "features": [{"name": "store_id", "type": "int"}],
        },
        {
            "name": "store_activity",
            "entity": "store",
            "source": "store_sales",
            "lookback_days": 30,
            "transformations": [
                {
                    "kind": "window",
                    "columns": ["amount"],
                    "functions": ["sum", "mean"],
                    "windows_days": [7, 30],
                }
            ],
        },
    ]
    spec["feature_services"][0]["features"] = ["customer_activity:*", "store_activity:*"]
    spec["feature_services"][0]["joins"] = [{"view": "store_activity", "on": "customer_home:store_id"}]
    return Project.load(write_spec(folder, spec), state_dir=folder / "state")


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Materialized]:
    """The whole graph on the true history (training, registry, deployment, online store)."""
    folder = tmp_path_factory.mktemp("stores")
    project = _project(folder, repo_root, tampered=False)
    (folder / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(folder / "dagster")) as instance:
        runner = Runner(project, instance)
        steps = runner.run_plan(runner.quickstart_plan(cutoff=CUTOFF, history_end=END))
        runner.materialize([runner.key("entities", "store_sales")], CUTOFF + timedelta(days=1), END)
        runner.materialize([runner.key("features", "store_activity")], END)
        yield Materialized(project, runner, instance, steps, folder / "state")


def _expected_store_features(folder: Path, d: date) -> pl.DataFrame:
    """customer_id → amount_sum_30d of the store the customer belonged to at the end of d (polars,
    straight from the files)."""
    homes = pl.read_csv(folder / HOMES, schema_overrides={"customer_id": pl.String, "valid_from": pl.String})
    home = (
        homes.filter(pl.col("valid_from") <= d.strftime("%Y%m%d"))
        .sort("valid_from")
        .group_by("customer_id")
        .agg(pl.col("store_id").last())
    )
    sales = pl.read_csv(folder / SALES, schema_overrides={"date": pl.String})
    lo = (d - timedelta(days=29)).strftime("%Y%m%d")
    stores = (
        sales.filter(pl.col("date").is_between(pl.lit(lo), pl.lit(d.strftime("%Y%m%d"))))
        .group_by("store_id")
        .agg(pl.col("amount").sum().alias("want"))
    )
    return home.join(stores, on="store_id", how="left")


def test_store_features_are_the_home_store_as_of_the_snapshot(real: Materialized) -> None:
    storage, spec = real.project.storage, real.project.spec
    frame = service_frame(storage, spec, "churn_features", CUTOFF)
    want = _expected_store_features(real.state_dir.parent, CUTOFF)
    got = frame.select("customer_id", "amount_sum_30d").join(want, on="customer_id", how="inner")
    # every customer of the universe (5,690 bought from the first partition on) has a home
    assert got.height == frame.height > 5_000
    assert np.allclose(got["amount_sum_30d"].to_numpy(), got["want"].to_numpy())
    # the May moves took effect: a mover's store features changed with the move
    may = _expected_store_features(real.state_dir.parent, date(1997, 5, 10))
    moved = want.join(may, on="customer_id", suffix="_may").filter(
        pl.col("store_id") != pl.col("store_id_may")
    )
    assert moved.height > 4000
    # training read them: the service's columns, the store ones among the model's features
    trained = read_trained(storage, "churn", CUTOFF)
    assert {"amount_sum_30d", "amount_mean_7d"} <= set(trained.features)


def test_the_model_ignores_every_home_move_and_store_sale_after_the_cutoff(
    real: Materialized, tmp_path: Path, repo_root: Path
) -> None:
    tampered = _project(tmp_path, repo_root, tampered=True)
    r = Runner(tampered)
    r.materialize([r.key("raw", d.name) for d in tampered.spec.datasets], TRAIN_START, END)
    r.materialize([r.key("entities", d.name) for d in tampered.spec.datasets], TRAIN_START, END)
    r.materialize([r.key("features", v.name) for v in tampered.spec.feature_views], TRAIN_START, CUTOFF)
    r.materialize([r.key("features", "store_activity")], END)
    r.materialize([r.key("labels", "churn")], TRAIN_START, date.fromordinal(CUTOFF.toordinal() - HORIZON))
    r.materialize([r.key("models", "churn", "trained")], CUTOFF)
    a = read_trained(real.project.storage, "churn", CUTOFF).booster_sha256
    b = read_trained(tampered.storage, "churn", CUTOFF).booster_sha256
    assert a == b
    # the tampering reached the data: the store snapshot of a later day differs
    meta = [
        read_json(p.storage, layout.snapshot_meta("store_activity", END))["sha256"]
        for p in (real.project, tampered)
    ]
    assert meta[0] != meta[1]


def test_serving_reads_the_store_through_the_customer(real: Materialized) -> None:
    project = real.project
    manifest = read_manifest(project.storage, "churn-api")
    assert manifest is not None and "store_activity" in manifest.views and "customer_home" in manifest.views
    frame = (
        service_frame(project.storage, project.spec, "churn_features", CUTOFF).sort("customer_id").head(50)
    )
    ids = frame["customer_id"].to_list()
    version = project.tracker.alias("churn", CHAMPION)
    assert version is not None
    model = version_model(project.tracker, version, project.spec.model("churn"))
    want = model.predict(frame.select(manifest.feature_names).to_numpy().astype(np.float32))
    with TestClient(create_app(project, reload_interval_s=0)) as c:
        r = c.post("/predict/churn-api", json={"entity_ids": ids})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["score"] for p in preds] == want.tolist()
    # the store columns were read (not NaN) for every customer
    store_cols = [i for i, n in enumerate(manifest.feature_names) if n.startswith("amount_")]
    assert not np.isnan(frame.select(manifest.feature_names).to_numpy()[:, store_cols]).any()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"joins": []}, "views of entities ['customer', 'store']: a service has one main entity"),
        ({"joins": [{"view": "store_activity", "on": "customer_home:shop"}]}, "declares no feature 'shop'"),
        (
            {"joins": [{"view": "store_activity", "on": "customer_activity:event_count"}]},
            "declares no feature 'event_count'",
        ),
        (
            {"joins": [{"view": "customer_activity", "on": "customer_home:store_id"}]},
            "'customer_home' is keyed by customer, not the main entity store",
        ),
    ],
)
def test_a_broken_join_is_a_spec_error_naming_the_service(
    tmp_path: Path, repo_root: Path, change: dict[str, object], message: str
) -> None:
    import yaml

    project = _project(tmp_path, repo_root, tampered=False)
    spec = yaml.safe_load(project.spec_path.read_text())
    spec["feature_services"][0].update(change)
    (tmp_path / "mlforge.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match="feature_services\\[0\\]") as err:
        Project.load(tmp_path / "mlforge.yaml", state_dir=tmp_path / "state")
    assert message in str(err.value)
