"""The Python DSL equals the YAML: round trips both ways for every example project, the
hand-written DSL example, `mlforge export`, Python spec files, and the errors of bad ones.

Pure logic: no servers. Every check compares specs (pydantic equality of every field), so a DSL
object, the source generator or the loader that drops or changes a field fails here.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from mlforge.cli.app import app
from mlforge.config import spec as spec_module
from mlforge.config.project import Project
from mlforge.config.spec import ProjectSpec, load_spec, parse_spec, read_document
from mlforge.dsl import (
    BlueGreen,
    Canary,
    ChampionChallenger,
    Column,
    Dataset,
    Deployment,
    Entity,
    FeatureService,
    Model,
    Partitions,
    Pipeline,
    PromotionCriteria,
    Source,
    python_source,
    to_node,
    yaml_source,
)
from mlforge.dsl import (
    Project as DslProject,
)
from mlforge.dsl.nodes import NODES
from mlforge.errors import SpecError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [REPO / "mlforge.yaml", REPO / "examples" / "clv" / "mlforge.yaml"]
HAND_WRITTEN = REPO / "examples" / "churn_dsl.py"
DOCS = REPO / "docs" / "dsl.md"
MLFORGE = Path(sys.executable).with_name("mlforge")


def rebased(spec: ProjectSpec, folder: Path) -> ProjectSpec:
    """`spec` with every relative source path made absolute against `folder` (its spec's folder)."""
    datasets = [
        d.model_copy(
            update={"source": d.source.model_copy(update={"path": str((folder / d.source.path).resolve())})}
        )
        for d in spec.datasets
    ]
    return spec.model_copy(update={"datasets": datasets})


def run_python_source(source: str) -> ProjectSpec:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<generated>", "exec"), namespace)
    return namespace["project"].to_spec()


@pytest.fixture(autouse=True)
def _no_spec_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFORGE_SPEC", raising=False)
    monkeypatch.delenv("MLFORGE_HOME", raising=False)


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_to_python_and_back_gives_the_same_spec(path: Path) -> None:
    original = load_spec(path)
    source = python_source(original, path.name)
    assert "project = Project(" in source
    assert run_python_source(source) == original
    # … and says exactly what the YAML says, a value equal to its default included
    assert run_python_source(source).model_dump(exclude_unset=True) == original.model_dump(exclude_unset=True)
    # the generated source is a fixed point: generating it again from its spec changes nothing
    assert python_source(run_python_source(source), path.name) == source


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(REPO)))
def test_python_to_yaml_and_back_gives_the_same_spec(path: Path, tmp_path: Path) -> None:
    from_python = run_python_source(python_source(load_spec(path)))
    written = tmp_path / "exported.yaml"
    written.write_text(yaml_source(from_python), encoding="utf-8")
    # read with the loader of mlforge.yaml (dates as strings, as from any file)
    assert parse_spec(read_document(written), str(written)) == from_python == load_spec(path)


def test_dsl_objects_give_the_yaml_mapping() -> None:
    """Each object is the YAML's mapping: its kind set by the class, nothing added, nothing checked."""
    assert Canary(steps=[10, 100]).to_dict() == {"kind": "canary", "steps": [10, 100]}
    assert Column("int", nullable=False).to_dict() == {"type": "int", "nullable": False}
    assert Deployment("api", model="m", strategy=BlueGreen()).to_dict() == {
        "endpoint": "api",
        "model": "m",
        "strategy": {"kind": "blue_green"},
    }
    cc = ChampionChallenger(mode="shadow", promotion_criteria=PromotionCriteria(min_agreement=0.8))
    assert cc.to_dict() == {
        "kind": "champion_challenger",
        "mode": "shadow",
        "promotion_criteria": {"min_agreement": 0.8},
    }
    with pytest.raises(TypeError, match="sets kind='canary' itself"):
        Canary(kind="blue_green")


def test_every_spec_model_has_a_dsl_object() -> None:
    """A model added to spec.py without a DSL object would make `python_source` fail on it."""
    models = {
        cls
        for _, cls in inspect.getmembers(spec_module, inspect.isclass)
        if issubclass(cls, BaseModel)
        and cls.__module__ == spec_module.__name__
        and not cls.__name__.startswith("_")
    }
    assert models == {model for model, _ in NODES}
    for kind in ("blue_green", "canary", "champion_challenger"):
        assert (spec_module.StrategySpec, kind) in NODES


