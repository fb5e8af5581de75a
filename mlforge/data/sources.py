"""Sources: reading a dataset's files (CSV, parquet, whitespace-separated), local or on S3, typed by the spec."""

from __future__ import annotations

import fnmatch
import glob
import io
from pathlib import Path

import polars as pl

from mlforge.config.spec import ColumnSpec, DatasetSpec
from mlforge.data.raw import _POLARS_TYPES, polars_schema
from mlforge.errors import DataError


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
        from mlforge.io.storage import S3Storage

        root, _, name = path.rpartition("/")
        store = S3Storage(root, endpoint_url=endpoint_url)
        if any(c in name for c in "*?["):  # a glob over one prefix (a landing area)
            names = sorted(k for k in store.list("") if "/" not in k and fnmatch.fnmatch(k, name))
            if not names:
                raise DataError(f"source not found: {path}")
            return [(f"{root}/{k}", store.read_bytes(k)) for k in names[: 1 if first_only else None]]
        return [(path, store.read_bytes(name))]
    files = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
    if not files or not all(Path(f).is_file() for f in files):
        raise DataError(f"source not found: {path}")
    return [(f, Path(f).read_bytes()) for f in files[: 1 if first_only else None]]


def read_source(ds: DatasetSpec, path: str, endpoint_url: str | None = None) -> pl.DataFrame:
    """Read every file of the source and return a frame typed as the spec says.

    Raises DataError naming the file and the column when a column is missing or a value cannot be
    parsed as its declared type.
    """
    try:
        files = source_files(path, endpoint_url)
    except DataError:
        if not ds.source.watch:
            raise
        files = []  # a landing area nothing has arrived in yet: no rows, not an error
    frames = [parse_file(ds, name, data) for name, data in files]
    if not frames:
        return pl.DataFrame(schema=polars_schema(ds))
    return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]


def parse_file(ds: DatasetSpec, name: str, data: bytes) -> pl.DataFrame:
    """One file's bytes in the source's format, typed by the spec (DataError naming file, row, column)."""
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
    return _typed(df, ds, name)


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
    if (
        col.type in ("date", "datetime")
        and ds.timestamp
        and name == ds.timestamp.column
        and ds.timestamp.format
    ):
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
