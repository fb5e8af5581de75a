"""`mlforge monitor <endpoint>`: the real command on a copy of the quickstart's monitoring state
(the session's compact example: its last day, 1997-09-30, is the deployed and monitored day)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from projects import END, HORIZON

from mlforge.io import layout
from mlforge.io.storage import LocalStorage, write_json
from mlforge.monitoring.performance import evaluate_day
from mlforge.monitoring.prediction_log import PredictionBatch, batches_to_frame

DAY_BEFORE = END - timedelta(days=1)
MATURES_ON = END + timedelta(days=HORIZON)  # 1997-10-30, after the history


@pytest.fixture(scope="module")
def spec(materialized) -> Path:  # type: ignore[no-untyped-def]
    """The compact example's mlforge.yaml."""
    return materialized.spec_path


def _mlforge(repo_root: Path, spec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MLFORGE_HOME")}
    return subprocess.run(
        [sys.executable, "-m", "mlforge.cli", *args, "--spec", str(spec)],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def state(materialized, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """The session's manifests and drift reports, plus a performance summary of the last day."""
    dst = tmp_path_factory.mktemp("monitor") / "state"
    for part in ("deployments", "monitoring"):
        shutil.copytree(materialized.state_dir / "storage" / part, dst / "storage" / part)
    at = datetime(END.year, END.month, END.day, 9, tzinfo=UTC).timestamp()
    log = batches_to_frame(
        [
            PredictionBatch(
                endpoint="churn-api",
                revision=1,
                entity_ids=["00001", "00002", "00003", "00004"],
                features=np.zeros((4, 1), dtype=np.float32),
                found=np.array([True, True, True, False]),
                variants=["champion"] * 4,
                scores=np.array([0.2, 0.4, 0.9, 0.0]),
                shadow_scores={},
                latency_ms=12.5,
                request_id="r1",
                timestamp=at,
                feature_names=("x",),
                versions=[1] * 4,
            )
        ]
    )
    perf = evaluate_day(
        END,
        horizon_days=HORIZON,
        labels=None,
        predictions=None,
        log=log,
        entity_key="customer_id",
        champion_version=1,
    )
    write_json(LocalStorage(dst / "storage"), layout.performance_summary("churn", END), perf.to_json())
    return dst


def test_monitor_prints_deployment_drift_and_performance(state: Path, spec: Path, repo_root: Path) -> None:
    res = _mlforge(repo_root, spec, "monitor", "churn-api", "--home", str(state))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    print(out)
    lines = out.splitlines()
    assert lines[0] == "churn-api: model churn, revision 1, blue_green"
    assert lines[1].split() == ["champion", "v1", "traffic", "100%"]
    header = next(ln for ln in lines if ln.startswith("day "))
    assert header.split() == [
        "day", "drift", "drifted", "champion", "performance", "auc", "f1", "p50", "ms", "p99", "ms", "errors"
    ]  # fmt: skip
    (row,) = [ln for ln in lines if ln.startswith(str(END))]
    # drift share of the quickstart's clean day, its champion, and the served day's operations
    assert " no " in row and " v1 " in row
    assert f"labels not matured (on {MATURES_ON})" in row
    assert row.split()[-3:] == ["12.5", "12.5", "25.00%"]  # p50, p99, one not-found row of four
    # columns are aligned: every cell of the row starts where its header does
    assert row.index("labels not matured") == header.index("performance")
    assert f"latest drift report: monitoring/churn/drift/date={END}/report.html" in out


def test_monitor_open_writes_the_drift_report(state: Path, spec: Path, repo_root: Path) -> None:
    res = _mlforge(repo_root, spec, "monitor", "churn-api", "--home", str(state), "--open", "--no-browser")
    assert res.returncode == 0, res.stderr
    path = Path(res.stdout.strip().splitlines()[-1].rsplit(" ", 1)[-1])
    assert path == state / "reports" / f"churn-api-drift-{END}.html"
    html = path.read_text(encoding="utf-8")
    # Evidently 0.7's report does not name itself; its dataset-drift widget does
    assert html.lstrip().startswith("<") and "<html" in html.lower() and "Drifted Columns" in html
    assert (
        path.read_bytes() == (state / f"storage/monitoring/churn/drift/date={END}/report.html").read_bytes()
    )


def test_monitor_unknown_endpoint_names_the_known_ones(state: Path, spec: Path, repo_root: Path) -> None:
    res = _mlforge(repo_root, spec, "monitor", "nope", "--home", str(state))
    assert res.returncode == 2
    assert res.stderr.strip() == "error: unknown endpoint 'nope' (known: ['churn-api'])"
    assert res.stdout == ""


def test_monitor_days_limits_the_table(state: Path, spec: Path, repo_root: Path) -> None:
    storage = LocalStorage(state / "storage")
    extra = state / f"storage/monitoring/churn/drift/date={DAY_BEFORE}"
    shutil.copytree(state / f"storage/monitoring/churn/drift/date={END}", extra)
    try:
        assert storage.exists(f"monitoring/churn/drift/date={DAY_BEFORE}/summary.json")
        both = _mlforge(repo_root, spec, "monitor", "churn-api", "--home", str(state))
        one = _mlforge(repo_root, spec, "monitor", "churn-api", "--home", str(state), "--days", "1")
    finally:
        shutil.rmtree(extra)
    days = [ln.split()[0] for ln in both.stdout.splitlines() if ln.startswith("1997-")]
    assert days == [str(DAY_BEFORE), str(END)]
    assert [ln.split()[0] for ln in one.stdout.splitlines() if ln.startswith("1997-")] == [str(END)]
