"""The drift-event rule and the retrain cutoff, without Dagster: reports in, state and request out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from mlforge.io.timeline import Cadence
from mlforge.monitoring.drift_events import (
    DRIFT_TRIGGER_TAG,
    DriftCursor,
    DriftReport,
    RetrainRequest,
    judge_reports,
    retrain_cutoff,
)

THRESHOLD = 0.5


def report(storage_id: int, day: str | None, share: float | None) -> DriftReport:
    return DriftReport(storage_id, day, share, run_id=f"run-{storage_id}")


@dataclass
class Wrapped:
    """What Dagster's MetadataValue looks like to the rule: an object with a `.value`."""

    value: Any


def test_a_drift_event_requests_exactly_one_retrain() -> None:
    # a clean day is judged and remembered
    state, req = judge_reports(DriftCursor(), [report(1, "1998-06-27", 0.1)], THRESHOLD)
    assert req is None and state == DriftCursor(storage_id=1, open=None)

    # two drifted days in one batch → one request, for the latest of them
    state, req = judge_reports(state, [report(2, "1998-06-28", 0.8), report(3, "1998-06-29", 0.8)], THRESHOLD)
    assert req is not None and (req.partition, req.storage_id, req.share) == ("1998-06-29", 3, 0.8)
    assert state == DriftCursor(storage_id=3, open="1998-06-28")

    # nothing new: nothing requested, state unchanged
    assert judge_reports(state, [], THRESHOLD) == (state, None)

    # the same event goes on: no second request
    state, req = judge_reports(state, [report(4, "1998-06-30", 0.9)], THRESHOLD)
    assert req is None and state == DriftCursor(storage_id=4, open="1998-06-28")

    # a clean report closes the event
    state, req = judge_reports(state, [report(5, "1998-06-30", 0.1)], THRESHOLD)
    assert req is None and state == DriftCursor(storage_id=5, open=None)

    # drift after the clean day is a new event: one more request
    state, req = judge_reports(state, [report(6, "1998-06-30", 0.7)], THRESHOLD)
    assert req is not None and req.partition == "1998-06-30" and req.run_key == "drift-6"
    assert state.open == "1998-06-30"


def test_the_threshold_itself_counts_as_drift() -> None:
    _, req = judge_reports(DriftCursor(), [report(1, "1998-01-01", THRESHOLD)], THRESHOLD)
    assert req is not None


def test_an_event_open_from_an_earlier_batch_requests_nothing_until_it_closes() -> None:
    open_state = DriftCursor(storage_id=10, open="1998-01-01")
    state, req = judge_reports(
        open_state, [report(11, "1998-01-02", 0.9), report(12, "1998-01-03", 0.9)], THRESHOLD
    )
    assert req is None and state == DriftCursor(storage_id=12, open="1998-01-01")
    # closed and reopened within one batch: the reopening requests
    state, req = judge_reports(
        open_state, [report(11, "1998-01-02", 0.1), report(12, "1998-01-03", 0.6)], THRESHOLD
    )
    assert req is not None and req.partition == "1998-01-03"
    assert state == DriftCursor(storage_id=12, open="1998-01-03")


def test_after_an_opening_every_drifted_day_of_the_batch_competes_for_the_request() -> None:
    # opened on the 5th, closed, reopened on the 3rd: the request is for the latest drifted day
    reports = [
        report(1, "1998-01-05", 0.6),
        report(2, "1998-01-06", 0.1),
        report(3, "1998-01-03", 0.9),
    ]
    state, req = judge_reports(DriftCursor(), reports, THRESHOLD)
    assert req is not None and (req.partition, req.storage_id) == ("1998-01-05", 1)
    assert state == DriftCursor(storage_id=3, open="1998-01-03")
    # the same day twice: the higher share, then the later report
    reports = [report(1, "1998-01-05", 0.6), report(2, "1998-01-05", 0.9), report(3, "1998-01-05", 0.9)]
    _, req = judge_reports(DriftCursor(), reports, THRESHOLD)
    assert req is not None and (req.share, req.storage_id) == (0.9, 3)


def test_unjudgeable_reports_only_advance_the_storage_id() -> None:
    start = DriftCursor(storage_id=1, open="1998-01-01")
    reports = [
        report(2, None, 0.9),  # no partition
        DriftReport.from_metadata(3, "", {"drift_share": 0.1}),  # an empty partition is none either
        report(7, "1998-01-02", None),  # no share
    ]
    state, req = judge_reports(start, reports, THRESHOLD)
    assert req is None and state == DriftCursor(storage_id=7, open="1998-01-01")


def test_report_share_is_the_higher_of_features_and_served_inputs() -> None:
    r = DriftReport.from_metadata(
        3,
        "1998-06-30",
        {"drift_share": Wrapped(0.2), "log_drift_share": 0.9, "report_html": Wrapped("file:///r.html")},
        run_id="abc",
    )
    assert r == DriftReport(3, "1998-06-30", 0.9, "abc", "file:///r.html")
    assert DriftReport.from_metadata(1, "d", {"drift_share": 1}).share == 1.0
    # booleans, text and missing values are no share
    assert DriftReport.from_metadata(1, "d", {"drift_share": True, "log_drift_share": "0.9"}).share is None
    assert DriftReport.from_metadata(1, "d", {}).share is None
    assert (
        DriftReport.from_metadata(1, "d", {"log_drift_share": Wrapped(None), "drift_share": 0.3}).share == 0.3
    )


def test_request_tags_and_run_key() -> None:
    req = RetrainRequest("1998-06-29", 0.8, 42, "run-1", "file:///report.html")
    assert req.run_key == "drift-42"
    assert req.tags() == {
        DRIFT_TRIGGER_TAG: "drift",
        "mlforge/drift_partition": "1998-06-29",
        "mlforge/drift_share": "0.8000",
        "mlforge/drift_run_id": "run-1",
        "mlforge/drift_report": "file:///report.html",
    }
    assert "mlforge/drift_report" not in RetrainRequest("1998-06-29", 0.8, 42).tags()


def test_cursor_round_trip_and_old_cursors() -> None:
    assert DriftCursor.parse(None) == DriftCursor() == DriftCursor.parse("")
    assert DriftCursor.parse("17") == DriftCursor(storage_id=17)  # MLForge ≤ 0.1
    state = DriftCursor(storage_id=5, open="1998-06-28")
    assert json.loads(state.dumps()) == {"storage_id": 5, "open": "1998-06-28"}
    assert DriftCursor.parse(state.dumps()) == state


@pytest.mark.parametrize(
    ("drift_day", "matured", "expected"),
    [
        ("1998-06-29", ["1998-03-01", "1998-03-31"], "1998-06-29"),  # labels mature past the drift day
        ("1998-06-29", ["1998-03-01", "1998-03-20"], "1998-06-18"),  # newest trainable: 03-20 + 90 days
        ("1998-06-18", {"1998-03-20"}, "1998-06-18"),  # the same day either way
        ("1998-06-29", [], None),  # nothing to train on
    ],
)
def test_retrain_cutoff(drift_day: str, matured: Any, expected: str | None) -> None:
    daily = Cadence("daily", date(1997, 1, 1), date(1998, 6, 30))
    assert retrain_cutoff(daily, drift_day, matured, 90) == expected
