"""`mlforge data …`: list, validate, register raw datasets and restore DVC versions."""

from __future__ import annotations

from pathlib import Path

from cyclopts import App

from mlforge.cli.options import Home, Spec, fail, load_project

data_app = App(name="data", help="Raw datasets: list, validate, register, and restore DVC versions.")


@data_app.command(name="list")
def data_list(spec: Spec = None, home: Home = None) -> None:
    """Datasets of the spec: days stored, rows, and the current DVC version."""
    from mlforge.data.raw import stored_partition_days
    from mlforge.data.versioning import DatasetVersions
    from mlforge.io import layout
    from mlforge.io.storage import read_json

    project = load_project(spec, home)
    versions = DatasetVersions.for_project(project)
    dvc = {v.dataset: v for v in versions.list()}
    print(f"{'dataset':<16} {'days':>5}  {'first..last':<22} {'rows':>9}  dvc version")
    for ds in project.spec.datasets:
        days = stored_partition_days(project.storage, ds.name)
        rows = sum(int(read_json(project.storage, layout.raw_meta(ds.name, d))["rows"]) for d in days)
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
        fail(f"not a day: {k!r} (expected YYYY-MM-DD)")


@data_app.command(name="validate")
def data_validate(dataset: str | None = None, spec: Spec = None, home: Home = None) -> None:
    """Re-read a dataset's source (default: every dataset) and run its data-quality checks.

    Exit code 1 when a check fails, 2 when the source cannot be read.

    Parameters
    ----------
    dataset
        Name of the dataset (default: all).
    """
    from mlforge.data import checks

    project = load_project(spec, home)
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

    from mlforge.data import checks

    project = load_project(spec, home)
    s = project.spec
    if any(d.name == name for d in s.datasets):
        fail(f"dataset {name} is already defined in {project.spec_path}")
    entities = [e.name for e in s.entities]
    entity = entity or (entities[0] if entities else None)
    if entity is None or entity not in entities:
        fail(f"unknown entity {entity!r} (known: {entities})")
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
    print(f"\nadd under `datasets:` in {project.spec_path}:\n")
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

    from mlforge.config.spec import DatasetSpec
    from mlforge.errors import DataError

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

    from mlforge.data.sources import source_files
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
    OUT/raw/<dataset>/date=<day>/data.parquet (the storage layout).

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

    from mlforge.data.versioning import DatasetVersions
    from mlforge.models.base import CUTOFF_TAG
    from mlforge.models.lineage import restore_model_data, trace_model_data

    project = load_project(spec, home)
    versions = DatasetVersions.for_project(project)
    if model is not None:
        if version is None or dataset is not None or day is not None or md5 is not None:
            fail("--model needs --version and takes no DATASET, --day or --md5")
            return
        tags = project.tracker.version(model, version).tags
        if CUTOFF_TAG not in tags:
            fail(f"model {model} version {version} has no {CUTOFF_TAG} tag (not trained by MLForge)")
        cutoff = date.fromisoformat(tags[CUTOFF_TAG])
        trace = trace_model_data(project.storage, project.spec, model, cutoff, versions)
        n = restore_model_data(trace, versions, out)
        for name, parts in trace.items():
            span = f"{min(parts)}..{max(parts)}"
            print(f"{model} v{version} (cutoff {cutoff}) read raw/{name} {span}: {len(parts)} partitions")
        print(f"restored {n} partition(s) into {out}, sha256 verified; trace in {out / 'trace.json'}")
        return
    if dataset is None:
        fail("name a DATASET or --model NAME --version N")
        return
    from mlforge.data.raw import stored_partition_days
    from mlforge.io import layout
    from mlforge.io.storage import read_json
    from mlforge.io.timeline import days_between

    ds = project.spec.dataset(dataset)
    if day:
        first, _, last = day.partition("..")
        days = days_between(_day(first), _day(last or first))
    else:
        days = stored_partition_days(project.storage, ds.name)
    if md5 and len(days) != 1:
        fail("--md5 restores one object: give a single --day")
    wanted: dict[date, tuple[str, str | None]] = {}
    for d in days:
        if md5:
            wanted[d] = (md5, None)
            continue
        k = layout.raw_meta(ds.name, d)
        if not project.storage.exists(k):
            fail(f"raw/{ds.name} has no stored partition {d}")
        side = read_json(project.storage, k)
        if not side.get("dvc_md5"):
            fail(f"raw/{ds.name} {d} has no DVC version (materialized with MLFORGE_DVC=off)")
        wanted[d] = (side["dvc_md5"], side["sha256"])
    objects = versions.read_objects([m for m, _ in wanted.values()])
    for d, (m, sha) in wanted.items():
        data = objects[m]
        if sha and hashlib.sha256(data).hexdigest() != sha:
            fail(f"restored raw/{ds.name} {d} does not match its recorded sha256")
        target = out / layout.raw_data(ds.name, d)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    print(f"restored {len(wanted)} partition(s) of {ds.name} into {out}, verified")
