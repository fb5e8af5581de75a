"""Answering one prediction request: features, routing, scoring, the prediction log, the body.

- Entity ids read their features from the online store (one read per feature view for the whole
  batch); an entity the store does not hold answers ``found: false, score: null``. With several
  views an entity is found when at least one view holds it.
- Routing: an entity goes to ``route(manifest, entity_id)`` (a stable hash). An explicit-feature
  row goes by its entity key when it carries one, else by ``"{request_id}:{row index}"`` when the
  request has a ``request_id``, else by a hash of the row's feature values.
- Shadow variants score every found row; their scores go to the prediction log only.
- Every request goes to the prediction sink, failed ones too, before a scoring failure becomes a
  500. :func:`answer_predict` is the one implementation behind ``POST /predict/{endpoint}`` (the
  FastAPI route and the fast path): status, JSON bytes, and the request counted in the metrics.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from mlforge.deployment.manifest import Variant
from mlforge.errors import MLForgeError
from mlforge.models.base import Task
from mlforge.monitoring.prediction_log import PredictionBatch
from serving.errors import MAX_REPORTED_ERRORS, Rejected, error_parts, render
from serving.state import LoadedEndpoint, ServingState

log = logging.getLogger("mlforge.serving")

INLINE_ROWS = 64  # requests with at most this many rows are scored on the event loop


def explicit_rows(ep: LoadedEndpoint, rows: list[dict[str, Any]]) -> tuple[np.ndarray, list[str | None]]:
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
        raise Rejected(422, errors)
    return x, ids


def predict_rows(
    state: ServingState,
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
    ep = state.resolve(endpoint)
    m = ep.manifest
    if entity_ids is not None:
        ids: list[str | None] = list(entity_ids)
        x, found = state.read_features(ep, entity_ids)
        keys: list[str] = entity_ids
    else:
        assert features is not None
        x, ids = explicit_rows(ep, features)
        found = np.ones(len(ids), dtype=bool)
        keys = [row_key(eid, request_id, i, x[i]) for i, eid in enumerate(ids)]
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
                scores = ep.no_scores(n_rows)
                rows = np.flatnonzero(found)
                if rows.size:
                    scores[rows] = ep.score(variant, x[rows])
        except Exception as exc:  # logged and counted below, then a 500
            scores = ep.no_scores(n_rows)
            failed = found.copy()
            failure = (variant, exc)
        if answered is not None:
            answered[variant.name] = n_rows
    else:
        route = np.fromiter((ep.route_index(k) for k in keys), dtype=np.intp, count=n_rows)
        scores = ep.no_scores(n_rows)
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
                shadow_scores[variant.name] = logged_scores(ep.score(variant, x[found]))
            except Exception as exc:  # a shadow never fails a request
                shadow_failed.add(variant.name)
                state.warn(f"{endpoint}:shadow", f"shadow {variant.name} of {endpoint} failed: {exc}")
            else:
                state.metrics.shadow_rows(endpoint, variant.name, int(np.count_nonzero(found)))
    request_id = request_id or uuid.uuid4().hex
    if len(answering) == 1:
        names = [answering[0].name] * n_rows
        versions = [answering[0].version] * n_rows
    else:
        names = [answering[r].name for r in route]
        versions = [answering[r].version for r in route]
    if state.prediction_sink is not None:
        batch = PredictionBatch(
            endpoint=endpoint,
            revision=m.revision,
            entity_ids=ids,
            features=x,
            found=found,
            variants=names,
            scores=logged_scores(scores),
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
            state.prediction_sink(batch)
        except Exception as sink_exc:  # a sink must never fail a request
            log.warning("prediction sink failed: %s", sink_exc)
    if failure is not None:
        bad, err = failure
        log.error("scoring with %s v%d of %s failed", bad.name, bad.version, endpoint, exc_info=err)
        raise Rejected(
            500,
            f"internal error ({type(err).__name__}) while scoring with variant {bad.name} "
            f"(v{bad.version}); see the server log",
        )
    found_list = found.tolist()
    preds: list[dict[str, Any]] = [
        {
            "entity_id": eid,
            "score": None,
            "found": found_list[i],
            "model_version": versions[i],
            "variant": names[i],
        }
        for i, eid in enumerate(ids)
    ]
    add_outputs(preds, scores, found, answering, route)
    return {"endpoint": endpoint, "model": m.model, "predictions": preds, "revision": m.revision}


def logged_scores(scores: np.ndarray) -> np.ndarray:
    """The one score per row the prediction log keeps: a multiclass row's top probability."""
    return scores.max(axis=1) if scores.ndim == 2 else scores


def add_outputs(
    preds: list[dict[str, Any]],
    scores: np.ndarray,
    found: np.ndarray,
    answering: tuple[Variant, ...],
    route: np.ndarray,
) -> None:
    """Fill each found row's ``score`` and, by task, ``label`` (and ``probabilities``).

    Binary: ``label`` is score >= the answering version's threshold (each variant carries its
    own). Multiclass: ``label`` is the most probable class, ``score`` its probability, and
    ``probabilities`` all of them. Regression: the score is the prediction; no label.
    """
    task = answering[0].task
    rows = np.flatnonzero(found).tolist()
    if task is Task.MULTICLASS:
        probs = scores.tolist()
        for i in rows:
            p = probs[i]
            k = max(range(len(p)), key=p.__getitem__)
            preds[i].update(score=p[k], label=k, probabilities=p)
        return
    values = scores.tolist()
    if task is Task.REGRESSION:
        for i in rows:
            preds[i]["score"] = values[i]
        return
    thresholds = [v.threshold for v in answering]
    route_list = route.tolist()
    for i in rows:
        t = thresholds[route_list[i]]
        preds[i]["score"] = values[i]
        preds[i]["label"] = None if t is None else int(values[i] >= t)


def row_key(entity_id: str | None, request_id: str | None, index: int, row: np.ndarray) -> str:
    """Routing key of an explicit-feature row: its entity id, else request_id:index, else its values."""
    if entity_id is not None:
        return entity_id
    if request_id is not None:
        return f"{request_id}:{index}"
    return hashlib.blake2b(row.tobytes(), digest_size=8).hexdigest()


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
            result = predict_rows(state, endpoint, entity_ids, features, request_id, answered)
        else:
            result = await run_in_threadpool(
                predict_rows, state, endpoint, entity_ids, features, request_id, answered
            )
        status, content = 200, render(result)
    except Rejected as r:
        status, content = r.status, render({"detail": r.detail})
    except MLForgeError as exc:
        status, content = error_parts(exc)
    except Exception as exc:
        log.exception("predict %s failed", endpoint)
        status = 500
        content = render(
            {"detail": f"internal error ({type(exc).__name__}) while scoring; see the server log"}
        )
    label = endpoint if endpoint in state.configured else "unknown"
    state.metrics.observe(label, answered, status, time.perf_counter() - t0)
    return status, content
