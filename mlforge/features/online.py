"""Online store: the latest feature values per entity, for serving.

One packed value per (view, entity): a 16-character event timestamp (epoch seconds, zero padded,
so values compare as strings) followed by the features as little-endian float64. A lookup of many
entities is one round trip (MGET on Redis, one SELECT on the embedded SQLite store). A write never
replaces a value with an older event timestamp, so a backfill cannot clobber fresher data, and
every write sets the TTL again.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from mlforge.errors import MLForgeError, StoreUnavailableError

if TYPE_CHECKING:  # serving imports this module and never needs polars from it
    import polars as pl

TS_WIDTH = 16


def pack(event_ts: int, values: np.ndarray) -> bytes:
    """Encode one entity's row."""
    return f"{event_ts:0{TS_WIDTH}d}".encode() + np.ascontiguousarray(values, dtype="<f8").tobytes()


def unpack(raw: bytes) -> tuple[int, np.ndarray]:
    """Decode one entity's row."""
    return int(raw[:TS_WIDTH]), np.frombuffer(raw, dtype="<f8", offset=TS_WIDTH)


class OnlineStore(Protocol):
    """What serving and the online assets need."""

    def write(
        self,
        view: str,
        entity_ids: Sequence[str],
        event_ts: Sequence[int],
        values: np.ndarray,
        ttl_seconds: int,
    ) -> int:
        """Upsert rows whose event_ts is not older than the stored one; return rows written."""
        ...

    def read(self, view: str, entity_ids: Sequence[str], n_features: int) -> tuple[np.ndarray, np.ndarray]:
        """(values [n, n_features] with NaN where missing, found mask [n]) in request order."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailableError when the store cannot be reached."""
        ...


