"""The unattended loop on a real dagster-daemon: replay → drift → one retrain → gate → deployment,
then files landing: a new day becomes a scored day, a late file is carried through by automation.

Nothing in this test calls a stage: it prepares a project whose source (a watched landing folder)
has drift injected from a given day, backfills the history before the replay, starts
`dagster-daemon` against a temporary instance, drops two files, and only watches. Alerts go to a
webhook receiver the test runs on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from projects import compact_spec, first_training_day, starting

from mlforge.data.simulate import DriftScenario
from mlforge.features.offline import read_snapshots
from mlforge.io import layout
from mlforge.io.storage import read_json, read_parquet
from mlforge.io.timeline import days_between
from mlforge_assets import demo
from servers import Receiver

HEADER = "customer_id date number_of_cds dollar_value"

# the compact example (to Sep 1997): the same graph as the full history at a fraction of the
# backfill (one clean replayed day, one drifted: a retrain per drift event; the new day's file is
# drifted too). Each replayed day
# is a daemon run of 20-40 s, half of them Evidently's report, so the replay is kept short. The
# partitions start at the first training snapshot of the champion before the replay: the backfill
# materializes every day that model (and the retrain a day or two later) reads, and no more.
REPLAY_START, REPLAY_END, DRIFT_FROM = date(1997, 9, 26), date(1997, 9, 27), date(1997, 9, 27)
CLEAN = ["1997-09-26"]
DRIFTED = ["1997-09-27"]
# files dropped into the landing area during the run: one for the day after the replay (it waits
# for the replay's last day, whose index its day folds, then becomes a scored day), and a late one
# for a day the backfill stored before the replay (its raw day is redone, and the declarative
# automation refolds the index and recomputes the features of every stored day after it)
NEW_DAY, LATE = date(1997, 9, 28), date(1997, 9, 20)


@pytest.mark.timeout(900)
def test_unattended_loop_on_dagster_daemon(tmp_path: Path, repo_root: Path, receiver: Receiver) -> None:
    spec = compact_spec(repo_root, str(repo_root / "data/cdnow/CDNOW_master.txt"))
    start = first_training_day(spec, REPLAY_START - timedelta(days=1))  # 1997-05-25
    spec = starting(spec, start)
    spec["monitoring"][0]["drift"]["reference_rows"] = 5000
    setup = demo.prepare(
        tmp_path / "loop",
        spec,
        repo_root,
        REPLAY_START,
        REPLAY_END,
        DriftScenario(DRIFT_FROM),
        interval_seconds=3,
        landing=True,
    )
    project = setup.project()
    history = (setup.folder / "landing" / "transactions" / "history.txt").read_text().split("\n")
    rows = [ln.split() for ln in history[1:] if ln.strip()]

    def known_by(d: date) -> set[str]:
        return {r[0] for r in rows if f"{start:%Y%m%d}" <= r[1] <= f"{d:%Y%m%d}"}

    # the late purchase is by a customer who bought nothing in the week after it, so the feature
    # snapshots of that week change only if the automation recomputes them
    quiet = {r[0] for r in rows if f"{LATE:%Y%m%d}" <= r[1] <= f"{LATE + timedelta(days=7):%Y%m%d}"}
    customer = min(known_by(LATE) - quiet)
    other = max(known_by(NEW_DAY))
    demo.backfill(setup)
    tracker = project.tracker
    before = tracker.alias("churn", "champion")
    assert before is not None and before.version == 1

    os.environ["MLFORGE_ALERT_WEBHOOK_URL"] = receiver.url
    try:
        proc = demo.start_daemon(setup)
    finally:
        del os.environ["MLFORGE_ALERT_WEBHOOK_URL"]
    try:
        # the replay: drift → one retrain → gate → deployment, with nothing else running
        replay = demo.watch(setup, timeout=600, settle_seconds=12)
        assert replay.finished, (setup.folder / "daemon.log").read_text()[-3000:]
        # then two files land: a new day nobody ever scored (only the landing sensor can make it
        # a scored day) and a late purchase for a day stored before the replay
        assert demo.sensor_cursor(setup, "churn_transactions_landing") is not None
        assert not project.storage.exists(layout.predictions("churn", NEW_DAY))
        folder = setup.folder / "landing" / "transactions"
        (folder / f"{NEW_DAY}.txt").write_text(f"{HEADER}\n{other} {NEW_DAY:%Y%m%d} 1 12.00\n")
        (folder / f"{LATE}.txt").write_text(f"{HEADER}\n{customer} {LATE:%Y%m%d} 2 21.50\n")
        report = demo.watch(setup, timeout=600, settle_seconds=12)
    finally:
        demo.stop(proc)
    print("\n".join(report.lines()))
    # the daemon and everything it started (code server, run workers) are gone
    assert proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)

    assert report.finished, (setup.folder / "daemon.log").read_text()[-3000:]
    assert report.failed_runs == []
    # every replayed day materialized, by the replay sensor's runs
    assert report.replayed_days == CLEAN + DRIFTED
    # the replayed days, the late file's raw day alone, and the new file's day
    assert report.runs_by_job["churn_daily_refresh"] == len(CLEAN + DRIFTED) + 2
    scored = read_parquet(project.storage, layout.predictions("churn", NEW_DAY))
    assert sorted(scored["customer_id"]) == sorted(known_by(NEW_DAY))  # every customer known by the day
    for d in (NEW_DAY, LATE):
        same_day = sum(1 for r in rows if r[1] == f"{d:%Y%m%d}")
        assert read_json(project.storage, layout.raw_meta("transactions", d))["rows"] == same_day + 1
    # the late purchase reached the stored days after it, without a command: the backfill stored
    # 1997-09-21..25 before the daemon started and nothing but the automation redid them
    assert any("entities/transactions" in r.split()[0].split(",") for r in report.automation_runs)
    for d in days_between(LATE + timedelta(days=1), LATE + timedelta(days=5)):
        snap = read_snapshots(project.storage, "customer_activity", [d]).filter(
            pl.col("customer_id") == customer
        )
        assert snap["days_since_last"].to_list() == [(d - LATE).days], d
    # the drift report flagged the injected drift and not the clean days
    assert all(report.drift_share[d] < 0.5 for d in CLEAN), report.drift_share
    assert report.drift_share[str(DRIFT_FROM)] >= 0.5, report.drift_share
    # After the first drifted day the order of two sensors decides what the later days are measured
    # against: the retrain's cutoff is the drifted day or the newest one whose labels had matured
    # when the drift sensor ticked, and a champion trained at a drifted cutoff takes that day's
    # snapshot as its reference (the drifted population is its normal). So the rule is checked on
    # the shares observed, in day order: one retrain per drift event (a report at or over the
    # threshold after one under it), one firing alert per event and one resolved per recovery.
    days = sorted(report.drift_share)
    breached = [report.drift_share[d] >= 0.5 for d in days]
    openings = [d for d, b, prev in zip(days[1:], breached[1:], breached[:-1], strict=True) if b and not prev]
    assert openings[0] == str(DRIFT_FROM)
    assert sorted(r["drift_partition"] for r in report.retrain_runs) == openings, report.retrain_runs
    assert all(r["status"] == "SUCCESS" for r in report.retrain_runs)
    first = next(r for r in report.retrain_runs if r["drift_partition"] == str(DRIFT_FROM))
    assert str(REPLAY_START - timedelta(days=1)) <= first["partition"] <= str(DRIFT_FROM)

    # the first retrain registered version 2, tagged with the drift behind it
    new = tracker.version("churn", 2)
    assert new.tags["mlforge.trigger"] == "drift"
    assert new.tags["mlforge.drift_partition"] == str(DRIFT_FROM)
    assert new.tags["dagster.run_id"] == first["run_id"]
    assert new.tags["mlforge.drift_report"].endswith(f"date={DRIFT_FROM}/report.html")
    assert sorted(r["version"] for r in report.registered) == list(range(1, len(report.retrain_runs) + 2))
    # each version was promoted only if the gate passed, and the manifest followed the champion
    gate = project.spec.model("churn").gate
    promoted = [1]
    for r in report.retrain_runs:
        reg = json.loads(
            (
                project.settings.state_dir
                / "storage"
                / f"models/churn/cutoff={r['partition']}/registration.json"
            ).read_text()
        )
        if reg["contended"] and reg["champion_metric"] is not None:
            better = reg["candidate_metric"] >= reg["champion_metric"] - gate.max_regression
            assert reg["promoted"] == better
        promoted += [reg["version"]] if reg["promoted"] else []
    after = tracker.alias("churn", "champion")
    assert after is not None and after.version == promoted[-1]
    assert report.manifest_versions == [after.version]
    assert report.manifest_revision == len(promoted)

    # the drift breaches raised one alert per event, resolved by a recovery, sent to the webhook
    drift_alerts = [a for a in receiver.received if a["key"].endswith("drift:drift_share")]
    expected = [
        ("firing" if b else "resolved", d)
        for d, b, prev in zip(days[1:], breached[1:], breached[:-1], strict=True)
        if b != prev
    ]
    assert [(a["status"], a["partition"]) for a in drift_alerts] == expected
    assert drift_alerts[0]["value"] >= 0.5
    # the sensors ticked on their own (the note reports how many)
    assert report.sensor_ticks["churn_churn_drift_retrain"] >= 4
