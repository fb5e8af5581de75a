"""`mlforge.yaml` validation: the real spec parses; every broken spec fails with the file, the
field path and what was expected (never with a bare pydantic/PyYAML traceback)."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlforge.config.spec import (
    AggregateTransform,
    ProjectSpec,
    RecencyTransform,
    WindowTransform,
    load_spec,
    parse_spec,
)
from mlforge.errors import MLForgeError, SpecError

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "mlforge.yaml"
DATA = REPO / "data" / "cdnow" / "CDNOW_master.txt"


@pytest.fixture(scope="module")
def real_doc() -> dict[str, Any]:
    doc = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture
def base(real_doc: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the real spec whose source path is absolute, so it validates from tmp_path."""
    doc = copy.deepcopy(real_doc)
    doc["datasets"][0]["source"]["path"] = str(DATA)
    return doc


def write(tmp_path: Path, doc: Any, name: str = "mlforge.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return p


def spec_error(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    err = info.value
    # Every error names the file, on the object and in the message a user sees.
    assert err.path == str(path)
    assert str(path) in str(err)
    for problem in err.problems:
        assert problem in str(err)
    return err


# --- the real spec ------------------------------------------------------------------------


def test_real_spec_parses_with_expected_objects() -> None:
    spec = load_spec(SPEC)
    assert isinstance(spec, ProjectSpec)
    assert spec.project == "churn"
    assert spec.partitions.start == date(1997, 1, 1)
    assert spec.partitions.end == date(1998, 6, 30)
    assert [e.name for e in spec.entities] == ["customer"]
    assert spec.entity("customer").join_key == "customer_id"
    assert [d.name for d in spec.datasets] == ["transactions"]
    ds = spec.dataset("transactions")
    assert ds.source.format == "whitespace"
    assert ds.timestamp.column == "date"
    assert ds.timestamp.format == "%Y%m%d"
    assert {c: s.type for c, s in ds.columns.items()} == {
        "customer_id": "string",
        "date": "date",
        "number_of_cds": "int",
        "dollar_value": "float",
    }
    assert [v.name for v in spec.feature_views] == ["customer_activity"]
    view = spec.feature_view("customer_activity")
    assert (view.lookback_days, view.ttl_days) == (365, 365)
    kinds = [type(t) for t in view.transformations]
    assert kinds == [RecencyTransform, AggregateTransform, WindowTransform]
    window = view.transformations[2]
    assert isinstance(window, WindowTransform)
    assert window.windows_days == [30, 90, 180]
    assert [s.name for s in spec.feature_services] == ["churn_features"]
    assert [m.name for m in spec.models] == ["churn"]
    model = spec.model("churn")
    assert model.feature_service == "churn_features"
    assert model.label.horizon_days == 90
    assert model.label.dataset == "transactions"
    assert model.gate.metric == "auc"
    assert model.gate.min == pytest.approx(0.70)
    assert model.gate.max_regression == pytest.approx(0.005)
    assert model.training.snapshot_step_days == 7
    assert [d.endpoint for d in spec.deployments] == ["churn-api"]
    assert spec.deployment("churn-api").strategy.kind == "blue_green"
    assert spec.monitoring_for("churn").drift.reference_rows == 20000


def test_real_spec_document_parses_with_parse_spec(real_doc: dict[str, Any]) -> None:
    spec = parse_spec(copy.deepcopy(real_doc), "inline")
    assert spec.model("churn").label.horizon_days == 90


# --- broken specs: each names the file, the exact field path and what was expected ---------


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return mutate


def _delete(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return mutate


def _all(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        for one in mutations:
            one(doc)

    return mutate


BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], str, list[str]]] = [
    # (id, mutation, problem prefix (the field path), fragments the problem must contain)
    (
        "missing-required",
        _delete(("models", 0, "label", "horizon_days")),
        "models[0].label.horizon_days:",
        ["required field is missing"],
    ),
    (
        "wrong-type-date",
        _set(("partitions", "start"), "not a date"),
        "partitions.start:",
        ["valid date", "'not a date'"],
    ),
    (
        "unknown-field-typo",
        _set(("models", 0, "feature_view"), "churn_features"),
        "models[0].feature_view:",
        ["unknown field"],
    ),
    (
        "bad-enum",
        _set(("deployments", 0, "strategy", "kind"), "rainbow"),
        "deployments[0].strategy.kind:",
        ["'blue_green'", "'canary'", "'champion_challenger'", "'rainbow'"],
    ),
    (
        "unknown-feature-service",
        _set(("models", 0, "feature_service"), "nope"),
        "models[0].feature_service:",
        ["unknown feature service 'nope'", "['churn_features']"],
    ),
    (
        "aggregate-of-string-column",
        _set(("feature_views", 0, "transformations", 1, "columns"), ["dollar_value", "customer_id"]),
        "feature_views[0].transformations[1].columns:",
        ["'customer_id' is string", "int or float"],
    ),
    (
        "window-of-unknown-column",
        _set(("feature_views", 0, "transformations", 2, "columns"), ["dollars"]),
        "feature_views[0].transformations[2].columns:",
        ["'dollars' is not a column of dataset 'transactions'", "dollar_value"],
    ),
    (
        "end-before-start",
        _set(("partitions", "end"), "1996-12-31"),
        "partitions:",
        ["end (1996-12-31) is before start (1997-01-01)"],
    ),
    (
        "canary-step-over-100",
        _set(("deployments", 0, "strategy"), {"kind": "canary", "steps": [5, 50, 101]}),
        "deployments[0].strategy.steps[2]:",
        ["less than or equal to 100", "101"],
    ),
    (
        "canary-step-zero",
        _set(("deployments", 0, "strategy"), {"kind": "canary", "steps": [0, 100]}),
        "deployments[0].strategy.steps[0]:",
        ["greater than 0"],
    ),
    (
        "unknown-aggregate-function",
        _set(("feature_views", 0, "transformations", 1, "functions"), ["sum", "median"]),
        "feature_views[0].transformations[1].functions[1]:",
        ["'median'", "'sum'", "'max'"],
    ),
    (
        "unknown-field-inside-transform",
        _set(("feature_views", 0, "transformations", 2, "window_days"), [7]),
        "feature_views[0].transformations[2].window_days:",
        ["unknown field"],
    ),
    (
        "unknown-transform-kind",
        _set(("feature_views", 0, "transformations", 0, "kind"), "magic"),
        "feature_views[0].transformations[0]:",
        ["'magic'", "'aggregate'", "'window'", "'recency'"],
    ),
    (
        "unknown-label-dataset",
        _set(("models", 0, "label", "dataset"), "orders"),
        "models[0].label.dataset:",
        ["unknown dataset 'orders'"],
    ),
    (
        "unknown-entity-of-dataset",
        _set(("datasets", 0, "entity"), "client"),
        "datasets[0].entity:",
        ["unknown entity 'client'", "['customer']"],
    ),
    (
        "unknown-source-of-view",
        _set(("feature_views", 0, "source"), "purchases"),
        "feature_views[0].source:",
        ["unknown dataset 'purchases'", "['transactions']"],
    ),
    (
        "unknown-view-in-service",
        _set(("feature_services", 0, "features"), ["activity:*"]),
        "feature_services[0].features:",
        ["unknown feature view 'activity'"],
    ),
    (
        "malformed-feature-reference",
        _set(("feature_services", 0, "features"), ["customer_activity"]),
        "feature_services[0]:",
        ["'customer_activity'", "'view:feature' or 'view:*'"],
    ),
    (
        "unknown-deployment-model",
        _set(("deployments", 0, "model"), "churnn"),
        "deployments[0].model:",
        ["unknown model 'churnn'", "['churn']"],
    ),
    (
        "unknown-monitoring-model",
        _set(("monitoring", 0, "model"), "ltv"),
        "monitoring[0].model:",
        ["unknown model 'ltv'"],
    ),
    (
        "timestamp-column-not-a-column",
        _set(("datasets", 0, "timestamp", "column"), "when"),
        "datasets[0]:",
        ["timestamp.column 'when' is not one of the columns"],
    ),
    (
        "bad-project-name",
        _set(("project",), "Churn Model"),
        "project:",
        ["pattern", "'Churn Model'"],
    ),
    (
        "negative-horizon",
        _set(("models", 0, "label", "horizon_days"), -1),
        "models[0].label.horizon_days:",
        ["greater than 0", "-1"],
    ),
    (
        "negative-max-regression",
        _set(("models", 0, "gate", "max_regression"), -0.1),
        "models[0].gate.max_regression:",
        ["greater than or equal to 0"],
    ),
    (
        "bad-gate-metric",
        _set(("models", 0, "gate", "metric"), "rmse"),
        "models[0].gate.metric:",
        ["'rmse'", "binary", "auc", "logloss", "pr_auc"],
    ),
    (
        "label-kind-vs-task",
        _set(("models", 0, "task"), "regression"),
        "models[0].task:",
        ["'regression' does not fit a 'churn' label", "binary"],
    ),
    (
        "non-increasing-bins",
        _set(
            ("models", 0, "label"),
            {
                "kind": "aggregate",
                "dataset": "transactions",
                "horizon_days": 90,
                "function": "sum",
                "column": "dollar_value",
                "bins": [50, 50, 200],
            },
        ),
        "models[0].label",
        ["bins must increase strictly", "[50.0, 50.0, 200.0]"],
    ),
    (
        "aggregate-label-of-unknown-column",
        _all(
            _delete(("models", 0, "gate", "metric")),
            _delete(("monitoring", 0, "alert_thresholds", "auc")),
            _set(
                ("models", 0, "label"),
                {
                    "kind": "aggregate",
                    "dataset": "transactions",
                    "horizon_days": 90,
                    "function": "sum",
                    "column": "revenue",
                },
            ),
        ),
        "models[0].label.column:",
        ["'revenue' is not a column of dataset 'transactions'", "dollar_value"],
    ),
    (
        "aggregate-label-of-a-string-column",
        _all(
            _delete(("models", 0, "gate", "metric")),
            _delete(("monitoring", 0, "alert_thresholds", "auc")),
            _set(
                ("models", 0, "label"),
                {
                    "kind": "aggregate",
                    "dataset": "transactions",
                    "horizon_days": 90,
                    "function": "mean",
                    "column": "customer_id",
                },
            ),
        ),
        "models[0].label.column:",
        ["'customer_id' is string, a label needs int, float or bool"],
    ),
    (
        "column-label-without-task",
        _set(
            ("models", 0, "label"),
            {"kind": "column", "dataset": "transactions", "horizon_days": 30, "column": "number_of_cds"},
        ),
        "models[0].task:",
        ["a 'column' label needs the task"],
    ),
    (
        "where-on-unknown-column",
        _set(
            ("models", 0, "label"),
            {
                "kind": "event",
                "dataset": "transactions",
                "horizon_days": 30,
                "where": [{"column": "cds", "op": "ge", "value": 3}],
            },
        ),
        "models[0].label.where[0].column:",
        ["'cds' is not a column of dataset 'transactions'"],
    ),
    (
        "threshold-optimization-on-regression",
        _set(
            ("models", 0),
            {
                "name": "clv",
                "feature_service": "churn_features",
                "algorithm": "xgboost",
                "label": {
                    "kind": "aggregate",
                    "dataset": "transactions",
                    "horizon_days": 90,
                    "function": "count",
                },
                "validation": {"threshold_optimization": "f1"},
            },
        ),
        "models[0].validation.threshold_optimization:",
        ["only binary models have a threshold"],
    ),
    (
        "alert-on-a-metric-of-another-task",
        _set(("monitoring", 0, "alert_thresholds"), {"r2": 0.5}),
        "monitoring[0].alert_thresholds:",
        ["['r2'] not metrics of a binary model"],
    ),
    (
        "param-not-an-int",
        _set(("models", 0, "params", "n_estimators"), "lots"),
        "models[0].params.n_estimators:",
        ["'lots' is not an int"],
    ),
    (
        "param-misspelled",
        _set(("models", 0, "params", "max_dept"), 3),
        "models[0].params.max_dept:",
        ["not a parameter of xgboost", "did you mean 'max_depth'?"],
    ),
    (
        "algorithm-unknown-name",
        _set(("models", 0, "algorithm"), "catboost"),
        "models[0].algorithm:",
        ["unknown algorithm 'catboost'", "lightgbm, xgboost", "package.module:Class"],
    ),
    (
        "algorithm-module-not-found",
        _set(("models", 0, "algorithm"), "nosuch.module.Thing"),
        "models[0].algorithm:",
        ["cannot import 'nosuch.module.Thing'", "ModuleNotFoundError"],
    ),
    (
        "algorithm-class-not-found",
        _all(
            _set(("models", 0, "algorithm"), "sklearn.linear_model.NoSuchClass"),
            _set(("models", 0, "params"), {}),
        ),
        "models[0].algorithm:",
        ["cannot import 'sklearn.linear_model.NoSuchClass'", "AttributeError"],
    ),
    (
        "sklearn-param-misspelled",
        _all(
            _set(("models", 0, "algorithm"), "sklearn.linear_model.LogisticRegression"),
            _set(("models", 0, "params"), {"C": 1.0, "max_iters": 100}),
        ),
        "models[0].params.max_iters:",
        ["not a parameter of sklearn.linear_model.LogisticRegression", "did you mean 'max_iter'?"],
    ),
    (
        "empty-datasets",
        _set(("datasets",), []),
        "datasets:",
        ["at least 1"],
    ),
]


@pytest.mark.parametrize(
    ("mutate", "where", "fragments"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_spec_names_file_field_and_expectation(
    tmp_path: Path,
    base: dict[str, Any],
    mutate: Callable[[dict[str, Any]], None],
    where: str,
    fragments: list[str],
) -> None:
    mutate(base)
    err = spec_error(write(tmp_path, base))
    assert len(err.problems) == 1, err.problems
    problem = err.problems[0]
    assert problem.startswith(where), problem
    for fragment in fragments:
        assert fragment in problem, (fragment, problem)


def test_exact_messages_of_the_headline_cases(tmp_path: Path, base: dict[str, Any]) -> None:
    cases = {
        "a": (
            _delete(("models", 0, "label", "horizon_days")),
            "models[0].label.horizon_days: required field is missing",
        ),
        "b": (
            _set(("models", 0, "feature_view"), "x"),
            "models[0].feature_view: unknown field (check the spelling)",
        ),
        "c": (
            _set(("models", 0, "feature_service"), "nope"),
            "models[0].feature_service: unknown feature service 'nope' (known: ['churn_features'])",
        ),
    }
    for name, (mutate, expected) in cases.items():
        doc = copy.deepcopy(base)
        mutate(doc)
        assert spec_error(write(tmp_path, doc, f"{name}.yaml")).problems == [expected]


def test_every_problem_is_reported_at_once(tmp_path: Path, base: dict[str, Any]) -> None:
    del base["models"][0]["label"]["horizon_days"]
    base["deployments"][0]["strategy"]["kind"] = "rainbow"
    base["partitions"]["start"] = "not a date"
    err = spec_error(write(tmp_path, base))
    fields = sorted(p.split(":", 1)[0] for p in err.problems)
    assert fields == ["deployments[0].strategy.kind", "models[0].label.horizon_days", "partitions.start"]


def test_every_cross_reference_problem_is_reported_at_once(tmp_path: Path, base: dict[str, Any]) -> None:
    base["models"][0]["feature_service"] = "nope"
    base["deployments"][0]["model"] = "other"
    err = spec_error(write(tmp_path, base))
    assert sorted(p.split(":", 1)[0] for p in err.problems) == [
        "deployments[0].model",
        "models[0].feature_service",
    ]


def test_invalid_yaml_gives_line_and_column(tmp_path: Path) -> None:
    lines = SPEC.read_text(encoding="utf-8").splitlines()
    # Line 41 (1-based) gets a stray closing bracket after its flow mapping.
    assert lines[40].strip().startswith("number_of_cds: {")
    lines[40] += " ]"
    p = tmp_path / "mlforge.yaml"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    err = spec_error(p)
    assert len(err.problems) == 1
    assert err.problems[0].startswith(f"line 41, column {len(lines[40])}: not valid YAML: "), err.problems


def test_invalid_yaml_tab_indentation_names_its_line(tmp_path: Path) -> None:
    lines = SPEC.read_text(encoding="utf-8").splitlines()
    assert lines[9].startswith("  end:")
    lines[9] = "\tend: 1998-06-30"
    p = tmp_path / "mlforge.yaml"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    err = spec_error(p)
    assert err.problems[0].startswith("line 10, column 1: not valid YAML: "), err.problems
    assert "\\t" in err.problems[0] or "\t" in err.problems[0]


def test_invalid_yaml_line_number_is_the_offending_line(tmp_path: Path) -> None:
    p = tmp_path / "mlforge.yaml"
    p.write_text("project: churn\ndescription: x\npartitions:\n  start: 1997-01-01\n   end: : bad\n")
    err = spec_error(p)
    assert err.problems[0].startswith("line 5, column "), err.problems
    assert "not valid YAML" in err.problems[0]


def test_source_file_missing(tmp_path: Path, base: dict[str, Any]) -> None:
    base["datasets"][0]["source"]["path"] = "data/nope/missing.txt"
    err = spec_error(write(tmp_path, base))
    assert err.problems == ["datasets[0].source.path: file not found: data/nope/missing.txt"]
    # check_files=False skips exactly that check.
    spec = load_spec(tmp_path / "mlforge.yaml", check_files=False)
    assert spec.dataset("transactions").source.path == "data/nope/missing.txt"


def test_relative_source_path_resolves_against_the_spec_folder_not_cwd(
    tmp_path: Path, real_doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the relative path exists from here, but not beside the spec
    p = write(tmp_path, copy.deepcopy(real_doc))
    err = spec_error(p)
    assert err.problems == ["datasets[0].source.path: file not found: data/cdnow/CDNOW_master.txt"]
    (tmp_path / "data").symlink_to(REPO / "data", target_is_directory=True)
    assert load_spec(p).dataset("transactions").source.path == "data/cdnow/CDNOW_master.txt"


def test_globs_and_urls_are_not_checked_for_existence(tmp_path: Path, base: dict[str, Any]) -> None:
    base["datasets"][0]["source"]["path"] = "s3://bucket/cdnow/*.txt"
    assert load_spec(write(tmp_path, base)).datasets[0].source.path == "s3://bucket/cdnow/*.txt"


def test_spec_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "mlforge.yaml"
    err = spec_error(missing)
    assert err.problems == ["file not found"]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("models", "models: duplicate names ['churn']"),
        ("entities", "entities: duplicate names ['customer']"),
        ("feature_services", "feature_services: duplicate names ['churn_features']"),
    ],
)
def test_duplicate_names(tmp_path: Path, base: dict[str, Any], section: str, expected: str) -> None:
    base[section].append(copy.deepcopy(base[section][0]))
    err = spec_error(write(tmp_path, base))
    assert expected in err.problems


def test_duplicate_endpoints(tmp_path: Path, base: dict[str, Any]) -> None:
    base["deployments"].append({"endpoint": "churn-api", "model": "churn"})
    err = spec_error(write(tmp_path, base))
    assert "deployments: duplicate names ['churn-api']" in err.problems


BUG_DUPES = (
    "spec.py ProjectSpec._references builds `datasets`/`views` as dicts keyed by name and then checks "
    "list(dict) for duplicates, so duplicate dataset / feature-view names collapse and are never reported"
)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("datasets", "datasets: duplicate names ['transactions']"),
        ("feature_views", "feature_views: duplicate names ['customer_activity']"),
    ],
)
def test_duplicate_dataset_and_view_names(
    tmp_path: Path, base: dict[str, Any], section: str, expected: str
) -> None:
    base[section].append(copy.deepcopy(base[section][0]))
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, base))
    assert expected in info.value.problems


