"""Point-in-time correctness: the model for cutoff D is a function of raw data up to D only.

Train for D, then change or delete every raw row after D and train again from scratch: the
booster bytes must be identical. A change before D must change them (so the test can fail).

The projects are the compact example with partitions from the cutoff's first training snapshot
(1997-04-30, not 1997-01-01): every stage still runs from scratch over every day up to the end of
the history, on half the days.
"""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from projects import CUTOFF, END, HORIZON, TRAIN_START, compact_spec, starting, write_spec

from mlforge.config.project import Project
from mlforge.io import layout
from mlforge.io.storage import read_json
from mlforge.models.training import read_trained
from mlforge_assets.runner import Runner

#: the first partition: the first training snapshot of the model for CUTOFF (checked below)
START = TRAIN_START


def _spec(repo_root: Path) -> dict[str, Any]:
    """The compact example reading data/tx.txt, its partitions from START to the end of Sep 1997."""
    return starting(compact_spec(repo_root, "data/tx.txt"), START)


def _write_project(folder: Path, repo_root: Path, rows: list[str]) -> Path:
    """The compact example project (from START to the end of Sep 1997) reading `rows` as its source."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "tx.txt").write_text("\n".join(rows) + "\n")
    return write_spec(folder, _spec(repo_root))


def test_the_partitions_start_at_the_first_training_snapshot(tmp_path: Path, repo_root: Path) -> None:
    from mlforge.io.timeline import training_dates

    spec_path = _write_project(tmp_path, repo_root, ["customer_id date number_of_cds dollar_value"])
    train, holdout = training_dates(Project.load(spec_path, state_dir=tmp_path).spec.model("churn"), CUTOFF)
    assert train[0] == START and len(train) == 10 and holdout.toordinal() + HORIZON == CUTOFF.toordinal()


def _train(spec_path: Path) -> str:
    project = Project.load(spec_path, state_dir=spec_path.parent / ".state")
    r = Runner(project)
    r.materialize([r.key("raw", "transactions")], START, END)
    r.materialize([r.key("entities", "transactions"), r.key("features", "customer_activity")], START, CUTOFF)
    r.materialize([r.key("labels", "churn")], START, date.fromordinal(CUTOFF.toordinal() - HORIZON))
    r.materialize([r.key("models", "churn", "trained")], CUTOFF)
    return read_trained(project.storage, "churn", CUTOFF).booster_sha256


def _rows(repo_root: Path) -> tuple[str, list[tuple[str, str, str, str]]]:
    lines = (repo_root / "data/cdnow/CDNOW_master.txt").read_text().splitlines()
    parsed = [tuple(ln.split()) for ln in lines[1:] if ln.strip()]
    return lines[0], [p for p in parsed if p[1] <= END.strftime("%Y%m%d")]  # type: ignore[misc]


def test_model_for_cutoff_ignores_everything_after_it(tmp_path: Path, repo_root: Path) -> None:
    header, rows = _rows(repo_root)
    cut = CUTOFF.strftime("%Y%m%d")

    def fmt(rs: list[tuple[str, str, str, str]]) -> list[str]:
        return [header, *(" ".join(r) for r in rs)]

    baseline = _train(_write_project(tmp_path / "a", repo_root, fmt(rows)))

    after = [r for r in rows if r[1] > cut]
    assert len(after) > 500  # the test only means something if there is future data to tamper with
    # 1) delete every row after the cutoff
    deleted = [r for r in rows if r[1] <= cut]
    # 2) change every row after the cutoff and add purchases by every customer after it
    changed = [r if r[1] <= cut else (r[0], r[1], "9", f"{float(r[3]) * 10 + 1:.2f}") for r in rows]
    extra_customers = sorted({r[0] for r in rows})
    changed += [(c, "19970915", "1", "5.00") for c in extra_customers]

    assert _train(_write_project(tmp_path / "b", repo_root, fmt(deleted))) == baseline
    assert _train(_write_project(tmp_path / "c", repo_root, fmt(changed))) == baseline

    # control: a change inside the training window must change the model
    start, mid = START.strftime("%Y%m%d"), "19970615"
    early = [r if not start <= r[1] <= mid else (r[0], r[1], r[2], f"{float(r[3]) * 3:.2f}") for r in rows]
    assert _train(_write_project(tmp_path / "d", repo_root, fmt(early))) != baseline


def test_training_set_rows_respect_the_label_horizon(tmp_path: Path, repo_root: Path) -> None:
    """Every training snapshot's label window ends on or before the holdout day, which ends by D."""
    from mlforge.io.timeline import training_dates

    project = Project.load(repo_root / "mlforge.yaml", state_dir=tmp_path)
    model = project.spec.model("churn")
    train, holdout = training_dates(model, date(1998, 6, 30))
    h = model.label.horizon_days
    assert holdout.toordinal() + h == date(1998, 6, 30).toordinal()
    assert all(d.toordinal() + h <= holdout.toordinal() for d in train)
    assert pl.Series(train).diff().drop_nulls().dt.total_days().unique().to_list() == [7]


