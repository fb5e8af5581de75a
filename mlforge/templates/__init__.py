"""Files `mlforge init` scaffolds a project from, wherever MLForge is installed.

Scaffold-only files (the blank spec, the pyproject/README/workspace templates) live in this folder.
The example specs, the Dagster instance file and the CDNOW data have one home each in the
repository (`mlforge.yaml`, `examples/clv/mlforge.yaml`, `dagster.yaml`, `data/cdnow/`); a wheel
carries them in this folder under the names of `FROM_REPOSITORY` (pyproject's hatch
`force-include`, checked by tests/test_init.py), a source checkout reads them where they are.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The repository root of a source checkout (editable install).
REPOSITORY = HERE.parents[1]

#: Bundled name (inside this folder in a wheel) -> path in the repository.
FROM_REPOSITORY = {
    "churn/mlforge.yaml": "mlforge.yaml",
    "clv/mlforge.yaml": "examples/clv/mlforge.yaml",
    "dagster.yaml": "dagster.yaml",
    "data/cdnow": "data/cdnow",
}


def bundled(name: str) -> Path:
    """The file or folder `name` (e.g. 'churn/mlforge.yaml', 'data/cdnow/CDNOW_master.txt').

    This folder first (a wheel, and the scaffold-only files), else its home in the repository.
    Raises FileNotFoundError when neither has it (a broken installation).
    """
    packaged = HERE / name
    if packaged.exists():
        return packaged
    for bundled_name, repo_path in FROM_REPOSITORY.items():
        if name == bundled_name or name.startswith(bundled_name + "/"):
            candidate = REPOSITORY / repo_path / name[len(bundled_name) :].lstrip("/")
            if candidate.exists():
                return candidate
    raise FileNotFoundError(f"MLForge's bundled file {name!r} is missing (looked in {HERE} and {REPOSITORY})")
