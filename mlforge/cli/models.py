"""`mlforge models list|show` and `mlforge experiments list|compare`: what MLflow holds."""

from __future__ import annotations

from cyclopts import App

from mlforge.cli.options import Home, Spec, fail, load_project

models_app = App(name="models", help="Registered model versions in MLflow: aliases, cutoffs, metrics.")
experiments_app = App(name="experiments", help="MLflow experiments and their runs, side by side.")


@models_app.command(name="list")
def models_list(spec: Spec = None, home: Home = None) -> None:
    """Every registered version of each model of the spec, newest first, with its aliases."""
    from mlforge.models.base import ALGORITHM_TAG, CUTOFF_TAG

    project = load_project(spec, home)
    tracker = project.tracker
    for m in project.spec.models:
        versions = tracker.versions(m.name)
        print(f"{m.name}: {len(versions)} version(s) [{m.model_task}, gate {m.gate_metric}]")
        for v in versions:
            metric = tracker.run_metrics(v.run_id).get(f"holdout_{m.gate_metric}") if v.run_id else None
            shown = f"{m.gate_metric} {metric:.4f}" if isinstance(metric, float) else "-"
            aliases = f" @{', @'.join(v.aliases)}" if v.aliases else ""
            print(
                f"  v{v.version:<3} cutoff {v.tags.get(CUTOFF_TAG, '?')}  "
                f"{v.tags.get(ALGORITHM_TAG, m.algorithm)}  holdout {shown}{aliases}"
            )


@models_app.command(name="show")
def models_show(
    model: str, /, version: int | None = None, alias: str = "champion", spec: Spec = None, home: Home = None
) -> None:
    """One version of MODEL (default: the champion): tags, aliases and the metrics of its run.

    Parameters
    ----------
    version
        The version (default: the one ``--alias`` names).
    alias
        The alias to show when no version is given.
    """
    project = load_project(spec, home)
    project.spec.model(model)
    tracker = project.tracker
    info = tracker.resolve(model, version, alias)
    print(f"{model} v{info.version}" + (f" @{', @'.join(info.aliases)}" if info.aliases else ""))
    print(f"  source   {info.source}")
    print(f"  run      {info.run_id}")
    for k, v in sorted(info.tags.items()):
        print(f"  tag      {k} = {v}")
    if info.run_id:
        for k, val in sorted(tracker.run_metrics(info.run_id).items()):
            print(f"  metric   {k} = {val:.6g}")


@experiments_app.command(name="list")
def experiments_list(spec: Spec = None, home: Home = None) -> None:
    """The MLflow experiments of the tracking store, with their number of runs."""
    project = load_project(spec, home)
    tracker = project.tracker
    for exp_id, name in tracker.experiments():
        print(f"{exp_id:>4}  {name}  ({len(tracker.runs(name, limit=1000))} runs)")


@experiments_app.command(name="compare")
def experiments_compare(
    experiment: str,
    /,
    metrics: str | None = None,
    limit: int = 10,
    spec: Spec = None,
    home: Home = None,
) -> None:
    """The newest runs of EXPERIMENT side by side: cutoff, trigger and metrics.

    Parameters
    ----------
    metrics
        Comma-separated metric names (default: every holdout_* metric the runs logged).
    limit
        How many runs, newest first.
    """
    from mlforge.models.base import CUTOFF_TAG

    project = load_project(spec, home)
    runs = project.tracker.runs(experiment, limit=limit)
    if not runs:
        fail(f"experiment {experiment!r} has no runs")
    names = (
        [m.strip() for m in metrics.split(",") if m.strip()]
        if metrics
        else sorted({k for r in runs for k in r["metrics"] if k.startswith("holdout_")})
    )
    header = f"{'run':<10} {'name':<24} {'cutoff':<11} {'status':<9}" + "".join(f" {n:>16}" for n in names)
    print(header)
    for r in runs:
        vals = "".join(f" {r['metrics'][n]:>16.4f}" if n in r["metrics"] else f" {'-':>16}" for n in names)
        print(
            f"{r['run_id'][:8]:<10} {str(r['name'])[:24]:<24} {r['tags'].get(CUTOFF_TAG, '-'):<11} "
            f"{r['status']:<9}{vals}"
        )
