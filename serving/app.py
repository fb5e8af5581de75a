"""The serving app: :func:`create_app` wires state, routes, handlers and the fast path together.

Serving reads only deployment manifests, native boosters and the online store: it never imports
dagster, mlflow, pandas or polars at start-up (a test checks this), so it starts in about a
second. What each part does lives in its own module:

- :mod:`serving.schemas` — request/response bodies (the one request validator);
- :mod:`serving.state` — loaded endpoints, manifest polling, the booster cache, admin actions;
- :mod:`serving.predict` — answering one prediction request;
- :mod:`serving.fastpath` — the pure-ASGI fast path of ``POST /predict/{endpoint}``;
- :mod:`serving.admin` — the admin routes and their API key;
- :mod:`serving.metrics` — Prometheus metrics (prometheus_client, multiprocess with workers);
- :mod:`serving.scoring` / :mod:`serving.trees` — per-booster scoring;
- :mod:`serving.server` — uvicorn start-up (``mlforge serve``, ``python -m serving``).

Every request goes to the prediction sink: by default a :class:`PredictionLogger` that buffers in
memory and writes parquet batches from a background thread, flushed when the app shuts down
(``prediction_sink=`` replaces it in tests, ``MLFORGE_PREDICTION_LOG=off`` switches it off).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from mlforge.config.project import Project
from mlforge.config.settings import get_settings
from mlforge.errors import MLForgeError
from mlforge.monitoring.prediction_log import PredictionBatch, PredictionLogger
from serving.admin import admin_router, read_admin_key
from serving.errors import Rejected, error_parts, validation_items
from serving.fastpath import PREDICT_PREFIX, ServingApp
from serving.metrics import CONTENT_TYPE
from serving.predict import answer_predict
from serving.schemas import ErrorBody, PredictRequest, PredictResponse
from serving.state import ServingState

log = logging.getLogger("mlforge.serving")


def create_app(
    project: Project,
    reload_interval_s: float = 2.0,
    prediction_sink: Callable[[PredictionBatch], None] | None = None,
    prediction_log: PredictionLogger | bool | None = None,
) -> FastAPI:
    """The serving app of `project`; manifests are re-read every `reload_interval_s` (<= 0: never).

    Predictions go to `prediction_sink` when one is given (tests), else to a
    :class:`PredictionLogger` on the project's storage — `prediction_log` (a logger, or False for
    none; by default one unless ``MLFORGE_PREDICTION_LOG=off``), started with the app and flushed
    when it shuts down. Admin endpoints need ``X-API-Key`` = ``$MLFORGE_ADMIN_API_KEY`` (read
    once, here); without that variable they answer 403.
    """
    logger: PredictionLogger | None = None
    if prediction_sink is None:
        if isinstance(prediction_log, PredictionLogger):
            logger = prediction_log
        elif prediction_log is None:
            if get_settings().prediction_log:
                logger = PredictionLogger.from_env(project.storage)
        elif prediction_log:
            logger = PredictionLogger.from_env(project.storage)
        prediction_sink = logger
    state = ServingState(project, reload_interval_s, prediction_sink)
    admin_key = read_admin_key()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(state.refresh_all)
        await asyncio.to_thread(state.open_online)
        if logger is not None:
            await asyncio.to_thread(_import_polars)  # not on the first flush, beside requests
            logger.start()
        tasks = []
        if reload_interval_s > 0:
            tasks.append(asyncio.create_task(state.reload_loop()))
        if state.metrics.multiprocess:  # other workers' scrapes read this worker's gauges
            tasks.append(asyncio.create_task(state.metrics.sync_loop(state.revisions)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if logger is not None:  # a clean shutdown writes every buffered prediction
                rows = await asyncio.to_thread(logger.close)
                log.info("prediction log flushed %d rows on shutdown", rows)
            state.metrics.close()

    app = ServingApp(
        title=f"MLForge serving: {project.spec.project}",
        description=(
            "Scores deployed endpoints by entity id (online store) or explicit features. "
            "Admin endpoints (`/admin/...`) need the `X-API-Key` header."
        ),
        version="1",
        lifespan=lifespan,
    )
    app.state.serving = state
    app.state.prediction_log = logger
    app.serving_state = state  # enables the fast path of POST /predict/{endpoint}

    @app.exception_handler(Rejected)
    async def _rejected(request: Request, exc: Rejected) -> JSONResponse:
        headers = {"WWW-Authenticate": "APIKey"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path.startswith(PREDICT_PREFIX):
            endpoint = request.path_params.get("endpoint", "")
            label = endpoint if endpoint in state.configured else "unknown"
            state.metrics.observe(label, {}, 422, 0.0)
        return JSONResponse({"detail": validation_items(exc.errors())}, status_code=422)

    @app.exception_handler(MLForgeError)
    async def _mlforge(request: Request, exc: MLForgeError) -> Response:
        status, content = error_parts(exc)
        return Response(content, status_code=status, media_type="application/json")

    @app.post(
        "/predict/{endpoint}",
        response_model=PredictResponse,
        responses={
            404: {"model": ErrorBody},
            422: {"description": "Invalid request"},
            503: {"model": ErrorBody},
        },
    )
    async def predict(endpoint: str, body: PredictRequest) -> Response:
        """Score entity ids or explicit feature rows; rows come back in request order."""
        status, content = await answer_predict(
            state, endpoint, body.entity_ids, body.features, body.request_id
        )
        return Response(content, status_code=status, media_type="application/json")

    @app.get("/health")
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", responses={503: {"description": "Some deployed endpoint is not loaded"}})
    def ready() -> JSONResponse:
        """Readiness: every deployed endpoint is loaded."""
        missing = state.missing()
        loaded = state.revisions()
        if missing:
            return JSONResponse(
                {"status": "not ready", "missing": missing, "loaded": loaded}, status_code=503
            )
        return JSONResponse({"status": "ready", "loaded": loaded})

    @app.get("/endpoints")
    def endpoints() -> dict[str, Any]:
        """Every configured endpoint: revision, strategy and variants it serves now."""
        return {"endpoints": state.describe()}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> Response:
        """Prometheus metrics (text exposition format 0.0.4), of every worker."""
        return Response(state.metrics.render(state.revisions()), media_type=CONTENT_TYPE)

    app.include_router(admin_router(state, admin_key))
    return app


def _import_polars() -> None:
    import polars  # noqa: F401
