"""`mlforge train MODEL`: train and register one cutoff through the Dagster graph, with live progress."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from cyclopts import Parameter

from mlforge.cli.options import Home, Spec, fail, load_project, parse_day
from mlforge.cli.progress import follow_run
from mlforge.cli.project import holdout_figures


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

    from mlforge.config.project import dagster_home
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
        tags: dict[str, str] = {"mlforge/trigger": "cli"}
        if experiment:
            tags["mlforge/experiment"] = experiment
        print(
            f"training {model} for cutoff {day} ({len(train_days)} snapshots, holdout {holdout}) …",
            flush=True,
        )
        result = follow_run(
            instance, f"train {model}", lambda run: runner.materialize(keys, day, tags=tags | run)
        )
    _report(project, model, result, holdout)


def _report(project: Any, model: str, result: Any, holdout: date) -> None:
    """The metrics, version and gate decision of a `train` run."""
    p = project.spec.project
    trained = result.metadata.get(f"{p}/models/{model}/trained", {})
    registered = result.metadata.get(f"{p}/models/{model}/registered", {})
    m = project.spec.model(model)
    print(f"\ndone in {result.seconds:.0f} s — Dagster run {result.run_id}")
    figures = holdout_figures(m, trained)
    if figures:
        print(
            f"  holdout           {figures} on {trained.get('holdout_rows')} rows of the {holdout} snapshot"
        )
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
