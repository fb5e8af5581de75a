"""`mlforge data …`: list, validate, register raw datasets and restore DVC versions."""

from __future__ import annotations

from pathlib import Path

from cyclopts import App

from mlforge.cli.options import Home, Spec, fail, load_project, parse_day

data_app = App(name="data", help="Raw datasets: list, validate, register, and restore DVC versions.")


@data_app.command(name="list")
def data_list(spec: Spec = None, home: Home = None) -> None:
    """Datasets of the spec: days stored, rows, and the current DVC version."""
    from mlforge.data.catalog import summaries

    project = load_project(spec, home)
    found, versions = summaries(project)
    print(f"{'dataset':<16} {'days':>5}  {'first..last':<22} {'rows':>9}  dvc version")
    for d in found:
        span = f"{d.days[0]}..{d.days[-1]}" if d.days else "-"
        v = d.version
        version = f"{v.md5} ({v.files} files, {v.size:,} bytes)" if v else "not versioned"
        print(f"{d.name:<16} {len(d.days):>5}  {span:<22} {d.rows:>9,}  {version}")
    print(f"\nDVC repository {versions.root}, remote {versions.remote}")


def _print_checks(outcomes) -> bool:  # type: ignore[no-untyped-def]
    """Print check outcomes; True when one failed."""
    for outcome in outcomes:
        print(f"  {'ok    ' if outcome.passed else 'FAILED'} {outcome.name}: {outcome.description}")
    return not all(o.passed for o in outcomes)


@data_app.command(name="validate")
def data_validate(dataset: str | None = None, spec: Spec = None, home: Home = None) -> None:
    """Re-read a dataset's source (default: every dataset) and run its data-quality checks.

    Exit code 1 when a check fails, 2 when the source cannot be read.

    Parameters
    ----------
    dataset
        Name of the dataset (default: all).
    """
    from mlforge.data.catalog import validate

    project = load_project(spec, home)
    failed = False
    for ds, rows, outcomes in validate(project, dataset):
        print(f"{ds.name}: {rows:,} rows from {ds.source.path}")
        failed |= _print_checks(outcomes)
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

    from mlforge.data.catalog import register

    project = load_project(spec, home)
    reg = register(project, name, path, format, timestamp_column, timestamp_format, entity, column or [])
    print(
        f"{path}: {reg.rows:,} rows, columns "
        + ", ".join(f"{c} ({t.type})" for c, t in reg.dataset.columns.items())
    )
    failed = _print_checks(reg.checks)
    print(f"\nadd under `datasets:` in {project.spec_path}:\n")
    print(yaml.safe_dump([reg.entry], sort_keys=False, default_flow_style=None, width=100).rstrip())
    if failed:
        print("\nthe source fails a check with these declarations: fix the data or the --column types")
        raise SystemExit(1)


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
    from mlforge.data.catalog import pull_days, pull_model_data
    from mlforge.io.timeline import days_between

    project = load_project(spec, home)
    if model is not None:
        if version is None or dataset is not None or day is not None or md5 is not None:
            fail("--model needs --version and takes no DATASET, --day or --md5")
            return
        cutoff, trace, n = pull_model_data(project, model, version, out)
        for name, parts in trace.items():
            span = f"{min(parts)}..{max(parts)}"
            print(f"{model} v{version} (cutoff {cutoff}) read raw/{name} {span}: {len(parts)} partitions")
        print(f"restored {n} partition(s) into {out}, sha256 verified; trace in {out / 'trace.json'}")
        return
    if dataset is None:
        fail("name a DATASET or --model NAME --version N")
        return
    days = None
    if day:
        first, _, last = day.partition("..")
        days = days_between(parse_day(first, "--day"), parse_day(last or first, "--day"))
    n = pull_days(project, dataset, days, out, md5)
    print(f"restored {n} partition(s) of {dataset} into {out}, verified")
