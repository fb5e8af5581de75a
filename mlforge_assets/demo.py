"""The unattended loop, end to end, on a real `dagster-daemon`: `mlforge demo loop` and its test.

1. **prepare** a project folder: the spec with a `replay` section, the source with drift injected
   from a given day (:mod:`mlforge.simulate`), a Dagster instance that runs one run at a time;
2. **backfill** the history before the replay in-process into that instance (raw, features,
   labels, then train → register → deploy for the day before the replay);
3. **run** `dagster-daemon` on the code location: the replay sensor requests one daily refresh
   per day, the drift sensor turns the first drifted day into one retrain, the gate decides the
   promotion, the retrain job rewrites the deployment manifest, automation materializes labels
   as they mature — nobody calls anything;
4. **watch** the instance and report what happened, then stop the daemon (its process group).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

# no public name yet for a backfill's status (the automation's backfills keep the loop busy)
from dagster._core.execution.backfill import BulkActionStatus

from mlforge.config.project import Project
from mlforge.data.simulate import DriftScenario, inject_drift, write_whitespace
from mlforge.deployment.manifest import read_manifest
from mlforge.monitoring.drift_events import DRIFT_TRIGGER_TAG
from mlforge_assets.conditions import AUTOMATION_TAG
from mlforge_assets.metadata import metadata_values
from mlforge_assets.partitions import asset_key
from mlforge_assets.runner import Runner, StepResult
from mlforge_assets.sensors import IN_PROGRESS_STATUSES

INSTANCE_YAML = """\
# The demo's Dagster instance: SQLite under this folder, one run at a time (the replay is a clock),
# dequeued as soon as the previous one ends (the default polls every 5 s).
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
run_queue:
  dequeue_interval_seconds: 1
"""


@dataclass(frozen=True)
class LoopSetup:
    """Where a prepared loop lives."""

    folder: Path
    spec_path: Path
    dagster_home: Path
    replay_start: date
    replay_end: date
    drift_from: date

    @property
    def cutoff(self) -> date:
        """The champion's cutoff before the replay: the day before it."""
        return self.replay_start - timedelta(days=1)

    def env(self) -> dict[str, str]:
        """The environment the daemon and its code server run with."""
        project = self.project()
        return {
            **os.environ,
            "DAGSTER_HOME": str(self.dagster_home),
            "MLFORGE_SPEC": str(self.spec_path),
            "MLFORGE_HOME": str(project.settings.state_dir),
        }

    def project(self) -> Project:
        """The prepared project."""
        return Project.load(self.spec_path)

    def instance(self) -> dg.DagsterInstance:
        """The loop's Dagster instance."""
        return dg.DagsterInstance.from_config(str(self.dagster_home))


def prepare(
    folder: Path,
    spec: dict[str, Any],
    spec_root: Path,
    replay_start: date,
    replay_end: date,
    scenario: DriftScenario,
    interval_seconds: int = 5,
    landing: bool = False,
) -> LoopSetup:
    """Write the loop's project (spec, drifted source, Dagster instance) into `folder`.

    With `landing`, each source is a watched landing folder (`landing/<dataset>/*.txt`) holding
    the history as one file: files dropped there later are picked up by the landing sensor."""
    from mlforge.config.spec import ProjectSpec

    folder = folder.resolve()
    (folder / "data").mkdir(parents=True, exist_ok=True)
    spec = json.loads(json.dumps(spec, default=str))
    base = Project(ProjectSpec.model_validate(spec), spec_root)
    for ds_raw, ds in zip(spec["datasets"], base.spec.datasets, strict=True):
        frame = base.read_source(ds)
        target = folder / "data" / f"{ds.name}.txt"
        source: dict[str, Any] = {"path": str(target), "format": "whitespace"}
        if landing:
            target = folder / "landing" / ds.name / "history.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            source = {"path": str(target.parent / "*.txt"), "format": "whitespace", "watch": True}
        key = base.spec.entity(ds.entity).join_key
        write_whitespace(inject_drift(frame, ds, key, scenario), ds, target)
        ds_raw["source"] = {**ds_raw["source"], **source}
    spec["infrastructure"] = {**spec.get("infrastructure", {}), "state_dir": str(folder / "state")}
    spec["replay"] = {
        "start": replay_start.isoformat(),
        "end": replay_end.isoformat(),
        "interval_seconds": interval_seconds,
    }
    spec_path = folder / "mlforge.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    home = folder / "state" / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    return LoopSetup(folder, spec_path, home, replay_start, replay_end, scenario.drift_from)