def test_duplicate_dataset_validator_and_lookup_disagree(tmp_path: Path, base: dict[str, Any]) -> None:
    # The second 'transactions' is valid on its own and different from the first one.
    second = copy.deepcopy(base["datasets"][0])
    second["description"] = "the second copy"
    base["datasets"].append(second)
    with pytest.raises(SpecError):
        load_spec(write(tmp_path, base))


BUG_YAML_VALUE_ERROR = (
    "spec.py load_spec catches only yaml.YAMLError, but PyYAML's safe_load raises a plain ValueError "
    "for an impossible calendar date (e.g. `start: 1997-02-30`) and read_text raises "
    "UnicodeDecodeError on non-UTF-8 bytes; both escape as raw tracebacks instead of SpecError"
)


def test_impossible_calendar_date_is_a_spec_error(tmp_path: Path) -> None:
    text = SPEC.read_text(encoding="utf-8").replace("start: 1997-01-01", "start: 1997-02-30")
    (tmp_path / "data").symlink_to(REPO / "data", target_is_directory=True)
    p = tmp_path / "mlforge.yaml"
    p.write_text(text, encoding="utf-8")
    err = spec_error(p)
    assert any("1997-02-30" in problem for problem in err.problems)


def test_non_utf8_spec_is_a_spec_error(tmp_path: Path) -> None:
    p = tmp_path / "mlforge.yaml"
    p.write_bytes(b"project: churn\ndescription: caf\xe9\n")
    spec_error(p)


