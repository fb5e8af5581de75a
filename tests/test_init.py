"""`mlforge init`: every template scaffolds a folder that validates and that `dg` sees as a project;
bad input stops with one line, exit code 2, and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from mlforge.cli import init as init_cmd
from mlforge.templates import FROM_REPOSITORY, bundled

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MLFORGE = BIN / "mlforge"
DG = BIN / "dg"
NAME = "shop"


def _env() -> dict[str, str]:
    """The environment without MLFORGE_* / DAGSTER_HOME: the scaffold's own spec must be found."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFORGE_") and k != "DAGSTER_HOME"}


def run(
    *args: str | Path, cwd: Path, exe: Path = MLFORGE, timeout: int = 120
) -> subprocess.CompletedProcess[str]:
    """Run `exe args…` in `cwd`, capturing text output."""
    return subprocess.run(
        [str(exe), *map(str, args)], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def scaffold(tmp_path: Path, template: str, name: str = NAME) -> Path:
    """`mlforge init NAME --template T --path <tmp>/proj`; returns the folder."""
    folder = tmp_path / "proj"
    res = run("init", name, "--template", template, "--path", folder, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"created {folder}" in res.stdout
    return folder


def _one_line_error(res: subprocess.CompletedProcess[str], *words: str) -> None:
    assert res.returncode == 2, (res.stdout, res.stderr)
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for w in words:
        assert w in err, err


@pytest.mark.parametrize("template", ["churn", "clv", "blank"])
def test_each_template_scaffolds_a_project_that_validates(tmp_path: Path, template: str) -> None:
    folder = scaffold(tmp_path, template)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]  # no staging folder left behind
    files = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    data = (
        {"data/cdnow/CDNOW_master.txt", "data/cdnow/README.md"}
        if template != "blank"
        else {"data/events.csv"}
    )
    common = {"mlforge.yaml", "pyproject.toml", "workspace.yaml", "dagster.yaml", "README.md", ".gitignore"}
    assert files == common | data

    spec_text = (folder / "mlforge.yaml").read_text()
    spec = yaml.safe_load(spec_text)
    assert spec["project"] == NAME
    assert spec_text.lstrip().startswith("#")  # the commented example, comments kept
    if template == "churn":
        original = (REPO / "mlforge.yaml").read_text()
        assert spec_text == original.replace("project: churn\n", f"project: {NAME}\n")
    if template == "clv":
        assert "../../data" not in spec_text and "--spec examples/clv" not in spec_text
        assert [m["name"] for m in spec["models"]] == ["clv_90d", "buys_again_30d"]
    if template == "blank":
        lines = (folder / "data" / "events.csv").read_text().splitlines()
        assert lines[0] == "user_id,ts,amount" and len(lines) > 1000
        assert "TODO" in spec_text
    else:
        assert spec["datasets"][0]["source"]["path"] == "data/cdnow/CDNOW_master.txt"
        assert (folder / "data/cdnow/CDNOW_master.txt").read_bytes() == (
            REPO / "data/cdnow/CDNOW_master.txt"
        ).read_bytes()

    pyproject = tomllib.loads((folder / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == NAME and pyproject["project"]["dependencies"] == ["mlforge"]
    assert pyproject["tool"]["dg"]["directory_type"] == "project"
    assert pyproject["tool"]["dg"]["project"] == {
        "root_module": "mlforge_assets",
        "code_location_target_module": "mlforge_assets.definitions",
        "code_location_name": NAME,
    }
    assert pyproject["tool"]["dagster"]["module_name"] == "mlforge_assets.definitions"
    workspace = yaml.safe_load((folder / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"] == {
        "module_name": "mlforge_assets.definitions",
        "location_name": NAME,
    }
    assert (folder / "dagster.yaml").read_text() == (REPO / "dagster.yaml").read_text()
    readme = (folder / "README.md").read_text()
    assert "mlforge quickstart" in readme and "dg list defs" in readme and "{" not in readme.split("```")[0]

    res = run("validate", cwd=folder)
    assert res.returncode == 0, res.stderr
    assert f"{folder / 'mlforge.yaml'}: ok — project '{NAME}'" in res.stdout
    assert f"state_dir   {folder / '.mlforge'}" in res.stdout


def test_default_folder_is_the_name(tmp_path: Path) -> None:
    res = run("init", "acme", "--template", "blank", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load((tmp_path / "acme" / "mlforge.yaml").read_text())["project"] == "acme"
    assert "cd acme" in res.stdout


def test_dg_lists_the_scaffolds_assets(tmp_path: Path) -> None:
    folder = scaffold(tmp_path, "churn")
    res = run("list", "defs", "--json", cwd=folder, exe=DG)
    assert res.returncode == 0, res.stderr
    keys = {a["asset_key"] for a in json.loads(res.stdout)["assets"]}
    for key in (
        "raw/transactions",
        "features/customer_activity",
        "models/churn/trained",
        "deployments/churn-api",
    ):
        assert f"{NAME}/{key}" in keys
    assert all(k.startswith(f"{NAME}/") for k in keys)
    assert f"spec {folder / 'mlforge.yaml'}" in res.stderr  # the code location names the spec it loaded


def test_dg_lists_the_repositorys_assets() -> None:
    res = run("list", "defs", "--json", cwd=REPO, exe=DG)
    assert res.returncode == 0, res.stderr
    keys = {a["asset_key"] for a in json.loads(res.stdout)["assets"]}
    assert {"churn/raw/transactions", "churn/models/churn/registered", "churn/predictions/churn"} <= keys


def test_non_empty_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    res = run("init", NAME, "--path", folder, cwd=tmp_path)
    _one_line_error(res, str(folder), "not empty", "--force")
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]


def test_force_writes_over_a_non_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "mlforge.yaml").write_text("not: a spec\n")
    res = run("init", NAME, "--path", folder, "--force", "--template", "blank", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (folder / "notes.txt").read_text() == "mine"  # files that are not the scaffold's stay
    assert yaml.safe_load((folder / "mlforge.yaml").read_text())["project"] == NAME
    assert run("validate", cwd=folder).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]


def test_unknown_template_is_refused(tmp_path: Path) -> None:
    res = run("init", NAME, "--template", "nope", cwd=tmp_path)
    _one_line_error(res, "unknown template 'nope'", "churn", "clv", "blank")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["My-Proj", "1shop", "shop-api", "a b", "Shop"])
def test_bad_name_is_refused(tmp_path: Path, bad: str) -> None:
    res = run("init", bad, cwd=tmp_path)
    _one_line_error(res, f"bad project name {bad!r}")
    assert list(tmp_path.iterdir()) == []


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "proj").write_text("x")
    res = run("init", NAME, "--path", tmp_path / "proj", cwd=tmp_path)
    _one_line_error(res, "is not a folder")
    assert (tmp_path / "proj").read_text() == "x"


def test_a_failure_while_building_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(root: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(init_cmd, "_check", broken)
    with pytest.raises(SystemExit) as exc:
        init_cmd.init(NAME, path=tmp_path / "deep" / "proj")
    assert exc.value.code == 2
    assert list(tmp_path.iterdir()) == []


def test_the_wheel_carries_what_init_copies() -> None:
    """pyproject's force-include and mlforge.templates.FROM_REPOSITORY name the same files."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    force = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force == {repo: f"mlforge/templates/{name}" for name, repo in FROM_REPOSITORY.items()}
    for template in init_cmd.TEMPLATES.values():
        assert bundled(template.spec).is_file()
    assert bundled("data/cdnow/CDNOW_master.txt") == REPO / "data/cdnow/CDNOW_master.txt"


def test_the_sample_is_the_same_every_time(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert init_cmd.write_sample_events(a) == init_cmd.write_sample_events(b) > 1000
    assert a.read_bytes() == b.read_bytes()


def test_the_code_location_loads_a_python_spec(tmp_path: Path) -> None:
    """MLFORGE_SPEC=examples/churn_dsl.py: Dagster's CLI builds the same asset graph from the DSL."""
    env = {**_env(), "MLFORGE_SPEC": str(REPO / "examples" / "churn_dsl.py"), "MLFORGE_HOME": str(tmp_path)}
    res = subprocess.run(
        [str(DG), "list", "defs", "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    keys = {a["asset_key"] for a in json.loads(res.stdout)["assets"]}
    assert {
        "churn/raw/transactions",
        "churn/features/customer_activity",
        "churn/deployments/churn-api",
    } <= keys
    bad = tmp_path / "bad.py"
    bad.write_text("project = 42\n")
    res = subprocess.run(
        [str(DG), "list", "defs", "--json"],
        cwd=REPO,
        env={**env, "MLFORGE_SPEC": str(bad)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0 and "bad.py" in res.stdout + res.stderr
