"""`mlforge init`: scaffold a project folder that runs as it is (`mlforge quickstart`, `dg list defs`).

The scaffold is built in a temporary folder beside the target and moved into place only once it
is complete and its spec validates, so a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from mlforge.cli.options import fail

CDNOW = "data/cdnow/CDNOW_master.txt"


@dataclass(frozen=True)
class Template:
    """One kind of scaffold: which spec it starts from and where its data comes from."""

    spec: str  # bundled name of the spec (mlforge.templates.bundled)
    about: str  # one line for the README
    cdnow: bool  # copies the CDNOW history (else: generates the blank sample)


TEMPLATES = {
    "churn": Template(
        "churn/mlforge.yaml", "90-day churn of CDNOW customers (binary, XGBoost), blue-green endpoint", True
    ),
    "clv": Template(
        "clv/mlforge.yaml",
        "90-day customer value (regression, LightGBM) and buying again in 30 days (logistic regression)",
        True,
    ),
    "blank": Template(
        "blank/mlforge.yaml",
        "a minimal skeleton on a generated sample: one dataset, feature view, model and endpoint",
        False,
    ),
}


def init(
    name: str,
    /,
    *,
    template: Annotated[str, Parameter(help="churn, clv or blank.")] = "churn",
    path: Annotated[Path | None, Parameter(help="The project folder (default: ./NAME).")] = None,
    force: Annotated[
        bool, Parameter(help="Write into a non-empty folder, replacing the scaffold's files there.")
    ] = False,
) -> None:
    """Scaffold a project folder: mlforge.yaml, sample data, pyproject.toml (dg), Dagster files, README.

    Parameters
    ----------
    name
        Project name: lower-case letters, digits and _, starting with a letter (it prefixes
        every asset key and names the code location).
    """
    from mlforge.config.spec import NAME  # the spec's own rule for names: NAME prefixes every asset key

    if not re.match(NAME, name):
        fail(
            f"bad project name {name!r}: use lower-case letters, digits and _, starting with a letter "
            "(it prefixes every asset key)"
        )
    if template not in TEMPLATES:
        fail(f"unknown template {template!r} (choose one of: {', '.join(TEMPLATES)})")
    target = (path if path is not None else Path(name)).expanduser().absolute()
    if target.exists() and not target.is_dir():
        fail(f"{target} exists and is not a folder")
    existing = sorted(p.name for p in target.iterdir()) if target.is_dir() else []
    if existing and not force:
        shown = ", ".join(existing[:3]) + (" …" if len(existing) > 3 else "")
        fail(f"{target} is not empty ({shown}): pick another --path, or pass --force to write over it")

    anchor = next(p for p in (target.parent, *target.parent.parents) if p.is_dir())
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.mlforge-init-", dir=anchor))
    try:
        files = _build(staging, name, template, TEMPLATES[template])
        _check(staging)
        _move_into_place(staging, target)
    except OSError as exc:
        fail(f"cannot scaffold {target}: {exc}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"created {target} — project '{name}' from the {template} template:")
    for f in files:
        print(f"  {f}")
    shown = os.path.relpath(target) if target.is_relative_to(Path.cwd()) else str(target)
    print(f"\nnext:\n  cd {shown}\n  mlforge quickstart\n  dg list defs")


def _build(root: Path, name: str, template_name: str, template: Template) -> list[str]:
    """Write the whole scaffold into `root`; returns the files written (relative paths)."""
    from mlforge.templates import REPOSITORY, bundled

    spec_text = _rename_project(bundled(template.spec).read_text(encoding="utf-8"), name)
    if template.cdnow:
        # every source of the example reads the CDNOW history: point it at the scaffold's copy
        spec_text = re.sub(r"(?m)^(\s*path:\s*)\S*CDNOW_master\.txt\s*$", rf"\g<1>{CDNOW}", spec_text)
        spec_text = spec_text.replace(
            "`uv run mlforge quickstart --spec examples/clv/mlforge.yaml` (state in examples/clv/.mlforge)",
            "`mlforge quickstart` in this folder (state in .mlforge)",
        )
        (root / "data" / "cdnow").mkdir(parents=True)
        for f in ("CDNOW_master.txt", "README.md"):
            shutil.copyfile(bundled(f"data/cdnow/{f}"), root / "data" / "cdnow" / f)
        data = (
            f"`{CDNOW}` is a copy of the CDNOW purchase history (2.5 MB, 69,659 purchases of 23,570 "
            "customers, 1997-01 … 1998-06; MIT-licensed via the `lifetimes` package, see "
            "`data/cdnow/README.md`), so the folder runs on its own. Point `datasets[].source.path` "
            "at your own files to use them instead."
        )
    else:
        (root / "data").mkdir()
        rows = write_sample_events(root / "data" / "events.csv")
        data = (
            f"`data/events.csv` is a generated sample ({rows:,} purchases of 300 users over 121 days, "
            "seeded: the same on every `mlforge init`). Replace it with your own file and adapt "
            "`datasets:` in mlforge.yaml."
        )
    (root / "mlforge.yaml").write_text(spec_text, encoding="utf-8")

    import yaml

    spec = yaml.safe_load(spec_text)
    fields = {
        "name": name,
        "template": template_name,
        "about": template.about,
        "data": data,
        "first_day": str(spec["partitions"]["start"]),
        "first_asset": f"{name}/raw/{spec['datasets'][0]['name']}",
        "mlforge_source": str(REPOSITORY)
        if (REPOSITORY / "pyproject.toml").is_file()
        else "/path/to/mlforge",
    }
    for out in ("pyproject.toml", "README.md", "workspace.yaml"):
        text = bundled(f"{out}.tmpl").read_text(encoding="utf-8").format(**fields)
        (root / out).write_text(text, encoding="utf-8")
    shutil.copyfile(bundled("dagster.yaml"), root / "dagster.yaml")
    (root / ".gitignore").write_text(".mlforge/\n", encoding="utf-8")
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _rename_project(spec_text: str, name: str) -> str:
    """The spec with `project: <name>` (comments and everything else as they were)."""
    renamed, n = re.subn(r"(?m)^project:.*$", f"project: {name}", spec_text, count=1)
    if n != 1:
        raise FileNotFoundError("the template spec has no top-level `project:` line")
    return renamed


def _check(root: Path) -> None:
    """The scaffold's spec must validate as it is (its data files included)."""
    from mlforge.config.spec import load_spec

    load_spec(root / "mlforge.yaml")


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename the finished scaffold to `target`; into an existing folder (--force) file by file."""
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
        return
    if not any(target.iterdir()):
        target.rmdir()
        staging.rename(target)
        return
    for src in sorted(p for p in staging.rglob("*") if p.is_file()):
        dest = target / src.relative_to(staging)
        if dest.is_dir():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)


def write_sample_events(path: Path, users: int = 300, seed: int = 7) -> int:
    """The blank template's sample: purchases of `users` users, 2024-01-01 … 2024-04-30 (seeded).

    Every user buys at their own daily rate and some stop for good after a while, so a churn
    label has both classes. Returns the number of rows written.
    """
    import random
    from datetime import date, timedelta

    rng = random.Random(seed)
    start, days = date(2024, 1, 1), 121
    lines = ["user_id,ts,amount"]
    for u in range(users):
        rate = rng.uniform(0.03, 0.4)
        first = rng.randrange(0, 30)
        last = rng.randrange(first + 20, days + 60)  # after `days`: still active at the end
        for d in range(first, min(last, days)):
            if rng.random() < rate:
                amount = round(rng.lognormvariate(3.0, 0.6), 2)
                lines.append(f"u{u:04d},{start + timedelta(days=d):%Y-%m-%d},{amount}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1