def test_quoted_impossible_date_is_reported_with_its_field(tmp_path: Path, base: dict[str, Any]) -> None:
    # As a string (safe_dump quotes it) the same typo reaches pydantic and is reported properly.
    base["partitions"]["start"] = "1997-02-30"
    err = spec_error(write(tmp_path, base))
    assert len(err.problems) == 1
    assert err.problems[0].startswith("partitions.start:")
    assert "'1997-02-30'" in err.problems[0]


def test_spec_error_is_an_mlforge_error(tmp_path: Path) -> None:
    with pytest.raises(MLForgeError):
        load_spec(tmp_path / "absent.yaml")


# --- property: a non-mapping top level is always a SpecError --------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.dates(),
)
_non_mappings = st.one_of(
    _scalars,
    st.lists(st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6), max_size=5),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_non_mappings)
def test_non_mapping_top_level_is_always_a_spec_error(value: Any) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "mlforge.yaml"
        p.write_text(yaml.safe_dump(value), encoding="utf-8")
        with pytest.raises(SpecError) as info:
            load_spec(p)
    assert info.value.path == str(p)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("(top level): expected a mapping of sections, got ")
    with pytest.raises(SpecError):
        parse_spec(value, "inline")


def test_empty_file_is_a_spec_error(tmp_path: Path) -> None:
    p = tmp_path / "mlforge.yaml"
    p.write_text("", encoding="utf-8")
    err = spec_error(p)
    assert err.problems == ["(top level): expected a mapping of sections, got NoneType"]
