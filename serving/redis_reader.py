"""A lean MGET for serving's online lookups on Redis: one dedicated connection, no client layers.

``RedisOnlineStore.read`` goes through redis-py's full client for every lookup (connection pool
checkout and release, retry wrapper, command packing, observability hooks): about 26 µs of CPU
for a one-key MGET on this machine, against 12 µs for the same MGET sent on a connection
directly. :class:`RedisReader` keeps one redis-py ``Connection`` (so URL parsing, AUTH, SELECT,
TLS and unix sockets stay redis-py's) and sends the MGET pre-packed on it. Keys and decoding are
exactly the store's: ``<prefix>:<view>:<entity>`` and :func:`mlforge.online_store._assemble`.

One connection serves one caller at a time: a read that finds it busy (a large batch scored in the
thread pool while the event loop answers another request) returns None and the caller uses the
store's pooled client instead. A failure on a connection that worked before is retried once on a
fresh connection (Redis restarted, idle connection closed); otherwise it is the store's
``StoreUnavailableError`` / ``MLForgeError``, with the store's messages.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlforge.errors import MLForgeError, StoreUnavailableError
from mlforge.features.online import RedisOnlineStore, _assemble

_MGET = b"$4\r\nMGET\r\n"


class RedisReader:
    """MGETs of one Redis online store on a dedicated connection (see the module docstring)."""

    def __init__(self, url: str, prefix: str, timeout_s: float = 2.0) -> None:
        import redis

        self._redis = redis
        pool = redis.ConnectionPool.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._conn: Any = pool.make_connection()
        self._prefix = prefix
        self._keys: dict[str, bytes] = {}  # view -> b"<prefix>:<view>:"
        self._lock = threading.Lock()
        self._healthy = False  # the connection worked before (a failure is then retried once)

    @classmethod
    def for_store(cls, store: object) -> RedisReader | None:
        """A reader for `store` when it is a Redis online store, else None."""
        if isinstance(store, RedisOnlineStore):
            return cls(store.url, store.prefix)
        return None

    def connect(self) -> None:
        """Connect now (at start-up), not in the first read; after a failure the first read connects."""
        with self._lock:
            try:
                self._conn.connect()
            except (self._redis.RedisError, OSError):
                self._conn.disconnect()
                return
            self._healthy = True  # the connection worked: a later failure is retried once

    def read(
        self, view: str, entity_ids: Sequence[str], n_features: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(values, found) like ``RedisOnlineStore.read``; None when the connection is busy."""
        if not entity_ids:
            return np.zeros((0, n_features)), np.zeros(0, dtype=bool)
        if not self._lock.acquire(blocking=False):
            return None
        try:
            raws = self._mget(self._command(view, entity_ids))
        finally:
            self._lock.release()
        return _assemble(raws, n_features)

    def _command(self, view: str, entity_ids: Sequence[str]) -> bytes:
        base = self._keys.get(view)
        if base is None:
            base = self._keys[view] = f"{self._prefix}:{view}:".encode()
        parts = [b"*%d\r\n" % (len(entity_ids) + 1), _MGET]
        for e in entity_ids:
            key = base + str(e).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(key), key))
        return b"".join(parts)

    def _mget(self, command: bytes) -> list[bytes | None]:
        redis = self._redis
        conn = self._conn
        for attempt in (0, 1):
            try:
                conn.send_packed_command([command], check_health=False)
                raws = conn.read_response()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                conn.disconnect()
                if self._healthy and attempt == 0:  # a connection that worked before: once more
                    self._healthy = False
                    continue
                raise StoreUnavailableError(f"online store (Redis) unreachable during read: {exc}") from None
            except redis.RedisError as exc:
                conn.disconnect()
                raise MLForgeError(f"online store (Redis) read failed: {exc}") from None
            if isinstance(raws, Exception):  # an error reply that the parser handed back
                raise MLForgeError(f"online store (Redis) read failed: {raws}")
            self._healthy = True
            return raws  # type: ignore[no-any-return]
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the connection (a later read reconnects)."""
        self._conn.disconnect()
