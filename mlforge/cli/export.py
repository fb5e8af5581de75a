"""`mlforge export`: the project's spec written out as YAML or as Python DSL source."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

from cyclopts import Parameter

from mlforge.cli.options import Spec


def export(
    format: Annotated[Literal["yaml", "python"], Parameter(name="--format")] = "yaml",
    spec: Spec = None,
    output: Annotated[Path | None, Parameter(name=["--output", "-o"])] = None,
) -> None:
    """Print the project as YAML or as Python DSL source (or write it to a file).

    Parameters
    ----------
    format
        yaml (an mlforge.yaml document) or python (a spec file defining `project`, see docs/dsl.md).
    output
        Write to this file instead of printing (atomically: a temporary file renamed over it).
        Relative data paths in the spec stay relative: put the file in the spec's folder.
    """
    from mlforge.config.project import resolve_spec_path
    from mlforge.config.spec import load_spec
    from mlforge.dsl import python_source, yaml_source

    path = resolve_spec_path(spec)
    project = load_spec(path, check_files=False)  # a conversion: the data need not be there
    origin = path.name
    text = python_source(project, origin) if format == "python" else yaml_source(project, origin)
    if output is None:
        sys.stdout.write(text)
        return
    write_atomically(output, text)
    print(f"wrote {output} ({format}, project '{project.project}')", file=sys.stderr)


def write_atomically(target: Path, text: str) -> None:
    """Write `text` to `target` atomically (temp file beside it, then rename)."""
    from mlforge.io.storage import write_file_atomically

    write_file_atomically(target.expanduser(), text.encode("utf-8"))