def test_generated_source_names_the_dsl_objects() -> None:
    node = to_node(load_spec(EXAMPLES[1]))
    assert isinstance(node, DslProject)
    text = repr(node)
    assert 'EventLabel(dataset="transactions", horizon_days=30)' in text
    assert re.search(
        r'AggregateLabel\(\n\s+dataset="transactions",\n\s+horizon_days=90,\n\s+function="sum"', text
    )
    assert "Validation(" in text and "EventLabel(" in text and "date(1997, 1, 1)" in text


# --- the hand-written DSL example ------------------------------------------------------------------


def test_hand_written_dsl_example_equals_the_root_yaml() -> None:
    from_yaml = load_spec(REPO / "mlforge.yaml")
    from_python = load_spec(HAND_WRITTEN)  # data path checked against examples/, as for a YAML there
    assert from_python.datasets[0].source.path == "../data/cdnow/CDNOW_master.txt"
    assert rebased(from_python, HAND_WRITTEN.parent) == rebased(from_yaml, REPO)
    # … and only the data path differs
    assert from_python.model_copy(update={"datasets": from_yaml.datasets}) == from_yaml


def test_the_fluent_builder_builds_the_root_example() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(HAND_WRITTEN.read_text(), str(HAND_WRITTEN), "exec"), namespace)
    p = namespace["project"].fields
    pipeline = (
        Pipeline(
            "churn",
            **{k: p[k] for k in ("description", "timezone", "owners", "infrastructure", "schedules")},
        )
        .with_partitions(p["partitions"])
        .with_dataset(namespace["transactions"], entity=namespace["customer"])
        .with_feature_engineering(namespace["customer_activity"], service=p["feature_services"][0])
        .with_training(namespace["churn"])
        .with_evaluation(gate=p["models"][0].fields["gate"], monitoring=p["monitoring"][0])
        .with_deployment(*p["deployments"])
    )
    assert pipeline.build() == load_spec(HAND_WRITTEN)


# --- Python spec files ---------------------------------------------------------------------------


def write_python_spec(folder: Path, spec: ProjectSpec, name: str = "project.py") -> Path:
    path = folder / name
    path.write_text(python_source(spec), encoding="utf-8")
    return path


def test_project_load_takes_a_python_spec_and_resolves_paths_against_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "proj"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "tx.txt").write_text("00001 19970101 1 9.99\n")
    root = load_spec(REPO / "mlforge.yaml")
    ds = root.datasets[0].model_copy(
        update={"source": root.datasets[0].source.model_copy(update={"path": "data/tx.txt"})}
    )
    spec_py = write_python_spec(folder, root.model_copy(update={"datasets": [ds]}))
    monkeypatch.chdir(tmp_path)  # elsewhere: data/tx.txt must be found beside project.py, not here

    project = Project.load(spec_py)
    assert project.spec_path == spec_py and project.root == folder
    assert project.spec.datasets[0].source.path == "data/tx.txt"
    assert project.source_path("data/tx.txt") == str(folder / "data" / "tx.txt")
    assert project.settings.state_dir == (folder / ".mlforge").resolve()

    monkeypatch.setenv("MLFORGE_SPEC", str(spec_py))  # what the code location and serving resolve
    assert Project.load().spec == project.spec

    (folder / "data" / "tx.txt").unlink()
    with pytest.raises(SpecError) as info:
        Project.load(spec_py)
    assert info.value.problems == ["datasets[0].source.path: file not found: data/tx.txt"]


