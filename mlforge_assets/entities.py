"""Stage `entities/<dataset>`: every entity seen up to the day, with lifetime statistics.

Each day folds that day's raw rows into the previous day's index (a self-dependency on the day
before), so a new partition costs the same however long the history is.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from mlforge.config.project import Project
from mlforge.config.spec import DatasetSpec
from mlforge.data.raw import load_days, missing_days, polars_schema
from mlforge.errors import MissingPartitionsError
from mlforge.features.entities import (
    FIRST_DAY,
    IndexRule,
    iter_index,
    missing_index_days,
    read_index,
    write_index,
)
from mlforge_assets.conditions import after_upstream
from mlforge_assets.partitions import asset_key, history, previous
from mlforge_assets.stage import Stage, StageResult, stage_asset


def entities_asset(project: Project, ds: DatasetSpec) -> dg.AssetsDefinition:
    """The entity index of one dataset, one partition per day."""
    spec = project.spec
    join_key = spec.entity(ds.entity).join_key
    rule = IndexRule.of(ds, join_key)
    key = asset_key(project, "entities", ds.name)

    def run(stage: Stage, days: list[date]) -> StageResult:
        missing = missing_days(stage.storage, ds.name, days)
        if missing:
            raise MissingPartitionsError(f"entities/{ds.name}", f"raw/{ds.name}", missing)
        before = days[0] - timedelta(days=1)
        if days[0] <= spec.partitions.start:
            index = rule.empty(polars_schema(ds))
        elif missing_index_days(stage.storage, ds.name, [before]):
            raise MissingPartitionsError(
                f"entities/{ds.name}",
                f"entities/{ds.name}",
                [before.isoformat()],
                "The index of a day folds the day before: materialize from the first missing day.",
            )
        else:
            index = read_index(stage.storage, ds.name, before)
        events = load_days(stage.storage, ds, days, day_col="__day")
        digest, last = "", index
        for d, last in iter_index(index, events, join_key, "__day", days, rule.columns, rule):
            digest = write_index(stage.storage, ds.name, d, last)
        new = last.filter(last[FIRST_DAY] >= days[0]).height
        return StageResult(
            metadata={
                "dagster/row_count": last.height,
                "entities": last.height,
                "new_entities": new,
                "lifetime_columns": list(rule.columns),
                **({"attributes": list(rule.attributes)} if rule.attributes else {}),
            },
            data_version=digest,
        )

    return stage_asset(
        project,
        key=key,
        group="datasets",
        description=f"Every {ds.entity} seen in `{ds.name}` up to the day (the universe models score), "
        "with first/last day and lifetime statistics.",
        kinds={"parquet", "polars"},
        # the index of a day folds every raw day up to it: a late file for an old day makes every
        # later index stale, and the automation refolds the stored ones from that day on
        deps=[history(project, asset_key(project, "raw", ds.name)), previous(key)],
        run=run,
        every_day=True,
        automation_condition=after_upstream(label="refold after an earlier raw day changed"),
    )