def sensor_cursor(setup: LoopSetup, name: str) -> str | None:
    """The cursor of sensor `name` in the loop's instance (None before its first tick)."""
    with setup.instance() as instance:
        for state in instance.all_instigator_state():
            if state.instigator_name == name:
                data = state.instigator_data
                return getattr(data, "cursor", None)
    return None


def backfill(setup: LoopSetup, on_step: Callable[[str, StepResult], None] | None = None) -> list[StepResult]:
    """The history before the replay, into the loop's instance: one champion deployed at the cutoff."""
    project = setup.project()
    with setup.instance() as instance:
        runner = Runner(project, instance)
        plan = runner.quickstart_plan(setup.cutoff, history_end=setup.cutoff)
        return runner.run_plan(plan, on_step)


def start_daemon(setup: LoopSetup) -> subprocess.Popen[bytes]:
    """`dagster-daemon run` on the code location, in its own process group, logging to a file."""
    exe = Path(sys.executable).with_name("dagster-daemon")
    cmd = [str(exe) if exe.exists() else "dagster-daemon", "run", "-m", "mlforge_assets.definitions"]
    log = (setup.folder / "daemon.log").open("ab")
    return subprocess.Popen(
        cmd,
        cwd=setup.folder,
        env=setup.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Stop the daemon and everything it started (its process group), and wait until all are gone."""
    pgid = proc.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc.poll()  # reap the daemon itself
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    proc.wait(timeout=timeout)


@dataclass
class LoopReport:
    """What the loop did, read back from the Dagster instance and storage."""

    seconds: float = 0.0
    finished: bool = False
    replayed_days: list[str] = field(default_factory=list)
    drift_share: dict[str, float] = field(default_factory=dict)
    retrain_runs: list[dict[str, Any]] = field(default_factory=list)
    runs_by_job: dict[str, int] = field(default_factory=dict)
    failed_runs: list[str] = field(default_factory=list)
    automation_runs: list[str] = field(default_factory=list)
    sensor_ticks: dict[str, int] = field(default_factory=dict)
    registered: list[dict[str, Any]] = field(default_factory=list)
    manifest_revision: int | None = None
    manifest_versions: list[int] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A readable summary."""
        out = [f"{'finished' if self.finished else 'NOT finished'} in {self.seconds:.0f} s"]
        out.append(f"replayed days      {', '.join(self.replayed_days) or '-'}")
        for d, s in sorted(self.drift_share.items()):
            out.append(f"  drift {d}   {s:.2f}")
        out.append(f"runs by job        {self.runs_by_job}")
        out.append(f"retrain runs       {[(r['partition'], r['status']) for r in self.retrain_runs]}")
        out.append(f"automation runs    {sorted(self.automation_runs)}")
        for r in self.registered:
            out.append(f"  registered       {r}")
        out.append(f"manifest           revision {self.manifest_revision}, versions {self.manifest_versions}")
        out.append(f"sensor ticks       {self.sensor_ticks}")
        if self.failed_runs:
            out.append(f"FAILED runs        {self.failed_runs}")
        return out


def observe(project: Project, instance: dg.DagsterInstance, ticks: bool = False) -> LoopReport:
    """The loop's state now (sensor tick counts only with `ticks`: they cost a query per sensor)."""
    p = project.spec.project
    report = LoopReport()
    runs = instance.get_run_records(dg.RunsFilter())
    for rec in runs:
        run = rec.dagster_run
        report.runs_by_job[run.job_name] = report.runs_by_job.get(run.job_name, 0) + 1
        if run.status == dg.DagsterRunStatus.FAILURE:
            report.failed_runs.append(f"{run.job_name}:{run.tags.get('dagster/partition')}:{run.run_id[:8]}")
        if run.tags.get(AUTOMATION_TAG) or run.job_name == "__ASSET_JOB":
            keys = sorted(k.to_user_string().removeprefix(f"{p}/") for k in run.asset_selection or [])
            report.automation_runs.append(f"{','.join(keys)} {run.tags.get('dagster/partition', '')}".strip())
        if run.tags.get("mlforge/replay") and run.status == dg.DagsterRunStatus.SUCCESS:
            report.replayed_days.append(run.tags.get("dagster/partition", "?"))
        if run.tags.get(DRIFT_TRIGGER_TAG) == "drift":
            report.retrain_runs.append(
                {
                    "partition": run.tags.get("dagster/partition"),
                    "status": run.status.value,
                    "drift_share": run.tags.get("mlforge/drift_share"),
                    "drift_partition": run.tags.get("mlforge/drift_partition"),
                    "run_id": run.run_id,
                }
            )
    report.replayed_days.sort()
    for m in project.spec.models:
        recs = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key(project, "monitoring", m.name, "drift")), limit=1000
        ).records
        for r in recs:
            mat = r.asset_materialization
            if mat and mat.partition and "drift_share" in mat.metadata:
                report.drift_share.setdefault(mat.partition, float(mat.metadata["drift_share"].value))  # type: ignore[arg-type]
        recs = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset_key(project, "models", m.name, "registered")), limit=1000
        ).records
        for r in sorted(recs, key=lambda r: r.storage_id):
            mat = r.asset_materialization
            if mat:
                md = metadata_values(mat.metadata)
                report.registered.append(
                    {
                        "partition": mat.partition,
                        "version": md.get("model_version"),
                        "champion": md.get("champion_version"),
                        "gate": md.get("gate"),
                    }
                )
    for state in instance.all_instigator_state() if ticks else []:
        done = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=10_000)
        report.sensor_ticks[state.instigator_name] = len(done)
    for dep in project.spec.deployments:
        manifest = read_manifest(project.storage, dep.endpoint)
        if manifest:
            report.manifest_revision = manifest.revision
            report.manifest_versions = [v.version for v in manifest.variants]
    return report


