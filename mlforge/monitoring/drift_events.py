"""Drift events: which drift reports open an event, and the one retrain an event requests.

A drift event opens with the first report whose drift share (features or served inputs,
whichever is higher) is at or over the threshold, and closes with the next report under it. Only
the opening requests a retrain, so a week of drifted days is one retrain, not seven. Reports are
judged in storage order, each once: the state remembers the last one judged and the first day of
an open event, and is what the drift sensor keeps as its cursor (over sensor and daemon restarts).

The retrain's cutoff is the drifted day, or the newest day whose holdout labels (cutoff − horizon)
have matured, whichever is earlier. Everything here is pure; the sensor does the Dagster I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mlforge.io.timeline import Cadence

#: Run tag saying what requested a run; "drift" for the retrains requested here.
DRIFT_TRIGGER_TAG = "mlforge/trigger"
#: Metadata of a drift report holding a drift share: of the features, of the served inputs.
SHARE_KEYS = ("drift_share", "log_drift_share")


@dataclass(frozen=True)
class DriftCursor:
    """What the drift sensor has judged: the last report's storage id, the open event's first day."""

    storage_id: int | None = None
    open: str | None = None

    @classmethod
    def parse(cls, cursor: str | None) -> DriftCursor:
        """The state a stored cursor string holds (none: nothing judged yet)."""
        if not cursor:
            return cls()
        if cursor.isdigit():  # the cursor of MLForge ≤ 0.1: a storage id only
            return cls(storage_id=int(cursor))
        data = dict(json.loads(cursor))
        return cls(storage_id=data.get("storage_id"), open=data.get("open"))

    def dumps(self) -> str:
        """The cursor string: {"storage_id": last judged, "open": first day of an open event}."""
        return json.dumps({"storage_id": self.storage_id, "open": self.open})


@dataclass(frozen=True)
class DriftReport:
    """One drift materialization as the rule sees it; no partition or no share: not judged."""

    storage_id: int
    partition: str | None
    share: float | None
    run_id: str = ""
    report_html: str | None = None

    @classmethod
    def from_metadata(
        cls, storage_id: int, partition: str | None, metadata: Mapping[str, Any], run_id: str = ""
    ) -> DriftReport:
        """A report from materialization metadata (plain values or objects with a `.value`)."""
        # features or served inputs: whichever drifted more
        shares = [_number(metadata.get(k)) for k in SHARE_KEYS]
        share = max((v for v in shares if v is not None), default=None)
        html = metadata.get("report_html")
        html = getattr(html, "value", html)
        return cls(storage_id, partition or None, share, run_id, str(html) if html else None)


@dataclass(frozen=True)
class RetrainRequest:
    """The retrain a drift event's opening asks for (its cutoff is chosen by `retrain_cutoff`)."""

    partition: str  # the drifted day
    share: float
    storage_id: int
    run_id: str = ""
    report_html: str | None = None

    @property
    def run_key(self) -> str:
        """The run key: one per opening report, so a repeated request is a no-op."""
        return f"drift-{self.storage_id}"

    def tags(self) -> dict[str, str]:
        """Run tags tying the retrain to the drift report behind it."""
        tags = {
            DRIFT_TRIGGER_TAG: "drift",
            "mlforge/drift_partition": self.partition,
            "mlforge/drift_share": f"{self.share:.4f}",
            "mlforge/drift_run_id": self.run_id,
        }
        if self.report_html:
            tags["mlforge/drift_report"] = self.report_html
        return tags


def judge_reports(
    state: DriftCursor, reports: Sequence[DriftReport], threshold: float
) -> tuple[DriftCursor, RetrainRequest | None]:
    """(new state, the retrain to request or None) after judging `reports` in storage order.

    At most one retrain per call: when events open among `reports`, the request is for the latest
    drifted day seen from the first opening on. The new state's storage id is the highest among
    `reports` (judged or not), so none of them is judged again.
    """
    if not reports:
        return state, None
    opened: list[DriftReport] = []
    event = state.open
    for r in reports:
        if r.partition is None or r.share is None:
            continue
        if r.share >= threshold:
            # once an event opened in this batch, every later drifted day competes for the cutoff
            if event is None or opened:
                opened.append(r)
            event = event or r.partition
        else:
            event = None
    new = DriftCursor(storage_id=max(r.storage_id for r in reports), open=event)
    if not opened:
        return new, None
    top = max(opened, key=lambda r: (r.partition, r.share, r.storage_id))
    assert top.partition is not None and top.share is not None
    return new, RetrainRequest(top.partition, top.share, top.storage_id, top.run_id, top.report_html)


def retrain_cutoff(
    cadence: Cadence, drift_partition: str, matured_label_partitions: Iterable[str], horizon_days: int
) -> str | None:
    """The cutoff partition to retrain on: the drifted one, or the newest whose holdout labels
    (cutoff − horizon) have matured, whichever is earlier; None: no labels.

    A cutoff's holdout labels are those of its snapshot day − horizon, so the newest trainable
    cutoff is the newest label snapshot plus the horizon (moved back to a snapshot day).
    """
    matured = list(matured_label_partitions)
    if not matured:
        return None
    trainable = cadence.snap(cadence.snapshot_day(max(matured)) + timedelta(days=horizon_days))
    return cadence.key_of(min(cadence.snapshot_day(drift_partition), trainable))


def _number(v: Any) -> float | None:
    """A metadata entry's numeric value, if it has one."""
    v = getattr(v, "value", v)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
