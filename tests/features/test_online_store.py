"""The online store on both backends: the embedded SQLite file and a real Redis server."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from mlforge.errors import MLForgeError, StoreUnavailableError
from mlforge.features.online import (
    TS_WIDTH,
    RedisOnlineStore,
    SQLiteOnlineStore,
    open_online_store,
    pack,
    unpack,
)
from servers import free_port

VIEW = "customer_activity"


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(
    params=["sqlite", pytest.param("redis", marks=pytest.mark.integration)],
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        yield SQLiteOnlineStore(tmp_path / "online" / "store.db")
    else:
        url = request.getfixturevalue("redis_url")
        s = RedisOnlineStore(url, key_prefix=_prefix())
        yield s
        s._redis.close()


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisOnlineStore]:
    s = RedisOnlineStore(redis_url, key_prefix=_prefix())
    yield s
    s._redis.close()


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def rows(*vals: list[float]) -> np.ndarray:
    return np.array(vals, dtype=np.float64)


# --- packing ------------------------------------------------------------------------------


def test_pack_unpack_round_trip_and_sortable_prefix() -> None:
    vals = rows([0.1, -0.0, 1e-300, np.inf])[0]
    raw = pack(883612800, vals)
    assert raw[:TS_WIDTH] == b"0000000883612800"
    ts, back = unpack(raw)
    assert ts == 883612800
    assert back.tobytes() == vals.tobytes()  # bit-exact, including -0.0
    assert pack(9, vals)[:TS_WIDTH] < pack(10, vals)[:TS_WIDTH]  # string order == numeric order


# --- both backends ------------------------------------------------------------------------


def test_round_trip_in_request_order_with_explicit_missing(store: Any) -> None:
    written = store.write(VIEW, ["a", "b", "c"], [100, 100, 100], rows([1, 2], [3, 4], [5, 6]), 3600)
    assert written == 3
    values, found = store.read(VIEW, ["c", "zz", "a", "b", "a", "nope"], 2)
    assert values.shape == (6, 2)
    assert values.dtype == np.float64
    assert found.tolist() == [True, False, True, True, True, False]
    np.testing.assert_array_equal(values[[0, 2, 3, 4]], rows([5, 6], [1, 2], [3, 4], [1, 2]))
    assert np.isnan(values[1]).all()
    assert np.isnan(values[5]).all()


def test_values_round_trip_bit_exact(store: Any) -> None:
    vals = rows([0.1, 1e-300, -0.0, np.inf, -1.5e308, np.nan])
    store.write(VIEW, ["x"], [1], vals, 3600)
    values, found = store.read(VIEW, ["x"], 6)
    assert found.tolist() == [True]
    assert values.tobytes() == vals.tobytes()


def test_views_are_separate_namespaces(store: Any) -> None:
    store.write(VIEW, ["a"], [1], rows([1.0]), 3600)
    store.write("other_view", ["a"], [1], rows([2.0]), 3600)
    assert store.read(VIEW, ["a"], 1)[0].tolist() == [[1.0]]
    assert store.read("other_view", ["a"], 1)[0].tolist() == [[2.0]]
    assert store.read("third_view", ["a"], 1)[1].tolist() == [False]


def test_integer_ids_are_read_as_their_string(store: Any) -> None:
    store.write(VIEW, [7, "00008"], [1, 1], rows([7.0], [8.0]), 3600)
    values, found = store.read(VIEW, ["7", 8, "00008"], 1)
    assert found.tolist() == [True, False, True]  # 8 != "00008": ids are not normalised
    assert values[0].tolist() == [7.0]


def test_older_event_never_overwrites_newer(store: Any) -> None:
    assert store.write(VIEW, ["a"], [200], rows([2.0]), 3600) == 1
    assert store.write(VIEW, ["a"], [199], rows([1.0]), 3600) == 0  # a backfill of older data
    assert store.read(VIEW, ["a"], 1)[0].tolist() == [[2.0]]
    assert store.write(VIEW, ["a"], [200], rows([3.0]), 3600) == 1  # same timestamp: a correction wins
    assert store.read(VIEW, ["a"], 1)[0].tolist() == [[3.0]]
    assert store.write(VIEW, ["a"], [201], rows([4.0]), 3600) == 1
    assert store.read(VIEW, ["a"], 1)[0].tolist() == [[4.0]]


def test_timestamps_compare_numerically_across_digit_counts(store: Any) -> None:
    store.write(VIEW, ["a"], [10], rows([10.0]), 3600)
    assert store.write(VIEW, ["a"], [9], rows([9.0]), 3600) == 0
    assert store.read(VIEW, ["a"], 1)[0].tolist() == [[10.0]]
    assert store.write(VIEW, ["a"], [1_000_000_000], rows([1.0]), 3600) == 1
    assert store.read(VIEW, ["a"], 1)[0].tolist() == [[1.0]]


def test_a_mixed_batch_only_applies_the_not_older_rows(store: Any) -> None:
    store.write(VIEW, ["a", "b", "c"], [100, 100, 100], rows([1.0], [1.0], [1.0]), 3600)
    n = store.write(VIEW, ["a", "b", "c", "d"], [99, 100, 101, 5], rows([2.0], [2.0], [2.0], [2.0]), 3600)
    assert n == 3
    values, found = store.read(VIEW, ["a", "b", "c", "d"], 1)
    assert found.all()
    assert values[:, 0].tolist() == [1.0, 2.0, 2.0, 2.0]


def test_wrong_feature_count_reads_as_missing(store: Any) -> None:
    store.write(VIEW, ["a"], [1], rows([1.0, 2.0, 3.0]), 3600)
    values, found = store.read(VIEW, ["a"], 2)
    assert found.tolist() == [False]
    assert np.isnan(values).all()
    assert store.read(VIEW, ["a"], 3)[1].tolist() == [True]


def test_empty_read(store: Any) -> None:
    values, found = store.read(VIEW, [], 4)
    assert values.shape == (0, 4)
    assert found.shape == (0,)


def test_large_batches_cross_internal_chunk_sizes(store: Any) -> None:
    n = 2_345  # > SQLite's 900-parameter chunk and > Redis's 1000-key write batch
    ids = [f"{i:05d}" for i in range(n)]
    vals = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    assert store.write(VIEW, ids, [1] * n, vals, 3600) == n
    req = [*ids[::-1], "missing"]
    values, found = store.read(VIEW, req, 3)
    assert found[:-1].all()
    assert not found[-1]
    np.testing.assert_array_equal(values[:-1], vals[::-1])


def test_write_with_mismatched_lengths_raises(store: Any) -> None:
    with pytest.raises((ValueError, IndexError)):
        store.write(VIEW, ["a", "b"], [1], rows([1.0], [2.0]), 3600)


def test_ping(store: Any) -> None:
    store.ping()


# --- SQLite specifics ---------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [0, -10])
def test_sqlite_expired_rows_read_as_missing(tmp_path: Path, ttl: int) -> None:
    s = SQLiteOnlineStore(tmp_path / "s.db")
    s.write(VIEW, ["a"], [1], rows([1.0]), 3600)
    s.write(VIEW, ["b"], [1], rows([2.0]), ttl)
    values, found = s.read(VIEW, ["a", "b"], 1)
    assert found.tolist() == [True, False]
    assert np.isnan(values[1, 0])


def test_sqlite_ttl_is_set_on_write_and_refreshed_on_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    s = SQLiteOnlineStore(path)

    def expires() -> float:
        with sqlite3.connect(path) as c:
            return float(c.execute("SELECT expires FROM online WHERE entity = 'a'").fetchone()[0])

    t0 = time.time()
    s.write(VIEW, ["a"], [1], rows([1.0]), 0)
    assert s.read(VIEW, ["a"], 1)[1].tolist() == [False]
    assert expires() == pytest.approx(t0, abs=5)
    s.write(VIEW, ["a"], [1], rows([1.5]), 3600)  # same event time, fresh TTL: visible again
    assert expires() == pytest.approx(t0 + 3600, abs=5)
    values, found = s.read(VIEW, ["a"], 1)
    assert found.tolist() == [True]
    assert values.tolist() == [[1.5]]


def test_sqlite_reopened_file_keeps_values(tmp_path: Path) -> None:
    SQLiteOnlineStore(tmp_path / "s.db").write(VIEW, ["a"], [1], rows([4.0]), 3600)
    assert SQLiteOnlineStore(tmp_path / "s.db").read(VIEW, ["a"], 1)[0].tolist() == [[4.0]]


def test_sqlite_read_of_100_entities_is_one_select(tmp_path: Path) -> None:
    s = SQLiteOnlineStore(tmp_path / "s.db")
    ids = [str(i) for i in range(100)]
    s.write(VIEW, ids, [1] * 100, np.ones((100, 2)), 3600)
    statements: list[str] = []
    s._conn().set_trace_callback(statements.append)
    try:
        _, found = s.read(VIEW, ids, 2)
    finally:
        s._conn().set_trace_callback(None)
    assert found.all()
    assert len(statements) == 1
    assert statements[0].lstrip().upper().startswith("SELECT")


def test_open_online_store_urls(tmp_path: Path) -> None:
    s = open_online_store(f"sqlite:///{tmp_path}/x/online.db")
    assert isinstance(s, SQLiteOnlineStore)
    assert s.path == tmp_path / "x" / "online.db"
    assert isinstance(open_online_store("redis://127.0.0.1:1/0"), RedisOnlineStore)
    with pytest.raises(MLForgeError, match="unsupported online store URL"):
        open_online_store("memcached://localhost")


# --- Redis specifics ----------------------------------------------------------------------


@pytest.mark.integration
def test_redis_key_layout_and_ttl_set_on_write(redis_store: RedisOnlineStore, admin: redis.Redis) -> None:
    redis_store.write(VIEW, ["a"], [123], rows([1.0, 2.0]), 1000)
    key = f"{redis_store.prefix}:{VIEW}:a"
    raw = admin.get(key)
    assert raw is not None
    assert raw[:TS_WIDTH] == b"0000000000000123"
    assert 990 <= admin.ttl(key) <= 1000


@pytest.mark.integration
def test_redis_ttl_refreshed_on_rewrite_but_not_by_a_rejected_older_write(
    redis_store: RedisOnlineStore, admin: redis.Redis
) -> None:
    key = f"{redis_store.prefix}:{VIEW}:a"
    redis_store.write(VIEW, ["a"], [100], rows([1.0]), 100)
    assert 90 <= admin.ttl(key) <= 100
    redis_store.write(VIEW, ["a"], [100], rows([1.0]), 5000)  # equal timestamp: rewritten, new TTL
    assert 4990 <= admin.ttl(key) <= 5000
    redis_store.write(VIEW, ["a"], [101], rows([1.0]), 200)  # newer: new TTL (shorter this time)
    assert 190 <= admin.ttl(key) <= 200
    redis_store.write(VIEW, ["a"], [50], rows([9.0]), 9000)  # older: rejected, TTL untouched
    assert 190 <= admin.ttl(key) <= 200


@pytest.mark.integration
def test_redis_expired_key_reads_as_missing(redis_store: RedisOnlineStore) -> None:
    redis_store.write(VIEW, ["a", "b"], [1, 1], rows([1.0], [2.0]), 1)
    redis_store.write(VIEW, ["b"], [1], rows([2.0]), 3600)
    time.sleep(1.3)
    values, found = redis_store.read(VIEW, ["a", "b"], 1)
    assert found.tolist() == [False, True]
    assert np.isnan(values[0, 0])


@pytest.mark.integration
def test_redis_non_positive_ttl_is_an_mlforge_error(redis_store: RedisOnlineStore) -> None:
    # SET ... EX 0 is rejected by Redis; the store reports it as its own error (the SQLite store
    # accepts ttl 0 and stores an already-expired row instead).
    with pytest.raises(MLForgeError, match=r"online store \(Redis\) write failed"):
        redis_store.write(VIEW, ["a"], [1], rows([1.0]), 0)


def _calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


@pytest.mark.integration
def test_redis_read_of_100_entities_is_one_mget(redis_store: RedisOnlineStore, admin: redis.Redis) -> None:
    ids = [f"c{i:03d}" for i in range(100)]
    redis_store.write(VIEW, ids[::2], [1] * 50, np.ones((50, 3)), 3600)
    redis_store.ping()  # the store's connection is open before counting
    before = _calls(admin)
    values, found = redis_store.read(VIEW, ids, 3)
    after = _calls(admin)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    delta = {k: v for k, v in delta.items() if v and k != "info"}
    assert delta == {"mget": 1}
    assert found.tolist() == [i % 2 == 0 for i in range(100)]
    assert np.isnan(values[1]).all()


@pytest.mark.integration
def test_redis_write_of_a_batch_is_one_script_call(redis_store: RedisOnlineStore, admin: redis.Redis) -> None:
    ids = [f"c{i:03d}" for i in range(100)]
    redis_store.write(VIEW, ids[:1], [1], np.ones((1, 1)), 60)  # loads the script once
    before = _calls(admin)
    assert redis_store.write(VIEW, ids, [2] * 100, np.ones((100, 1)), 60) == 100
    after = _calls(admin)
    assert after.get("evalsha", 0) - before.get("evalsha", 0) == 1
    assert after.get("set", 0) - before.get("set", 0) == 100  # inside the script


def _closed_port_store() -> RedisOnlineStore:
    return RedisOnlineStore(f"redis://127.0.0.1:{free_port()}/0", key_prefix=_prefix())


@pytest.mark.integration
def test_unreachable_redis_read_raises_store_unavailable() -> None:
    s = _closed_port_store()
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=r"online store \(Redis\) unreachable during read"):
        s.read(VIEW, ["a"], 1)
    assert time.monotonic() - t0 < 15


@pytest.mark.integration
def test_unreachable_redis_ping_raises_store_unavailable() -> None:
    with pytest.raises(StoreUnavailableError, match=r"online store \(Redis\) unreachable during ping"):
        _closed_port_store().ping()


@pytest.mark.integration
def test_unreachable_redis_write_raises_store_unavailable() -> None:
    with pytest.raises(StoreUnavailableError, match=r"online store \(Redis\) unreachable during write"):
        _closed_port_store().write(VIEW, ["a"], [1], rows([1.0]), 60)
