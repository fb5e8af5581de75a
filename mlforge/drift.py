"""Data drift with Evidently: a day's features against the champion's training reference.

Evidently takes about 7 s to import, so it is imported inside `drift_report` only.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl


@dataclass(frozen=True)
class DriftResult:
    """A drift report and the numbers pulled out of it."""

    drift_share: float
    drifted_columns: int
    total_columns: int
    dataset_drift: bool
    column_scores: dict[str, float]
    html: bytes
    json: bytes


def drift_report(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    columns: list[str],
    method: str | None,
    threshold: float,
) -> DriftResult:
    """Evidently's DataDriftPreset over `columns`; dataset drift when share ≥ `threshold`."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    kwargs: dict[str, Any] = {"drift_share": threshold}
    if method:
        kwargs["method"] = method
    ref = reference.select(columns).to_pandas()
    cur = current.select(columns).to_pandas()
    snap = Report([DataDriftPreset(**kwargs)]).run(current_data=cur, reference_data=ref)
    data = snap.dict()
    share, drifted, scores = _parse(data, columns)
    with tempfile.TemporaryDirectory() as tmp:
        html_path = Path(tmp) / "report.html"
        snap.save_html(str(html_path))
        html = html_path.read_bytes()
    return DriftResult(
        drift_share=share,
        drifted_columns=drifted,
        total_columns=len(columns),
        dataset_drift=share >= threshold,
        column_scores=scores,
        html=html,
        json=json.dumps(data, default=str).encode(),
    )


def _parse(data: dict[str, Any], columns: list[str]) -> tuple[float, int, dict[str, float]]:
    """Drifted-column share and per-column scores from Evidently's snapshot dict."""
    share, drifted = 0.0, 0
    scores: dict[str, float] = {}
    for m in data.get("metrics", []):
        name = str(m.get("metric_name", ""))
        value = m.get("value")
        if name.startswith("DriftedColumnsCount") and isinstance(value, dict):
            share = float(value.get("share", 0.0))
            drifted = int(value.get("count", 0))
        elif name.startswith("ValueDrift"):
            col = str(m.get("config", {}).get("column", ""))
            if col in columns and isinstance(value, int | float):
                scores[col] = float(value)
    return share, drifted, scores
