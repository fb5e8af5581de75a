"""Which spec is loaded: one rule (`resolve_spec_path`) for every command, the code location and serving.

`serve`/`ui`/`validate` with `--spec other.yaml` used to load other.yaml but announce, serve or
hand Dagster `<folder>/mlforge.yaml`; the code location silently fell back to the bundled example.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlforge.cli import project as project_cli

REPO = Path(__file__).resolve().parents[2]


def _spec_doc(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((REPO / "mlforge.yaml").read_text())
    doc["project"] = name
    for ds in doc["datasets"]:
        ds["source"]["path"] = str(REPO / ds["source"]["path"])  # the copy lives elsewhere
    return doc


@pytest.fixture
def other(tmp_path: Path) -> Path:
    """A valid spec named other.yaml, alone in its folder."""
    path = tmp_path / "proj" / "other.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(_spec_doc("other")))
    return path


@pytest.fixture
def decoy(other: Path) -> Path:
    """A different project's mlforge.yaml beside other.yaml."""
    path = other.parent / "mlforge.yaml"
    path.write_text(yaml.safe_dump(_spec_doc("decoy")))
    return path


@pytest.fixture(autouse=True)
def _no_spec_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MLFORGE_SPEC", raising=False)
    monkeypatch.delenv("MLFORGE_HOME", raising=False)
    # the CLI exports DAGSTER_HOME into this process; monkeypatch restores it afterwards
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster-home"))


# --- resolve_spec_path --------------------------------------------------------------------------


def test_explicit_file_folder_env_and_upward_search(
    other: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlforge.config.project import resolve_spec_path

    assert resolve_spec_path(other) == other
    (other.parent / "mlforge.yaml").write_text("project: x\n")
    assert resolve_spec_path(other.parent) == other.parent / "mlforge.yaml"
    monkeypatch.setenv("MLFORGE_SPEC", str(other))
    assert resolve_spec_path() == other
    assert resolve_spec_path(other.parent) == other.parent / "mlforge.yaml"  # an argument wins
    monkeypatch.delenv("MLFORGE_SPEC")
    deep = other.parent / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert resolve_spec_path() == other.parent / "mlforge.yaml"


def test_named_spec_that_is_missing_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlforge.config.project import resolve_spec_path
    from mlforge.errors import SpecError

    with pytest.raises(SpecError, match="file not found") as err:
        resolve_spec_path(tmp_path / "nope.yaml")
    assert err.value.path == str(tmp_path / "nope.yaml")
    with pytest.raises(SpecError) as err:
        resolve_spec_path(tmp_path)  # a folder without mlforge.yaml
    assert err.value.path == str(tmp_path / "mlforge.yaml")
    monkeypatch.setenv("MLFORGE_SPEC", str(tmp_path / "gone.yaml"))
    with pytest.raises(SpecError) as err:
        resolve_spec_path()
    assert err.value.problems == ["file not found (named by $MLFORGE_SPEC)"]


def test_nothing_found_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlforge.config.project import resolve_spec_path
    from mlforge.errors import SpecError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match="set MLFORGE_SPEC or run inside a project"):
        resolve_spec_path()


def test_project_keeps_the_path_it_loaded(other: Path, decoy: Path, tmp_path: Path) -> None:
    from mlforge.config.project import Project

    project = Project.load(other, state_dir=tmp_path / "state")
    assert project.spec_path == other
    assert project.spec.project == "other"


# --- the commands --------------------------------------------------------------------------------


def test_validate_prints_the_file_it_loaded(
    other: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project_cli.validate(spec=other, home=tmp_path / "state")
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"{other}: ok — project 'other'"


@pytest.mark.parametrize("with_decoy", [False, True], ids=["alone", "beside-another-mlforge.yaml"])
def test_serve_serves_the_spec_it_announces(
    with_decoy: bool,
    other: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    import serving.server

    if with_decoy:
        request.getfixturevalue("decoy")
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(serving.server, "run", lambda path, **kw: calls.append((path, kw)))
    project_cli.serve(spec=other, home=tmp_path / "state", port=8123)
    [(path, kw)] = calls
    assert Path(path) == other
    assert kw["home"] == (tmp_path / "state").resolve()
    assert str(other) in capsys.readouterr().out


def test_ui_hands_dagster_the_spec_it_loaded(
    other: Path, decoy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "execvpe", lambda file, args, env: calls.append((file, args, env)))
    project_cli.ui(spec=other, home=tmp_path / "state")
    [(_, args, env)] = calls
    assert env["MLFORGE_SPEC"] == str(other)
    assert env["MLFORGE_HOME"] == str((tmp_path / "state").resolve())
    assert "mlforge_assets.definitions" in args


# --- the code location ---------------------------------------------------------------------------


def _import_definitions(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import mlforge_assets.definitions"],
        cwd=cwd,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MLFORGE_")}, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_code_location_refuses_a_missing_MLFORGE_SPEC(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    res = _import_definitions({"MLFORGE_SPEC": str(missing), "PYTHONPATH": str(REPO)}, tmp_path)
    assert res.returncode != 0
    assert f"invalid spec {missing}:\n  - file not found (named by $MLFORGE_SPEC)" in res.stderr
    assert "bundled example" not in res.stderr


def test_code_location_logs_the_spec_it_loaded(other: Path, tmp_path: Path) -> None:
    res = _import_definitions(
        {"MLFORGE_SPEC": str(other), "MLFORGE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(REPO)},
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert f"code location: project 'other' from spec {other} ($MLFORGE_SPEC)" in res.stderr


def test_code_location_says_when_it_falls_back_to_the_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from mlforge_assets import definitions

    monkeypatch.chdir(tmp_path)  # no mlforge.yaml above a temporary folder
    with caplog.at_level(logging.INFO, logger=definitions.__name__):
        project = definitions.load_project()
    assert project.spec_path == definitions.EXAMPLE_SPEC
    assert f"from spec {definitions.EXAMPLE_SPEC} (the bundled example" in caplog.text