def test_a_python_spec_may_define_a_pipeline_or_a_mapping(tmp_path: Path) -> None:
    doc = yaml.safe_load((REPO / "mlforge.yaml").read_text())
    doc["datasets"][0]["source"]["path"] = str(REPO / doc["datasets"][0]["source"]["path"])
    mapping = tmp_path / "mapping.py"
    mapping.write_text(f"import datetime\n\nproject = {doc!r}\n")
    assert load_spec(mapping) == parse_spec(doc)

    pipeline = tmp_path / "pipeline.py"
    pipeline.write_text(
        textwrap.dedent(
            """
            from datetime import date

            from mlforge.dsl import Column, Dataset, Entity, Pipeline, Source, Timestamp

            project = Pipeline("shop").with_partitions(start=date(1997, 1, 1), end=date(1997, 12, 31))
            project.with_dataset(
                Dataset(
                    "sales",
                    source=Source("s3://bucket/sales/*.csv"),
                    timestamp=Timestamp("day"),
                    entity="customer",
                    columns={"customer_id": Column("string"), "day": Column("date")},
                ),
                entity=Entity("customer", join_key="customer_id"),
            )
            """
        )
    )
    spec = load_spec(pipeline)  # not built in the file: the loader validates it
    assert spec.project == "shop" and spec.dataset("sales").source.path == "s3://bucket/sales/*.csv"


