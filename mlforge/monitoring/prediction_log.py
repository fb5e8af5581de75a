"""The prediction log: every prediction serving makes, in storage, partitioned by endpoint and day.

Serving hands each request's :class:`PredictionBatch` to a :class:`PredictionLogger`, which only
appends it to an in-memory buffer (no I/O on the request path). A background thread flushes the
buffer when it holds ``batch_rows`` rows or every ``interval_s`` seconds, whichever comes first,
and on :meth:`PredictionLogger.close` (the serving app's shutdown), so a clean shutdown loses no
rows. Every flush writes **new** objects, one per endpoint and day::

    logs/predictions/endpoint=<endpoint>/date=<YYYY-MM-DD>/<uuid7>.parquet

Nothing is ever appended to or rewritten, so several workers (or hosts) log to one storage root
without coordination, and a reader never sees half a file (storage writes are atomic). The file
name is a UUIDv7, whose first 48 bits are the flush time in milliseconds: a reader looking for
rows after a moment skips older files without opening them.

One row per scored (or attempted) entity and variant; shadow variants add a row per found entity
with ``shadow = true``. Columns: ``request_id, row, endpoint, revision, entity_id, variant,
model_version, shadow, found, status ('ok' | 'not_found' | 'error'), score, latency_ms,
timestamp (UTC)`` and ``features`` (a struct of the model's feature values as sent to it).
Days are UTC days. :func:`read_prediction_log` returns one day as a polars frame; monitoring
and the canary sensor read it.
"""

from __future__ import annotations

import io
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from mlforge.errors import DataError
from mlforge.io import layout, timeline
from mlforge.io.storage import Storage

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger("mlforge.monitoring.prediction_log")

STATUS_OK, STATUS_NOT_FOUND, STATUS_ERROR = "ok", "not_found", "error"
BASE_COLUMNS = (
    "request_id",
    "row",
    "endpoint",
    "revision",
    "entity_id",
    "variant",
    "model_version",
    "shadow",
    "found",
    "status",
    "score",
    "latency_ms",
    "timestamp",
)


@dataclass(frozen=True)
class PredictionBatch:
    """Everything one request produced, shadow scores included (what a prediction sink receives).

    ``features`` is the float32 matrix the models scored (NaN = missing), ``found`` whether each
    row had features, ``variants``/``versions`` who answered each row, ``shadow_scores`` the
    scores of each shadow variant for the found rows (in row order), ``failed`` the rows whose
    answering variant failed to score, ``shadow_failed`` the shadow variants that failed.
    """

    endpoint: str
    revision: int
    entity_ids: list[str | None]
    features: np.ndarray
    found: np.ndarray
    variants: list[str]
    scores: np.ndarray
    shadow_scores: dict[str, np.ndarray]
    latency_ms: float
    request_id: str = ""
    timestamp: float = field(default_factory=time.time)
    feature_names: tuple[str, ...] = ()
    versions: list[int] = field(default_factory=list)
    shadow_versions: dict[str, int] = field(default_factory=dict)
    failed: np.ndarray | None = None
    shadow_failed: frozenset[str] = frozenset()

    @property
    def rows(self) -> int:
        """Log rows this batch becomes (answering rows + one per shadow variant and found row)."""
        n_found = int(np.count_nonzero(self.found)) if self.shadow_scores or self.shadow_failed else 0
        return len(self.entity_ids) + n_found * len(set(self.shadow_scores) | self.shadow_failed)


def uuid7(ms: int | None = None) -> uuid.UUID:
    """A UUID version 7: 48 bits of Unix time in milliseconds, then random bits (RFC 9562)."""
    ms = int(time.time() * 1000) if ms is None else ms
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= secrets.randbits(12) << 64
    value |= 0b10 << 62  # variant
    value |= secrets.randbits(62)
    return uuid.UUID(int=value)