def watch(
    setup: LoopSetup,
    timeout: float,
    settle_seconds: float = 15.0,
    on_change: Callable[[LoopReport], None] | None = None,
) -> LoopReport:
    """Poll the instance until the replay is done and nothing ran for `settle_seconds`, or timeout."""
    t0 = time.monotonic()
    last_activity = t0
    seen: tuple[Any, ...] = ()
    days = (setup.replay_end - setup.replay_start).days + 1
    project = setup.project()
    with setup.instance() as instance:
        while True:
            report = observe(project, instance)
            busy = bool(
                instance.get_run_records(dg.RunsFilter(statuses=list(IN_PROGRESS_STATUSES)), limit=1)
            ) or bool(instance.get_backfills(status=BulkActionStatus.REQUESTED, limit=1))
            now = time.monotonic()
            state = (len(report.replayed_days), sum(report.runs_by_job.values()), bool(busy))
            report.seconds = now - t0
            if state != seen:
                seen, last_activity = state, now
                if on_change:
                    on_change(report)
            finished = (
                len(report.replayed_days) >= days and not busy and now - last_activity >= settle_seconds
            )
            if finished or now - t0 > timeout:
                report = observe(project, instance, ticks=True)
                report.seconds, report.finished = now - t0, finished
                return report
            time.sleep(1.0)
