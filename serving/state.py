"""Endpoint state: loaded manifests, the booster cache, the online store and the reload loop.

- At start-up every configured endpoint with a manifest is loaded: the manifest, each variant's
  booster (cached by model name and version, with its verified scorer from :mod:`serving.scoring`)
  and the online read plan (:class:`mlforge.features.read_plan.OnlineReadPlan`). One immutable
  :class:`LoadedEndpoint` per endpoint lives in a dict that is replaced as a whole, never mutated,
  so a request sees one consistent revision.
- A background task re-reads the manifests every ``reload_interval_s`` seconds. A new revision is
  loaded completely (boosters read and warmed up) before the dict is swapped; if loading fails the
  old revision keeps serving and a warning is logged. No request fails during a swap.
- Admin actions (rollback, traffic) write a new manifest revision and load it in this worker at
  once; other workers pick it up on their next poll.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np

from mlforge.config.project import Project
from mlforge.config.settings import get_settings
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
from mlforge.features.read_plan import OnlineReadPlan
from mlforge.models.base import FittedModel
from mlforge.models.tracking import load_model
from mlforge.models.xgboost_model import XGBoostModel
from mlforge.monitoring.prediction_log import PredictionBatch, PredictionLogger
from serving.errors import Rejected
from serving.metrics import Metrics
from serving.redis_reader import RedisReader
from serving.scoring import Scorer, import_xgboost
from serving.scoring import scorer as make_scorer

log = logging.getLogger("mlforge.serving")


@dataclass(frozen=True)
class LoadedEndpoint:
    """One manifest revision, ready to answer: never mutated, replaced as a whole."""

    manifest: Manifest
    scorers: Mapping[tuple[str, int], Scorer]
    plan: OnlineReadPlan  # which online-store reads fill which model columns
    feature_index: Mapping[str, int]
    answering: tuple[Variant, ...]
    cumulative: tuple[int, ...]  # cumulative traffic of `answering`, for routing
    shadows: tuple[Variant, ...]
    feature_names: tuple[str, ...] = ()
    classes: int = 0  # a multiclass model's number of classes (its scores are [rows, classes])

    @property
    def identity(self) -> tuple[int, datetime]:
        """What makes a manifest a new one: its revision and creation time."""
        return self.manifest.revision, self.manifest.created_at

    def route_index(self, key: str) -> int:
        """Index into `answering`, identical to ``mlforge.deployment.route``."""
        if len(self.answering) == 1:
            return 0
        b = bucket(key, self.manifest.endpoint)
        return min(bisect.bisect_right(self.cumulative, b), len(self.answering) - 1)

    def score(self, variant: Variant, x: np.ndarray) -> np.ndarray:
        """Scores of `variant` for a float32 matrix: [rows], or [rows, classes] (multiclass)."""
        return self.scorers[(variant.model_name, variant.version)](x)

    def no_scores(self, rows: int) -> np.ndarray:
        """NaN scores for `rows` rows, shaped like this endpoint's scores."""
        return np.full((rows, self.classes) if self.classes else rows, np.nan, dtype=np.float64)


