"""The code location: `dagster dev -m mlforge_assets.definitions` / `dagster asset materialize …`.

The project is the one `resolve_spec_path` names ($MLFORGE_SPEC — a YAML or a Python spec, see
docs/dsl.md — else the nearest mlforge.yaml from the working folder), else the example project
beside this package. The spec loaded is logged;
a $MLFORGE_SPEC naming a missing file stops the code location instead of loading another project.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mlforge.config.project import SPEC_ENV, Project, resolve_spec_path
from mlforge.config.settings import get_settings
from mlforge.errors import SpecError
from mlforge_assets.factory import build_definitions

EXAMPLE_SPEC = Path(__file__).resolve().parents[1] / "mlforge.yaml"

logger = logging.getLogger(__name__)


def _log_to_stderr() -> None:
    # The code server configures no Python logging, and INFO records that find no handler are
    # dropped: without this the line naming the spec would never reach `dagster dev`'s terminal.
    if not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s - mlforge - %(levelname)s - %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def spec_for_code_location() -> tuple[Path, str]:
    """The spec to load and where it came from (a missing $MLFORGE_SPEC raises SpecError)."""
    named = get_settings().spec is not None
    try:
        path = resolve_spec_path()
    except SpecError:
        if named:
            raise  # $MLFORGE_SPEC names a file that is not there: refuse, never another project
        return (
            EXAMPLE_SPEC,
            f"the bundled example: ${SPEC_ENV} is unset and no mlforge.yaml is above {Path.cwd()}",
        )
    return path, f"${SPEC_ENV}" if named else f"the nearest mlforge.yaml above {Path.cwd()}"


def load_project() -> Project:
    """The code location's project, with a log line naming the spec it was loaded from."""
    path, origin = spec_for_code_location()
    project = Project.load(path)
    logger.info(
        "code location: project '%s' from spec %s (%s)", project.spec.project, project.spec_path, origin
    )
    return project


_log_to_stderr()
defs = build_definitions(load_project())
