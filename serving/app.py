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
- Shadow variants score every found row; their scores go to the optional ``prediction_sink`` only
  and are never returned.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import logging
import math
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from mlforge.deployment import Manifest, Variant, bucket, read_manifest
from mlforge.errors import DataError, MLForgeError, ModelNotFoundError, StoreUnavailableError
from mlforge.features import feature_names, service_features
from mlforge.online_store import OnlineStore, open_online_store
from mlforge.project import SPEC_ENV, Project
from mlforge.tracking import load_booster

if TYPE_CHECKING:
    import xgboost as xgb

log = logging.getLogger("mlforge.serving")

HOME_ENV = "MLFORGE_HOME"
RELOAD_ENV = "MLFORGE_RELOAD_INTERVAL_S"
MAX_BATCH = 1000
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


_import_xgboost()


# ---------------------------------------------------------------------------------------------
# Request and response bodies
# ---------------------------------------------------------------------------------------------

EntityId = Annotated[str, StringConstraints(min_length=1, max_length=256)]


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
    request_id: Annotated[str, StringConstraints(max_length=256)] | None = Field(
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


# ---------------------------------------------------------------------------------------------
# Loaded endpoints
# ---------------------------------------------------------------------------------------------


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
    boosters: Mapping[tuple[str, int], xgb.Booster]
    views: tuple[ViewColumns, ...]
    feature_index: Mapping[str, int]
    answering: tuple[Variant, ...]
    cumulative: tuple[int, ...]  # cumulative traffic of `answering`, for routing
    shadows: tuple[Variant, ...]
    loaded_at: float = field(default_factory=time.time)

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
        booster = self.boosters[(variant.model_name, variant.version)]
        return np.asarray(booster.inplace_predict(x), dtype=np.float64).reshape(len(x))


@dataclass(frozen=True)
class PredictionBatch:
    """Everything one request produced, shadow scores included (for a prediction sink)."""

    endpoint: str
    revision: int
    entity_ids: list[str | None]
    features: np.ndarray
    found: np.ndarray
    variants: list[str]
    scores: np.ndarray
    shadow_scores: dict[str, np.ndarray]
    latency_ms: float


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
        self.project = project
        self.reload_interval_s = reload_interval_s
        self.prediction_sink = prediction_sink
        self.configured: tuple[str, ...] = tuple(d.endpoint for d in project.spec.deployments)
        # Replaced as a whole on every swap; requests read it once.
        self.live: Mapping[str, LoadedEndpoint] = MappingProxyType({})
        self.deployed: frozenset[str] = frozenset()  # endpoints whose manifest exists (last poll)
        self.problems: Mapping[str, str] = MappingProxyType({})  # load errors by endpoint
        self._boosters: dict[tuple[str, int], tuple[str, xgb.Booster]] = {}
        self._refresh_lock = threading.Lock()
        self._store: OnlineStore | None = None
        self._store_lock = threading.Lock()
        self._warned: dict[str, str] = {}

    # -- loading ------------------------------------------------------------------------------

    def _booster(self, variant: Variant) -> xgb.Booster:
        key = (variant.model_name, variant.version)
        cached = self._boosters.get(key)
        if cached is not None and cached[0] == variant.booster_uri:
            return cached[1]
        settings = self.project.settings
        # an s3:// booster (MLflow artifacts on S3) is read from the configured artifact endpoint
        booster = load_booster(
            variant.booster_uri,
            endpoint_url=settings.artifact_endpoint_url or settings.storage_endpoint_url,
            region=settings.storage_region,
        )
        self._boosters[key] = (variant.booster_uri, booster)
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
        boosters: dict[tuple[str, int], xgb.Booster] = {}
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
            boosters[(v.model_name, v.version)] = booster
        cumulative = tuple(int(c) for c in np.cumsum([v.traffic for v in answering]))
        return LoadedEndpoint(
            manifest=manifest,
            boosters=MappingProxyType(boosters),
            views=views,
            feature_index=MappingProxyType({f: j for j, f in enumerate(manifest.feature_names)}),
            answering=answering,
            cumulative=cumulative,
            shadows=tuple(v for v in manifest.variants if v.shadow),
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
            in_use = {k for ep in self.live.values() for k in ep.boosters}
            for key in [k for k in self._boosters if k not in in_use]:
                del self._boosters[key]

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
                    self._store = open_online_store(s.online_store_url, s.online_key_prefix)
                except Exception as exc:
                    raise StoreUnavailableError(f"cannot open the online store: {exc}") from None
            return self._store

    def _read_features(self, ep: LoadedEndpoint, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        store = self.online()
        x = np.full((len(ids), len(ep.manifest.feature_names)), np.nan, dtype=np.float32)
        found = np.zeros(len(ids), dtype=bool)
        for vc in ep.views:
            try:
                values, hit = store.read(vc.view, ids, vc.width)
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
        if endpoint not in self.configured:
            raise _Rejected(404, f"unknown endpoint '{endpoint}'; known: {sorted(self.configured)}")
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

    def predict(self, endpoint: str, body: PredictRequest) -> dict[str, Any]:
        """Score one request; the JSON-ready response body."""
        t0 = time.perf_counter()
        ep = self.resolve(endpoint)
        m = ep.manifest
        if body.entity_ids is not None:
            ids: list[str | None] = list(body.entity_ids)
            x, found = self._read_features(ep, body.entity_ids)
            keys: list[str] = list(body.entity_ids)
        else:
            assert body.features is not None
            x, ids = self._explicit(ep, body.features)
            found = np.ones(len(ids), dtype=bool)
            keys = [_row_key(eid, body.request_id, i, x[i]) for i, eid in enumerate(ids)]
        route = np.fromiter((ep.route_index(k) for k in keys), dtype=np.intp, count=len(keys))
        scores = np.full(len(keys), np.nan, dtype=np.float64)
        for vi, variant in enumerate(ep.answering):
            rows = np.flatnonzero((route == vi) & found)
            if rows.size:
                scores[rows] = ep.score(variant, x[rows])
        shadow_scores: dict[str, np.ndarray] = {}
        if ep.shadows and found.any():
            for variant in ep.shadows:
                shadow_scores[variant.name] = ep.score(variant, x[found])
        preds = []
        for i, eid in enumerate(ids):
            v = ep.answering[route[i]]
            preds.append(
                {
                    "entity_id": eid,
                    "score": float(scores[i]) if found[i] else None,
                    "found": bool(found[i]),
                    "model_version": v.version,
                    "variant": v.name,
                }
            )
        if self.prediction_sink is not None:
            batch = PredictionBatch(
                endpoint=endpoint,
                revision=m.revision,
                entity_ids=ids,
                features=x,
                found=found,
                variants=[ep.answering[r].name for r in route],
                scores=scores,
                shadow_scores=shadow_scores,
                latency_ms=(time.perf_counter() - t0) * 1000,
            )
            try:
                self.prediction_sink(batch)
            except Exception as exc:  # a sink must never fail a request
                log.warning("prediction sink failed: %s", exc)
        return {"endpoint": endpoint, "model": m.model, "predictions": preds, "revision": m.revision}

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


def _error_json(exc: MLForgeError) -> JSONResponse:
    if isinstance(exc, StoreUnavailableError):
        msg = f"online store unavailable: {exc}; requests with explicit 'features' still work"
        return JSONResponse({"detail": msg}, status_code=503)
    status = 404 if isinstance(exc, ModelNotFoundError) else 500
    return JSONResponse({"detail": str(exc)}, status_code=status)


def create_app(
    project: Project,
    reload_interval_s: float = 2.0,
    prediction_sink: Callable[[PredictionBatch], None] | None = None,
) -> FastAPI:
    """The serving app of `project`; manifests are re-read every `reload_interval_s` (<= 0: never)."""
    state = ServingState(project, reload_interval_s, prediction_sink)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(state.refresh_all)
        task = asyncio.create_task(state.reload_loop()) if reload_interval_s > 0 else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title=f"MLForge serving: {project.spec.project}",
        description="Scores deployed endpoints by entity id (online store) or explicit features.",
        version="1",
        lifespan=lifespan,
    )
    app.state.serving = state

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
        return JSONResponse({"detail": items}, status_code=422)

    @app.exception_handler(MLForgeError)
    async def _mlforge(request: Request, exc: MLForgeError) -> JSONResponse:
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
    def predict(endpoint: str, body: PredictRequest) -> JSONResponse:
        """Score entity ids or explicit feature rows; rows come back in request order."""
        try:
            return JSONResponse(state.predict(endpoint, body))
        except _Rejected as r:
            return JSONResponse({"detail": r.detail}, status_code=r.status)
        except MLForgeError as exc:
            return _error_json(exc)
        except Exception as exc:
            log.exception("predict %s failed", endpoint)
            return JSONResponse(
                {"detail": f"internal error ({type(exc).__name__}) while scoring; see the server log"},
                status_code=500,
            )

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

    return app


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
    """Serve with uvicorn; several workers each load the endpoints themselves."""
    import uvicorn

    if workers > 1:
        if project_spec_path is not None:
            os.environ[SPEC_ENV] = str(Path(project_spec_path).resolve())
        if home is not None:
            os.environ[HOME_ENV] = str(Path(home).resolve())
        os.environ[RELOAD_ENV] = str(reload_interval_s)
        uvicorn.run(
            "serving.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=_log_config(),
        )
        return
    project = Project.load(project_spec_path, state_dir=home)
    uvicorn.run(create_app(project, reload_interval_s), host=host, port=port, log_config=_log_config())


def _log_config() -> dict[str, Any]:
    """uvicorn's logging config, plus our own loggers (swaps at INFO, load failures at WARNING)."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["mlforge"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