# --- every label kind, every algorithm ---------------------------------------------------------

OUTCOMES = "data/outcomes.csv"

#: per kind: its label spec, the metric its gate compares, and the algorithm (with params) fitted,
#: so the proof covers every label kind and every built-in algorithm family
KINDS: dict[str, tuple[dict[str, Any], str, str, dict[str, Any]]] = {
    "event-with-filter": (
        {
            "kind": "event",
            "dataset": "transactions",
            "horizon_days": HORIZON,
            "where": [{"column": "number_of_cds", "op": "ge", "value": 2}],
        },
        "auc",
        "lightgbm",
        {"n_estimators": 40, "num_leaves": 7},
    ),
    "aggregate-sum": (
        {
            "kind": "aggregate",
            "dataset": "transactions",
            "horizon_days": HORIZON,
            "function": "sum",
            "column": "dollar_value",
        },
        "rmse",
        "xgboost",
        {"n_estimators": 40, "max_depth": 3},
    ),
    "aggregate-binned": (
        {
            "kind": "aggregate",
            "dataset": "transactions",
            "horizon_days": HORIZON,
            "function": "sum",
            "column": "dollar_value",
            "bins": [0.01, 40.0],
        },
        "logloss",
        "lightgbm",
        {"n_estimators": 30, "num_leaves": 5},
    ),
    "column": (
        {"kind": "column", "dataset": "outcomes", "column": "flag", "horizon_days": HORIZON, "fill_value": 0},
        "auc",
        "sklearn.linear_model.LogisticRegression",
        {"max_iter": 300},
    ),
}


def _model_name(kind: str) -> str:
    return kind.replace("-", "_")


PROFILES = "data/customers.csv"
#: a model on a SQL view and a profile view (beside the transformations view), LightGBM with the
#: profile's category as a native categorical feature
VIEWS_MODEL = "churn_views"
SQL_VIEW = """
SELECT customer_id,
       count(*) AS orders_60d,
       sum(dollar_value) AS spend_60d,
       count(DISTINCT date) AS active_days_60d,
       as_of() - max(date) AS quiet_days
FROM transactions
GROUP BY customer_id
"""


def _profile_rows(customers: list[str], tampered: bool) -> list[str]:
    """A profile per customer: a channel valid from before the history, changed for every third
    customer in June and for every fifth after the cutoff (tampered: every row after the cutoff
    different, and a new one for every customer)."""
    channels = ["web", "store", "phone"]
    cut = CUTOFF.strftime("%Y%m%d")
    rows = []
    for i, c in enumerate(customers):
        rows.append((c, "19961201", channels[i % 3], f"{i % 50}.5"))
        if i % 3 == 0:
            rows.append((c, "19970601", channels[(i + 1) % 3], f"{i % 40}.0"))
        if i % 5 == 0:
            rows.append((c, "19970910", channels[(i + 2) % 3], f"{i % 30}.0"))
    if tampered:
        rows = [
            r if r[1] <= cut else (r[0], r[1], channels[(channels.index(r[2]) + 1) % 3], "99.0") for r in rows
        ]
        rows += [(c, "19970915", "phone", "1.0") for c in customers]
    return ["customer_id,valid_from,channel,age", *(",".join(r) for r in rows)]


