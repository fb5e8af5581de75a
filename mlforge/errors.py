"""Errors of ours, with messages a user can act on.

Every error MLForge raises on purpose derives from :class:`MLForgeError`, so the CLI, the Dagster
assets and the serving app can show the message alone instead of a traceback from deep inside a
library.
"""

from __future__ import annotations


class MLForgeError(Exception):
    """Base class of every error MLForge raises deliberately."""


class SpecError(MLForgeError):
    """`mlforge.yaml` is missing, unreadable or does not describe a valid project."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid spec {path}:\n{lines}")


class SettingsError(MLForgeError):
    """An environment variable holds a value MLForge cannot use (the message names the variable)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid environment:\n{lines}")


class DataError(MLForgeError):
    """A source file or a stored dataset does not have the shape the spec promises."""


class MissingPartitionsError(MLForgeError):
    """A stage needs upstream partitions that have not been materialized (or cannot be yet)."""

    def __init__(self, stage: str, upstream: str, missing: list[str], hint: str = "") -> None:
        self.stage = stage
        self.upstream = upstream
        self.missing = missing
        shown = _compress_dates(missing)
        msg = f"{stage} needs {len(missing)} partition(s) of {upstream} that are not there: {shown}"
        super().__init__(msg + (f". {hint}" if hint else ""))


class StoreUnavailableError(MLForgeError):
    """A store (online store, object storage, tracking server) cannot be reached."""


class ModelNotFoundError(MLForgeError):
    """A model version, alias or deployment manifest that was asked for does not exist."""


def _compress_dates(keys: list[str], limit: int = 6) -> str:
    """Show a list of ISO day keys as ranges: '1997-01-01..1997-01-31, 1997-03-02'."""
    from datetime import date, timedelta

    if not keys:
        return "none"
    try:
        days = sorted(date.fromisoformat(k) for k in keys)
    except ValueError:
        return ", ".join(keys[:limit]) + (" …" if len(keys) > limit else "")
    ranges: list[tuple[date, date]] = []
    for d in days:
        if ranges and d - ranges[-1][1] == timedelta(days=1):
            ranges[-1] = (ranges[-1][0], d)
        else:
            ranges.append((d, d))
    parts = [f"{a}" if a == b else f"{a}..{b}" for a, b in ranges]
    return ", ".join(parts[:limit]) + (f" (+{len(parts) - limit} more ranges)" if len(parts) > limit else "")
