"""Live progress of a Dagster run the CLI started: its steps, running or done, with elapsed time."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Dagster run tag that lets a command find the run it started (to follow its steps).
CLI_RUN_TAG = "mlforge/cli_run"

_STATUS = {"STEP_START": "running", "STEP_SUCCESS": "done", "STEP_FAILURE": "FAILED"}
_MARK = {"running": "…", "done": "✓", "FAILED": "✗"}


def follow_run(instance: Any, title: str, work: Callable[[dict[str, str]], T], transient: bool = False) -> T:
    """Run ``work(tags)`` (a materialization given run tags to carry) in a thread and show its
    Dagster run's steps live until it returns; its result, or its exception re-raised."""
    import dagster as dg
    from rich.live import Live
    from rich.text import Text

    token = uuid.uuid4().hex
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = work({CLI_RUN_TAG: token})
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    t0 = time.monotonic()
    thread.start()
    types = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
    }
    run_id: str | None = None
    with Live(Text(f"{title} …"), refresh_per_second=4, transient=transient) as live:
        while thread.is_alive():
            thread.join(0.5)
            if run_id is None:
                runs = instance.get_runs(filters=dg.RunsFilter(tags={CLI_RUN_TAG: token}), limit=1)
                run_id = runs[0].run_id if runs else None
            lines = [f"{title}  run {run_id[:8] if run_id else '…'}  {time.monotonic() - t0:4.0f} s"]
            steps: dict[str, tuple[str, float]] = {}
            for rec in instance.all_logs(run_id, of_type=types) if run_id else []:
                ev = rec.dagster_event
                if ev is None or ev.step_key is None:
                    continue
                started = steps.get(ev.step_key, ("", rec.timestamp))[1]
                kind = ev.event_type_value
                steps[ev.step_key] = (_STATUS[kind], rec.timestamp if kind == "STEP_START" else started)
            for step, (state, started) in steps.items():
                extra = f" {time.time() - started:4.0f} s" if state == "running" else ""
                lines.append(f"  {_MARK[state]} {step.replace('__', '/')}: {state}{extra}")
            live.update(Text("\n".join(lines)))
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]
