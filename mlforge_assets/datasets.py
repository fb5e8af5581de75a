"""Stage `raw/<dataset>`: read the source for the partition's days, validate, store parquet."""

from __future__ import annotations

from datetime import date

import dagster as dg

from mlforge import checks as core_checks
from mlforge.datasets import read_source, store_days
from mlforge.project import Project
from mlforge.spec import DatasetSpec
from mlforge_assets.common import Stage, StageResult, asset_key, check, md_table, stage_asset


def raw_asset(project: Project, ds: DatasetSpec) -> dg.AssetsDefinition:
    """The raw asset of one dataset."""

    def run(stage: Stage, days: list[date]) -> StageResult:
        frame = read_source(ds, project.source_path(ds.source.path))
        stored = store_days(stage.storage, ds, frame, days)
        window = frame.filter(frame[ds.timestamp.column].is_between(days[0], days[-1]))
        rows = sum(p.rows for p in stored)
        return StageResult(
            metadata={
                "dagster/row_count": rows,
                "days": len(stored),
                "empty_days": sum(1 for p in stored if p.rows == 0),
                "schema": {c: s.type for c, s in ds.columns.items()},
                "content_sha256": stored[-1].sha256,
                "preview": md_table(window.head(5).to_dicts()),
                "storage": stage.storage.uri(f"raw/{ds.name}/"),
            },
            checks=[core_checks.not_null(window, ds), core_checks.value_ranges(window, ds)],
            data_version=stored[-1].sha256,
        )

    bounds = {c: [s.min, s.max] for c, s in ds.columns.items() if s.min is not None or s.max is not None}
    return stage_asset(
        project,
        key=asset_key(project, "raw", ds.name),
        group="datasets",
        description=ds.description or f"Raw `{ds.name}` for the day, validated and stored as parquet.",
        kinds={"parquet", "polars"},
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
