"""Raw datasets: read a source, validate it against the spec, store one parquet per day.

Each stored day carries a small `_meta.json` beside it (row count, schema, sha256 of the parquet
bytes). That hash is the partition's data version: Dagster shows it, trained models record the
versions they read, and DVC (when enabled) versions the same bytes.
"""

from __future__ import annotations

import glob
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from mlforge.errors import DataError
from mlforge.spec import ColumnSpec, DatasetSpec
from mlforge.storage import Storage, parquet_bytes, read_json, read_parquet, write_json
from mlforge.timeline import key

_POLARS_TYPES: dict[str, Any] = {
    "string": pl.String,
    "int": pl.Int64,
    "float": pl.Float64,
    "bool": pl.Boolean,
    "date": pl.Date,
    "datetime": pl.Datetime("us"),
}


def partition_key(dataset: str, d: date) -> str:
    """Storage key of one day of a raw dataset."""
    return f"raw/{dataset}/date={key(d)}/data.parquet"


def meta_key(dataset: str, d: date) -> str:
    """Storage key of the metadata sidecar of one day."""
    return f"raw/{dataset}/date={key(d)}/_meta.json"


def _read_whitespace(data: bytes, where: str) -> pl.DataFrame:
    """Whitespace-separated text with a header line (the CDNOW format)."""
    numbered = [
        (i + 1, ln) for i, ln in enumerate(data.decode("utf-8", errors="replace").splitlines()) if ln.strip()
    ]
    if not numbered:
        raise DataError(f"{where}: file is empty")
    header = numbered[0][1].split()
    rows = []
    for lineno, ln in numbered[1:]:
        r = ln.split()
        if len(r) != len(header):
            raise DataError(
                f"{where}: line {lineno} has {len(r)} fields, the header has {len(header)} "
                f"({' '.join(header)})"
            )
        rows.append(r)
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in header]
    return pl.DataFrame(
        {h: list(c) for h, c in zip(header, cols, strict=True)},
        schema={h: pl.String for h in header},
    )


def source_files(
    path: str, endpoint_url: str | None = None, first_only: bool = False
) -> list[tuple[str, bytes]]:
    """(name, bytes) of every file a source path names (a file, a glob, or an s3:// object)."""
    if path.startswith("s3://"):
        from mlforge.storage import S3Storage

        root, _, name = path.rpartition("/")
        return [(path, S3Storage(root, endpoint_url=endpoint_url).read_bytes(name))]
    files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
    if not files or not all(Path(f).is_file() for f in files):
        raise DataError(f"source not found: {path}")
    return [(f, Path(f).read_bytes()) for f in files[: 1 if first_only else None]]


def read_source(ds: DatasetSpec, path: str, endpoint_url: str | None = None) -> pl.DataFrame:
    """Read every file of the source and return a frame typed as the spec says.

    Raises DataError naming the file and the column when a column is missing or a value cannot be
    parsed as its declared type.
    """
    frames = []
    for name, data in source_files(path, endpoint_url):
        try:
            if ds.source.format == "whitespace":
                df = _read_whitespace(data, name)
            elif ds.source.format == "csv":
                df = pl.read_csv(io.BytesIO(data), infer_schema=False)
            else:
                df = pl.read_parquet(io.BytesIO(data))
        except DataError:
            raise
        except Exception as exc:
            raise DataError(f"{name}: cannot read as {ds.source.format}: {exc}") from None
        frames.append(_typed(df, ds, name))
    return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


def _typed(df: pl.DataFrame, ds: DatasetSpec, where: str) -> pl.DataFrame:
    missing = [c for c in ds.columns if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing}; found {df.columns}")
    out = {}
    for name, col in ds.columns.items():
        out[name] = _cast(df[name], col, name, ds, where)
    return pl.DataFrame(out)


