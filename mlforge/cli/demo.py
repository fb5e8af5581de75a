"""`mlforge demo loop`: watch the unattended loop on a real dagster-daemon."""

from __future__ import annotations

import sys
from pathlib import Path

from cyclopts import App

from mlforge.cli.options import Spec, fail, parse_day

demo_app = App(name="demo", help="Watch MLForge work: the unattended loop on a real dagster-daemon.")


@demo_app.command(name="loop")
def demo_loop(
    folder: Path = Path("mlforge-demo-loop"),
    spec: Spec = None,
    replay_start: str = "1998-06-25",
    days: int = 4,
    drift_from: str = "1998-06-27",
    interval: int = 5,
    timeout: int = 900,
    ui: bool = False,
    port: int = 3000,
) -> None:
    """Replay days of history with drift injected and watch drift → retrain → gate → deploy run alone.

    Prepares `folder` (a copy of the project with a drifted source and a replay clock), backfills
    the history before the replay, then starts `dagster-daemon` (and the Dagster UI with --ui):
    the replay sensor runs one daily refresh per day, the drift sensor requests one retrain when
    drift starts, the gate decides the promotion and the retrain rewrites the deployment.

    Parameters
    ----------
    folder
        Where the demo project and its state go (must not exist yet).
    replay_start
        First replayed day; the champion is trained for the day before.
    days
        How many days to replay.
    drift_from
        First day with injected drift (3x spend and 6,000 new heavy buyers).
    interval
        Seconds between sensor ticks.
    timeout
        Give up after this many seconds.
    ui
        Also start the Dagster UI on 127.0.0.1:PORT to watch the runs.
    """
    import subprocess
    from datetime import timedelta

    from mlforge.config.project import resolve_spec_path
    from mlforge.config.spec import read_document
    from mlforge.data.simulate import DriftScenario

    start, drift = parse_day(replay_start, "--replay-start"), parse_day(drift_from, "--drift-from")
    if folder.exists() and any(folder.iterdir()):
        fail(f"{folder} already exists and is not empty: delete it or pass --folder to start a new demo")
    if days < 1:
        fail(f"--days must be at least 1, got {days}")
    spec_path = resolve_spec_path(spec)
    print("loading Dagster and the asset graph …", flush=True)
    from mlforge_assets import demo

    base = read_document(spec_path)  # a YAML or a Python spec, as the mapping the YAML holds
    setup = demo.prepare(
        folder,
        base,
        spec_path.parent,
        start,
        start + timedelta(days=days - 1),
        DriftScenario(drift),
        interval_seconds=interval,
    )
    print(f"project with drift from {drift} in {setup.folder}; DAGSTER_HOME={setup.dagster_home}")
    print(f"backfilling the history up to {setup.cutoff} and deploying a champion …", flush=True)
    demo.backfill(setup, lambda title, r: print(f"  {title}: {r.seconds:.1f} s", flush=True))
    proc = demo.start_daemon(setup)
    web = None
    if ui:
        exe = Path(sys.executable).with_name("dagster-webserver")
        cmd = [str(exe), "-m", "mlforge_assets.definitions", "-h", "127.0.0.1", "-p", str(port)]
        web = subprocess.Popen(
            cmd,
            cwd=setup.folder,
            env=setup.env(),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print(f"Dagster UI on http://127.0.0.1:{port}")
    print(
        f"dagster-daemon started (pid {proc.pid}, log {setup.folder / 'daemon.log'}); replaying {days} days …"
    )

    def progress(r: demo.LoopReport) -> None:
        latest = max(r.replayed_days, default="-")
        share = r.drift_share.get(latest)
        drift_txt = f"drift {share:.2f}" if share is not None else ""
        print(
            f"  [{r.seconds:5.0f} s] runs {sum(r.runs_by_job.values()):>2}, "
            f"replayed {len(r.replayed_days)}/{days} (last {latest} {drift_txt}), "
            f"retrains {len(r.retrain_runs)}, registered v{r.registered[-1]['version'] if r.registered else '-'}, "
            f"manifest rev {r.manifest_revision}",
            flush=True,
        )

    try:
        report = demo.watch(setup, timeout=timeout, on_change=progress)
    finally:
        demo.stop(proc)
        if web is not None:
            demo.stop(web)
    print()
    print("\n".join(report.lines()))
    if not report.finished:
        fail(f"the loop did not finish within {timeout} s (see {setup.folder / 'daemon.log'})", code=1)
