"""Stage `raw/<dataset>`: read the source for the partition's days, validate, store parquet.

With DVC versioning on (the default; `MLFORGE_DVC=off` switches it off) the stored days are also
recorded in the project's DVC repository in one `dvc add` per run and pushed to its remote; each
day's sidecar then carries `dvc_md5` beside `sha256`, and a single-partition run reports the DVC
md5 as the Dagster data version.
"""

from __future__ import annotations

from datetime import date

import dagster as dg

from mlforge.config.project import Project
from mlforge.config.spec import DatasetSpec
from mlforge.data import checks as core_checks
from mlforge.data.raw import partition_day, store_days
from mlforge.io import layout
from mlforge_assets.metadata import md_table
from mlforge_assets.partitions import asset_key
from mlforge_assets.stage import Stage, StageResult, check, stage_asset


def raw_asset(project: Project, ds: DatasetSpec) -> dg.AssetsDefinition:
    """The raw asset of one dataset."""

    def run(stage: Stage, days: list[date]) -> StageResult:
        from mlforge.data.versioning import DvcBatch, versioning_enabled

        frame = project.read_source(ds)
        dvc = DvcBatch.for_project(project, ds.name) if versioning_enabled() else None
        start = project.spec.partitions.start
        stored = store_days(stage.storage, ds, frame, days, dvc.snapshot if dvc else None, start)
        window = frame.filter(partition_day(ds, start).is_between(days[0], days[-1]))
        rows = sum(p.rows for p in stored)
        dvc_meta = dvc.push(stored[-1]) if dvc else {}
        data_version = stored[-1].dvc_md5 or stored[-1].sha256
        return StageResult(
            metadata={
                "dagster/row_count": rows,
                "days": len(stored),
                "empty_days": sum(1 for p in stored if p.rows == 0),
                "schema": {c: s.type for c, s in ds.columns.items()},
                "content_sha256": stored[-1].sha256,
                **dvc_meta,
                "preview": md_table(window.head(5).to_dicts()),
                "storage": stage.storage.uri(layout.raw_prefix(ds.name)),
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
        every_day=True,
        checks=[
            check(
                "not_null",
                "Required columns have no nulls.",
                required=[c for c, s in ds.columns.items() if not s.nullable],
            ),
            check("value_ranges", "Values stay within the spec's bounds.", bounds=bounds),
        ],
    )