def _assemble(raws: Sequence[bytes | None], n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """(values [n, n_features], found [n]) from packed values; None or a wrong length is missing.

    The values are decoded in one `np.frombuffer` over the joined records (no per-row numpy
    calls); only records of an unexpected length take the per-row path.
    """
    n = len(raws)
    rec = TS_WIDTH + 8 * n_features
    if n and None not in raws and set(map(len, raws)) == {rec}:  # type: ignore[arg-type]
        return _decode(raws, n, rec, n_features), np.ones(n, dtype=bool)  # type: ignore[arg-type]
    out = np.full((n, n_features), np.nan, dtype=np.float64)
    found = np.zeros(n, dtype=bool)
    hits: list[int] = []
    for i, raw in enumerate(raws):
        if raw is None:
            continue
        if len(raw) == rec:
            hits.append(i)
        else:  # another feature count reads as missing; a torn value still raises as it always did
            np.frombuffer(raw, dtype="<f8", offset=TS_WIDTH)
    if hits:
        out[hits] = _decode([raws[i] for i in hits], len(hits), rec, n_features)  # type: ignore[misc]
        found[hits] = True
    return out, found


def _decode(raws: Sequence[bytes], n: int, rec: int, n_features: int) -> np.ndarray:
    """Features of `n` packed records of `rec` bytes each, as a fresh float64 [n, n_features]."""
    blob = np.frombuffer(b"".join(raws), dtype=np.uint8).reshape(n, rec)[:, TS_WIDTH:]
    return blob.copy().view("<f8").astype(np.float64, copy=False).reshape(n, n_features)


class SQLiteOnlineStore:
    """The embedded default: one SQLite file (WAL), safe for one writer and many readers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS online (view TEXT NOT NULL, entity TEXT NOT NULL, "
                "ts INTEGER NOT NULL, expires REAL NOT NULL, value BLOB NOT NULL, "
                "PRIMARY KEY (view, entity)) WITHOUT ROWID"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def write(
        self,
        view: str,
        entity_ids: Sequence[str],
        event_ts: Sequence[int],
        values: np.ndarray,
        ttl_seconds: int,
    ) -> int:
        """Upsert in one transaction; older event timestamps lose."""
        expires = time.time() + ttl_seconds
        rows = [
            (view, str(e), int(t), expires, pack(int(t), values[i]))
            for i, (e, t) in enumerate(zip(entity_ids, event_ts, strict=True))
        ]
        conn = self._conn()
        with conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT INTO online (view, entity, ts, expires, value) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (view, entity) DO UPDATE SET ts = excluded.ts, expires = excluded.expires, "
                "value = excluded.value WHERE excluded.ts >= online.ts",
                rows,
            )
            return conn.total_changes - before

    def read(self, view: str, entity_ids: Sequence[str], n_features: int) -> tuple[np.ndarray, np.ndarray]:
        """One SELECT for all ids; expired rows count as missing."""
        ids = [str(e) for e in entity_ids]
        found: dict[str, bytes] = {}
        now = time.time()
        conn = self._conn()
        for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            chunk = ids[start : start + 900]
            q = f"SELECT entity, value FROM online WHERE view = ? AND expires > ? AND entity IN ({','.join('?' * len(chunk))})"
            for ent, val in conn.execute(q, [view, now, *chunk]):
                found[ent] = val
        return _assemble([found.get(i) for i in ids], n_features)

    def ping(self) -> None:
        """SQLite is in-process: reachable when the file opens."""
        try:
            self._conn().execute("SELECT 1")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"embedded online store {self.path}: {exc}") from None


# Sets each key only if no stored value has a newer timestamp prefix; refreshes the TTL.
_REDIS_UPSERT = """
local n = 0
for i, k in ipairs(KEYS) do
  local new = ARGV[i + 1]
  local old = redis.call('GET', k)
  if (not old) or string.sub(old, 1, 16) <= string.sub(new, 1, 16) then
    redis.call('SET', k, new, 'EX', ARGV[1])
    n = n + 1
  end
end
return n
"""


class RedisOnlineStore:
    """Redis backend: one packed string per (view, entity), MGET reads, Lua-guarded writes."""

    def __init__(self, url: str, key_prefix: str = "mlforge", client: Any = None) -> None:
        import redis

        self.url = url
        self.prefix = key_prefix
        self._redis = client or redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._upsert = self._redis.register_script(_REDIS_UPSERT)

    def _key(self, view: str, entity: str) -> str:
        return f"{self.prefix}:{view}:{entity}"

    def _guard(self, what: str, fn: Any, *args: Any) -> Any:
        import redis

        try:
            return fn(*args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailableError(f"online store (Redis) unreachable during {what}: {exc}") from None
        except redis.RedisError as exc:
            raise MLForgeError(f"online store (Redis) {what} failed: {exc}") from None

    def write(
        self,
        view: str,
        entity_ids: Sequence[str],
        event_ts: Sequence[int],
        values: np.ndarray,
        ttl_seconds: int,
    ) -> int:
        """Pipelined batches of the guarded upsert script."""
        written = 0
        batch = 1000
        for start in range(0, len(entity_ids), batch):
            keys = [self._key(view, str(e)) for e in entity_ids[start : start + batch]]
            vals = [pack(int(event_ts[start + j]), values[start + j]) for j in range(len(keys))]
            written += int(self._guard("write", self._upsert, keys, [ttl_seconds, *vals]))
        return written

    def read(self, view: str, entity_ids: Sequence[str], n_features: int) -> tuple[np.ndarray, np.ndarray]:
        """One MGET for all ids."""
        if not entity_ids:
            return np.zeros((0, n_features)), np.zeros(0, dtype=bool)
        p = f"{self.prefix}:{view}:"
        raws = self._guard("read", self._redis.mget, [p + str(e) for e in entity_ids])
        return _assemble(raws, n_features)

    def ping(self) -> None:
        """PING the server."""
        self._guard("ping", self._redis.ping)


def open_online_store(url: str, key_prefix: str = "mlforge") -> OnlineStore:
    """The store a URL names: sqlite:///path (embedded) or redis://…"""
    if url.startswith("sqlite:///"):
        return SQLiteOnlineStore(url[len("sqlite:///") :])
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisOnlineStore(url, key_prefix)
    raise MLForgeError(f"unsupported online store URL {url!r}: use 'embedded' or redis://host:port/db")


# ---------------------------------------------------------------------------------------------
# Loading offline snapshots into the store
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnlineLoad:
    """What one load of a view's snapshots into the online store did."""

    entities: int  # distinct entities offered (their newest row each)
    written: int  # rows the store took; the rest lost to a stored newer event timestamp
    ttl_seconds: int


def latest_per_entity(snapshots: pl.DataFrame, entity_key: str) -> pl.DataFrame:
    """The newest row (by event timestamp) of every entity, in event-timestamp order."""
    from mlforge.features.snapshots import EVENT_TS

    return snapshots.sort(EVENT_TS).unique(subset=[entity_key], keep="last", maintain_order=True)


def ttl_seconds(ttl_days: int) -> int:
    """A view's TTL in whole seconds."""
    return int(timedelta(days=ttl_days).total_seconds())


def load_latest(
    store: OnlineStore,
    view: str,
    snapshots: pl.DataFrame,
    entity_key: str,
    features: list[str],
    ttl_days: int,
) -> OnlineLoad:
    """Write the newest row per entity of `snapshots` (any days of `view`) to `store`.

    Only the newest row per entity is sent; the store itself also refuses event timestamps
    older than the stored ones, so loading old days never overwrites fresher values.
    """
    import polars as pl

    from mlforge.features.snapshots import EVENT_TS

    latest = latest_per_entity(snapshots, entity_key)
    ts = (latest[EVENT_TS].cast(pl.Int64) // 1_000_000).to_numpy()  # µs → epoch seconds
    values = latest.select(features).to_numpy().astype(np.float64)
    ttl = ttl_seconds(ttl_days)
    # the stores only index and int() the timestamps, so the int64 array serves as the sequence
    written = store.write(view, latest[entity_key].to_list(), cast("Sequence[int]", ts), values, ttl)
    return OnlineLoad(latest.height, written, ttl)
