"""Materialization metadata the UI shows: markdown tables, plain values, a failed run's step messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dagster as dg


def metadata_values(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values of materialization/observation metadata (MetadataValue → its `.value`)."""
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def metadata_value(v: Any) -> Any:
    """Metadata values Dagster accepts: keep scalars and MetadataValues, JSON the rest."""
    if isinstance(v, dg.MetadataValue | str | int | float | bool) or v is None:
        return v
    return dg.MetadataValue.json(v)


def md_table(rows: list[dict[str, Any]], limit: int = 10) -> dg.MetadataValue:
    """A markdown table preview for the UI."""
    if not rows:
        return dg.MetadataValue.md("_no rows_")
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows[:limit]:
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def step_failures(events: Iterable[dg.DagsterEvent]) -> list[str]:
    """'step: message' of every failed step and failed check among `events` (our messages, no trace)."""
    lines = []
    for ev in events:
        if ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error  # type: ignore[union-attr]
            msg = err.message.strip() if err else "failed"
            # dg.Failure puts our description after "Failure: "
            desc = msg.split("dagster._core.definitions.events.Failure: ", 1)[-1]
            lines.append(f"{ev.step_key}: {desc}")
        elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
            data = ev.event_specific_data
            if data is not None and not data.passed:  # type: ignore[union-attr]
                lines.append(f"check {data.check_name} on {data.asset_key.to_user_string()} failed")  # type: ignore[union-attr]
    return lines
