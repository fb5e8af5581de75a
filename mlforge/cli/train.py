"""`mlforge train MODEL`: train and register one cutoff through the Dagster graph, with live progress."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import date
from typing import Annotated, Any

from cyclopts import Parameter

from mlforge.cli.options import Home, Spec, fail, load_project
from mlforge.config.project import dagster_home

#: Dagster run tag that lets the command find the run it started (to follow its steps).
CLI_RUN_TAG = "mlforge/cli_run"


def parse_day(value: str, option: str) -> date:
    """A day given on the command line, or a one-line error naming the option."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"{option} must be a day like 1998-03-31, got {value!r}")
        raise  # unreachable: fail exits


def train(
    model: Annotated[str, Parameter(help="The model's name in the spec.")],
    /,
    cutoff: str | None = None,
    experiment: str | None = None,
    spec: Spec = None,
    home: Home = None,
) -> None:
    """Train MODEL for a cutoff and register it through the gate, as a Dagster run (visible in the UI).

    Parameters
    ----------
    cutoff
        Training cutoff day (default: the last partition). Its training and holdout labels must
        have matured and be materialized (``mlforge quickstart`` backfills them).
    experiment
        MLflow experiment of the training run (default: ``<project>/<model>``).
    """
    from mlforge.io.timeline import Cadence, training_dates

    project = load_project(spec, home)
    m = project.spec.model(model)
    p = project.spec.partitions
    cadence = Cadence.of(project.spec)
    day = parse_day(cutoff, "--cutoff") if cutoff else cadence.snap(p.end)
    if not p.start <= day <= p.end:
        fail(f"--cutoff {day} is outside the partitions {p.start}..{p.end}")
    day = cadence.snap(day)
    train_days, holdout = training_dates(m, day, cadence)
    if train_days[0] < p.start:
        fail(
            f"--cutoff {day}: {model} learns from snapshots back to {train_days[0]}, before the first "
            f"partition {p.start} (window {m.training.window_days} days + 2 horizons of "
            f"{m.label.horizon_days}); choose a later cutoff"
        )
    import dagster as dg

    from mlforge.features.refs import service_views
    from mlforge_assets.partitions import asset_key
    from mlforge_assets.runner import Runner

    dagster_home(project.settings.state_dir, project.root)
    with dg.DagsterInstance.get() as instance:
        needed = sorted({cadence.key_of(d) for d in [*train_days, holdout]})
        inputs = [("labels", model, needed)]
        inputs += [
            ("features", v, [*needed, cadence.key_of(day)])
            for v in service_views(project.spec, m.feature_service)
        ]
        for stage, name, days in inputs:
            have = instance.get_materialized_partitions(asset_key(project, stage, name))
            missing = sorted(set(days) - have)
            if missing:
                fail(
                    f"{stage}/{name} is not materialized for {len(missing)} day(s) {model} at cutoff "
                    f"{day} reads ({missing[0]} .. {missing[-1]}): backfill them first, e.g. "
                    f"`mlforge quickstart --cutoff {day}` or the Dagster UI"
                )
        runner = Runner(project, instance)
        keys = [runner.key("models", model, "trained"), runner.key("models", model, "registered")]
        tags: dict[str, str] = {"mlforge/trigger": "cli", CLI_RUN_TAG: uuid.uuid4().hex}
        if experiment:
            tags["mlforge/experiment"] = experiment
        print(
            f"training {model} for cutoff {day} ({len(train_days)} snapshots, holdout {holdout}) …",
            flush=True,
        )
        result = _with_progress(instance, tags[CLI_RUN_TAG], lambda: runner.materialize(keys, day, tags=tags))
    _report(project, model, result, holdout)


def _with_progress(instance: Any, token: str, work: Any) -> Any:
    """Run `work` in a thread and show its Dagster run's steps live (rich) until it returns."""
    import dagster as dg
    from rich.live import Live
    from rich.text import Text

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    t0 = time.monotonic()
    thread.start()
    types = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
    }
    with Live(Text("starting the run …"), refresh_per_second=4, transient=False) as live:
        run_id: str | None = None
        while thread.is_alive():
            thread.join(0.5)
            if run_id is None:
                runs = instance.get_runs(filters=dg.RunsFilter(tags={CLI_RUN_TAG: token}), limit=1)
                run_id = runs[0].run_id if runs else None
            lines = [f"run {run_id[:8] if run_id else '…'}  {time.monotonic() - t0:5.0f} s"]
            if run_id:
                steps: dict[str, tuple[str, float]] = {}
                for rec in instance.all_logs(run_id, of_type=types):
                    ev = rec.dagster_event
                    if ev is None or ev.step_key is None:
                        continue
                    started = steps.get(ev.step_key, ("", rec.timestamp))[1]
                    status = {"STEP_START": "running", "STEP_SUCCESS": "done", "STEP_FAILURE": "FAILED"}
                    kind = ev.event_type_value
                    steps[ev.step_key] = (status[kind], rec.timestamp if kind == "STEP_START" else started)
                for step, (state, started) in steps.items():
                    mark = {"running": "…", "done": "✓", "FAILED": "✗"}[state]
                    extra = f" {time.time() - started:4.0f} s" if state == "running" else ""
                    lines.append(f"  {mark} {step.replace('__', '/')}: {state}{extra}")
            live.update(Text("\n".join(lines)))
    if "error" in box:
        raise box["error"]
    return box["result"]


def _report(project: Any, model: str, result: Any, holdout: date) -> None:
    """The metrics, version and gate decision of a `train` run."""
    p = project.spec.project
    trained = result.metadata.get(f"{p}/models/{model}/trained", {})
    registered = result.metadata.get(f"{p}/models/{model}/registered", {})
    m = project.spec.model(model)
    print(f"\ndone in {result.seconds:.0f} s — Dagster run {result.run_id}")
    metrics = {
        k.removeprefix("holdout_"): v
        for k, v in trained.items()
        if k.startswith("holdout_") and isinstance(v, float)
    }
    if metrics:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
        print(f"  holdout           {shown} on {trained.get('holdout_rows')} rows of the {holdout} snapshot")
    print(f"  gate metric       {m.gate_metric}")
    print(
        f"  version           {model} v{registered.get('model_version')} (champion: v{registered.get('champion_version')})"
    )
    print(f"  gate              {registered.get('gate')}")
    if trained.get("mlflow_run"):
        print(f"  mlflow run        {trained.get('mlflow_run')}")
    endpoints = project.spec.endpoints_of(model)
    if endpoints:
        print(
            f"\nnext: mlforge deploy {model} --version {registered.get('model_version')} --endpoint {endpoints[0]}"
        )