BAD_CASES = {
    "syntax error": (
        "from mlforge.dsl import Project\nproject = Project('x',\n",
        r"line 2, column \d+: not valid Python: '\(' was never closed",
    ),
    "no project": (
        "from mlforge.dsl import Entity\ncustomer = Entity('customer', join_key='customer_id')\n",
        r"no module-level `project`: a Python spec defines `project = Project\(…\)`",
    ),
    "exception while running": (
        "from mlforge.dsl import Project\n\nproject = Project('x', datasets=[transactons])\n",
        r"line 3: NameError: name 'transactons' is not defined",
    ),
    "project of the wrong type": ("project = 42\n", r"project: a int, expected a mlforge.dsl Project"),
    "a build() that fails inside the file": (
        "from mlforge.dsl import Pipeline\nspec = Pipeline('x').build()\n",
        r"partitions: required field is missing",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_a_bad_python_spec_is_one_spec_error_naming_the_file(case: str, tmp_path: Path) -> None:
    source, message = BAD_CASES[case]
    path = tmp_path / "project.py"
    path.write_text(source)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.path == str(path) and str(path) in str(info.value)
    assert any(re.search(message, p) for p in info.value.problems), info.value.problems


def test_a_bad_field_in_a_python_spec_names_the_file_and_the_field(tmp_path: Path) -> None:
    source = python_source(load_spec(REPO / "mlforge.yaml")).replace(
        'metric="auc"', 'metric="accuracy_score"'
    )
    path = tmp_path / "project.py"
    path.write_text(source)
    with pytest.raises(SpecError) as info:
        load_spec(path, check_files=False)
    assert info.value.path == str(path)
    assert info.value.problems[0].startswith(
        "models[0].gate.metric: 'accuracy_score' is not a metric of a binary model"
    )


def test_cli_reports_a_bad_python_spec_in_one_line_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "project.py"
    path.write_text("from mlforge.dsl import Project\nproject = Project('x')\nraise RuntimeError('boom')\n")
    res = subprocess.run(
        [str(MLFORGE), "validate", "--spec", str(path)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.strip() == f"error: invalid spec {path}:\n  - line 3: RuntimeError: boom"


# --- bad DSL objects: the YAML's messages --------------------------------------------------------


def minimal(**overrides: Any) -> DslProject:
    """A valid small project; `overrides` replace its sections."""
    fields: dict[str, Any] = {
        "partitions": Partitions(start=date(1997, 1, 1), end=date(1997, 12, 31)),
        "entities": [Entity("customer", join_key="customer_id")],
        "datasets": [
            Dataset(
                "transactions",
                source=Source("tx.csv"),
                timestamp={"column": "date"},
                entity="customer",
                columns={"customer_id": Column("string"), "date": Column("date")},
            )
        ],
        **overrides,
    }
    return DslProject("shop", **fields)


def dsl_problems(project: DslProject) -> list[str]:
    with pytest.raises(SpecError) as info:
        project.to_spec("shop.py")
    assert info.value.path == "shop.py"
    return info.value.problems


def yaml_problems(doc: dict[str, Any], tmp_path: Path) -> list[str]:
    path = tmp_path / "mlforge.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(SpecError) as info:
        load_spec(path, check_files=False)
    return info.value.problems


def test_minimal_is_valid() -> None:
    assert minimal().to_spec().project == "shop"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (  # a misspelt keyword
            {"entities": [Entity("customer", joinkey="customer_id")]},
            [
                "entities[0].join_key: required field is missing",
                "entities[0].joinkey: unknown field (check the spelling)",
            ],
        ),
        (  # a value the field does not take
            {"entities": [Entity("Customer", join_key="customer_id")]},
            ["entities[0].name: String should match pattern '^[a-z][a-z0-9_]*$' (got 'Customer')"],
        ),
        (  # an unknown strategy
            {
                "feature_views": [],
                "deployments": [Deployment("api", model="churn", strategy={"kind": "rolling"})],
            },
            [
                "deployments[0].strategy.kind: Input should be 'blue_green', 'canary' or "
                "'champion_challenger' (got 'rolling')"
            ],
        ),
        (  # a canary that does not end at 100
            {"deployments": [Deployment("api", model="nope", strategy=Canary(steps=[5, 50]))]},
            ["deployments[0].strategy: canary steps must end at 100, got [5, 50]"],
        ),
        (  # a cross reference
            {
                "feature_services": [FeatureService("svc", features=["nope:*"])],
                "models": [
                    Model("m", feature_service="svc", label={"dataset": "transactions", "horizon_days": 30})
                ],
            },
            ["feature_services[0].features: unknown feature view 'nope' in 'nope:*'"],
        ),
    ],
    ids=["misspelt field", "bad value", "unknown strategy", "canary steps", "unknown view"],
)
def test_a_bad_dsl_object_fails_with_the_yaml_message(
    overrides: dict[str, Any], expected: list[str], tmp_path: Path
) -> None:
    project = minimal(**overrides)
    got = dsl_problems(project)
    assert got == expected
    # the same document written as YAML fails with exactly the same problems
    doc = project.to_dict()
    doc["partitions"] = {k: str(v) for k, v in doc["partitions"].items()}
    assert yaml_problems(doc, tmp_path) == got


def test_pipeline_misuse_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="with_evaluation: no model yet"):
        Pipeline("shop").with_evaluation(gate=None)
    with pytest.raises(SpecError, match=r"with_evaluation.model: unknown model 'b' \(known: \['a'\]\)"):
        Pipeline("shop").with_training(Model("a")).with_evaluation(model="b")


# --- mlforge export --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["yaml", "python"])
def test_export_prints_and_writes_the_project(fmt: str, tmp_path: Path) -> None:
    spec_path = EXAMPLES[1]
    res = subprocess.run(
        [str(MLFORGE), "export", "--format", fmt, "--spec", str(spec_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    out = tmp_path / f"printed.{'py' if fmt == 'python' else 'yaml'}"
    out.write_text(res.stdout)
    # read as the file type it is (its relative data path is the spec's: not checked from here)
    assert parse_spec(read_document(out), str(out)) == load_spec(spec_path)

    target = tmp_path / "sub" / f"exported.{fmt}"
    target.parent.mkdir()
    target.write_text("old contents")
    with pytest.raises(SystemExit) as done:
        app(["export", "--format", fmt, "--spec", str(spec_path), "--output", str(target)])
    assert done.value.code in (0, None)
    assert target.read_text() == res.stdout  # replaced whole
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temp file left


def test_export_of_a_python_spec_as_yaml(tmp_path: Path) -> None:
    res = subprocess.run(
        [str(MLFORGE), "export", "--spec", str(HAND_WRITTEN)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("# MLForge project 'churn': generated by `mlforge export --format yaml`")
    assert parse_spec(yaml.safe_load(res.stdout)) == load_spec(HAND_WRITTEN)


# --- docs/dsl.md -----------------------------------------------------------------------------------


def test_the_docs_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"^```python\n(.*?)^```", DOCS.read_text(encoding="utf-8"), flags=re.M | re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(REPO)
    namespace: dict[str, Any] = {"__name__": "docs_dsl"}
    for i, block in enumerate(blocks):
        exec(compile(textwrap.dedent(block), f"{DOCS}:block{i + 1}", "exec"), namespace)
    assert isinstance(namespace["spec"], ProjectSpec)
