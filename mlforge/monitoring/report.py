"""What `mlforge monitor <endpoint>` shows: the deployment and the monitoring summaries per day.

Everything is read from storage (the manifest, the daily drift and performance summaries; keys
from `mlforge.io.layout`) and returned as plain data; the CLI only prints it. Works the same on a
local folder and on S3.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from mlforge.config.spec import ProjectSpec
from mlforge.deployment.manifest import read_manifest
from mlforge.deployment.summary import ManifestSummary
from mlforge.errors import DataError, ModelNotFoundError
from mlforge.io import layout
from mlforge.io.storage import Storage, read_json


@dataclass(frozen=True)
class DayRow:
    """One day of monitoring: drift and performance figures (None where no summary says)."""

    day: str
    drift_share: float | None = None
    dataset_drift: bool | None = None
    drift_champion_version: int | None = None
    status: str | None = None
    auc: float | None = None
    f1: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    error_rate: float | None = None
    matures_on: str | None = None


@dataclass(frozen=True)
class MonitorReport:
    """An endpoint's deployment and the last days of its model's monitoring."""

    endpoint: str
    model: str
    manifest: ManifestSummary | None  # None: not deployed yet
    days: list[DayRow] = field(default_factory=list)
    latest_drift_report: str | None = None  # storage key of the newest drift report HTML
    latest_drift_day: str | None = None


def _days(listing: list[str], key_of: Callable[[date], str]) -> dict[str, str]:
    """day (ISO) → key of every `key_of(day)` in a listing."""
    return {d.isoformat(): k for d, k in layout.stored_days(listing, key_of).items()}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def monitor_report(storage: Storage, spec: ProjectSpec, endpoint: str, days: int = 14) -> MonitorReport:
    """The endpoint's manifest and, for the last `days` days that have any summary, drift and performance."""
    model = spec.deployment(endpoint).model
    manifest = read_manifest(storage, endpoint)
    man = manifest.summary() if manifest is not None else None
    drift_listing = storage.list(layout.drift_prefix(model))
    drift = _days(drift_listing, lambda d: layout.drift_summary(model, d))
    perf_listing = storage.list(layout.performance_prefix(model))
    perf = _days(perf_listing, lambda d: layout.performance_summary(model, d))
    wanted = sorted(set(drift) | set(perf))[-days:] if days > 0 else []
    rows = []
    for d in wanted:
        ds = _read(storage, drift[d]) if d in drift else {}
        ps = _read(storage, perf[d]) if d in perf else {}
        cv = ds.get("champion_version")
        rows.append(
            DayRow(
                day=d,
                drift_share=_num(ds.get("drift_share")),
                dataset_drift=ds.get("dataset_drift") if isinstance(ds.get("dataset_drift"), bool) else None,
                drift_champion_version=int(cv) if isinstance(cv, int) else None,
                status=ps.get("status"),
                auc=_num(ps.get("auc")),
                f1=_num(ps.get("f1")),
                latency_p50_ms=_num(ps.get("latency_p50_ms")),
                latency_p99_ms=_num(ps.get("latency_p99_ms")),
                error_rate=_num(ps.get("error_rate")),
                matures_on=ps.get("matures_on"),
            )
        )
    reports = _days(drift_listing, lambda d: layout.drift_report(model, d, "html"))
    latest = max(reports) if reports else None
    return MonitorReport(endpoint, model, man, rows, reports[latest] if latest else None, latest)


def _read(storage: Storage, k: str) -> dict[str, Any]:
    try:
        data = read_json(storage, k)
    except Exception as exc:
        raise DataError(f"{storage.uri(k)} is not a readable summary: {exc}") from None
    return data if isinstance(data, dict) else {}


def _cell(v: Any, fmt: str = "{:.3f}") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return fmt.format(v)
    return str(v)


def format_report(report: MonitorReport) -> str:
    """The report as aligned plain text: the deployment, then one line per day."""
    lines = []
    m = report.manifest
    if m is None:
        lines.append(f"{report.endpoint}: model {report.model}, not deployed yet")
    else:
        head = f"{report.endpoint}: model {report.model}, revision {m.revision}, {m.strategy}"
        if m.status:
            head += f", status {m.status}"
        lines.append(head)
        lines += [f"  {v.line()}" for v in m.variants]
        if m.reason:
            lines.append(f"  reason: {m.reason}")
    if not report.days:
        lines.append(f"\nno monitoring summaries for {report.model} yet")
        return "\n".join(lines)
    header = ["day", "drift", "drifted", "champion", "performance", "auc", "f1", "p50 ms", "p99 ms", "errors"]
    table = [header]
    for r in report.days:
        status = r.status or "-"
        if r.status and r.status != "ok" and r.matures_on:
            status = f"{r.status} (on {r.matures_on})"
        table.append(
            [
                r.day,
                _cell(r.drift_share, "{:.2f}"),
                _cell(r.dataset_drift),
                f"v{r.drift_champion_version}" if r.drift_champion_version is not None else "-",
                status,
                _cell(r.auc),
                _cell(r.f1),
                _cell(r.latency_p50_ms, "{:.1f}"),
                _cell(r.latency_p99_ms, "{:.1f}"),
                _cell(r.error_rate, "{:.2%}"),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    left = {0, 2, 3, 4}
    lines.append("")
    for row in table:
        cells = [
            c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    if report.latest_drift_report:
        lines.append(
            f"\nlatest drift report: {report.latest_drift_report} (mlforge monitor {report.endpoint} --open)"
        )
    return "\n".join(lines)


def export_drift_report(storage: Storage, report: MonitorReport, folder: Path) -> Path:
    """Copy the newest drift report HTML from storage (local or S3) into `folder`; its path."""
    if report.latest_drift_report is None:
        raise ModelNotFoundError(
            f"no drift report for {report.model} yet: materialize monitoring/{report.model}/drift first"
        )
    day = report.latest_drift_day or "latest"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{report.endpoint}-drift-{day}.html"
    tmp = target.with_suffix(".html.tmp")
    tmp.write_bytes(storage.read_bytes(report.latest_drift_report))
    tmp.replace(target)
    return target
