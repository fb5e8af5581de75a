"""The serving app: deployed endpoints over HTTP (FastAPI), hot-swapped from their manifests.

Serving reads only deployment manifests, native boosters and the online store: it never imports
dagster, mlflow, pandas or evidently (a test checks this), so it starts in about a second.

- At start-up every configured endpoint with a manifest is loaded: the manifest, each variant's
  booster (cached by model name and version) and, per feature view, which online-store columns
  fill which model columns. One immutable :class:`LoadedEndpoint` per endpoint lives in a dict that
  is replaced as a whole, never mutated, so a request sees one consistent revision.
- A background task re-reads the manifests every ``reload_interval_s`` seconds. A new revision is
  loaded completely (boosters read and warmed up) before the dict is swapped; if loading fails the
  old revision keeps serving and a warning is logged. No request fails during a swap.
- ``POST /predict/{endpoint}`` takes ``{"entity_ids": [...]}`` (features read from the online store,
  one read per feature view for the whole batch) or ``{"features": [{name: value, ...}, ...]}``.
  An entity the online store does not hold answers ``found: false, score: null``; with several
  views an entity is found when at least one view holds it (missing views score as missing values,
  as in training).
- Routing: an entity goes to ``route(manifest, entity_id)`` (a stable hash, so a customer always
  sees one variant). An explicit-feature row goes by its entity key when it carries one (e.g.
  ``"customer_id": "00003"`` beside the features; then it routes exactly like the id request), else
  by ``"{request_id}:{row index}"`` when the request has a ``request_id``, else by a hash of the
  row's feature values (the same features always meet the same variant).
- Shadow variants score every found row; their scores go to the prediction log only and are
  never returned.
- Every request goes to the prediction sink: by default a :class:`PredictionLogger` that buffers
  in memory and writes parquet batches to ``logs/predictions/endpoint=<ep>/date=<day>/`` from a
  background thread, flushed when the app shuts down (``prediction_sink=`` replaces it in tests,
  ``MLFORGE_PREDICTION_LOG=off`` switches it off).
- ``GET /metrics``: Prometheus text format written by hand (requests and errors by endpoint,
  variant and status; latency histogram by endpoint and variant; rows scored; log buffer). The
  figures are per worker process.
- ``POST /admin/reload``, ``/admin/{endpoint}/rollback``, ``/admin/{endpoint}/traffic`` need
  ``X-API-Key`` equal to ``$MLFORGE_ADMIN_API_KEY`` (constant-time comparison; 401 without a
  key, 403 with a wrong one, 403 "admin API disabled" when the variable is unset). The key is
  never logged or returned. Rollback and traffic write a new manifest revision and load it in
  this worker at once; other workers pick it up on their next poll.
- Small requests (≤ ``INLINE_ROWS`` rows) are scored on the event loop, larger ones in the thread
  pool; boosters predict with one thread through XGBoost's C prediction call (see ``_scorer``),
  requests of ≤ ``COMPILED_MAX_ROWS`` rows through the booster's trees compiled to numpy arrays
  (``serving/trees.py``, bit-identical to XGBoost, verified at load).
- The request path is kept cheap: a plainly valid ``POST /predict/{endpoint}`` is answered by a
  pure-ASGI fast path in front of FastAPI (:class:`ServingApp`) through the same
  :func:`answer_predict` as the FastAPI route (same status codes and bytes; anything needing
  validation messages goes to FastAPI), and Redis lookups are one pre-packed MGET on a dedicated
  connection (``serving/redis_reader.py``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from starlette.concurrency import run_in_threadpool

from mlforge.config.project import SPEC_ENV, Project
from mlforge.deployment.manifest import (
    DeploymentConflictError,
    Manifest,
    Variant,
    apply_traffic,
    read_manifest,
    rollback,
)
from mlforge.deployment.routing import bucket
from mlforge.errors import DataError, MLForgeError, ModelNotFoundError, StoreUnavailableError
from mlforge.features.online import OnlineStore, open_online_store
from mlforge.features.refs import feature_names, service_features
from mlforge.models.tracking import load_booster
from mlforge.monitoring.prediction_log import PredictionBatch, PredictionLogger
from serving.redis_reader import RedisReader
from serving.trees import compile_booster

if TYPE_CHECKING:
    import xgboost as xgb

log = logging.getLogger("mlforge.serving")

HOME_ENV = "MLFORGE_HOME"
RELOAD_ENV = "MLFORGE_RELOAD_INTERVAL_S"
ADMIN_KEY_ENV = "MLFORGE_ADMIN_API_KEY"
NTHREAD_ENV = "MLFORGE_SERVING_NTHREAD"  # XGBoost threads per prediction (default 1)
ACCESS_LOG_ENV = "MLFORGE_ACCESS_LOG"  # "on": uvicorn's per-request access log
PREDICTION_LOG_ENV = "MLFORGE_PREDICTION_LOG"  # "off" disables the default prediction log
MAX_BATCH = 1000
_MAX_ID_CHARS = 256  # longest entity id / request_id accepted
INLINE_ROWS = 64  # requests with at most this many rows are scored on the event loop
COMPILED_MAX_ROWS = 4  # up to this many rows are scored by the compiled trees (serving/trees.py)
MAX_REPORTED_ERRORS = 20


def _import_xgboost() -> None:
    """Import xgboost without scikit-learn (whose import pulls in pandas).

    xgboost 3 imports scikit-learn at import time for its optional sklearn wrapper, and
    scikit-learn 1.9 imports pandas. Serving only needs ``Booster``, so when neither is loaded yet
    sklearn is hidden for the duration of the import. A process that already imported xgboost or
    sklearn (tests, the Dagster code location) is left alone.
    """
    if "xgboost" in sys.modules:
        return
    hide = "sklearn" not in sys.modules
    if hide:
        sys.modules["sklearn"] = None  # type: ignore[assignment]  # makes `import sklearn` fail
    try:
        import xgboost  # noqa: F401
    finally:
        if hide and sys.modules.get("sklearn", False) is None:
            del sys.modules["sklearn"]


# ---------------------------------------------------------------------------------------------
# Request and response bodies
# ---------------------------------------------------------------------------------------------

EntityId = Annotated[str, StringConstraints(min_length=1, max_length=_MAX_ID_CHARS)]


class PredictRequest(BaseModel):
    """Entity ids (features from the online store) or explicit feature rows: exactly one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"entity_ids": ["00003", "00010"]}, {"features": [{"days_since_last": 12.0}]}]
        },
    )

    entity_ids: list[EntityId] | None = Field(
        None, min_length=1, max_length=MAX_BATCH, description="Entity ids to score, 1..1000."
    )
    features: list[dict[str, Any]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_BATCH,
        description=(
            "Rows of {feature name: number or null}, every feature of the endpoint's model, 1..1000; "
            "a row may also carry the entity key (e.g. customer_id) for routing and the response."
        ),
    )
    request_id: Annotated[str, StringConstraints(max_length=_MAX_ID_CHARS)] | None = Field(
        None, description="Routes explicit rows without an entity key by '<request_id>:<row index>'."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictRequest:
        if (self.entity_ids is None) == (self.features is None):
            raise ValueError("give exactly one of 'entity_ids' or 'features'")
        return self


class Prediction(BaseModel):
    """One scored row."""

    entity_id: str | None
    score: float | None
    found: bool
    model_version: int
    variant: str


class PredictResponse(BaseModel):
    """The answer of POST /predict/{endpoint}, rows in request order."""

    endpoint: str
    model: str
    predictions: list[Prediction]
    revision: int


class ErrorBody(BaseModel):
    """An error with a message a client can act on."""

    detail: str


class TrafficRequest(BaseModel):
    """New traffic shares (percent) of existing variants; the answering ones must add up to 100."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"traffic": {"stable": 75, "canary": 25}}]}
    )

    traffic: dict[str, Annotated[int, Field(ge=0, le=100)]] = Field(min_length=1)


class AdminResult(BaseModel):
    """What an admin action left the endpoint serving."""

    endpoint: str
    revision: int
    variants: list[dict[str, Any]]
    loaded_revision: int | None = Field(None, description="Revision this worker serves now.")


# ---------------------------------------------------------------------------------------------
# Loaded endpoints
# ---------------------------------------------------------------------------------------------


_PREDICT_CONFIG = json.dumps(
    {
        "type": 0,  # the model's output (probabilities for binary:logistic), as inplace_predict
        "training": False,
        "iteration_begin": 0,
        "iteration_end": 0,
        "strict_shape": False,
        "missing": float("nan"),
        "cache_id": 0,
    }
).encode()


def _scorer(booster: xgb.Booster, n_features: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function float32 matrix -> float64 scores for `booster`.

    ``Booster.inplace_predict`` spends about half of a one-row prediction in Python (argument
    JSON, array-interface objects built per call: 102 µs vs 57 µs measured for the example
    model). The fast path calls the same C function (``XGBoosterPredictFromDense``) with the
    configuration serialised once. It is used only when it gives bit-identical scores to
    ``inplace_predict`` on probe rows (with missing values) at load time; otherwise, or if
    XGBoost's private helpers moved, the plain call is used.

    Requests of at most ``COMPILED_MAX_ROWS`` rows are scored by the booster's trees compiled to
    numpy arrays (:mod:`serving.trees`: ~23 µs for one row instead of ~53 µs, verified
    bit-identical to ``inplace_predict`` at load time), when the model allows it.
    """

    def plain(x: np.ndarray) -> np.ndarray:
        return np.asarray(booster.inplace_predict(x), dtype=np.float64).reshape(len(x))

    try:
        import ctypes

        from xgboost.core import _LIB, _check_call, c_bst_ulong

        predict = _LIB.XGBoosterPredictFromDense
        handle = booster.handle

        def fast(x: np.ndarray) -> np.ndarray:
            x = np.ascontiguousarray(x, dtype=np.float32)
            rows, cols = x.shape
            array = b'{"data": [%d, true], "shape": [%d, %d], "typestr": "<f4", "version": 3}' % (
                x.ctypes.data,
                rows,
                cols,
            )
            shape = ctypes.POINTER(c_bst_ulong)()
            dims = c_bst_ulong()
            out = ctypes.POINTER(ctypes.c_float)()
            _check_call(
                predict(
                    handle,
                    array,
                    _PREDICT_CONFIG,
                    None,
                    ctypes.byref(shape),
                    ctypes.byref(dims),
                    ctypes.byref(out),
                )
            )
            size = 1
            for i in range(dims.value):
                size *= shape[i]
            if size != rows:
                raise DataError(f"expected {rows} scores, XGBoost returned {size}")
            return np.ctypeslib.as_array(out, shape=(size,)).astype(np.float64)

        rng = np.random.default_rng(0)
        probe = rng.normal(0, 50, (64, n_features)).astype(np.float32)
        probe[rng.random(probe.shape) < 0.2] = np.nan
        if not (
            np.array_equal(fast(probe), plain(probe)) and np.array_equal(fast(probe[:1]), plain(probe[:1]))
        ):
            fast = plain
    except Exception as exc:  # an XGBoost without these internals: the public call
        log.info("fast XGBoost prediction path unavailable (%s); using inplace_predict", exc)
        fast = plain
    compiled = compile_booster(booster, n_features)
    if compiled is None:
        return fast

    def small_compiled(x: np.ndarray) -> np.ndarray:
        return compiled(x) if len(x) <= COMPILED_MAX_ROWS else fast(x)

    return small_compiled


@dataclass(frozen=True)
class ViewColumns:
    """Where one feature view's online-store row goes in the model's feature matrix."""

    view: str
    width: int  # number of values per entity in the online store
    src: np.ndarray  # columns of the online-store row …
    dst: np.ndarray  # … written to these model columns


@dataclass(frozen=True)
class LoadedEndpoint:
    """One manifest revision, ready to answer: never mutated, replaced as a whole."""

    manifest: Manifest
    scorers: Mapping[tuple[str, int], Callable[[np.ndarray], np.ndarray]]
    views: tuple[ViewColumns, ...]
    feature_index: Mapping[str, int]
    answering: tuple[Variant, ...]
    cumulative: tuple[int, ...]  # cumulative traffic of `answering`, for routing
    shadows: tuple[Variant, ...]
    feature_names: tuple[str, ...] = ()

    @property
    def identity(self) -> tuple[int, str]:
        """What makes a manifest a new one: its revision and creation time."""
        return self.manifest.revision, self.manifest.created_at

    def route_index(self, key: str) -> int:
        """Index into `answering`, identical to ``mlforge.deployment.route``."""
        if len(self.answering) == 1:
            return 0
        b = bucket(key, self.manifest.endpoint)
        return min(bisect.bisect_right(self.cumulative, b), len(self.answering) - 1)

    def score(self, variant: Variant, x: np.ndarray) -> np.ndarray:
        """Scores of `variant` for a float32 matrix."""
        return self.scorers[(variant.model_name, variant.version)](x)


class _Rejected(Exception):
    """A request the app refuses, with its HTTP status and JSON detail."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


def _column_plan(project: Project, manifest: Manifest) -> tuple[ViewColumns, ...]:
    """Per view of the manifest, which online-store columns fill which model columns."""
    spec = project.spec
    known_views = {v.name for v in spec.feature_views}
    unknown = [v for v in manifest.views if v not in known_views]
    if unknown:
        raise DataError(
            f"manifest of {manifest.endpoint} reads feature views {unknown} the spec does not define"
        )
    view_names = {v: feature_names(spec.feature_view(v)) for v in manifest.views}
    # Exact (view, feature) per position when the spec's feature service still matches the manifest.
    owners: list[str | None] = [None] * len(manifest.feature_names)
    with contextlib.suppress(Exception):
        pairs = service_features(spec, manifest.feature_service)
        if [f for _, f in pairs] == manifest.feature_names and all(v in view_names for v, _ in pairs):
            owners = [v for v, _ in pairs]
    for j, name in enumerate(manifest.feature_names):
        if owners[j] is None:
            owners[j] = next((v for v in manifest.views if name in view_names[v]), None)
    orphans = [n for n, o in zip(manifest.feature_names, owners, strict=True) if o is None]
    if orphans:
        raise DataError(
            f"features {orphans} of {manifest.endpoint} are in none of the views {manifest.views}"
        )
    plan = []
    for v in manifest.views:
        names = view_names[v]
        dst = [j for j, o in enumerate(owners) if o == v]
        src = [names.index(manifest.feature_names[j]) for j in dst]
        if dst:
            plan.append(ViewColumns(v, len(names), np.asarray(src, np.intp), np.asarray(dst, np.intp)))
    return tuple(plan)


# ---------------------------------------------------------------------------------------------
# Prometheus metrics (text exposition format 0.0.4, written by hand: no client library needed)
# ---------------------------------------------------------------------------------------------

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NO_VARIANT = "none"  # label of requests refused before routing (404, 422, 503)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Request counters and latency histograms of this worker process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.predictions: dict[tuple[str, str, str], int] = {}
        # (endpoint, variant) -> [bucket counts..., count, sum]
        self.latency: dict[tuple[str, str], list[float]] = {}

    def observe(self, endpoint: str, variants: dict[str, int], status: int, seconds: float) -> None:
        """One request: its status and latency, once per variant that answered rows of it."""
        code = str(status)
        labels = variants or {NO_VARIANT: 0}
        i = bisect.bisect_left(LATENCY_BUCKETS_S, seconds)
        with self._lock:
            for variant, rows in labels.items():
                key = (endpoint, variant, code)
                self.requests[key] = self.requests.get(key, 0) + 1
                if rows:
                    pkey = (endpoint, variant, "false")
                    self.predictions[pkey] = self.predictions.get(pkey, 0) + rows
                h = self.latency.get((endpoint, variant))
                if h is None:
                    h = self.latency[(endpoint, variant)] = [0.0] * (len(LATENCY_BUCKETS_S) + 2)
                if i < len(LATENCY_BUCKETS_S):
                    h[i] += 1
                h[-2] += 1
                h[-1] += seconds

    def shadow_rows(self, endpoint: str, variant: str, rows: int) -> None:
        """Rows a shadow variant scored."""
        with self._lock:
            key = (endpoint, variant, "true")
            self.predictions[key] = self.predictions.get(key, 0) + rows

    def render(self, state: ServingState) -> str:
        """The exposition text of every metric."""
        with self._lock:
            requests = dict(self.requests)
            predictions = dict(self.predictions)
            latency = {k: list(v) for k, v in self.latency.items()}
        out: list[str] = []

        def family(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        family(
            "mlforge_requests_total",
            "counter",
            "Prediction requests by endpoint, answering variant and HTTP status (a request answered by "
            "two variants counts once for each).",
        )
        for (e, v, c), n in sorted(requests.items()):
            out.append(
                f'mlforge_requests_total{{endpoint="{_label(e)}",variant="{_label(v)}",status="{c}"}} {n}'
            )
        family("mlforge_errors_total", "counter", "Prediction requests answered with a 4xx/5xx status.")
        for (e, v, c), n in sorted(requests.items()):
            if int(c) >= 400:
                out.append(
                    f'mlforge_errors_total{{endpoint="{_label(e)}",variant="{_label(v)}",status="{c}"}} {n}'
                )
        family("mlforge_predictions_total", "counter", "Rows scored, by endpoint, variant and shadow.")
        for (e, v, sh), n in sorted(predictions.items()):
            out.append(
                f'mlforge_predictions_total{{endpoint="{_label(e)}",variant="{_label(v)}",shadow="{sh}"}} {n}'
            )
        family(
            "mlforge_request_latency_seconds",
            "histogram",
            "Prediction request latency in the app (routing, features, scoring), by endpoint and variant.",
        )
        for (e, v), h in sorted(latency.items()):
            lab = f'endpoint="{_label(e)}",variant="{_label(v)}"'
            acc = 0.0
            for le, count in zip(LATENCY_BUCKETS_S, h, strict=False):
                acc += count
                out.append(f'mlforge_request_latency_seconds_bucket{{{lab},le="{le}"}} {int(acc)}')
            out.append(f'mlforge_request_latency_seconds_bucket{{{lab},le="+Inf"}} {int(h[-2])}')
            out.append(f"mlforge_request_latency_seconds_sum{{{lab}}} {h[-1]:.6f}")
            out.append(f"mlforge_request_latency_seconds_count{{{lab}}} {int(h[-2])}")
        family("mlforge_manifest_revision", "gauge", "Manifest revision each endpoint serves in this worker.")
        for e, ep in sorted(state.live.items()):
            out.append(f'mlforge_manifest_revision{{endpoint="{_label(e)}"}} {ep.manifest.revision}')
        logger = state.prediction_sink if isinstance(state.prediction_sink, PredictionLogger) else None
        if logger is not None:
            family(
                "mlforge_prediction_log_buffered_rows", "gauge", "Prediction-log rows waiting for a flush."
            )
            out.append(f"mlforge_prediction_log_buffered_rows {logger.buffered_rows}")
            family("mlforge_prediction_log_written_rows_total", "counter", "Prediction-log rows written.")
            out.append(f"mlforge_prediction_log_written_rows_total {logger.written_rows}")
            family("mlforge_prediction_log_dropped_rows_total", "counter", "Rows dropped (buffer full).")
            out.append(f"mlforge_prediction_log_dropped_rows_total {logger.dropped_rows}")
        return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# The server state
# ---------------------------------------------------------------------------------------------


class ServingState:
    """Loaded endpoints, the booster cache, the online store and the reload loop."""

    def __init__(
        self,
        project: Project,
        reload_interval_s: float = 2.0,
        prediction_sink: Callable[[PredictionBatch], None] | None = None,
    ) -> None:
        _import_xgboost()  # ~0.45 s (with scipy): when the app is created, not when it is imported
        self.project = project
        self.reload_interval_s = reload_interval_s
        self.prediction_sink = prediction_sink
        self.configured: tuple[str, ...] = tuple(d.endpoint for d in project.spec.deployments)
        # Replaced as a whole on every swap; requests read it once.
        self.live: Mapping[str, LoadedEndpoint] = MappingProxyType({})
        self.deployed: frozenset[str] = frozenset()  # endpoints whose manifest exists (last poll)
        self.problems: Mapping[str, str] = MappingProxyType({})  # load errors by endpoint
        # (model, version) -> (booster URI, booster, its scorer once built and verified by `load`)
        self._models: dict[
            tuple[str, int], tuple[str, xgb.Booster, Callable[[np.ndarray], np.ndarray] | None]
        ] = {}
        self._refresh_lock = threading.Lock()
        self._store: OnlineStore | None = None
        self._reader: RedisReader | None = None  # lean MGETs when the store is Redis
        self._store_lock = threading.Lock()
        self._warned: dict[str, str] = {}
        self.metrics = Metrics()

    # -- loading ------------------------------------------------------------------------------

    def _booster(self, variant: Variant) -> xgb.Booster:
        key = (variant.model_name, variant.version)
        cached = self._models.get(key)
        if cached is not None and cached[0] == variant.booster_uri:
            return cached[1]
        settings = self.project.settings
        # an s3:// booster (MLflow artifacts on S3) is read from the configured artifact endpoint
        booster = load_booster(
            variant.booster_uri,
            endpoint_url=settings.artifact_endpoint_url or settings.storage_endpoint_url,
            region=settings.storage_region,
        )
        # One scoring thread per booster: requests are a few rows, and XGBoost's default of every
        # core made each one-row prediction cost twice its CPU time in OpenMP threads (measured:
        # 190 → 95 µs CPU, same wall time). Parallelism comes from requests and workers.
        booster.set_param({"nthread": int(os.environ.get(NTHREAD_ENV, "1"))})
        self._models[key] = (variant.booster_uri, booster, None)
        return booster

    def load(self, manifest: Manifest) -> LoadedEndpoint:
        """Everything a manifest needs to answer, loaded and warmed up (raises on any problem)."""
        answering = tuple(manifest.answering())
        if not answering:
            raise DataError(
                f"manifest revision {manifest.revision} of {manifest.endpoint} has no answering variant"
            )
        views = _column_plan(self.project, manifest)
        n = len(manifest.feature_names)
        scorers: dict[tuple[str, int], Callable[[np.ndarray], np.ndarray]] = {}
        for v in manifest.variants:
            booster = self._booster(v)
            if booster.num_features() != n:
                raise DataError(
                    f"{v.model_name} v{v.version} expects {booster.num_features()} features, "
                    f"the manifest names {n}"
                )
            names = booster.feature_names
            if names is not None and list(names) != manifest.feature_names:
                raise DataError(
                    f"{v.model_name} v{v.version} was trained on other features than the manifest names"
                )
            booster.inplace_predict(np.full((1, n), np.nan, dtype=np.float32))  # warm up
            key = (v.model_name, v.version)
            uri, _, scorer = self._models[key]
            if scorer is None:  # a new booster object: build its scorer and verify it
                scorer = _scorer(booster, n)
                self._models[key] = (uri, booster, scorer)
            scorers[key] = scorer
        cumulative = tuple(int(c) for c in np.cumsum([v.traffic for v in answering]))
        return LoadedEndpoint(
            manifest=manifest,
            scorers=MappingProxyType(scorers),
            views=views,
            feature_index=MappingProxyType({f: j for j, f in enumerate(manifest.feature_names)}),
            answering=answering,
            cumulative=cumulative,
            shadows=tuple(v for v in manifest.variants if v.shadow),
            feature_names=tuple(manifest.feature_names),
        )

    def _warn(self, endpoint: str, message: str) -> None:
        if self._warned.get(endpoint) != message:
            log.warning("%s", message)
            self._warned[endpoint] = message

    def refresh(self, endpoint: str) -> None:
        """Load `endpoint`'s current manifest if it is new; keep the old one on any failure."""
        current = self.live.get(endpoint)
        try:
            manifest = read_manifest(self.project.storage, endpoint)
        except Exception as exc:
            self._set_problem(endpoint, f"cannot read the manifest of {endpoint}: {exc}")
            return
        if manifest is None:
            if current is None:
                self.deployed = self.deployed - {endpoint}
                self._set_problem(endpoint, None)
            else:  # the manifest vanished: keep serving what we have
                self._warn(
                    endpoint,
                    f"manifest of {endpoint} disappeared; still serving revision {current.manifest.revision}",
                )
            return
        self.deployed = self.deployed | {endpoint}
        if current is not None and current.identity == (manifest.revision, manifest.created_at):
            self._set_problem(endpoint, None)  # e.g. after a storage blip on an earlier poll
            return
        try:
            loaded = self.load(manifest)
        except Exception as exc:
            keep = f"; still serving revision {current.manifest.revision}" if current else ""
            self._set_problem(
                endpoint, f"cannot load revision {manifest.revision} of {endpoint}: {exc}{keep}"
            )
            return
        self.live = MappingProxyType({**self.live, endpoint: loaded})  # the swap
        self._set_problem(endpoint, None)
        log.info(
            "endpoint %s now serves revision %d (%s)",
            endpoint,
            manifest.revision,
            ", ".join(f"{v.name}=v{v.version}" for v in manifest.variants),
        )

    def _set_problem(self, endpoint: str, message: str | None) -> None:
        """Record (or clear, with None) why `endpoint` is not serving its current manifest."""
        if message is None:
            self._warned.pop(endpoint, None)
            if endpoint not in self.problems:
                return
        problems = dict(self.problems)
        if message is None:
            problems.pop(endpoint, None)
        else:
            problems[endpoint] = message
            self._warn(endpoint, message)
        self.problems = MappingProxyType(problems)

    def refresh_all(self) -> None:
        """Refresh every configured endpoint, then drop boosters nothing serves any more."""
        with self._refresh_lock:
            for endpoint in self.configured:
                self.refresh(endpoint)
            in_use = {k for ep in self.live.values() for k in ep.scorers}
            for key in [k for k in self._models if k not in in_use]:
                del self._models[key]

    async def reload_loop(self) -> None:
        """Poll the manifests forever; one failed poll never stops the loop."""
        while True:
            await asyncio.sleep(self.reload_interval_s)
            try:
                await asyncio.to_thread(self.refresh_all)
            except Exception as exc:  # pragma: no cover - refresh already catches per endpoint
                log.warning("manifest poll failed: %s", exc)

    # -- the online store ---------------------------------------------------------------------

    def online(self) -> OnlineStore:
        """The online store, opened on first use (StoreUnavailableError when it cannot be)."""
        store = self._store
        if store is not None:
            return store
        with self._store_lock:
            if self._store is None:
                s = self.project.settings
                try:
                    store = open_online_store(s.online_store_url, s.online_key_prefix)
                    self._reader = RedisReader.for_store(store)
                except Exception as exc:
                    raise StoreUnavailableError(f"cannot open the online store: {exc}") from None
                self._store = store
            return self._store

    def open_online(self) -> None:
        """Open the online store (import, Redis connection) now, at start-up, not in the first request.

        Best effort: when the store is down, `online()` retries on use, and requests with explicit
        features work meanwhile.
        """
        with contextlib.suppress(StoreUnavailableError):
            self.online()
            if self._reader is not None:
                self._reader.connect()

    def _read_features(self, ep: LoadedEndpoint, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        store = self.online()
        reader = self._reader
        x = np.full((len(ids), len(ep.manifest.feature_names)), np.nan, dtype=np.float32)
        found = np.zeros(len(ids), dtype=bool)
        for vc in ep.views:
            try:
                got = reader.read(vc.view, ids, vc.width) if reader is not None else None
                values, hit = got if got is not None else store.read(vc.view, ids, vc.width)
            except MLForgeError:
                raise
            except Exception as exc:
                raise StoreUnavailableError(f"online store read of {vc.view} failed: {exc}") from None
            x[:, vc.dst] = values[:, vc.src]
            found |= hit
        return x, found

    # -- requests -----------------------------------------------------------------------------

    def resolve(self, endpoint: str) -> LoadedEndpoint:
        """The loaded endpoint, or a 404/503 that says why not."""
        ep = self.live.get(endpoint)
        if ep is not None:
            return ep
        self.known(endpoint)
        problem = self.problems.get(endpoint)
        if problem is not None:
            raise _Rejected(503, f"endpoint '{endpoint}' is deployed but not loaded: {problem}")
        raise _Rejected(
            404,
            f"endpoint '{endpoint}' is configured but has no deployment yet: materialize "
            f"deployments/{endpoint} (asset {self.project.spec.project}/deployments/{endpoint}) first",
        )

    def _explicit(
        self, ep: LoadedEndpoint, rows: list[dict[str, Any]]
    ) -> tuple[np.ndarray, list[str | None]]:
        """The float32 matrix of explicit feature rows, or a 422 naming every bad field."""
        names = ep.manifest.feature_names
        index = ep.feature_index
        key = ep.manifest.entity_key
        x = np.full((len(rows), len(names)), np.nan, dtype=np.float32)
        ids: list[str | None] = [None] * len(rows)
        errors: list[dict[str, Any]] = []

        def bad(i: int, name: str, msg: str, kind: str) -> None:
            if len(errors) < MAX_REPORTED_ERRORS:
                where = f"features[{i}].{name}"
                errors.append(
                    {
                        "loc": ["body", "features", i, name],
                        "field": where,
                        "msg": f"{where}: {msg}",
                        "type": kind,
                    }
                )

        for i, row in enumerate(rows):
            seen = 0
            for name, value in row.items():
                j = index.get(name)
                if j is None:
                    if name == key:
                        if isinstance(value, str) and value:
                            ids[i] = value
                        else:
                            bad(i, name, f"the entity key '{key}' must be a non-empty string", "string_type")
                    else:
                        bad(
                            i,
                            name,
                            f"unknown feature '{name}' for endpoint {ep.manifest.endpoint}",
                            "extra_forbidden",
                        )
                    continue
                seen += 1
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    bad(i, name, f"must be a finite number or null, got {value!r}", "float_type")
                    continue
                x[i, j] = value
            if seen < len(names):
                for name in names:
                    if name not in row:
                        bad(i, name, f"missing feature '{name}' (send null when unknown)", "missing")
        if errors:
            raise _Rejected(422, errors)
        return x, ids

    def predict_rows(
        self,
        endpoint: str,
        entity_ids: list[str] | None,
        features: list[dict[str, Any]] | None,
        request_id: str | None = None,
        answered: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """Score one request (exactly one of `entity_ids` / `features`); the JSON-ready response body.

        `answered` (when given) is filled with the rows each answering variant scored, for the
        metrics. Every request goes to the prediction sink, failed ones too (their rows with
        ``failed`` set), before a scoring failure becomes a 500.
        """
        t0 = time.perf_counter()
        ts = time.time()
        ep = self.resolve(endpoint)
        m = ep.manifest
        if entity_ids is not None:
            ids: list[str | None] = list(entity_ids)
            x, found = self._read_features(ep, entity_ids)
            keys: list[str] = entity_ids
        else:
            assert features is not None
            x, ids = self._explicit(ep, features)
            found = np.ones(len(ids), dtype=bool)
            keys = [_row_key(eid, request_id, i, x[i]) for i, eid in enumerate(ids)]
        n_rows = len(keys)
        answering = ep.answering
        failed: np.ndarray | None = None
        failure: tuple[Variant, Exception] | None = None
        if len(answering) == 1:  # one answering variant (no split): every row goes to it
            route = np.zeros(n_rows, dtype=np.intp)
            variant = answering[0]
            all_found = bool(found.all())
            try:
                if all_found:
                    scores = ep.score(variant, x)
                else:
                    scores = np.full(n_rows, np.nan, dtype=np.float64)
                    rows = np.flatnonzero(found)
                    if rows.size:
                        scores[rows] = ep.score(variant, x[rows])
            except Exception as exc:  # logged and counted below, then a 500
                scores = np.full(n_rows, np.nan, dtype=np.float64)
                failed = found.copy()
                failure = (variant, exc)
            if answered is not None:
                answered[variant.name] = n_rows
        else:
            route = np.fromiter((ep.route_index(k) for k in keys), dtype=np.intp, count=n_rows)
            scores = np.full(n_rows, np.nan, dtype=np.float64)
            for vi, variant in enumerate(answering):
                rows = np.flatnonzero((route == vi) & found)
                if rows.size:
                    try:
                        scores[rows] = ep.score(variant, x[rows])
                    except Exception as exc:  # logged and counted below, then a 500
                        failed = np.zeros(n_rows, dtype=bool) if failed is None else failed
                        failed[rows] = True
                        failure = failure or (variant, exc)
                if answered is not None:
                    n = int(np.count_nonzero(route == vi))
                    if n:
                        answered[variant.name] = n
        shadow_scores: dict[str, np.ndarray] = {}
        shadow_failed: set[str] = set()
        if ep.shadows and found.any():
            for variant in ep.shadows:
                try:
                    shadow_scores[variant.name] = ep.score(variant, x[found])
                except Exception as exc:  # a shadow never fails a request
                    shadow_failed.add(variant.name)
                    self._warn(f"{endpoint}:shadow", f"shadow {variant.name} of {endpoint} failed: {exc}")
                else:
                    self.metrics.shadow_rows(endpoint, variant.name, int(np.count_nonzero(found)))
        request_id = request_id or uuid.uuid4().hex
        if len(answering) == 1:
            names = [answering[0].name] * n_rows
            versions = [answering[0].version] * n_rows
        else:
            names = [answering[r].name for r in route]
            versions = [answering[r].version for r in route]
        if self.prediction_sink is not None:
            batch = PredictionBatch(
                endpoint=endpoint,
                revision=m.revision,
                entity_ids=ids,
                features=x,
                found=found,
                variants=names,
                scores=scores,
                shadow_scores=shadow_scores,
                latency_ms=(time.perf_counter() - t0) * 1000,
                request_id=request_id,
                timestamp=ts,
                feature_names=ep.feature_names,
                versions=versions,
                shadow_versions={v.name: v.version for v in ep.shadows} if ep.shadows else {},
                failed=failed,
                shadow_failed=frozenset(shadow_failed) if shadow_failed else frozenset(),
            )
            try:
                self.prediction_sink(batch)
            except Exception as sink_exc:  # a sink must never fail a request
                log.warning("prediction sink failed: %s", sink_exc)
        if failure is not None:
            bad, err = failure
            log.error("scoring with %s v%d of %s failed", bad.name, bad.version, endpoint, exc_info=err)
            raise _Rejected(
                500,
                f"internal error ({type(err).__name__}) while scoring with variant {bad.name} "
                f"(v{bad.version}); see the server log",
            )
        score_list = scores.tolist()
        found_list = found.tolist()
        preds = [
            {
                "entity_id": eid,
                "score": score_list[i] if found_list[i] else None,
                "found": found_list[i],
                "model_version": versions[i],
                "variant": names[i],
            }
            for i, eid in enumerate(ids)
        ]
        return {"endpoint": endpoint, "model": m.model, "predictions": preds, "revision": m.revision}

    # -- admin --------------------------------------------------------------------------------

    def admin_result(self, manifest: Manifest) -> dict[str, Any]:
        """The body of an admin answer: what the endpoint serves after the action."""
        live = self.live.get(manifest.endpoint)
        return {
            "endpoint": manifest.endpoint,
            "revision": manifest.revision,
            "variants": [
                {"name": v.name, "version": v.version, "traffic": v.traffic, "shadow": v.shadow}
                for v in manifest.variants
            ],
            "loaded_revision": live.manifest.revision if live else None,
        }

    def known(self, endpoint: str) -> None:
        """404 unless `endpoint` is configured."""
        if endpoint not in self.configured:
            raise _Rejected(404, f"unknown endpoint '{endpoint}'; known: {sorted(self.configured)}")

    def admin_rollback(self, endpoint: str) -> dict[str, Any]:
        """Make the previous manifest revision current (a new revision) and load it now."""
        self.known(endpoint)
        try:
            m = rollback(self.project.storage, endpoint)
        except ModelNotFoundError as exc:
            raise _Rejected(409, str(exc)) from None
        with self._refresh_lock:
            self.refresh(endpoint)
        log.info(
            "admin: %s rolled back; revision %d serves %s",
            endpoint,
            m.revision,
            ", ".join(f"{v.name}=v{v.version}:{v.traffic}%" for v in m.variants),
        )
        return self.admin_result(m)

    def admin_traffic(self, endpoint: str, traffic: dict[str, int]) -> dict[str, Any]:
        """Write a revision with new traffic shares of the current variants and load it now."""
        self.known(endpoint)
        try:
            m = apply_traffic(self.project.storage, endpoint, traffic, "through the admin API")
        except ModelNotFoundError:
            raise _Rejected(404, f"endpoint '{endpoint}' has no deployment manifest yet") from None
        except ValueError as exc:
            raise _Rejected(422, str(exc)) from None
        except DeploymentConflictError as exc:
            raise _Rejected(409, str(exc)) from None
        with self._refresh_lock:
            self.refresh(endpoint)
        log.info("admin: %s traffic set in revision %d: %s", endpoint, m.revision, m.state["reason"])
        return self.admin_result(m)

    # -- introspection ------------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """Each configured endpoint: what it serves now."""
        out = []
        for endpoint in self.configured:
            ep = self.live.get(endpoint)
            item: dict[str, Any] = {
                "endpoint": endpoint,
                "deployed": endpoint in self.deployed,
                "loaded": ep is not None,
                "error": self.problems.get(endpoint),
            }
            if ep is not None:
                m = ep.manifest
                item |= {
                    "model": m.model,
                    "revision": m.revision,
                    "strategy": m.strategy,
                    "created_at": m.created_at,
                    "features": len(m.feature_names),
                    "views": m.views,
                    "variants": [
                        {
                            "name": v.name,
                            "model_name": v.model_name,
                            "version": v.version,
                            "traffic": v.traffic,
                            "shadow": v.shadow,
                        }
                        for v in m.variants
                    ],
                }
            out.append(item)
        return out

    def missing(self) -> dict[str, str]:
        """Deployed endpoints that are not loaded, with the reason."""
        return {
            e: self.problems.get(e, "not loaded yet")
            for e in self.configured
            if e in self.deployed and e not in self.live
        }


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------


def _row_key(entity_id: str | None, request_id: str | None, index: int, row: np.ndarray) -> str:
    """Routing key of an explicit-feature row: its entity id, else request_id:index, else its values."""
    if entity_id is not None:
        return entity_id
    if request_id is not None:
        return f"{request_id}:{index}"
    return hashlib.blake2b(row.tobytes(), digest_size=8).hexdigest()


def _field(loc: Sequence[Any]) -> str:
    """('body', 'features', 0, 'x') -> 'features[0].x'."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "path", "query") and len(loc) > 1 else list(loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _error_parts(exc: MLForgeError) -> tuple[int, bytes]:
    """(status, JSON body) of an MLForgeError: 503 when the online store is down, 404, else 500."""
    if isinstance(exc, StoreUnavailableError):
        msg = f"online store unavailable: {exc}; requests with explicit 'features' still work"
        return 503, _render({"detail": msg})
    status = 404 if isinstance(exc, ModelNotFoundError) else 500
    return status, _render({"detail": str(exc)})


def _error_json(exc: MLForgeError) -> Response:
    status, content = _error_parts(exc)
    return Response(content, status_code=status, media_type="application/json")


def _render(content: Any) -> bytes:
    """JSON bytes exactly as Starlette's ``JSONResponse`` renders them."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


async def answer_predict(
    state: ServingState,
    endpoint: str,
    entity_ids: list[str] | None,
    features: list[dict[str, Any]] | None,
    request_id: str | None,
) -> tuple[int, bytes]:
    """(status, JSON body) of one validated prediction request, counted in the metrics.

    The one implementation behind ``POST /predict/{endpoint}``: the FastAPI route and the fast
    path in front of it (:class:`ServingApp`) both answer through it.
    """
    t0 = time.perf_counter()
    answered: dict[str, int] = {}
    rows = len(entity_ids or features or ())
    try:
        # A small request is scored on the event loop: a few hundred µs of CPU-bound work, for
        # which a thread hop cost more than it saved (~190 µs per request measured). Large
        # batches go to the thread pool so they do not hold up other requests.
        if rows <= INLINE_ROWS:
            result = state.predict_rows(endpoint, entity_ids, features, request_id, answered)
        else:
            result = await run_in_threadpool(
                state.predict_rows, endpoint, entity_ids, features, request_id, answered
            )
        status, content = 200, _render(result)
    except _Rejected as r:
        status, content = r.status, _render({"detail": r.detail})
    except MLForgeError as exc:
        status, content = _error_parts(exc)
    except Exception as exc:
        log.exception("predict %s failed", endpoint)
        status = 500
        content = _render(
            {"detail": f"internal error ({type(exc).__name__}) while scoring; see the server log"}
        )
    label = endpoint if endpoint in state.configured else "unknown"
    state.metrics.observe(label, answered, status, time.perf_counter() - t0)
    return status, content


_BODY_KEYS = frozenset(("entity_ids", "features", "request_id"))
_PREDICT_PREFIX = "/predict/"
_JSON_HEADERS = (b"content-type", b"application/json")


def _text_ok(value: str) -> bool:
    """True when `value` encodes to UTF-8 (no lone surrogates, which JSON escapes can produce)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_predict_body(
    body: bytes,
) -> tuple[list[str] | None, list[dict[str, Any]] | None, str | None] | None:
    """(entity_ids, features, request_id) of a plainly valid ``PredictRequest`` body, else None.

    Accepts only what :class:`PredictRequest` accepts unchanged (same JSON parser as FastAPI's,
    ``json.loads``): an object with known keys, exactly one of a list of 1..1000 non-empty id
    strings of at most 256 characters or a list of 1..1000 objects, and an optional
    ``request_id`` string of at most 256 characters. Anything else — malformed JSON, a wrong
    type, an unknown key, a bound crossed, ``null`` for a field — returns None, and the request
    goes to the FastAPI route, whose validation writes the 422 body.
    """
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if type(data) is not dict or not data or not _BODY_KEYS.issuperset(data):
        return None
    request_id = data.get("request_id")
    if "request_id" in data and (
        type(request_id) is not str or len(request_id) > _MAX_ID_CHARS or not _text_ok(request_id)
    ):
        return None
    if "entity_ids" in data:
        ids = data["entity_ids"]
        if "features" in data or type(ids) is not list or not 0 < len(ids) <= MAX_BATCH:
            return None
        for e in ids:
            if type(e) is not str or not 0 < len(e) <= _MAX_ID_CHARS or not _text_ok(e):
                return None
        return ids, None, request_id
    rows = data.get("features")
    if type(rows) is not list or not 0 < len(rows) <= MAX_BATCH:
        return None
    for row in rows:
        if type(row) is not dict or not all(_text_ok(k) for k in row):
            return None
    return None, rows, request_id


class ServingApp(FastAPI):
    """FastAPI, plus a thin ASGI fast path for ``POST /predict/{endpoint}``.

    FastAPI's request machinery (middleware layers, dependency solving, pydantic model
    construction, response wrapping) cost about as much CPU as the prediction itself. A request
    that is plainly valid — ``content-type: application/json``, a body :func:`parse_predict_body`
    accepts — is answered here through :func:`answer_predict`, the same code the FastAPI route
    calls, so status codes and response bodies (404 unknown endpoint, 503 online store down,
    422 bad feature rows, 200) are the same bytes. Everything else (another method or path, a
    mounted app, another content type, any body that needs validation messages) goes to FastAPI
    unchanged, with the body replayed. The FastAPI route stays registered: OpenAPI documents it
    and it answers whatever the fast path passes on.
    """

    serving_state: ServingState | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        state = self.serving_state
        if (
            state is None
            or scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith(_PREDICT_PREFIX)
            or scope.get("root_path")
            or self.root_path
        ):
            await super().__call__(scope, receive, send)
            return
        endpoint = scope["path"][len(_PREDICT_PREFIX) :]
        json_type = False
        for name, value in scope["headers"]:
            if name == b"content-type":
                json_type = value.split(b";", 1)[0].strip() == b"application/json"
                break
        if not endpoint or "/" in endpoint or not json_type:
            await super().__call__(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        parsed = parse_predict_body(body) if body else None
        if parsed is None:
            replay = [{"type": "http.request", "body": body, "more_body": False}]

            async def again() -> Any:
                return replay.pop() if replay else await receive()

            await super().__call__(scope, again, send)
            return
        status, content = await answer_predict(state, endpoint, *parsed)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", str(len(content)).encode()), _JSON_HEADERS],
            }
        )
        await send({"type": "http.response.body", "body": content})


_API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description=f"${ADMIN_KEY_ENV}")
AdminKey = Annotated[str | None, Depends(_API_KEY_HEADER)]


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
            if os.environ.get(PREDICTION_LOG_ENV, "on").lower() not in ("off", "0", "false", "no"):
                logger = PredictionLogger.from_env(project.storage)
        elif prediction_log:
            logger = PredictionLogger.from_env(project.storage)
        prediction_sink = logger
    state = ServingState(project, reload_interval_s, prediction_sink)
    admin_key = (os.environ.get(ADMIN_KEY_ENV) or "").encode() or None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(state.refresh_all)
        await asyncio.to_thread(state.open_online)
        if logger is not None:
            await asyncio.to_thread(_import_polars)  # not on the first flush, beside requests
            logger.start()
        task = asyncio.create_task(state.reload_loop()) if reload_interval_s > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if logger is not None:  # a clean shutdown writes every buffered prediction
                rows = await asyncio.to_thread(logger.close)
                log.info("prediction log flushed %d rows on shutdown", rows)

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

    def require_admin(key: AdminKey) -> None:
        """401 without a key, 403 with a wrong one or when the admin API is disabled."""
        if admin_key is None:
            raise _Rejected(403, f"admin API disabled: set {ADMIN_KEY_ENV} to enable it")
        if not key:
            raise _Rejected(401, "missing X-API-Key header")
        if not hmac.compare_digest(key.encode(), admin_key):
            raise _Rejected(403, "invalid API key")

    @app.exception_handler(_Rejected)
    async def _rejected(request: Request, exc: _Rejected) -> JSONResponse:
        headers = {"WWW-Authenticate": "APIKey"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = []
        for e in exc.errors()[:MAX_REPORTED_ERRORS]:
            where = _field(e.get("loc", ()))
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
        if request.url.path.startswith(_PREDICT_PREFIX):
            endpoint = request.path_params.get("endpoint", "")
            label = endpoint if endpoint in state.configured else "unknown"
            state.metrics.observe(label, {}, 422, 0.0)
        return JSONResponse({"detail": items}, status_code=422)

    @app.exception_handler(MLForgeError)
    async def _mlforge(request: Request, exc: MLForgeError) -> Response:
        return _error_json(exc)

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
        loaded = {e: ep.manifest.revision for e, ep in state.live.items()}
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
    def metrics() -> PlainTextResponse:
        """Prometheus metrics of this worker (text exposition format 0.0.4)."""
        return PlainTextResponse(
            state.metrics.render(state), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    admin_errors: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorBody, "description": "No X-API-Key header"},
        403: {"model": ErrorBody, "description": "Wrong key, or the admin API is disabled"},
        404: {"model": ErrorBody},
    }

    @app.post("/admin/reload", dependencies=[Depends(require_admin)], responses=admin_errors, tags=["admin"])
    async def admin_reload() -> dict[str, Any]:
        """Re-read every manifest now (this worker; the others pick it up on their next poll)."""
        await asyncio.to_thread(state.refresh_all)
        log.info("admin: manifests reloaded")
        return {
            "loaded": {e: ep.manifest.revision for e, ep in state.live.items()},
            "errors": dict(state.problems),
        }

    @app.post(
        "/admin/{endpoint}/rollback",
        dependencies=[Depends(require_admin)],
        response_model=AdminResult,
        responses={**admin_errors, 409: {"model": ErrorBody, "description": "No earlier revision"}},
        tags=["admin"],
    )
    async def admin_rollback(endpoint: str) -> dict[str, Any]:
        """Make the previous manifest revision current again (written as a new revision)."""
        return await asyncio.to_thread(state.admin_rollback, endpoint)

    @app.post(
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

    return app


def _import_polars() -> None:
    import polars  # noqa: F401


def app_from_env() -> FastAPI:
    """The app for `$MLFORGE_SPEC` / `$MLFORGE_HOME` (uvicorn factory, for several workers)."""
    project = Project.load(os.environ.get(SPEC_ENV) or None, state_dir=os.environ.get(HOME_ENV) or None)
    return create_app(project, reload_interval_s=float(os.environ.get(RELOAD_ENV, "2.0")))


def run(
    project_spec_path: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    home: str | Path | None = None,
    reload_interval_s: float = 2.0,
) -> None:
    """Serve with uvicorn; several workers each load the endpoints themselves.

    uvicorn's access log is off unless ``MLFORGE_ACCESS_LOG=on``: it cost ~150 µs of CPU per
    request (a third of a one-entity prediction), and the prediction log and ``/metrics`` record
    every prediction request anyway.
    """
    import uvicorn

    access_log = os.environ.get(ACCESS_LOG_ENV, "off").lower() in ("on", "1", "true", "yes")
    loop, http = _event_loop_and_parser()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": _log_config(),
        "access_log": access_log,
        "loop": loop,
        "http": http,
    }
    if workers > 1:
        if project_spec_path is not None:
            os.environ[SPEC_ENV] = str(Path(project_spec_path).resolve())
        if home is not None:
            os.environ[HOME_ENV] = str(Path(home).resolve())
        os.environ[RELOAD_ENV] = str(reload_interval_s)
        uvicorn.run("serving.app:app_from_env", factory=True, workers=workers, **options)
        return
    project = Project.load(project_spec_path, state_dir=home)
    uvicorn.run(create_app(project, reload_interval_s), **options)


def _event_loop_and_parser() -> tuple[str, str]:
    """uvloop and httptools when installed (uvicorn's fastest pair), else uvicorn's defaults."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "auto"
    http = "httptools" if importlib.util.find_spec("httptools") else "auto"
    return loop, http


def _log_config() -> dict[str, Any]:
    """uvicorn's logging config, plus our own loggers (swaps at INFO, load failures at WARNING)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["mlforge"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
