"""Alerts: one per breach until it clears, delivered to a real local webhook; run failures alert too."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from projects import END

from mlforge.monitoring.alerts import AlertBook, AlertChannel
from mlforge_assets.factory import build_definitions
from mlforge_resources import AlertsResource
from servers import Receiver


def test_webhook_receives_one_alert_per_breach_until_it_clears(tmp_path: Path, receiver: Receiver) -> None:
    from mlforge.io.storage import LocalStorage

    book = AlertBook(LocalStorage(tmp_path), AlertChannel(receiver.url))
    sent = [
        book.observe("drift", b, f"day {i}", value=0.9 if b else 0.1, threshold=0.5)
        for i, b in enumerate([False, True, True, True, False, False, True])
    ]
    assert [a.status if a else None for a in sent] == [None, "firing", None, None, "resolved", None, "firing"]
    assert [r["status"] for r in receiver.received] == ["firing", "resolved", "firing"]
    assert receiver.received[0]["value"] == 0.9 and receiver.received[0]["threshold"] == 0.5
    assert set(book.open_alerts()) == {"drift"}


def test_unreachable_webhook_loses_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from mlforge.io.storage import LocalStorage

    book = AlertBook(LocalStorage(tmp_path), AlertChannel("http://127.0.0.1:9/hook?token=s3cr3t", 1.0))
    alert = book.observe("latency", True, "p99 80 ms > 50 ms", value=80.0, threshold=50.0)
    assert alert is not None and set(book.open_alerts()) == {"latency"}
    assert "not delivered" in caplog.text and "127.0.0.1:9" in caplog.text and "s3cr3t" not in caplog.text


def test_run_failure_sends_an_alert_with_the_error_and_a_link(materialized, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    """A failed run (labels whose horizon has not passed) reaches the webhook through the sensor."""
    runner = materialized.runner
    result = dg.materialize(
        runner.assets,
        selection=[runner.key("labels", "churn")],
        partition_key=END.isoformat(),  # the compact example's last day
        instance=materialized.instance,
        resources=runner.resources,
        raise_on_error=False,
    )
    assert not result.success
    defs = build_definitions(materialized.project)
    sensor = defs.get_repository_def().get_sensor_def("churn_run_failure_alert")
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=materialized.instance,
        dagster_run=result.dagster_run,
        resources={"alerts": AlertsResource(webhook_url=receiver.url, dagster_url="http://dagster:3000")},
    )
    sensor(context)  # type: ignore[operator]
    assert len(receiver.received) == 1
    alert = receiver.received[0]
    assert alert["status"] == "firing" and alert["partition"] == END.isoformat()
    assert "has not passed yet" in alert["summary"]
    assert alert["links"]["run"] == f"http://dagster:3000/runs/{result.run_id}"
