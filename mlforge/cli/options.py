"""What every command shares: the --spec/--home options, loading the project, failing with one line."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

Spec = Annotated[
    Path | None,
    Parameter(
        help="The spec: a YAML or Python (.py, docs/dsl.md) file, or a folder holding mlforge.yaml "
        "(default: $MLFORGE_SPEC, else the nearest mlforge.yaml upward)."
    ),
]


Home = Annotated[
    Path | None, Parameter(help="State folder (default: $MLFORGE_HOME or the spec's state_dir).")
]


def fail(msg: str, code: int = 2) -> None:
    """Print `error: msg` to stderr and exit (2: bad input, 1: the work itself failed)."""
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(code)


def load_project(spec: Path | None, home: Path | None):  # type: ignore[no-untyped-def]
    """The project of --spec/--home (imports the core only when a command runs)."""
    from mlforge.config.project import Project

    return Project.load(spec, state_dir=home)


def parse_day(value: str, option: str) -> date:
    """A day given on the command line, or a one-line error naming the option (exit code 2)."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} must be a day like 1998-03-31 (YYYY-MM-DD), got {value!r}")
        raise  # unreachable: fail exits
