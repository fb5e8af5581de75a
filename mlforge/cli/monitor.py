"""`mlforge monitor <endpoint>`: the deployment and its monitoring summaries per day."""

from __future__ import annotations

import os
import sys
from typing import Annotated

from cyclopts import Parameter

from mlforge.cli.options import Home, Spec, load_project


def monitor(
    endpoint: str,
    *,
    days: int = 14,
    open_report: Annotated[bool, Parameter(name="--open", negative="")] = False,
    no_browser: Annotated[bool, Parameter(name="--no-browser", negative="")] = False,
    spec: Spec = None,
    home: Home = None,
) -> None:
    """An endpoint's deployment and its model's drift and live performance, day by day.

    Parameters
    ----------
    endpoint
        The endpoint, as named under `deployments:`.
    days
        How many of the latest days with a monitoring summary to show.
    open_report
        Copy the latest drift report (HTML) into reports/ in the state folder and open it in a browser.
    no_browser
        With --open: only write the file and print its path.
    """
    import webbrowser

    from mlforge.monitoring.report import export_drift_report, format_report, monitor_report

    project = load_project(spec, home)
    report = monitor_report(project.storage, project.spec, endpoint, days)
    print(format_report(report))
    if not open_report:
        return
    path = export_drift_report(project.storage, report, project.settings.state_dir / "reports")
    print(f"\ndrift report written to {path}")
    has_display = sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if not no_browser and has_display:
        webbrowser.open(path.resolve().as_uri())