def _cast(s: pl.Series, col: ColumnSpec, name: str, ds: DatasetSpec, where: str) -> pl.Series:
    target = _POLARS_TYPES[col.type]
    if s.dtype == target:
        return s
    src = s.cast(pl.String) if s.dtype != pl.String else s
    if col.type in ("date", "datetime") and name == ds.timestamp.column and ds.timestamp.format:
        parsed = src.str.strptime(target, ds.timestamp.format, strict=False)
    elif col.type == "date":
        parsed = src.str.to_date(strict=False)
    elif col.type == "datetime":
        parsed = src.str.to_datetime(strict=False)
    else:
        parsed = src.cast(target, strict=False)
    bad = (parsed.is_null() & src.is_not_null()).arg_true()
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{where}: column '{name}' row {i + 1}: cannot parse {src[i]!r} as {col.type} "
            f"({len(bad)} bad value(s) in all)"
        )
    return parsed.alias(name)


def day_column(ds: DatasetSpec) -> pl.Expr:
    """Expression giving the event day of each row."""
    ts = pl.col(ds.timestamp.column)
    return ts if ds.columns[ds.timestamp.column].type == "date" else ts.dt.date()


@dataclass(frozen=True)
class StoredPartition:
    """What was written for one day."""

    day: date
    rows: int
    sha256: str
    dvc_md5: str | None = None


def store_days(
    storage: Storage,
    ds: DatasetSpec,
    frame: pl.DataFrame,
    days: list[date],
    version: Callable[[dict[str, bytes]], dict[str, str]] | None = None,
) -> list[StoredPartition]:
    """Write one parquet + sidecar per day in `days` (an empty parquet for a day with no rows).

    `version`, when given, receives {day key: the exact parquet bytes written} once for the whole
    range (DVC versions them in one batch) and returns {day key: md5}; the md5s go into the
    sidecars. Sidecars are written even if `version` raises, so each one always describes the
    parquet beside it; the error then propagates.
    """
    tagged = frame.with_columns(day_column(ds).alias("__day")).filter(pl.col("__day").is_in(days))
    by_day: dict[date, pl.DataFrame] = {}
    for (d,), g in tagged.group_by("__day", maintain_order=True):
        by_day[d] = g.drop("__day")
    empty = frame.clear()
    written: dict[str, tuple[pl.DataFrame, bytes, str]] = {}
    for d in days:
        part = by_day.get(d, empty).sort(list(frame.columns))
        data = parquet_bytes(part)
        storage.write_bytes(partition_key(ds.name, d), data)
        written[key(d)] = (part, data, hashlib.sha256(data).hexdigest())
    md5s: dict[str, str] = {}
    try:
        if version is not None:
            md5s = version({k: data for k, (_, data, _) in written.items()})
    finally:
        for d in days:
            part, _, digest = written[key(d)]
            meta: dict[str, object] = {
                "rows": part.height,
                "sha256": digest,
                "schema": {c: str(t) for c, t in part.schema.items()},
            }
            if key(d) in md5s:
                meta["dvc_md5"] = md5s[key(d)]
            write_json(storage, meta_key(ds.name, d), meta)
    return [StoredPartition(d, written[key(d)][0].height, written[key(d)][2], md5s.get(key(d))) for d in days]


def missing_days(storage: Storage, dataset: str, days: list[date]) -> list[str]:
    """Days in `days` that have no stored partition of `dataset`."""
    return [key(d) for d in days if not storage.exists(meta_key(dataset, d))]


def load_days(storage: Storage, ds: DatasetSpec, days: list[date]) -> pl.DataFrame:
    """The stored rows of `days`, concatenated (the caller checks completeness first)."""
    frames = [read_parquet(storage, partition_key(ds.name, d)) for d in days]
    if not frames:
        return pl.DataFrame(schema={c: _POLARS_TYPES[s.type] for c, s in ds.columns.items()})
    return pl.concat(frames, how="vertical_relaxed")


def data_versions(storage: Storage, dataset: str, days: list[date]) -> dict[str, str]:
    """{day: sha256} of stored partitions."""
    return {key(d): read_json(storage, meta_key(dataset, d))["sha256"] for d in days}
