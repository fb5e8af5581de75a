"""The datasets of a project as the CLI's `mlforge data` and the SDK's `client.datasets` see them:
what is stored, checks on a re-read source, a new source's inferred entry, and restoring the exact
raw bytes of recorded DVC versions. One home: both front ends print or return these."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from mlforge.config.project import Project
from mlforge.config.spec import DatasetSpec
from mlforge.data import checks
from mlforge.data.raw import stored_partition_days
from mlforge.data.versioning import DatasetVersion, DatasetVersions
from mlforge.errors import DataError, MLForgeError
from mlforge.io import layout
from mlforge.io.storage import read_json, write_file_atomically


@dataclass(frozen=True)
class DatasetSummary:
    """A dataset's stored partitions, rows and current DVC version."""

    name: str
    days: list[date]
    rows: int
    version: DatasetVersion | None


def summaries(project: Project) -> tuple[list[DatasetSummary], DatasetVersions]:
    """Every dataset of the spec: the days stored, their rows, the current DVC version."""
    versions = DatasetVersions.for_project(project)
    dvc = {v.dataset: v for v in versions.list()}
    out = []
    for ds in project.spec.datasets:
        days = stored_partition_days(project.storage, ds.name)
        rows = sum(int(read_json(project.storage, layout.raw_meta(ds.name, d))["rows"]) for d in days)
        out.append(DatasetSummary(ds.name, days, rows, dvc.get(ds.name)))
    return out, versions


def source_checks(frame: pl.DataFrame, ds: DatasetSpec) -> list[checks.CheckOutcome]:
    """The data-quality checks a source must pass (required columns, declared ranges)."""
    return [checks.not_null(frame, ds), checks.value_ranges(frame, ds)]


def validate(
    project: Project, dataset: str | None = None
) -> list[tuple[DatasetSpec, int, list[checks.CheckOutcome]]]:
    """Re-read a dataset's source (default: every dataset) and run its checks: (dataset, rows, outcomes)."""
    targets = [project.spec.dataset(dataset)] if dataset else project.spec.datasets
    out = []
    for ds in targets:
        frame = project.read_source(ds)
        out.append((ds, frame.height, source_checks(frame, ds)))
    return out


@dataclass(frozen=True)
class Registration:
    """A new source read and checked: its inferred spec entry, rows and check outcomes."""

    dataset: DatasetSpec
    rows: int
    checks: list[checks.CheckOutcome]
    entry: dict[str, Any]


def register(
    project: Project,
    name: str,
    path: str,
    fmt: str,
    timestamp_column: str,
    timestamp_format: str | None = None,
    entity: str | None = None,
    overrides: Sequence[str] = (),
) -> Registration:
    """Check that a new source reads, infer its schema and return the `datasets:` entry to add
    (the spec is never rewritten)."""
    s = project.spec
    if any(d.name == name for d in s.datasets):
        raise MLForgeError(f"dataset {name} is already defined in {project.spec_path}")
    entities = [e.name for e in s.entities]
    entity = entity or (entities[0] if entities else None)
    if entity is None or entity not in entities:
        raise MLForgeError(f"unknown entity {entity!r} (known: {entities})")
    ds = infer_dataset(project, name, path, fmt, timestamp_column, timestamp_format, entity, overrides)
    frame = project.read_source(ds, path)
    entry = ds.model_dump(mode="json", exclude_defaults=True)
    entry["source"] = {"path": path, "format": fmt}
    return Registration(ds, frame.height, source_checks(frame, ds), entry)


def recorded_versions(project: Project, dataset: str) -> dict[date, str | None]:
    """The DVC object (md5) each stored day of `dataset` records (None: stored unversioned)."""
    ds = project.spec.dataset(dataset)
    return {
        d: read_json(project.storage, layout.raw_meta(ds.name, d)).get("dvc_md5")
        for d in stored_partition_days(project.storage, ds.name)
    }


def pull_model_data(
    project: Project, model: str, version: int, out: Path
) -> tuple[date, dict[str, Any], int]:
    """Restore every raw partition a registered model version read (traced through its training
    run and the snapshots' lineage) into `out`: (cutoff, trace, partitions restored)."""
    from mlforge.models.base import CUTOFF_TAG
    from mlforge.models.lineage import restore_model_data, trace_model_data

    tags = project.tracker.version(model, version).tags
    if CUTOFF_TAG not in tags:
        raise MLForgeError(
            f"model {model} version {version} has no {CUTOFF_TAG} tag (not trained by MLForge)"
        )
    cutoff = date.fromisoformat(tags[CUTOFF_TAG])
    versions = DatasetVersions.for_project(project)
    trace = trace_model_data(project.storage, project.spec, model, cutoff, versions)
    return cutoff, trace, restore_model_data(trace, versions, out)


def pull_days(
    project: Project, dataset: str, days: list[date] | None, out: Path, md5: str | None = None
) -> int:
    """Restore the raw bytes the stored `days` of `dataset` record (default: every stored day; or
    the object `md5` for one day) into `out` in the storage layout, sha256 verified."""
    ds = project.spec.dataset(dataset)
    days = days if days is not None else stored_partition_days(project.storage, ds.name)
    if md5 and len(days) != 1:
        raise MLForgeError("--md5 restores one object: give a single --day")
    wanted: dict[date, tuple[str, str | None]] = {}
    for d in days:
        if md5:
            wanted[d] = (md5, None)
            continue
        k = layout.raw_meta(ds.name, d)
        if not project.storage.exists(k):
            raise MLForgeError(f"raw/{ds.name} has no stored partition {d}")
        side = read_json(project.storage, k)
        if not side.get("dvc_md5"):
            raise MLForgeError(f"raw/{ds.name} {d} has no DVC version (materialized with MLFORGE_DVC=off)")
        wanted[d] = (side["dvc_md5"], side["sha256"])
    objects = DatasetVersions.for_project(project).read_objects([m for m, _ in wanted.values()])
    for d, (m, sha) in wanted.items():
        data = objects[m]
        if sha and hashlib.sha256(data).hexdigest() != sha:
            raise MLForgeError(f"restored raw/{ds.name} {d} does not match its recorded sha256")
        write_file_atomically(out / layout.raw_data(ds.name, d), data)
    return len(wanted)


def infer_dataset(
    project: Project,
    name: str,
    path: str,
    fmt: str,
    ts_col: str,
    ts_fmt: str | None,
    entity: str,
    overrides: Sequence[str] = (),
) -> DatasetSpec:
    """A DatasetSpec for a new source: every column read as text, then the narrowest type that
    parses (identifiers and values with leading zeros stay text); `overrides` are
    ``NAME:TYPE[:required]``."""
    from pydantic import ValidationError

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

    header = source_columns(src, fmt, project.settings.storage_endpoint_url)
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


def source_columns(src: str, fmt: str, endpoint_url: str | None) -> list[str]:
    """Column names of the first file of a source."""
    import io

    from mlforge.data.sources import source_files

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
