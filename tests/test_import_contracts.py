"""The import contracts in pyproject.toml hold, and they do fail when a layer is crossed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("mlforge", "mlforge_assets", "mlforge_resources", "serving")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(lint.parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the four packages and the contracts, to break on purpose."""
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}\n")


def test_contracts_hold_on_the_tree(tree: Path) -> None:
    """All three contracts are kept by the code as it is."""
    out = _lint_imports(tree)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 kept, 0 broken" in out.stdout


def test_core_importing_dagster_breaks_the_contract(tree: Path) -> None:
    """A core module that imports Dagster is reported, by module and line."""
    _append(tree / "mlforge" / "io" / "timeline.py", "import dagster  # noqa")
    out = _lint_imports(tree)
    assert out.returncode != 0
    assert "mlforge.io.timeline -> dagster" in out.stdout


def test_serving_importing_mlflow_breaks_the_contract(tree: Path) -> None:
    """Serving may not import MLflow, even lazily."""
    _append(tree / "serving" / "redis_reader.py", "def _f() -> None:\n    import mlflow  # noqa")
    out = _lint_imports(tree)
    assert out.returncode != 0
    assert "serving.redis_reader -> mlflow" in out.stdout


def test_resources_importing_assets_breaks_the_layers(tree: Path) -> None:
    """Imports point one way: a resource module that imports the graph is reported."""
    _append(tree / "mlforge_resources" / "__init__.py", "import mlforge_assets.stage  # noqa")
    out = _lint_imports(tree)
    assert out.returncode != 0
    assert "mlforge_resources -> mlforge_assets.stage" in out.stdout
