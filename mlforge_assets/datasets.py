"""Stage `raw/<dataset>`: read the source for the partition's days, validate, store parquet.

With DVC versioning on (the default; `MLFORGE_DVC=off` switches it off) the stored days are also
recorded in the project's DVC repository in one `dvc add` per run and pushed to its remote; each
day's sidecar then carries `dvc_md5` beside `sha256`, and a single-partition run reports the DVC
md5 as the Dagster data version.
"""

from __future__ import annotations

import json
from datetime import date

import dagster as dg

from mlforge import checks as core_checks
from mlforge.datasets import read_source, store_days
from mlforge.project import Project
from mlforge.spec import DatasetSpec
from mlforge.storage import Storage, write_json
from mlforge_assets.common import Stage, StageResult, asset_key, check, md_table, stage_asset


class _Capture:
    """Storage that passes parquet writes through and keeps their bytes, and holds sidecars back.

    The raw stage hands the exact bytes it stored to DVC without reading them back, and writes each
    sidecar once, after DVC has recorded its md5.
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self.root = storage.root
        self.parquet: dict[str, bytes] = {}
        self.sidecars: dict[str, dict[str, object]] = {}

    def write_bytes(self, key: str, data: bytes) -> None:
        if key.endswith("/_meta.json"):
            self.sidecars[key] = json.loads(data)
            return
        self._storage.write_bytes(key, data)
        if key.endswith("/data.parquet"):
            self.parquet[key] = data

    def __getattr__(self, name: str) -> object:
        return getattr(self._storage, name)


def _day_of(k: str) -> str:
    return k.split("date=", 1)[1].split("/", 1)[0]


def raw_asset(project: Project, ds: DatasetSpec) -> dg.AssetsDefinition:
    """The raw asset of one dataset."""

    def run(stage: Stage, days: list[date]) -> StageResult:
        from mlforge.versioning import versioning_enabled

        frame = read_source(ds, project.source_path(ds.source.path), project.settings.storage_endpoint_url)
        versioned = versioning_enabled()
        target = _Capture(stage.storage) if versioned else stage.storage
        stored = store_days(target, ds, frame, days)  # type: ignore[arg-type]
        window = frame.filter(frame[ds.timestamp.column].is_between(days[0], days[-1]))
        rows = sum(p.rows for p in stored)
        dvc_meta: dict[str, object] = {}
        data_version = stored[-1].sha256
        if isinstance(target, _Capture):
            dvc_meta = _version(project, stage.storage, ds, target)
            data_version = str(dvc_meta["dvc_md5"])
        return StageResult(
            metadata={
                "dagster/row_count": rows,
                "days": len(stored),
                "empty_days": sum(1 for p in stored if p.rows == 0),
                "schema": {c: s.type for c, s in ds.columns.items()},
                "content_sha256": stored[-1].sha256,
                **dvc_meta,
                "preview": md_table(window.head(5).to_dicts()),
                "storage": stage.storage.uri(f"raw/{ds.name}/"),
            },
            checks=[core_checks.not_null(window, ds), core_checks.value_ranges(window, ds)],
            data_version=data_version,
        )

    bounds = {c: [s.min, s.max] for c, s in ds.columns.items() if s.min is not None or s.max is not None}
    return stage_asset(
        project,
        key=asset_key(project, "raw", ds.name),
        group="datasets",
        description=ds.description or f"Raw `{ds.name}` for the day, validated and stored as parquet.",
        kinds={"parquet", "polars", "dvc"},
        deps=[],
        run=run,
        checks=[
            check(
                "not_null",
                "Required columns have no nulls.",
                required=[c for c, s in ds.columns.items() if not s.nullable],
            ),
            check("value_ranges", "Values stay within the spec's bounds.", bounds=bounds),
        ],
    )


def _version(project: Project, storage: Storage, ds: DatasetSpec, captured: _Capture) -> dict[str, object]:
    """Record the stored days in DVC (one `dvc add`), write the sidecars with their md5, push."""
    import time

    from mlforge.versioning import DatasetVersions

    versions = DatasetVersions.for_project(project)
    parts = {_day_of(k): data for k, data in captured.parquet.items()}
    md5s: dict[str, str] = {}
    snap = None
    try:
        snap = versions.snapshot_many(ds.name, parts)
        md5s = snap.days
    finally:
        # Sidecars are written even when DVC failed (without an md5), so that the sidecar always
        # describes the parquet beside it; the run still fails with DVC's error.
        for k, meta in captured.sidecars.items():
            md5 = md5s.get(_day_of(k))
            write_json(storage, k, {**meta, "dvc_md5": md5} if md5 else meta)
    t0 = time.perf_counter()
    pushed = versions.push()
    last = max(md5s)
    return {
        "dvc_md5": md5s[last],
        "dvc_dataset_md5": snap.dataset_md5,
        "dvc_remote": versions.remote,
        "dvc_pushed_objects": pushed,
        "dvc_seconds": round(snap.seconds + time.perf_counter() - t0, 2),
    }
