"""The code location: `dagster dev -m mlforge_assets.definitions` / `dagster asset materialize …`.

The project is found through $MLFORGE_SPEC, else the nearest mlforge.yaml from the working folder,
else the example project beside this package.
"""

from __future__ import annotations

from pathlib import Path

from mlforge.config.project import Project
from mlforge.errors import SpecError
from mlforge_assets.factory import build_definitions


def _load_project() -> Project:
    try:
        return Project.load()
    except SpecError as exc:
        if exc.problems == ["file not found (set MLFORGE_SPEC or run inside a project)"]:
            return Project.load(Path(__file__).resolve().parents[1] / "mlforge.yaml")
        raise


defs = build_definitions(_load_project())
