"""Backend-specific behaviour the shared contract leaves open."""

from __future__ import annotations

import numpy as np
import pytest

import mmrag.store.milvus as milvus_mod
from mmrag.errors import ConfigError, MissingDependencyError
from mmrag.store import LanceStore, MilvusStore, stores
from tests.store.conftest import HAVE_MILVUS, SPACES, unit


def test_both_backends_registered():
    assert {"lancedb", "milvus"} <= set(stores.names())
    assert stores.get("lancedb") is LanceStore
    assert stores.get("milvus") is MilvusStore


def test_milvus_without_pymilvus_raises_missing_dependency(monkeypatch, tmp_path):
    monkeypatch.setattr(milvus_mod, "pymilvus", None)
    with pytest.raises(MissingDependencyError, match=r"mmrag\[milvus\]"):
        MilvusStore(str(tmp_path / "m.db"))


def test_unknown_option_raises(tmp_path):
    with pytest.raises(ConfigError, match="nprobe"):
        LanceStore(str(tmp_path / "l"), nprobe=3)


def test_lance_new_space_on_existing_table_is_added_absent(open_store, data):
    store = open_store("lancedb", spaces={"text": 16})
    store.add(data.items[:20], {"text": data.vectors["text"][:20]})
    store.close()
    wider = open_store("lancedb", spaces=SPACES)
    assert wider.spaces == SPACES
    # Old rows have no image vector, so the new space returns nothing for them ...
    assert wider.dense("image", unit(np.random.default_rng(0), 1, 32)[0], 50) == []
    # ... while new rows fill it, and old rows keep their text vectors.
    vec = {s: unit(np.random.default_rng(1), 1, d) for s, d in SPACES.items()}
    wider.add(data.items[50:51], vec)
    assert [i.id for i, _ in wider.dense("image", vec["image"][0], 5)] == [data.items[50].id]
    row = next(i for i in range(20) if data.present["text"][i])
    hits = wider.dense("text", data.vectors["text"][row], 1)
    assert hits[0][0].id == data.items[row].id
    assert wider.count() == 21


@pytest.mark.milvus
@pytest.mark.skipif(not HAVE_MILVUS, reason="pymilvus/milvus-lite not installed")
def test_milvus_new_space_on_existing_collection_raises(open_store, data):
    store = open_store("milvus", spaces={"text": 16})
    store.add(data.items[:5], {"text": data.vectors["text"][:5]})
    store.close()
    with pytest.raises(ConfigError, match="no vector space 'image'"):
        open_store("milvus", spaces=SPACES)


@pytest.mark.milvus
@pytest.mark.skipif(not HAVE_MILVUS, reason="pymilvus/milvus-lite not installed")
def test_milvus_plain_folder_path_and_flush_durability(tmp_path, data):
    # A path without ".db" still means Milvus Lite; durability="flush" seals each add.
    uri = str(tmp_path / "plain-folder")
    store = MilvusStore(uri, "c", spaces=SPACES, durability="flush")
    try:
        store.add(data.items[:30], {s: v[:30] for s, v in data.vectors.items()})
        assert store.count() == 30
    finally:
        store.close()
    again = MilvusStore(uri, "c", spaces=SPACES)
    try:
        assert again.count() == 30
    finally:
        again.close()


def test_lance_builds_no_ann_index_below_threshold(open_store, data):
    store = open_store("lancedb")  # default ann_min_rows is far above 200 rows
    store.add(data.items, data.vectors)
    store.optimize()
    indexed = {c for idx in store._table.list_indices() for c in idx.columns}
    assert "terms" in indexed and not {"vec_text", "vec_image"} & indexed


def test_lance_table_without_terms_column_keeps_bm25_over_text(tmp_path, data):
    """An index written before the terms column still adds and searches (no CJK bigrams)."""
    import lancedb
    from lancedb.index import FTS

    from mmrag.store.lance import _arrow_schema

    schema = _arrow_schema({"text": SPACES["text"]})
    schema = schema.remove(schema.get_field_index("terms"))
    table = lancedb.connect(str(tmp_path / "old")).create_table("items", schema=schema)
    table.create_index("text", config=FTS())
    store = LanceStore(str(tmp_path / "old"), spaces={"text": SPACES["text"]})
    store.add(data.items[:20], {"text": data.vectors["text"][:20]})
    target = data.items[5]
    word = target.text.split()[0]
    assert target.id in [it.id for it, _ in store.bm25(word, 20)]
    store.optimize()
    assert "terms" not in store._table.schema.names