class ServingState:
    """Loaded endpoints, the booster cache, the online store and the reload loop."""

    def __init__(
        self,
        project: Project,
        reload_interval_s: float = 2.0,
        prediction_sink: Callable[[PredictionBatch], None] | None = None,
    ) -> None:
        import_xgboost()  # ~0.45 s (with scipy): when the app is created, not when it is imported
        self.project = project
        self.reload_interval_s = reload_interval_s
        self.prediction_sink = prediction_sink
        self.configured: tuple[str, ...] = tuple(d.endpoint for d in project.spec.deployments)
        # Replaced as a whole on every swap; requests read it once.
        self.live: Mapping[str, LoadedEndpoint] = MappingProxyType({})
        self.deployed: frozenset[str] = frozenset()  # endpoints whose manifest exists (last poll)
        self.problems: Mapping[str, str] = MappingProxyType({})  # load errors by endpoint
        # (model, version) -> (model file URI, model, its scorer once built and verified by `load`)
        self._models: dict[tuple[str, int], tuple[str, FittedModel, Scorer | None]] = {}
        self._refresh_lock = threading.Lock()
        self._store: OnlineStore | None = None
        self._reader: RedisReader | None = None  # lean MGETs when the store is Redis
        self._store_lock = threading.Lock()
        self._warned: dict[str, str] = {}
        self.metrics = Metrics(prediction_sink if isinstance(prediction_sink, PredictionLogger) else None)

    # -- loading ------------------------------------------------------------------------------

    def _model(self, variant: Variant) -> FittedModel:
        """`variant`'s model, from the cache or read from its model file by its algorithm."""
        key = (variant.model_name, variant.version)
        cached = self._models.get(key)
        if cached is not None and cached[0] == variant.booster_uri:
            return cached[1]
        settings = self.project.settings
        # an s3:// model file (MLflow artifacts on S3) is read from the configured artifact endpoint
        model = load_model(
            variant.booster_uri,
            variant.algorithm,
            endpoint_url=settings.artifact_endpoint_url or settings.storage_endpoint_url,
            region=settings.storage_region,
        )
        if isinstance(model, XGBoostModel):
            # One scoring thread per booster: requests are a few rows, and XGBoost's default of
            # every core made each one-row prediction cost twice its CPU time in OpenMP threads
            # (measured: 190 → 95 µs CPU, same wall time). Parallelism comes from requests and workers.
            model.booster.set_param({"nthread": get_settings().serving_nthread})
        self._models[key] = (variant.booster_uri, model, None)
        return model

    def load(self, manifest: Manifest) -> LoadedEndpoint:
        """Everything a manifest needs to answer, loaded and warmed up (raises on any problem)."""
        answering = tuple(manifest.answering())
        if not answering:
            raise DataError(
                f"manifest revision {manifest.revision} of {manifest.endpoint} has no answering variant"
            )
        plan = OnlineReadPlan.for_model(
            self.project.spec,
            manifest.feature_names,
            manifest.views,
            manifest.feature_service,
            manifest.endpoint,
        )
        n = len(manifest.feature_names)
        scorers: dict[tuple[str, int], Scorer] = {}
        width = 0
        for v in manifest.variants:
            model = self._model(v)
            names = model.feature_names
            if len(names) != n:
                raise DataError(
                    f"{v.model_name} v{v.version} expects {len(names)} features, the manifest names {n}"
                )
            if names and list(names) != manifest.feature_names:
                raise DataError(
                    f"{v.model_name} v{v.version} was trained on other features than the manifest names"
                )
            if model.task is not v.task:
                raise DataError(
                    f"{v.model_name} v{v.version} predicts {model.task}, the manifest says {v.task}"
                )
            out = model.predict(np.full((1, n), np.nan, dtype=np.float32))  # warm up
            # every variant of an endpoint is a version of one model: one output shape
            w = out.shape[1] if out.ndim == 2 else 0
            if v is not manifest.variants[0] and w != width:
                raise DataError(f"{v.model_name} v{v.version} gives {w} classes, the other variants {width}")
            width = w
            key = (v.model_name, v.version)
            uri, _, scorer = self._models[key]
            if scorer is None:  # a new model object: build its scorer and verify it
                scorer = make_scorer(model)
                self._models[key] = (uri, model, scorer)
            scorers[key] = scorer
        cumulative = tuple(int(c) for c in np.cumsum([v.traffic for v in answering]))
        return LoadedEndpoint(
            manifest=manifest,
            scorers=MappingProxyType(scorers),
            plan=plan,
            feature_index=MappingProxyType({f: j for j, f in enumerate(manifest.feature_names)}),
            answering=answering,
            cumulative=cumulative,
            shadows=tuple(v for v in manifest.variants if v.shadow),
            feature_names=tuple(manifest.feature_names),
            classes=width,
        )

    def warn(self, endpoint: str, message: str) -> None:
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
                self.warn(
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
            self.warn(endpoint, message)
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

    def read_features(self, ep: LoadedEndpoint, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        store = self.online()
        reader = self._reader
        x = np.full((len(ids), len(ep.manifest.feature_names)), np.nan, dtype=np.float32)

        def read(view: str, keys: Sequence[str], width: int) -> tuple[np.ndarray, np.ndarray]:
            try:
                got = reader.read(view, keys, width) if reader is not None else None
                return got if got is not None else store.read(view, keys, width)
            except MLForgeError:
                raise
            except Exception as exc:
                raise StoreUnavailableError(f"online store read of {view} failed: {exc}") from None

        found = ep.plan.execute(read, ids, x)
        return x, np.asarray(found.any(axis=1), dtype=bool)

    def resolve(self, endpoint: str) -> LoadedEndpoint:
        """The loaded endpoint, or a 404/503 that says why not."""
        ep = self.live.get(endpoint)
        if ep is not None:
            return ep
        self.known(endpoint)
        problem = self.problems.get(endpoint)
        if problem is not None:
            raise Rejected(503, f"endpoint '{endpoint}' is deployed but not loaded: {problem}")
        raise Rejected(
            404,
            f"endpoint '{endpoint}' is configured but has no deployment yet: materialize "
            f"deployments/{endpoint} (asset {self.project.spec.project}/deployments/{endpoint}) first",
        )

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
            raise Rejected(404, f"unknown endpoint '{endpoint}'; known: {sorted(self.configured)}")

    def admin_rollback(self, endpoint: str) -> dict[str, Any]:
        """Make the previous manifest revision current (a new revision) and load it now."""
        self.known(endpoint)
        try:
            m = rollback(self.project.storage, endpoint)
        except ModelNotFoundError as exc:
            raise Rejected(409, str(exc)) from None
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
            raise Rejected(404, f"endpoint '{endpoint}' has no deployment manifest yet") from None
        except ValueError as exc:
            raise Rejected(422, str(exc)) from None
        except DeploymentConflictError as exc:
            raise Rejected(409, str(exc)) from None
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
                summary = m.summary().to_dict(model=True)
                # The admin API's shape, from the one manifest summary the CLI and report use too.
                item |= {
                    "model": summary["model"],
                    "revision": summary["revision"],
                    "strategy": summary["strategy"],
                    "created_at": summary["created_at"],
                    "features": len(m.feature_names),
                    "views": m.views,
                    "variants": summary["variants"],
                }
            out.append(item)
        return out

    def revisions(self) -> dict[str, int]:
        """The manifest revision each loaded endpoint serves in this worker."""
        return {e: ep.manifest.revision for e, ep in self.live.items()}

    def missing(self) -> dict[str, str]:
        """Deployed endpoints that are not loaded, with the reason."""
        return {
            e: self.problems.get(e, "not loaded yet")
            for e in self.configured
            if e in self.deployed and e not in self.live
        }
