"""The landing area of a watched source: which files are new, and whether each one fits the schema.

A watched source's path is a glob (`landing/transactions/*.txt`, or an S3 prefix with a glob);
its folder is the landing area. A file is inspected once (the sensor's cursor remembers it):
read and typed by the spec, checked for nulls in required columns and values out of range, and
either accepted — with the partition days its rows fall in — or moved to `_quarantine/` beside
it with `<file>.error.txt` naming the file, row and column. Nothing stored is written for a
quarantined file, and the raw asset never reads it (the glob does not reach `_quarantine/`).
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from mlforge.config.spec import DatasetSpec, ProjectSpec
from mlforge.data.checks import first_violation
from mlforge.data.raw import partition_day
from mlforge.data.sources import parse_file
from mlforge.errors import DataError
from mlforge.io.storage import LocalStorage, Storage

QUARANTINE = "_quarantine"


@dataclass(frozen=True)
class Landing:
    """A dataset's landing area: its storage (the glob's folder or S3 prefix) and the file pattern."""

    dataset: str
    storage: Storage
    pattern: str

    def files(self) -> list[str]:
        """Names of the files in the area that match the pattern, sorted (not the quarantine)."""
        return sorted(k for k in self.storage.list("") if "/" not in k and fnmatch.fnmatch(k, self.pattern))


@dataclass(frozen=True)
class Inspected:
    """One new file: accepted with the days it covers, or quarantined with the reason."""

    name: str
    sha256: str
    days: list[date]
    rows: int
    error: str | None = None


def landing_of(ds: DatasetSpec, spec_dir: Path, endpoint_url: str | None = None) -> Landing:
    """The landing area of a watched dataset (its glob's folder, relative to the spec's folder)."""
    folder, _, pattern = ds.source.path.rpartition("/")
    if folder.startswith("s3://"):
        from mlforge.io.storage import S3Storage

        return Landing(ds.name, S3Storage(folder, endpoint_url=endpoint_url), pattern)
    root = Path(folder) if Path(folder).is_absolute() else spec_dir / folder
    root.mkdir(parents=True, exist_ok=True)
    return Landing(ds.name, LocalStorage(root), pattern)


def inspect_file(spec: ProjectSpec, ds: DatasetSpec, landing: Landing, name: str) -> Inspected:
    """Read and check one landed file; quarantine it (and say why) when it does not fit."""
    data = landing.storage.read_bytes(name)
    digest = hashlib.sha256(data).hexdigest()
    where = landing.storage.uri(name)
    try:
        frame = parse_file(ds, where, data)
        problem = first_violation(frame, ds)
        if problem is not None:
            raise DataError(f"{where}: {problem}")
    except DataError as exc:
        message = str(exc)
        quarantine(landing, name, data, message)
        return Inspected(name, digest, [], 0, message)
    p = spec.partitions
    days = frame.select(partition_day(ds, p.start).alias("d"))["d"].unique().sort().to_list()
    return Inspected(name, digest, [d for d in days if p.start <= d <= p.end], frame.height)


def quarantine(landing: Landing, name: str, data: bytes, message: str) -> None:
    """Move a file to `_quarantine/` with a note saying why (the copy first: nothing is lost)."""
    landing.storage.write_bytes(f"{QUARANTINE}/{name}", data)
    landing.storage.write_bytes(f"{QUARANTINE}/{name}.error.txt", (message + "\n").encode())
    landing.storage.delete(name)
