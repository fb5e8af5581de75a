"""Alerts: a breach opens an alert once, its clearing resolves it, nothing in between.

An :class:`AlertBook` keeps each open alert as one object in storage
(``monitoring/alerts/open/<key>.json``), so "one alert per breach until it clears" holds across
runs, processes and restarts, and runs that judge different checks at the same time cannot
overwrite each other's state. An
:class:`AlertChannel` delivers: always to the log, and to a webhook (JSON POST) when a URL is
configured. Delivery failures are logged and never fail the run that raised the alert; the
webhook URL (it usually embeds a token) is never logged, only its host.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from mlforge.io import layout
from mlforge.io.storage import Storage, read_json, write_json

log = logging.getLogger("mlforge.monitoring.alerts")


@dataclass(frozen=True)
class Alert:
    """One alert event: `firing` when a breach opens, `resolved` when it clears."""

    key: str
    status: Literal["firing", "resolved"]
    summary: str
    value: float | None = None
    threshold: float | None = None
    partition: str | None = None
    links: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        """The webhook payload."""
        return {"source": "mlforge", **asdict(self)}


class AlertChannel:
    """Log + optional webhook delivery."""

    def __init__(self, webhook_url: str | None = None, timeout_seconds: float = 5.0) -> None:
        self._url = webhook_url or None
        self.timeout = timeout_seconds

    @property
    def webhook_host(self) -> str | None:
        """The webhook's host (safe to show), or None without a webhook."""
        return urlsplit(self._url).netloc.rsplit("@", 1)[-1] if self._url else None

    def send(self, alert: Alert) -> bool:
        """Deliver `alert`; False (and a warning in the log) if the webhook did not take it."""
        level = logging.WARNING if alert.status == "firing" else logging.INFO
        log.log(level, "alert %s %s: %s", alert.status, alert.key, alert.summary)
        if not self._url:
            return True
        body = json.dumps(alert.to_json(), default=str).encode()
        req = urllib.request.Request(
            self._url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                ok = 200 <= resp.status < 300
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "code", None) or type(exc).__name__
            log.warning("alert %s not delivered to webhook at %s: %s", alert.key, self.webhook_host, reason)
            return False
        if not ok:
            log.warning("alert %s: webhook at %s answered %s", alert.key, self.webhook_host, resp.status)
        return ok


class AlertBook:
    """Open alerts, kept in storage; decides when a check's outcome becomes an alert."""

    def __init__(self, storage: Storage, channel: AlertChannel) -> None:
        self.storage = storage
        self.channel = channel

    def open_alerts(self) -> dict[str, dict[str, Any]]:
        """Every alert currently firing, by key."""
        listed = self.storage.list(layout.open_alerts_prefix())
        return {key: read_json(self.storage, k) for key, k in layout.open_alert_keys(listed).items()}

    def observe(
        self,
        key: str,
        breached: bool,
        summary: str,
        *,
        value: float | None = None,
        threshold: float | None = None,
        partition: str | None = None,
        links: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> Alert | None:
        """Record one evaluation of `key`; return the alert sent, if this evaluation changed its state.

        A breach while the key is already open sends nothing (no storm); a pass while it is open
        resolves it; a pass while closed sends nothing.
        """
        state = layout.open_alert(key)
        if breached == self.storage.exists(state):
            return None
        alert = Alert(
            key=key,
            status="firing" if breached else "resolved",
            summary=summary,
            value=value,
            threshold=threshold,
            partition=partition,
            links=dict(links or {}),
            details=dict(details or {}),
        )
        # State first: a crash after it costs one missed message, never a repeated storm.
        if breached:
            write_json(
                self.storage,
                state,
                {"since": alert.at, "partition": partition, "value": value, "summary": summary},
            )
        else:
            self.storage.delete(state)
        self.channel.send(alert)
        return alert
