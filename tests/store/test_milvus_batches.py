"""Milvus adds larger than one gRPC request are sent as several upserts (Milvus Lite
with a small ``max_request_bytes`` standing in for the server's 64 MiB limit)."""

from __future__ import annotations

import pytest

from mmrag.errors import ConfigError
from tests.store.conftest import HAVE_MILVUS, N_ROWS, RARE_ROW, RARE_WORD, SPACES

pytestmark = [pytest.mark.milvus,
              pytest.mark.skipif(not HAVE_MILVUS, reason="pymilvus/milvus-lite not installed")]


def test_large_add_is_split_under_the_request_limit(open_store, data):
    from mmrag.store.milvus import _batches, _row_bytes

    limit = 20_000
    store = open_store("milvus", max_request_bytes=limit)
    sent: list[int] = []
    real = store._client.upsert

    def upsert(collection, rows, **kw):
        assert sum(_row_bytes(r) for r in rows) <= limit or len(rows) == 1
        sent.append(len(rows))
        return real(collection, rows, **kw)

    store._client.upsert = upsert
    store.add(data.items, data.vectors)
    rows = store._rows(data.items, data.vectors)
    assert len(sent) == len(_batches(rows, limit)) >= 3
    assert sum(sent) == N_ROWS
    assert store.count() == N_ROWS
    assert [it.id for it, _ in store.bm25(RARE_WORD, 1)] == [data.items[RARE_ROW].id]
    assert store.get([data.items[-1].id]) == [data.items[-1]]


def test_default_limit_sends_one_request(open_store, data):
    store = open_store("milvus")
    sent: list[int] = []
    real = store._client.upsert
    store._client.upsert = lambda c, rows, **kw: sent.append(len(rows)) or real(c, rows, **kw)
    store.add(data.items, data.vectors)
    assert sent == [N_ROWS]


def test_batches_keep_order_and_send_an_oversized_row_alone():
    from mmrag.store.milvus import _batches

    rows = [{"id": str(i), "text": "x" * size} for i, size in
            enumerate([10, 10, 500, 10, 10, 10])]
    got = _batches(rows, 100)
    assert [r["id"] for b in got for r in b] == [str(i) for i in range(6)]
    assert [len(b) for b in got] == [2, 1, 3]


def test_bad_request_limit_is_a_config_error(tmp_path):
    from mmrag.store import stores

    with pytest.raises(ConfigError, match="max_request_bytes"):
        stores.create("milvus", str(tmp_path / "m.db"), "items", spaces=dict(SPACES),
                      max_request_bytes=0)
