"""Drift against a like-for-like reference: a champion trained at any cutoff of the example history
(here the session's compact example, Jan–Sep 1997), judged on a clean day a month later, reports a
low drift share (no false alarm from comparing populations).

The reference is the cutoff's own snapshot (the population the model starts scoring) and the
day's population its snapshot: both hold every customer known by their day (the entity universe),
not only the recently active ones. Before the universe a model trained at 1998-03-31 compared its
holdout (the whole cohort) with a day that held 40% of it and reported a drift share of 1.00 on
clean data; with the universe but the holdout (90 days older) as reference, 0.60 (both measured on
the full history).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from mlforge.features.offline import service_frame
from mlforge.features.refs import service_features
from mlforge.io import layout
from mlforge.io.storage import read_parquet
from mlforge.monitoring.drift import drift_report

#: three cutoffs across the last month of the compact history's trainable days, each judged 30 days
#: after it (a month of serving; the last one on the history's last day). Earlier cutoffs are not
#: clean: while the 120-day lookback still holds the cohort's first purchases (Jan–Mar 1997) its
#: population really shifts from month to month (a 1997-06-30 champion measured 0.73 a month later).
CUTOFFS = [date(1997, 7, 31), date(1997, 8, 15), date(1997, 8, 31)]
LATER = timedelta(days=30)
COHORT = 23_570  # every CDNOW customer (all first bought in 1997-Q1)


@pytest.fixture(scope="module")
def clean_days(materialized) -> dict[date, tuple[float, int, int]]:  # type: ignore[no-untyped-def]
    """Per cutoff: (drift share of the day 30 days later against that model's reference, rows,
    reference rows)."""
    runner, project = materialized.runner, materialized.project
    for cutoff in CUTOFFS:
        runner.materialize([runner.key("models", "churn", "trained")], cutoff)
    model = project.spec.model("churn")
    mon = project.spec.monitoring_for("churn").drift
    features = [f for _, f in service_features(project.spec, model.feature_service)]
    out = {}
    for cutoff in CUTOFFS:
        reference = read_parquet(project.storage, layout.model_reference("churn", cutoff))
        current = service_frame(project.storage, project.spec, model.feature_service, cutoff + LATER)
        res = drift_report(reference, current, features, mon.method, mon.threshold)
        out[cutoff] = (res.drift_share, current.height, reference.height)
    print({str(c): round(v[0], 3) for c, v in out.items()})
    return out


@pytest.mark.parametrize("cutoff", CUTOFFS, ids=str)
def test_a_clean_day_is_not_drift_for_a_champion_of_any_cutoff(
    clean_days: dict[date, tuple[float, int, int]], cutoff: date
) -> None:
    share, rows, ref_rows = clean_days[cutoff]
    assert rows == COHORT  # the day's population: every customer known by then
    assert ref_rows == min(COHORT, 20_000)  # drawn from the holdout snapshot's universe
    assert share < 0.5, f"clean {cutoff}: drift share {share:.2f}"
