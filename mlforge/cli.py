"""The `mlforge` command — the composition root: it may import every layer, lazily.

Only cyclopts is imported at module level so that `mlforge --help` answers fast; each command
imports what it needs.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter

app = App(
    name="mlforge",
    help="MLForge: an ML platform as a Dagster code location. One mlforge.yaml, every lifecycle stage an asset.",
)
deploy_app = App(name="deploy", help="Inspect and roll back endpoint deployments.")
app.command(deploy_app)

Spec = Annotated[Path | None, Parameter(help="Path to mlforge.yaml (default: $MLFORGE_SPEC or nearest).")]
Home = Annotated[
    Path | None, Parameter(help="State folder (default: $MLFORGE_HOME or the spec's state_dir).")
]


def _fail(msg: str, code: int = 2) -> None:
    print(f"error: {msg}", file=sys.stderr)
    raise SystemExit(code)


def _project(spec: Path | None, home: Path | None):  # type: ignore[no-untyped-def]
    from mlforge.project import Project

    return Project.load(spec, state_dir=home)


def _dagster_home(state_dir: Path) -> Path:
    """<state>/dagster with the project's dagster.yaml, exported as DAGSTER_HOME."""
    home = state_dir / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    template = Path(__file__).resolve().parents[1] / "dagster.yaml"
    if template.is_file() and not (home / "dagster.yaml").exists():
        shutil.copyfile(template, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@app.command
def validate(spec: Spec = None, home: Home = None) -> None:
    """Check mlforge.yaml and print what it defines."""
    project = _project(spec, home)
    s = project.spec
    print(f"{project.root / 'mlforge.yaml'}: ok — project '{s.project}'")
    print(f"  partitions  {s.partitions.start} .. {s.partitions.end} ({s.partitions.cadence}, {s.timezone})")
    print(f"  datasets    {', '.join(d.name for d in s.datasets)}")
    print(f"  features    {', '.join(v.name for v in s.feature_views)}")
    print(f"  models      {', '.join(m.name for m in s.models)}")
    print(f"  endpoints   {', '.join(d.endpoint for d in s.deployments)}")
    for k, v in project.settings.describe().items():
        print(f"  {k:<11} {v}")


@app.command
def quickstart(spec: Spec = None, home: Home = None, cutoff: str | None = None) -> None:
    """Backfill the history and train, register, deploy and monitor a model on the embedded defaults.

    Parameters
    ----------
    cutoff
        Training cutoff day (default: the last partition of the spec).
    """
    from datetime import date

    project = _project(spec, home)
    t0 = time.perf_counter()
    print(f"MLForge quickstart — project '{project.spec.project}', state in {project.settings.state_dir}")
    print("loading Dagster and the asset graph …", flush=True)
    import dagster as dg

    from mlforge_assets.runner import Runner

    _dagster_home(project.settings.state_dir)
    with dg.DagsterInstance.get() as instance:
        runner = Runner(project, instance)
        try:
            plan = runner.quickstart_plan(date.fromisoformat(cutoff) if cutoff else None)
        except ValueError:
            _fail(f"--cutoff must be a day like 1998-06-30, got {cutoff!r}")
        n = len(plan)

        def progress(title: str, res) -> None:  # type: ignore[no-untyped-def]
            rows = sum(int(m.get("dagster/row_count", 0) or 0) for m in res.metadata.values())  # type: ignore[call-overload]
            span = res.first if res.first == res.last else f"{res.first}..{res.last}"
            extra = f", {rows:,} rows" if rows else ""
            progress.i += 1  # type: ignore[attr-defined]
            print(f"  [{progress.i}/{n}] {title} ({span}): {res.seconds:.1f} s{extra}", flush=True)  # type: ignore[attr-defined]

        progress.i = 0  # type: ignore[attr-defined]
        print(f"materializing {sum(len(k) for _, k, _, _ in plan)} assets in {n} runs:")
        steps = runner.run_plan(plan, progress)
    _summary(project, steps, time.perf_counter() - t0)


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
        auc = t.get("holdout_auc")
        print(
            f"  model             {m.name} v{r.get('model_version')} (champion: {r.get('champion_version')}, {r.get('gate')})"
        )
        if isinstance(auc, float):
            print(f"  holdout AUC       {auc:.4f} on {t.get('holdout_rows')} customers")
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


@app.command
def serve(
    spec: Spec = None,
    home: Home = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
) -> None:
    """Serve the deployed endpoints over HTTP (POST /predict/{endpoint})."""
    project = _project(spec, home)
    from serving.app import run

    print(
        f"serving {', '.join(d.endpoint for d in project.spec.deployments)} on http://{host}:{port} (docs at /docs)"
    )
    run(project.root / "mlforge.yaml", host=host, port=port, workers=workers, home=project.settings.state_dir)


@app.command
def ui(spec: Spec = None, home: Home = None, port: int = 3000) -> None:
    """Start the Dagster UI (and daemon) on this project: `dagster dev`."""
    project = _project(spec, home)
    dh = _dagster_home(project.settings.state_dir)
    env = {**os.environ, "DAGSTER_HOME": str(dh), "MLFORGE_SPEC": str(project.root / "mlforge.yaml")}
    env["MLFORGE_HOME"] = str(project.settings.state_dir)
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
    print(f"Dagster UI on http://127.0.0.1:{port} (DAGSTER_HOME={dh}); Ctrl-C stops it")
    os.execvpe(cmd[0], cmd, env)


@deploy_app.command(name="status")
def deploy_status(endpoint: str, spec: Spec = None, home: Home = None) -> None:
    """Show an endpoint's current manifest."""
    from mlforge.deployment import read_manifest

    project = _project(spec, home)
    m = read_manifest(project.storage, endpoint)
    if m is None:
        _fail(f"endpoint {endpoint} has no deployment manifest yet")
        return
    print(f"{endpoint}: revision {m.revision}, {m.strategy}, model {m.model}, created {m.created_at}")
    for v in m.variants:
        print(f"  {v.name:<10} v{v.version:<4} traffic {v.traffic:>3}%{'  (shadow)' if v.shadow else ''}")
    for k, val in sorted(m.state.items()):
        print(f"  state.{k} = {val}")


@deploy_app.command(name="rollback")
def deploy_rollback(endpoint: str, spec: Spec = None, home: Home = None) -> None:
    """Make the previous manifest revision of an endpoint current again."""
    from mlforge.deployment import rollback

    project = _project(spec, home)
    m = rollback(project.storage, endpoint)
    print(
        f"{endpoint}: rolled back; revision {m.revision} serves "
        + ", ".join(f"v{v.version} ({v.traffic}%)" for v in m.variants)
    )


@deploy_app.command(name="history")
def deploy_history(endpoint: str, spec: Spec = None, home: Home = None) -> None:
    """Every manifest revision of an endpoint: variants, traffic, and what decided each step."""
    from mlforge.deployment import history

    project = _project(spec, home)
    revisions = history(project.storage, endpoint)
    if not revisions:
        _fail(f"endpoint {endpoint} has no deployment manifest yet")
    for m in revisions:
        served = ", ".join(
            f"{v.name}=v{v.version}:{v.traffic}%{' (shadow)' if v.shadow else ''}" for v in m.variants
        )
        status = m.state.get("status", "")
        print(f"{m.revision:>4}  {m.created_at[:19]}  {m.strategy:<19} {served}  {status}")
        if m.state.get("reason"):
            print(f"      {m.state['reason']}")


@deploy_app.command(name="traffic")
def deploy_traffic(endpoint: str, *shares: str, spec: Spec = None, home: Home = None) -> None:
    """Set the traffic split of an endpoint's existing variants (a new manifest revision).

    Parameters
    ----------
    shares
        ``variant=percent`` pairs, e.g. ``stable=75 canary=25``; answering variants must add up to 100.
    """
    from mlforge.deployment import apply_traffic
    from mlforge.errors import MLForgeError

    project = _project(spec, home)
    traffic: dict[str, int] = {}
    for item in shares:
        name, _, pct = item.partition("=")
        if not name or not pct.strip().isdigit():
            _fail(f"expected variant=percent, got {item!r}")
        traffic[name] = int(pct)
    if not traffic:
        _fail("give at least one variant=percent")
    try:
        m = apply_traffic(project.storage, endpoint, traffic, "with mlforge deploy traffic")
    except (MLForgeError, ValueError) as exc:
        _fail(str(exc))
        return
    print(
        f"{endpoint}: revision {m.revision} serves "
        + ", ".join(f"{v.name}=v{v.version} ({v.traffic}%)" for v in m.variants)
    )


@app.command
def monitor(
    endpoint: str,
    *,
    days: int = 14,
    open_report: Annotated[bool, Parameter(name="--open", negative="")] = False,
    no_browser: Annotated[bool, Parameter(name="--no-browser", negative="")] = False,
    spec: Spec = None,
    home: Home = None,
) -> None:
    """An endpoint's deployment and its model's drift and live performance, day by day.

    Parameters
    ----------
    endpoint
        The endpoint, as named under `deployments:`.
    days
        How many of the latest days with a monitoring summary to show.
    open_report
        Copy the latest drift report (HTML) into reports/ in the state folder and open it in a browser.
    no_browser
        With --open: only write the file and print its path.
    """
    import webbrowser

    from mlforge.monitor_report import export_drift_report, format_report, monitor_report

    project = _project(spec, home)
    report = monitor_report(project.storage, project.spec, endpoint, days)
    print(format_report(report))
    if not open_report:
        return
    path = export_drift_report(project.storage, report, project.settings.state_dir / "reports")
    print(f"\ndrift report written to {path}")
    has_display = sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if not no_browser and has_display:
        webbrowser.open(path.resolve().as_uri())


# --- data: raw datasets and their DVC versions ------------------------------------------------

data_app = App(name="data", help="Raw datasets: list, validate, register, and restore DVC versions.")
app.command(data_app)


@data_app.command(name="list")
def data_list(spec: Spec = None, home: Home = None) -> None:
    """Datasets of the spec: days stored, rows, and the current DVC version."""
    from mlforge.datasets import meta_key
    from mlforge.storage import read_json
    from mlforge.versioning import DatasetVersions

    project = _project(spec, home)
    versions = DatasetVersions.for_project(project)
    dvc = {v.dataset: v for v in versions.list()}
    print(f"{'dataset':<16} {'days':>5}  {'first..last':<22} {'rows':>9}  dvc version")
    for ds in project.spec.datasets:
        days = sorted(
            k.split("date=", 1)[1][:10]
            for k in project.storage.list(f"raw/{ds.name}/")
            if k.endswith("/_meta.json")
        )
        rows = sum(int(read_json(project.storage, meta_key(ds.name, _day(d)))["rows"]) for d in days)
        span = f"{days[0]}..{days[-1]}" if days else "-"
        v = dvc.get(ds.name)
        version = f"{v.md5} ({v.files} files, {v.size:,} bytes)" if v else "not versioned"
        print(f"{ds.name:<16} {len(days):>5}  {span:<22} {rows:>9,}  {version}")
    print(f"\nDVC repository {versions.root}, remote {versions.remote}")


def _day(k: str):  # type: ignore[no-untyped-def]
    from datetime import date

    try:
        return date.fromisoformat(k)
    except ValueError:
        _fail(f"not a day: {k!r} (expected YYYY-MM-DD)")


@data_app.command(name="validate")
def data_validate(dataset: str | None = None, spec: Spec = None, home: Home = None) -> None:
    """Re-read a dataset's source (default: every dataset) and run its data-quality checks.

    Exit code 1 when a check fails, 2 when the source cannot be read.

    Parameters
    ----------
    dataset
        Name of the dataset (default: all).
    """
    from mlforge import checks

    project = _project(spec, home)
    failed = False
    targets = [project.spec.dataset(dataset)] if dataset else project.spec.datasets
    for ds in targets:
        frame = project.read_source(ds)
        print(f"{ds.name}: {frame.height:,} rows from {ds.source.path}")
        for outcome in (checks.not_null(frame, ds), checks.value_ranges(frame, ds)):
            failed |= not outcome.passed
            print(f"  {'ok    ' if outcome.passed else 'FAILED'} {outcome.name}: {outcome.description}")
    if failed:
        raise SystemExit(1)


@data_app.command(name="register")
def data_register(
    name: str,
    *,
    path: str,
    format: str = "csv",
    timestamp_column: str,
    timestamp_format: str | None = None,
    entity: str | None = None,
    column: list[str] | None = None,
    spec: Spec = None,
    home: Home = None,
) -> None:
    """Check that a new source reads, infer its schema, and print the mlforge.yaml entry to add.

    The spec is not rewritten: paste the printed block under `datasets:`.

    Parameters
    ----------
    name
        Name of the new dataset.
    path
        File or glob (relative to the spec's folder) or s3:// URI.
    format
        whitespace, csv or parquet.
    timestamp_column
        The event-time column.
    timestamp_format
        strptime format of string timestamps, e.g. %Y%m%d.
    entity
        Entity the rows belong to (default: the spec's first entity).
    column
        NAME:TYPE[:required] overriding the inferred type of a column (repeatable).
    """
    import yaml

    from mlforge import checks

    project = _project(spec, home)
    s = project.spec
    if any(d.name == name for d in s.datasets):
        _fail(f"dataset {name} is already defined in {project.root / 'mlforge.yaml'}")
    entities = [e.name for e in s.entities]
    entity = entity or (entities[0] if entities else None)
    if entity is None or entity not in entities:
        _fail(f"unknown entity {entity!r} (known: {entities})")
        return
    ds = _infer_dataset(project, name, path, format, timestamp_column, timestamp_format, entity, column or [])
    frame = project.read_source(ds, path)
    print(
        f"{path}: {frame.height:,} rows, columns "
        + ", ".join(f"{c} ({t.type})" for c, t in ds.columns.items())
    )
    failed = False
    for outcome in (checks.not_null(frame, ds), checks.value_ranges(frame, ds)):
        failed |= not outcome.passed
        print(f"  {'ok    ' if outcome.passed else 'FAILED'} {outcome.name}: {outcome.description}")
    entry = ds.model_dump(mode="json", exclude_defaults=True)
    entry["source"] = {"path": path, "format": format}
    print(f"\nadd under `datasets:` in {project.root / 'mlforge.yaml'}:\n")
    print(yaml.safe_dump([entry], sort_keys=False, default_flow_style=None, width=100).rstrip())
    if failed:
        print("\nthe source fails a check with these declarations: fix the data or the --column types")
        raise SystemExit(1)


def _infer_dataset(  # type: ignore[no-untyped-def]
    project,
    name: str,
    path: str,
    fmt: str,
    ts_col: str,
    ts_fmt: str | None,
    entity: str,
    overrides: list[str],
):
    """A DatasetSpec for the source: every column read as text, then the narrowest type that parses."""
    import polars as pl
    from pydantic import ValidationError

    from mlforge.errors import DataError
    from mlforge.spec import DatasetSpec

    src = project.source_path(path)

    def make(columns: dict[str, dict[str, object]]) -> DatasetSpec:
        try:
            return DatasetSpec.model_validate(
                {
                    "name": name,
                    "source": {"path": path, "format": fmt},
                    "timestamp": {"column": ts_col, "format": ts_fmt},
                    "entity": entity,
                    "columns": columns,
                }
            )
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise DataError(f"dataset {name}: {err['msg']}" + (f" (at {where})" if where else "")) from None

    header = _source_columns(src, fmt, project.settings.storage_endpoint_url)
    text = project.read_source(make({c: {"type": "string"} for c in header}), path)
    join_keys = {e.join_key for e in project.spec.entities if e.name == entity}
    columns: dict[str, dict[str, object]] = {}
    for c in header:
        s = text[c].drop_nulls()
        # identifiers stay text: a join key, or values with leading zeros ("00012" is not 12)
        is_id = c in join_keys or bool(s.str.contains(r"^[+-]?0\d").any())
        if c == ts_col:
            kind = "datetime" if ts_fmt and any(t in ts_fmt for t in ("%H", "%M", "%S")) else "date"
        elif is_id:
            kind = "string"
        elif s.len() and s.cast(pl.Int64, strict=False).null_count() == 0:
            kind = "int"
        elif s.len() and s.cast(pl.Float64, strict=False).null_count() == 0:
            kind = "float"
        else:
            kind = "string"
        columns[c] = {"type": kind, "nullable": bool(text[c].null_count())}
    for o in overrides:
        col, _, rest = o.partition(":")
        kind, _, req = rest.partition(":")
        if col not in columns or not kind:
            raise DataError(f"--column {o!r}: expected NAME:TYPE[:required] with NAME one of {header}")
        columns[col] = {"type": kind, "nullable": req != "required"}
    return make(columns)


def _source_columns(src: str, fmt: str, endpoint_url: str | None) -> list[str]:
    """Column names of the first file of a source."""
    import io

    import polars as pl

    from mlforge.datasets import source_files
    from mlforge.errors import DataError

    name, data = source_files(src, endpoint_url, first_only=True)[0]
    try:
        if fmt == "whitespace":
            line = next((ln for ln in data.decode("utf-8", errors="replace").splitlines() if ln.strip()), "")
            return line.split()
        if fmt == "csv":
            return pl.read_csv(io.BytesIO(data), n_rows=1, infer_schema=False).columns
        if fmt == "parquet":
            return list(pl.read_parquet_schema(io.BytesIO(data)))
    except Exception as exc:
        raise DataError(f"{name}: cannot read as {fmt}: {exc}") from None
    raise DataError(f"unknown format {fmt!r}: use whitespace, csv or parquet")


@data_app.command(name="pull")
def data_pull(
    dataset: str | None = None,
    *,
    out: Path,
    model: str | None = None,
    version: int | None = None,
    day: str | None = None,
    md5: str | None = None,
    spec: Spec = None,
    home: Home = None,
) -> None:
    """Restore the exact raw bytes of recorded DVC versions into a folder (sha256 verified).

    `--model NAME --version N`: every raw partition that model version read (traced through its
    training run and the feature snapshots' lineage). `DATASET [--day D | --day A..B] [--md5 M]`:
    the versions the stored days record (or the object `--md5` for one day). Files land as
    OUT/raw/<dataset>/date=<day>/data.parquet.

    Parameters
    ----------
    dataset
        Dataset to restore (without --model).
    out
        Folder to write to.
    model
        Registered model name.
    version
        Registered model version.
    day
        A day or a range A..B (default: every stored day).
    md5
        A DVC object to restore for the single --day.
    """
    import hashlib
    from datetime import date

    from mlforge.versioning import DatasetVersions, restore_model_data, trace_model_data

    project = _project(spec, home)
    versions = DatasetVersions.for_project(project)
    if model is not None:
        if version is None or dataset is not None or day is not None or md5 is not None:
            _fail("--model needs --version and takes no DATASET, --day or --md5")
            return
        tags = project.tracker.version(model, version).tags
        if "mlforge.cutoff" not in tags:
            _fail(f"model {model} version {version} has no mlforge.cutoff tag (not trained by MLForge)")
        cutoff = date.fromisoformat(tags["mlforge.cutoff"])
        trace = trace_model_data(project.storage, project.spec, model, cutoff, versions)
        n = restore_model_data(trace, versions, out)
        for name, parts in trace.items():
            span = f"{min(parts)}..{max(parts)}"
            print(f"{model} v{version} (cutoff {cutoff}) read raw/{name} {span}: {len(parts)} partitions")
        print(f"restored {n} partition(s) into {out}, sha256 verified; trace in {out / 'trace.json'}")
        return
    if dataset is None:
        _fail("name a DATASET or --model NAME --version N")
        return
    from mlforge.datasets import meta_key
    from mlforge.storage import read_json
    from mlforge.timeline import days_between

    ds = project.spec.dataset(dataset)
    if day:
        first, _, last = day.partition("..")
        days = days_between(_day(first), _day(last or first))
    else:
        days = sorted(
            _day(k.split("date=", 1)[1][:10])
            for k in project.storage.list(f"raw/{ds.name}/")
            if k.endswith("/_meta.json")
        )
    if md5 and len(days) != 1:
        _fail("--md5 restores one object: give a single --day")
    wanted: dict[str, tuple[str, str | None]] = {}
    for d in days:
        if md5:
            wanted[d.isoformat()] = (md5, None)
            continue
        k = meta_key(ds.name, d)
        if not project.storage.exists(k):
            _fail(f"raw/{ds.name} has no stored partition {d}")
        side = read_json(project.storage, k)
        if not side.get("dvc_md5"):
            _fail(f"raw/{ds.name} {d} has no DVC version (materialized with MLFORGE_DVC=off)")
        wanted[d.isoformat()] = (side["dvc_md5"], side["sha256"])
    objects = versions.read_objects([m for m, _ in wanted.values()])
    for d_key, (m, sha) in wanted.items():
        data = objects[m]
        if sha and hashlib.sha256(data).hexdigest() != sha:
            _fail(f"restored raw/{ds.name} {d_key} does not match its recorded sha256")
        target = out / "raw" / ds.name / f"date={d_key}" / "data.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    print(f"restored {len(wanted)} partition(s) of {ds.name} into {out}, verified")


demo_app = App(name="demo", help="Watch MLForge work: the unattended loop on a real dagster-daemon.")
app.command(demo_app)


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
    from datetime import date, timedelta

    import yaml

    from mlforge.project import find_spec_path
    from mlforge.simulate import DriftScenario

    try:
        start, drift = date.fromisoformat(replay_start), date.fromisoformat(drift_from)
    except ValueError:
        _fail(
            f"--replay-start and --drift-from must be days like 1998-06-25, got {replay_start!r}, {drift_from!r}"
        )
        return
    if folder.exists() and any(folder.iterdir()):
        _fail(f"{folder} already exists and is not empty: delete it or pass --folder to start a new demo")
    if days < 1:
        _fail(f"--days must be at least 1, got {days}")
    spec_path = Path(spec).resolve() if spec else find_spec_path()
    print("loading Dagster and the asset graph …", flush=True)
    from mlforge_assets import demo

    base = yaml.safe_load(spec_path.read_text())
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
        _fail(f"the loop did not finish within {timeout} s (see {setup.folder / 'daemon.log'})", code=1)


def main() -> None:
    """Console-script entry point."""
    import warnings

    # Dagster's supersession/beta notices are for library authors, not for `mlforge` users.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*(superseded|beta|preview).*")
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from mlforge.errors import MLForgeError

    # Every command's own errors end here: one line naming what is wrong, exit code 2.
    try:
        app()
    except MLForgeError as exc:
        _fail(str(exc))


if __name__ == "__main__":
    main()