def _kinds_project(
    folder: Path, repo_root: Path, rows: list[str], outcomes: list[str], profiles: list[str]
) -> Path:
    """The compact project with one extra model per label kind (column: from an outcomes file)
    and one on a SQL view and a profile view."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "tx.txt").write_text("\n".join(rows) + "\n")
    (folder / OUTCOMES).write_text("\n".join(outcomes) + "\n")
    (folder / PROFILES).write_text("\n".join(profiles) + "\n")
    spec = _spec(repo_root)
    base = spec["models"][0]
    for kind, (label, metric, algorithm, params) in KINDS.items():
        m = {
            **copy.deepcopy(base),
            "name": _model_name(kind),
            "label": label,
            "gate": {"metric": metric},
            "algorithm": algorithm,
            "params": params,
        }
        if kind == "column":
            m |= {"task": "binary", "scaler": "standard"}
        spec["models"].append(m)
    spec["models"].append(
        {
            **copy.deepcopy(base),
            "name": VIEWS_MODEL,
            "feature_service": "all_views",
            "algorithm": "lightgbm",
            "params": {"n_estimators": 40, "num_leaves": 7},
        }
    )
    spec["feature_services"].append(
        {"name": "all_views", "features": ["customer_activity:*", "customer_sql:*", "customer_profile:*"]}
    )
    spec["feature_views"] += [
        {
            "name": "customer_sql",
            "entity": "customer",
            "source": "transactions",
            "lookback_days": 60,
            "sql": SQL_VIEW,
            "features": [
                {"name": "orders_60d", "fill_value": 0},
                {"name": "spend_60d", "fill_value": 0},
                {"name": "active_days_60d", "fill_value": 0},
                {"name": "quiet_days"},
            ],
        },
        {
            "name": "customer_profile",
            "entity": "customer",
            "source": "customers",
            "features": [
                {"name": "channel", "type": "category", "categories": ["web", "store", "phone"]},
                {"name": "age"},
            ],
        },
    ]
    spec["datasets"].append(
        {
            "name": "customers",
            "kind": "profile",
            "source": {"path": PROFILES, "format": "csv"},
            "timestamp": {"column": "valid_from", "format": "%Y%m%d"},
            "entity": "customer",
            "columns": {
                "customer_id": {"type": "string", "nullable": False},
                "valid_from": {"type": "date", "nullable": False},
                "channel": {"type": "string", "nullable": False},
                "age": {"type": "float"},
            },
        }
    )
    spec["monitoring"][0]["alert_thresholds"] = {}
    spec["datasets"].append(
        {
            "name": "outcomes",
            "source": {"path": OUTCOMES, "format": "csv"},
            "timestamp": {"column": "date", "format": "%Y%m%d"},
            "entity": "customer",
            "columns": {
                "customer_id": {"type": "string", "nullable": False},
                "date": {"type": "date", "nullable": False},
                "flag": {"type": "int", "nullable": False},
            },
        }
    )
    return write_spec(folder, spec)


def _train_kinds(spec_path: Path) -> dict[str, tuple[str, str]]:
    """Per kind: (model sha256 for CUTOFF, labels sha256 of the snapshot at CUTOFF, whose horizon
    is all future); for the views model, the second is the SQL and profile snapshots of END (all
    future). Raw data and features are materialized once for every model."""
    project = Project.load(spec_path, state_dir=spec_path.parent / ".state")
    r = Runner(project)
    names = [*(_model_name(k) for k in KINDS), VIEWS_MODEL]
    views = [r.key("features", v) for v in ("customer_activity", "customer_sql", "customer_profile")]
    r.materialize([r.key("raw", d) for d in ("transactions", "outcomes", "customers")], START, END)
    r.materialize([r.key("entities", d) for d in ("transactions", "customers")], START, END)
    r.materialize(views, START, CUTOFF)
    r.materialize(views[1:], END)
    r.materialize([r.key("labels", n) for n in names], START, CUTOFF)
    r.materialize([r.key("models", n, "trained") for n in names], CUTOFF)
    out = {
        kind: (
            read_trained(project.storage, _model_name(kind), CUTOFF).booster_sha256,
            read_json(project.storage, layout.label_meta(_model_name(kind), CUTOFF))["sha256"],
        )
        for kind in KINDS
    }
    future = "+".join(
        read_json(project.storage, layout.snapshot_meta(v, END))["sha256"]
        for v in ("customer_sql", "customer_profile")
    )
    out["views"] = (read_trained(project.storage, VIEWS_MODEL, CUTOFF).booster_sha256, future)
    return out


@pytest.fixture(scope="module")
def kind_runs(
    tmp_path_factory: pytest.TempPathFactory, repo_root: Path
) -> dict[str, dict[str, tuple[str, str]]]:
    """The kinds project trained on the real history and on one whose future was rewritten:
    every source row after D changed (and a purchase by every customer added), every outcome
    after D flipped (and one added per customer)."""
    header, rows = _rows(repo_root)
    cut = CUTOFF.strftime("%Y%m%d")
    # outcome rows: one per purchase, flag = a purchase of 3 or more CDs (a made-up later outcome)
    outcomes = [(c, day, "1" if int(n) >= 3 else "0") for c, day, n, _ in rows]

    def files(
        rs: list[tuple[str, str, str, str]], os_: list[tuple[str, str, str]]
    ) -> tuple[list[str], list[str]]:
        return [header, *(" ".join(r) for r in rs)], ["customer_id,date,flag", *(",".join(o) for o in os_)]

    changed = [r if r[1] <= cut else (r[0], r[1], "9", f"{float(r[3]) * 10 + 1:.2f}") for r in rows]
    changed += [(c, "19970915", "3", "55.00") for c in sorted({r[0] for r in rows})]
    flipped = [o if o[1] <= cut else (o[0], o[1], "1" if o[2] == "0" else "0") for o in outcomes]
    flipped += [(c, "19970915", "1") for c in sorted({o[0] for o in outcomes})]
    customers = sorted({r[0] for r in rows})
    return {
        "real": _train_kinds(
            _kinds_project(
                tmp_path_factory.mktemp("real"),
                repo_root,
                *files(rows, outcomes),
                _profile_rows(customers, False),
            )
        ),
        "tampered": _train_kinds(
            _kinds_project(
                tmp_path_factory.mktemp("tampered"),
                repo_root,
                *files(changed, flipped),
                _profile_rows(customers, True),
            )
        ),
    }


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_label_kind_ignores_everything_after_the_cutoff(
    kind_runs: dict[str, dict[str, tuple[str, str]]], kind: str
) -> None:
    """Changing every source row after D (and every label row not matured by D) leaves the model
    for D bit-identical, while the labels of a snapshot whose horizon lies after D do change: the
    tampering reached the label computation, the model never saw it."""
    real, tampered = kind_runs["real"][kind], kind_runs["tampered"][kind]
    assert tampered[0] == real[0]
    assert tampered[1] != real[1]


def test_sql_and_profile_views_ignore_everything_after_the_cutoff(
    kind_runs: dict[str, dict[str, tuple[str, str]]],
) -> None:
    """A model on a user's SQL view and an as-of profile join: bit-identical when every source row
    after D and every profile row valid after D is rewritten (and new ones added), while the SQL
    and profile snapshots of a later day do change: the platform, not the query, kept the future out."""
    real, tampered = kind_runs["real"]["views"], kind_runs["tampered"]["views"]
    assert tampered[0] == real[0]
    sql_real, profile_real = real[1].split("+")
    sql_tampered, profile_tampered = tampered[1].split("+")
    assert sql_tampered != sql_real and profile_tampered != profile_real
