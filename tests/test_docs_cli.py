"""docs/cli/*.md run: every `$ mlforge …` line, page after page, in a copy of the materialized
compact example (its spec as ./mlforge.yaml, its state as the default ./.mlforge), with the full
example's dates mapped to the compact project's. The lines under a command must appear in its
output (`…` for any text) and `(exit 2)` names its exit code (0 otherwise)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli"
PAGES = ["project.md", "models.md", "deploy.md", "data.md", "monitor.md", "export.md"]  # in this order
DATES = {"1998-03-31": "1997-08-31"}
BIN = Path(sys.executable).parent


def _commands(page: Path) -> list[tuple[str, list[str], int]]:
    """(command, expected lines, exit code) of every `$` line of the page's console blocks."""
    out: list[tuple[str, list[str], int]] = []
    for block in re.findall(r"```console\n(.*?)```", page.read_text(), flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                out.append((line[2:], [], 0))
            elif line.strip() == "(exit 2)":
                out[-1] = (out[-1][0], out[-1][1], 2)
            elif line.strip():
                out[-1][1].append(line)
    return out


def _squash(text: str) -> str:
    return re.sub(r"[ \t]+", " ", text)


def _appears(expected: str, output: str) -> bool:
    at = 0
    for part in _squash(expected.strip()).split("…"):
        at = output.find(part.strip(), at)
        if at < 0:
            return False
    return True


def test_every_cli_example_runs(materialized, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copyfile(materialized.spec_path, folder / "mlforge.yaml")
    shutil.copytree(materialized.state_dir, folder / ".mlforge")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFORGE_", "DAGSTER_", "MLFLOW_"))}
    ran = 0
    for page in PAGES:
        for command, expected, code in _commands(DOCS / page):
            if "# not run here" in command:
                continue
            for full, compact in DATES.items():
                command = command.replace(full, compact)
            args = shlex.split(command, comments=True)
            assert args[0] == "mlforge", f"{page}: {command}"
            proc = subprocess.run(
                [str(BIN / "mlforge"), *args[1:]],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            output = _squash(proc.stdout + proc.stderr)
            where = f"{page}: $ {command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            assert proc.returncode == code, where
            assert "Traceback" not in output, where
            missing = [e for e in expected if not _appears(e, output)]
            assert not missing, f"{missing} not in the output of {where}"
            ran += 1
    assert ran >= 30
