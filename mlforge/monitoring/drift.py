"""Data drift with Evidently: a day's features against the champion's training reference.

Evidently takes about 7 s to import, so it is imported inside `drift_report` only.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

MIN_DRIFT_LOG_ROWS = 100  # fewer served predictions in a day than this give no meaningful drift test


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
    column_drifted: dict[str, bool] = field(default_factory=dict)
    column_thresholds: dict[str, float] = field(default_factory=dict)

    def top_columns(self, n: int = 10) -> list[dict[str, Any]]:
        """The `n` columns furthest past (or closest to) their drift threshold, drifted first."""
        rows = [
            {
                "column": c,
                "score": s,
                "threshold": self.column_thresholds.get(c),
                "drifted": self.column_drifted.get(c, False),
            }
            for c, s in self.column_scores.items()
        ]

        def severity(r: dict[str, Any]) -> float:
            t = r["threshold"] or 1.0
            # distances drift above their threshold, p-values below it
            return r["score"] / t if r["score"] >= t or not r["drifted"] else t / max(r["score"], 1e-12)

        rows.sort(key=lambda r: (not r["drifted"], -severity(r)))
        return rows[:n]


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
    share, drifted, scores, flags, thresholds = _parse(data, columns)
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
        column_drifted=flags,
        column_thresholds=thresholds,
    )


def _parse(
    data: dict[str, Any], columns: list[str]
) -> tuple[float, int, dict[str, float], dict[str, bool], dict[str, float]]:
    """Drifted-column share, per-column scores, drift flags and thresholds from Evidently's dict."""
    share, drifted = 0.0, 0
    scores: dict[str, float] = {}
    flags: dict[str, bool] = {}
    thresholds: dict[str, float] = {}
    for m in data.get("metrics", []):
        name = str(m.get("metric_name", ""))
        value = m.get("value")
        if name.startswith("DriftedColumnsCount") and isinstance(value, dict):
            share = float(value.get("share", 0.0))
            drifted = int(value.get("count", 0))
        elif name.startswith("ValueDrift"):
            config = m.get("config", {})
            col = str(config.get("column", ""))
            if col in columns and isinstance(value, int | float):
                scores[col] = float(value)
                threshold = config.get("threshold")
                if isinstance(threshold, int | float):
                    thresholds[col] = float(threshold)
                    # p-value tests drift below their threshold; distances at or above it
                    p_value = "p_value" in str(config.get("method", "")).lower()
                    flags[col] = value < threshold if p_value else value >= threshold
    return share, drifted, scores, flags, thresholds
