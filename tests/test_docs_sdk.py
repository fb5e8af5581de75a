"""docs/sdk.md runs: every ```python block, in order, in one namespace, against a copy of the
materialized compact example (its spec as ./mlforge.yaml, its state as the default ./.mlforge),
with the page's CUTOFF and DAY replaced by the compact project's dates."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "sdk.md"
DATES = {"CUTOFF": "1997-08-31", "DAY": "1997-09-30"}


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_every_sdk_example_runs(materialized, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copyfile(materialized.spec_path, folder / "mlforge.yaml")
    shutil.copytree(materialized.state_dir, folder / ".mlforge")
    for name in ("MLFORGE_HOME", "MLFORGE_SPEC", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(folder)
    blocks = _blocks()
    assert len(blocks) >= 7
    namespace: dict[str, object] = {}
    for i, block in enumerate(blocks):
        for name, value in DATES.items():
            block = re.sub(rf'^{name} = "[0-9-]+"', f'{name} = "{value}"', block, flags=re.M)
        exec(compile(block, f"{PAGE}:block{i}", "exec"), namespace)  # the page's own examples
    # what the examples did, checked on the stores
    client = namespace["client"]
    assert namespace["new_version"] == 2 and namespace["champion"] == 1
    runs = client.project.tracker.runs("notebook")  # type: ignore[attr-defined]
    assert [r["metrics"] for r in runs] == [{"auc": 0.79}]
    manifest = client.deployments.status("churn-api")  # type: ignore[attr-defined]
    # deploy (challenger 20 %), traffic 90/10, rollback: the 80/20 split again, as a fourth revision
    assert manifest.revision == 4 and [(v.name, v.version, v.traffic) for v in manifest.variants] == [
        ("champion", 1, 80),
        ("challenger", 2, 20),
    ]
    assert namespace["report"].drift_share is not None  # type: ignore[attr-defined]
