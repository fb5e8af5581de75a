"""The admin API: its routes (reload, rollback, traffic) and the ``X-API-Key`` check.

``X-API-Key`` must equal ``$MLFORGE_ADMIN_API_KEY`` (read once, when the app is created;
constant-time comparison): 401 without a key, 403 with a wrong one, 403 "admin API disabled" when
the variable is unset. The key is never logged or returned. The actions themselves live in
:class:`serving.state.ServingState`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import APIKeyHeader

from mlforge.config.settings import env_name, get_settings, secret_value
from serving.errors import Rejected
from serving.schemas import AdminResult, ErrorBody, TrafficRequest
from serving.state import ServingState

log = logging.getLogger("mlforge.serving")

ADMIN_KEY_ENV = env_name("admin_api_key")

_API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description=f"${ADMIN_KEY_ENV}")
AdminKey = Annotated[str | None, Depends(_API_KEY_HEADER)]


def read_admin_key() -> bytes | None:
    """The admin key from the environment; None (admin API disabled) when unset."""
    return (secret_value(get_settings().admin_api_key) or "").encode() or None


def check_key(key: str | None, admin_key: bytes | None) -> None:
    """401 without a key, 403 with a wrong one or when the admin API is disabled."""
    if admin_key is None:
        raise Rejected(403, f"admin API disabled: set {ADMIN_KEY_ENV} to enable it")
    if not key:
        raise Rejected(401, "missing X-API-Key header")
    if not hmac.compare_digest(key.encode(), admin_key):
        raise Rejected(403, "invalid API key")


def admin_router(state: ServingState, admin_key: bytes | None) -> APIRouter:
    """The ``/admin/...`` routes of `state`, behind `admin_key`."""
    router = APIRouter()

    def require_admin(key: AdminKey) -> None:
        """401 without a key, 403 with a wrong one or when the admin API is disabled."""
        check_key(key, admin_key)

    admin_errors: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorBody, "description": "No X-API-Key header"},
        403: {"model": ErrorBody, "description": "Wrong key, or the admin API is disabled"},
        404: {"model": ErrorBody},
    }

    @router.post(
        "/admin/reload", dependencies=[Depends(require_admin)], responses=admin_errors, tags=["admin"]
    )
    async def admin_reload() -> dict[str, Any]:
        """Re-read every manifest now (this worker; the others pick it up on their next poll)."""
        await asyncio.to_thread(state.refresh_all)
        log.info("admin: manifests reloaded")
        return {"loaded": state.revisions(), "errors": dict(state.problems)}

    @router.post(
        "/admin/{endpoint}/rollback",
        dependencies=[Depends(require_admin)],
        response_model=AdminResult,
        responses={**admin_errors, 409: {"model": ErrorBody, "description": "No earlier revision"}},
        tags=["admin"],
    )
    async def admin_rollback(endpoint: str) -> dict[str, Any]:
        """Make the previous manifest revision current again (written as a new revision)."""
        return await asyncio.to_thread(state.admin_rollback, endpoint)

    @router.post(
        "/admin/{endpoint}/traffic",
        dependencies=[Depends(require_admin)],
        response_model=AdminResult,
        responses={
            **admin_errors,
            409: {"model": ErrorBody, "description": "The manifest changed meanwhile"},
            422: {"model": ErrorBody, "description": "Unknown variant or shares not adding up to 100"},
        },
        tags=["admin"],
    )
    async def admin_traffic(endpoint: str, body: TrafficRequest) -> dict[str, Any]:
        """Set the traffic split of the endpoint's existing variants (a new manifest revision)."""
        return await asyncio.to_thread(state.admin_traffic, endpoint, body.traffic)

    return router
