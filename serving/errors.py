"""Refusals and error bodies: how a failure becomes an HTTP status and JSON bytes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from mlforge.errors import MLForgeError, ModelNotFoundError, StoreUnavailableError

MAX_REPORTED_ERRORS = 20  # validation errors listed in one 422 body


class Rejected(Exception):
    """A request the app refuses, with its HTTP status and JSON detail."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


def render(content: Any) -> bytes:
    """JSON bytes exactly as Starlette's ``JSONResponse`` renders them."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


def error_parts(exc: MLForgeError) -> tuple[int, bytes]:
    """(status, JSON body) of an MLForgeError: 503 when the online store is down, 404, else 500."""
    if isinstance(exc, StoreUnavailableError):
        msg = f"online store unavailable: {exc}; requests with explicit 'features' still work"
        return 503, render({"detail": msg})
    status = 404 if isinstance(exc, ModelNotFoundError) else 500
    return status, render({"detail": str(exc)})


def field_name(loc: Sequence[Any]) -> str:
    """('body', 'features', 0, 'x') -> 'features[0].x'."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "path", "query") and len(loc) > 1 else list(loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def validation_items(errors: Iterable[Any]) -> list[dict[str, Any]]:
    """The ``detail`` list of a 422 body: each error with the field it names, at most 20."""
    items = []
    for n, e in enumerate(errors):
        if n >= MAX_REPORTED_ERRORS:
            break
        where = field_name(e.get("loc", ()))
        msg = str(e.get("msg", "invalid"))
        if e.get("type") == "json_invalid":  # loc is ('body', character position)
            pos = e.get("loc", ("body", "?"))[-1]
            where, msg = (
                "body",
                f"not valid JSON at character {pos}: {e.get('ctx', {}).get('error', msg)}",
            )
        items.append(
            {
                "loc": list(e.get("loc", ())),
                "field": where,
                "msg": f"{where}: {msg}",
                "type": e.get("type"),
            }
        )
    return items
