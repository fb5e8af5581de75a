"""A Python file as the spec: its module-level ``project`` is evaluated into the YAML's mapping.

``project`` is a :class:`mlforge.dsl.Project` or :class:`mlforge.dsl.Pipeline` (anything with a
``to_dict()``), a ProjectSpec, or a plain mapping holding what the YAML would. The mapping is then
validated by `parse_spec` like a YAML document, so every problem — a syntax error, an exception
while the file runs, no ``project``, a bad field — is a SpecError naming the file, never a
traceback from inside it. This module only runs the file: it imports nothing of `mlforge.dsl`.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from mlforge.errors import SpecError

#: The name a Python spec binds its project to.
PROJECT_NAME = "project"


def read_python_spec(path: Path) -> Any:
    """Run the file at `path` and return its ``project`` as the mapping a YAML file would hold."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(where, [f"not UTF-8 text (byte {exc.start})"]) from None
    try:
        code = compile(text, where, "exec")
    except SyntaxError as exc:
        at = f"line {exc.lineno}, column {exc.offset}: " if exc.lineno else ""
        raise SpecError(where, [f"{at}not valid Python: {exc.msg}"]) from None
    namespace: dict[str, Any] = {"__name__": "__mlforge_spec__", "__file__": where}
    try:
        exec(code, namespace)  # the project's own spec file, as `dagster dev -f` runs one
    except SpecError as exc:  # e.g. the file calls Pipeline.build() itself
        raise SpecError(where, exc.problems) from None
    except Exception as exc:
        raise SpecError(where, [f"{_line(exc, where)}{_one_line(exc)}"]) from None
    if PROJECT_NAME not in namespace:
        raise SpecError(
            where,
            [
                f"no module-level `{PROJECT_NAME}`: a Python spec defines "
                f"`{PROJECT_NAME} = Project(…)` (from mlforge.dsl) or a Pipeline"
            ],
        )
    return _document(namespace[PROJECT_NAME], where)


def _document(obj: Any, where: str) -> Any:
    """The YAML-like mapping of a module's `project`."""
    from pydantic import BaseModel

    if isinstance(obj, BaseModel):
        return obj.model_dump(exclude_unset=True)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        try:
            return to_dict()
        except Exception as exc:
            raise SpecError(where, [f"{PROJECT_NAME}: {_one_line(exc)}"]) from None
    if isinstance(obj, dict):
        return obj
    raise SpecError(
        where,
        [
            f"{PROJECT_NAME}: a {type(obj).__name__}, expected a mlforge.dsl Project or Pipeline (or a mapping)"
        ],
    )


def _line(exc: BaseException, where: str) -> str:
    """'line N: ' of the spec file's innermost frame in the exception's traceback."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == where]
    return f"line {frames[-1].lineno}: " if frames else ""


def _one_line(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0]}" if first else type(exc).__name__
