"""Project commands: validate, quickstart, serve, ui."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mlforge.cli.options import Home, Spec, load_project, parse_day
from mlforge.cli.progress import follow_run


def validate(spec: Spec = None, home: Home = None) -> None:
    """Check mlforge.yaml and print what it defines."""
    project = load_project(spec, home)
    s = project.spec
    print(f"{project.spec_path}: ok — project '{s.project}'")
    print(f"  partitions  {s.partitions.start} .. {s.partitions.end} ({s.partitions.cadence}, {s.timezone})")
    print(f"  datasets    {', '.join(d.name for d in s.datasets)}")
    print(f"  features    {', '.join(v.name for v in s.feature_views)}")
    print(f"  models      {', '.join(m.name for m in s.models)}")
    print(f"  endpoints   {', '.join(d.endpoint for d in s.deployments)}")
    for k, v in project.settings.describe().items():
        print(f"  {k:<11} {v}")


def quickstart(spec: Spec = None, home: Home = None, cutoff: str | None = None) -> None:
    """Backfill the history and train, register, deploy and monitor a model on the embedded defaults.

    Parameters
    ----------
    cutoff
        Training cutoff day (default: the last partition of the spec).
    """

    project = load_project(spec, home)
    t0 = time.perf_counter()
    print(f"MLForge quickstart — project '{project.spec.project}', state in {project.settings.state_dir}")
    print("loading Dagster and the asset graph …", flush=True)
    import dagster as dg

    from mlforge.config.project import dagster_home
    from mlforge_assets.runner import Runner

    dagster_home(project.settings.state_dir, project.root)
    with dg.DagsterInstance.get() as instance:
        runner = Runner(project, instance)
        plan = runner.quickstart_plan(parse_day(cutoff, "--cutoff") if cutoff else None)
        n = len(plan)
        print(f"materializing {sum(len(k) for _, k, _, _ in plan)} assets in {n} runs:")
        steps = []
        for i, (title, keys, first, last) in enumerate(plan, 1):
            span = first if first == last else f"{first}..{last}"
            res = follow_run(
                instance,
                f"  [{i}/{n}] {title} ({span})",
                lambda run, k=keys, a=first, b=last: runner.materialize(k, a, b, tags=run),  # type: ignore[misc]
                transient=True,
            )
            rows = sum(int(m.get("dagster/row_count", 0) or 0) for m in res.metadata.values())  # type: ignore[call-overload]
            extra = f", {rows:,} rows" if rows else ""
            print(f"  [{i}/{n}] {title} ({span}): {res.seconds:.1f} s{extra}", flush=True)
            steps.append(res)
    _summary(project, steps, time.perf_counter() - t0)


#: Holdout metrics the quickstart summary prints per task, after the gate's metric.
HEADLINE_METRICS = {
    "binary": ("auc", "pr_auc", "f1"),
    "multiclass": ("logloss", "accuracy", "macro_f1"),
    "regression": ("rmse", "r2", "top_decile_capture"),
}


def holdout_figures(model, trained: dict[str, object]) -> str:  # type: ignore[no-untyped-def]
    """The gate's metric, then the task's headline metrics, from a trained asset's metadata."""
    shown = [model.gate_metric, *(k for k in HEADLINE_METRICS[model.model_task] if k != model.gate_metric)]
    return ", ".join(
        f"{k} {trained[f'holdout_{k}']:.4f}" for k in shown if isinstance(trained.get(f"holdout_{k}"), float)
    )


def _summary(project, steps, seconds: float) -> None:  # type: ignore[no-untyped-def]
    spec = project.spec
    meta: dict[str, dict[str, object]] = {}
    for s in steps:
        meta.update(s.metadata)
    p = spec.project
    raw_rows = sum(int(meta.get(f"{p}/raw/{d.name}", {}).get("dagster/row_count", 0)) for d in spec.datasets)  # type: ignore[call-overload]
    print(f"\ndone in {seconds:.0f} s")
    print(f"  raw rows          {raw_rows:,}")
    for m in spec.models:
        t = meta.get(f"{p}/models/{m.name}/trained", {})
        r = meta.get(f"{p}/models/{m.name}/registered", {})
        print(
            f"  model             {m.name} v{r.get('model_version')} [{m.model_task}, {m.algorithm}] "
            f"(champion: {r.get('champion_version')}, {r.get('gate')})"
        )
        figures = holdout_figures(m, t)
        if figures:
            print(f"  holdout           {figures} on {t.get('holdout_rows')} rows")
        d = meta.get(f"{p}/monitoring/{m.name}/drift", {})
        if "drift_share" in d:
            print(f"  drift share       {float(d['drift_share']):.2f} (threshold {d.get('threshold')})")  # type: ignore[arg-type]
    for dep in spec.deployments:
        dm = meta.get(f"{p}/deployments/{dep.endpoint}", {})
        print(f"  endpoint          {dep.endpoint} (revision {dm.get('revision')}, {dep.strategy.kind})")
    print("\nnext:")
    print("  mlforge serve            # then, in another shell:")
    if spec.deployments:
        ep = spec.deployments[0].endpoint
        print(
            f"  curl -s -X POST localhost:8000/predict/{ep} -H 'content-type: application/json' "
            '-d \'{"entity_ids": ["00003", "00010"]}\''
        )
    print("  mlforge ui               # the asset graph, runs and metadata in the Dagster UI")


def serve(
    spec: Spec = None,
    home: Home = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
) -> None:
    """Serve the deployed endpoints over HTTP (POST /predict/{endpoint})."""
    project = load_project(spec, home)
    from serving.server import run

    print(
        f"serving {', '.join(d.endpoint for d in project.spec.deployments)} of {project.spec_path} "
        f"on http://{host}:{port} (docs at /docs)"
    )
    # The very file that was loaded and announced: serving must not look for another one.
    run(project.spec_path, host=host, port=port, workers=workers, home=project.settings.state_dir)


def ui(spec: Spec = None, home: Home = None, port: int = 3000) -> None:
    """Start the Dagster UI (and daemon) on this project: `dagster dev`."""
    from mlforge.config.settings import env_name

    project = load_project(spec, home)
    from mlforge.config.project import dagster_home

    dh = dagster_home(project.settings.state_dir, project.root)
    # The code location resolves the spec again in its own process: hand it the file loaded here.
    env = {
        **os.environ,
        env_name("dagster_home"): str(dh),
        env_name("spec"): str(project.spec_path),
        env_name("home"): str(project.settings.state_dir),
    }
    exe = Path(sys.executable).with_name("dagster")
    cmd = [
        str(exe) if exe.exists() else "dagster",
        "dev",
        "-m",
        "mlforge_assets.definitions",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    print(
        f"Dagster UI on http://127.0.0.1:{port} for {project.spec_path} (DAGSTER_HOME={dh}); Ctrl-C stops it"
    )
    os.execvpe(cmd[0], cmd, env)