def uuid7_time(name: str) -> datetime | None:
    """The creation time encoded in a UUIDv7 file name (None for other names)."""
    try:
        u = uuid.UUID(layout.prediction_log_file_id(name))
    except ValueError:
        return None
    if u.version != 7:
        return None
    return datetime.fromtimestamp((u.int >> 80) / 1000, tz=UTC)


# ---------------------------------------------------------------------------------------------
# Batches → frame
# ---------------------------------------------------------------------------------------------


def batches_to_frame(batches: Sequence[PredictionBatch]) -> pl.DataFrame:
    """The log rows of `batches` as one frame (vectorised over the batches)."""
    import polars as pl

    frames = []
    by_features: dict[tuple[str, ...], list[PredictionBatch]] = {}
    for b in batches:
        by_features.setdefault(b.feature_names, []).append(b)
    for names, group in by_features.items():
        frames.append(_frame(group, names))
    if not frames:
        return empty_frame()
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def _frame(batches: Sequence[PredictionBatch], names: tuple[str, ...]) -> pl.DataFrame:
    if not any(b.shadow_scores or b.shadow_failed for b in batches):
        return _frame_no_shadows(batches, names)
    return _frame_general(batches, names)


def _frame_no_shadows(batches: Sequence[PredictionBatch], names: tuple[str, ...]) -> pl.DataFrame:
    """`_frame_general` for batches without shadow variants: the same frame, numpy work done once.

    The serving path logs one small batch per request, so a flush holds thousands of them; the
    per-batch numpy calls of the general path cost ~8 µs each, here there are none.
    """
    import polars as pl

    batches = [b for b in batches if len(b.entity_ids)]
    if not batches:
        return empty_frame()
    counts = [len(b.entity_ids) for b in batches]
    total = sum(counts)
    rep = np.asarray(counts)
    found = np.concatenate([b.found for b in batches]).astype(bool, copy=False)
    failed = np.zeros(total, dtype=bool)
    entity: list[str | None] = []
    variant: list[str] = []
    version: list[int] = []
    start = 0
    for b, n in zip(batches, counts, strict=True):
        if b.failed is not None:
            failed[start : start + n] = b.failed
        entity.extend(b.entity_ids)
        variant.extend(b.variants)
        version.extend(b.versions if len(b.versions) == n else [0] * n)
        start += n
    scores = np.concatenate([b.scores for b in batches]).astype(np.float64, copy=False)
    batch_of_row = np.repeat(np.arange(len(batches)), rep)
    starts = np.cumsum(rep) - rep
    micros = (np.asarray([b.timestamp for b in batches], dtype=np.float64) * 1e6).astype(np.int64)
    status = np.where(failed, STATUS_ERROR, np.where(found, STATUS_OK, STATUS_NOT_FOUND))
    data: dict[str, Any] = {
        "request_id": pl.Series([b.request_id for b in batches], dtype=pl.String).gather(batch_of_row),
        "row": pl.Series((np.arange(total) - np.repeat(starts, rep)).astype(np.int32)),
        "endpoint": pl.Series([b.endpoint for b in batches], dtype=pl.String).gather(batch_of_row),
        "revision": pl.Series(np.repeat(np.asarray([b.revision for b in batches], dtype=np.int32), rep)),
        "entity_id": pl.Series(entity, dtype=pl.String),
        "variant": pl.Series(variant, dtype=pl.String),
        "model_version": pl.Series(np.asarray(version, dtype=np.int32)),
        "shadow": pl.Series(np.zeros(total, dtype=bool)),
        "found": pl.Series(found),
        "status": pl.Series(status.astype(str), dtype=pl.String),
        "score": pl.Series(np.where(found & ~failed, scores, np.nan), nan_to_null=True),
        "latency_ms": pl.Series(
            np.repeat(np.asarray([b.latency_ms for b in batches], dtype=np.float32), rep)
        ),
        "timestamp": pl.Series(np.repeat(micros, rep)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
    }
    frame = pl.DataFrame(data)
    x = np.concatenate([b.features for b in batches]).astype(np.float32, copy=False)
    if names and x.ndim == 2 and x.shape[1] == len(names):
        feats = pl.DataFrame(x, schema=list(names), orient="row").to_struct("features")
        frame = frame.with_columns(feats)
    return frame


def _frame_general(batches: Sequence[PredictionBatch], names: tuple[str, ...]) -> pl.DataFrame:
    import polars as pl

    request_id: list[str] = []
    endpoint: list[str] = []
    entity: list[str | None] = []
    variant: list[str] = []
    version: list[int] = []
    counts: list[int] = []
    revision: list[int] = []
    latency: list[float] = []
    ts: list[float] = []
    rows: list[np.ndarray] = []
    shadow: list[np.ndarray] = []
    found: list[np.ndarray] = []
    status: list[np.ndarray] = []
    score: list[np.ndarray] = []
    xs: list[np.ndarray] = []
    for b in batches:
        n = len(b.entity_ids)
        f = np.asarray(b.found, dtype=bool)
        failed = np.zeros(n, dtype=bool) if b.failed is None else np.asarray(b.failed, dtype=bool)
        st = np.where(failed, STATUS_ERROR, np.where(f, STATUS_OK, STATUS_NOT_FOUND))
        sc = np.where(f & ~failed, np.asarray(b.scores, dtype=np.float64), np.nan)
        versions = b.versions if len(b.versions) == n else [0] * n
        parts: list[tuple[np.ndarray, list[str | None], list[str], list[int], bool, Any, Any, Any, Any]] = [
            (np.arange(n), b.entity_ids, b.variants, versions, False, f, st, sc, b.features)
        ]
        idx = np.flatnonzero(f)
        for name in sorted(set(b.shadow_scores) | b.shadow_failed):
            if name in b.shadow_failed:
                s_sc = np.full(idx.size, np.nan)
                s_st = np.full(idx.size, STATUS_ERROR)
            else:
                s_sc = np.asarray(b.shadow_scores[name], dtype=np.float64)
                s_st = np.full(idx.size, STATUS_OK)
            parts.append(
                (
                    idx,
                    [b.entity_ids[i] for i in idx],
                    [name] * idx.size,
                    [b.shadow_versions.get(name, 0)] * idx.size,
                    True,
                    np.ones(idx.size, dtype=bool),
                    s_st,
                    s_sc,
                    b.features[idx] if len(b.features) else b.features,
                )
            )
        for r, ids, vs, vers, is_shadow, fo, s, sco, x in parts:
            k = len(r)
            if k == 0:
                continue
            counts.append(k)
            request_id.append(b.request_id)
            endpoint.append(b.endpoint)
            revision.append(b.revision)
            latency.append(b.latency_ms)
            ts.append(b.timestamp)
            rows.append(r)
            entity.extend(ids)
            variant.extend(vs)
            version.extend(vers)
            shadow.append(np.full(k, is_shadow))
            found.append(fo)
            status.append(s)
            score.append(sco)
            xs.append(x)
    if not counts:
        return empty_frame()
    rep = np.asarray(counts)
    micros = (np.asarray(ts, dtype=np.float64) * 1e6).astype(np.int64)
    data: dict[str, Any] = {
        "request_id": pl.Series(request_id, dtype=pl.String).gather(np.repeat(np.arange(len(rep)), rep)),
        "row": pl.Series(np.concatenate(rows).astype(np.int32)),
        "endpoint": pl.Series(endpoint, dtype=pl.String).gather(np.repeat(np.arange(len(rep)), rep)),
        "revision": pl.Series(np.repeat(np.asarray(revision, dtype=np.int32), rep)),
        "entity_id": pl.Series(entity, dtype=pl.String),
        "variant": pl.Series(variant, dtype=pl.String),
        "model_version": pl.Series(np.asarray(version, dtype=np.int32)),
        "shadow": pl.Series(np.concatenate(shadow)),
        "found": pl.Series(np.concatenate(found)),
        "status": pl.Series(np.concatenate(status).astype(str), dtype=pl.String),
        "score": pl.Series(np.concatenate(score), nan_to_null=True),
        "latency_ms": pl.Series(np.repeat(np.asarray(latency, dtype=np.float32), rep)),
        "timestamp": pl.Series(np.repeat(micros, rep)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
    }
    frame = pl.DataFrame(data)
    x = np.concatenate(xs).astype(np.float32, copy=False) if xs else np.empty((0, 0), np.float32)
    if names and x.ndim == 2 and x.shape[1] == len(names):
        feats = pl.DataFrame(x, schema=list(names), orient="row").to_struct("features")
        frame = frame.with_columns(feats)
    return frame


def empty_frame() -> pl.DataFrame:
    """A log frame without rows (and without feature columns)."""
    import polars as pl

    return pl.DataFrame(
        schema={
            "request_id": pl.String,
            "row": pl.Int32,
            "endpoint": pl.String,
            "revision": pl.Int32,
            "entity_id": pl.String,
            "variant": pl.String,
            "model_version": pl.Int32,
            "shadow": pl.Boolean,
            "found": pl.Boolean,
            "status": pl.String,
            "score": pl.Float64,
            "latency_ms": pl.Float32,
            "timestamp": pl.Datetime("us", "UTC"),
        }
    )


# ---------------------------------------------------------------------------------------------
# The logger
# ---------------------------------------------------------------------------------------------


class PredictionLogger:
    """Buffers prediction batches in memory; a background thread writes them in batches.

    ``log`` never does I/O: it appends under a lock and, when the buffer reaches ``batch_rows``,
    wakes the writer. The writer flushes at least every ``interval_s`` seconds. When storage
    fails the rows stay buffered for the next flush; beyond ``max_buffered_rows`` new rows are
    dropped (and counted), so a storage outage cannot exhaust memory.
    """

    def __init__(
        self,
        storage: Storage,
        batch_rows: int = 10_000,
        interval_s: float = 5.0,
        max_buffered_rows: int = 1_000_000,
    ) -> None:
        self.storage = storage
        self.batch_rows = batch_rows
        self.interval_s = interval_s
        self.max_buffered_rows = max_buffered_rows
        self._buffer: list[PredictionBatch] = []
        self._buffered = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written_rows = 0
        self.written_files = 0
        self.dropped_rows = 0
        self.failed_flushes = 0

    @classmethod
    def from_env(cls, storage: Storage) -> PredictionLogger:
        """A logger with ``MLFORGE_PREDICTION_LOG_BATCH_ROWS`` / ``…_INTERVAL_S`` when set."""
        from mlforge.config.settings import get_settings

        env = get_settings()
        return cls(
            storage, batch_rows=env.prediction_log_batch_rows, interval_s=env.prediction_log_interval_s
        )

    # -- the request path ---------------------------------------------------------------------

    def __call__(self, batch: PredictionBatch) -> None:
        self.log(batch)

    def log(self, batch: PredictionBatch) -> None:
        """Buffer one request's predictions (no I/O; wakes the writer when a batch is full)."""
        n = batch.rows
        with self._lock:
            if self._buffered + n > self.max_buffered_rows:
                self.dropped_rows += n
                dropped = self.dropped_rows
            else:
                self._buffer.append(batch)
                self._buffered += n
                dropped = 0
                if self._buffered >= self.batch_rows:
                    self._wake.set()
        if dropped and dropped == n:  # first drop only, not one warning per request
            log.warning("prediction log buffer full (%d rows); dropping rows", self.max_buffered_rows)

    @property
    def buffered_rows(self) -> int:
        """Rows waiting for the next flush."""
        return self._buffered

    # -- the writer ---------------------------------------------------------------------------

    def start(self) -> PredictionLogger:
        """Start the background writer (idempotent)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="mlforge-prediction-log", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # pragma: no cover - flush already catches storage errors
                log.warning("prediction log flush failed: %s", exc)

    def flush(self) -> int:
        """Write everything buffered now; the number of rows written."""
        with self._flush_lock:
            with self._lock:
                batches, self._buffer = self._buffer, []
                self._buffered = 0
            if not batches:
                return 0
            groups: dict[tuple[str, date], list[PredictionBatch]] = {}
            for b in batches:
                groups.setdefault((b.endpoint, layout.utc_day(b.timestamp)), []).append(b)
            written = 0
            retry: list[PredictionBatch] = []
            for (endpoint, day), group in groups.items():
                try:
                    written += self._write(endpoint, day, group)
                except Exception as exc:
                    self.failed_flushes += 1
                    log.warning(
                        "prediction log: cannot write %d rows of %s for %s (kept for the next flush): %s",
                        sum(b.rows for b in group),
                        endpoint,
                        day,
                        exc,
                    )
                    retry.extend(group)
            if retry:
                with self._lock:
                    room = self.max_buffered_rows - self._buffered
                    keep = []
                    for b in retry:
                        if b.rows <= room:
                            keep.append(b)
                            room -= b.rows
                        else:
                            self.dropped_rows += b.rows
                    self._buffer = keep + self._buffer
                    self._buffered += sum(b.rows for b in keep)
            return written

    def _write(self, endpoint: str, day: date, batches: list[PredictionBatch]) -> int:
        frame = batches_to_frame(batches)
        if frame.height == 0:
            return 0
        buf = io.BytesIO()
        frame.write_parquet(buf, compression="zstd", statistics=True)
        self.storage.write_bytes(layout.prediction_log_file(endpoint, day, str(uuid7())), buf.getvalue())
        self.written_rows += frame.height
        self.written_files += 1
        return frame.height

    def close(self, timeout: float = 30.0) -> int:
        """Stop the writer and flush what is left (the shutdown path); rows written by this call."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        return self.flush()


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def answering_rows(log: pl.DataFrame) -> pl.DataFrame:
    """The rows that answered a request (shadow rows only score, they never answer)."""
    import polars as pl

    return log.filter(~pl.col("shadow")) if log.height else log


def ok_scored_rows(log: pl.DataFrame) -> pl.DataFrame:
    """The rows scored without error (status ``ok``, a score present); shadow rows included."""
    import polars as pl

    return log.filter((pl.col("status") == STATUS_OK) & pl.col("score").is_not_null()) if log.height else log


def read_prediction_log(
    storage: Storage, endpoint: str, day: date | datetime | str, since: datetime | None = None
) -> pl.DataFrame:
    """One endpoint's logged predictions of one UTC day (rows at or after `since` when given)."""
    import polars as pl

    keys = layout.prediction_log_files(
        storage.list(layout.prediction_log_day_prefix(endpoint, layout.as_day(day)))
    )
    if since is not None:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        # a file flushed before `since` holds only rows logged before it
        keys = [k for k in keys if (t := uuid7_time(k)) is None or t >= since - timedelta(seconds=1)]
    frames = []
    for key in keys:
        try:
            frames.append(pl.read_parquet(io.BytesIO(storage.read_bytes(key))))
        except Exception as exc:
            raise DataError(f"{storage.uri(key)} is not a readable prediction log file: {exc}") from None
    if not frames:
        return empty_frame()
    frame = pl.concat(frames, how="diagonal_relaxed")
    if since is not None:
        frame = frame.filter(pl.col("timestamp") >= since)
    return frame.sort("timestamp", "request_id", "shadow", "row", maintain_order=True)


def read_prediction_logs(
    storage: Storage,
    endpoint: str,
    days: Iterable[date | datetime | str],
    since: datetime | None = None,
) -> pl.DataFrame:
    """Several days of one endpoint's log, concatenated in time order."""
    import polars as pl

    frames = [read_prediction_log(storage, endpoint, d, since) for d in days]
    frames = [f for f in frames if f.height] or [empty_frame()]
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


def days_between(start: datetime, end: datetime) -> list[date]:
    """The UTC days from `start` to `end`, both included."""
    return timeline.days_between(layout.as_day(start), layout.as_day(end))
