"""LanceStore.dense fast paths: no has_ filter when nothing is absent, post-filter with an
exact fallback when some rows are absent, and no lance warnings on stderr."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from mmrag.store import LanceStore
from mmrag.types import Filters, Item
from tests.store.conftest import unit

DIM = 8


def _items(start: int, n: int, modality: str = "image") -> list[Item]:
    return [Item(id=f"r{j}", doc_id=f"d{j % 4}", source=f"/x/{j}", modality=modality,
                 text=f"row {j}")
            for j in range(start, start + n)]


def _exact(vecs: np.ndarray, q: np.ndarray, k: int) -> list[str]:
    order = np.argsort(-(vecs @ q), kind="stable")[:k]
    return [f"r{j}" for j in order]


def test_dense_without_absent_rows_is_exact_and_skips_has_filter(tmp_path, monkeypatch):
    # flat_max_rows=0: LanceDB's own query path, not the small-table in-memory one
    store = LanceStore(str(tmp_path / "l"), spaces={"image": DIM}, flat_max_rows=0)
    vecs = unit(np.random.default_rng(0), 100, DIM)
    store.add(_items(0, 100), {"image": vecs})
    assert store._absent_rows("image") == 0
    calls = []
    real = store._dense_query
    monkeypatch.setattr(store, "_dense_query",
                        lambda *a, **kw: calls.append((a[3], kw)) or real(*a, **kw))
    q = unit(np.random.default_rng(1), 1, DIM)[0]
    hits = store.dense("image", q, 5)
    assert [it.id for it, _ in hits] == _exact(vecs, q, 5)
    assert np.allclose([s for _, s in hits], np.sort(vecs @ q)[::-1][:5], atol=1e-5)
    assert calls == [(None, {"prefilter": True})]  # one query, no has_ filter


def test_post_filter_falls_back_when_absent_rows_outrank_present(tmp_path):
    # Every present vector points away from the query (similarity < 0), so the zero
    # vectors stored for absent rows (similarity 0) top the unfiltered search.
    store = LanceStore(str(tmp_path / "l"), spaces={"image": DIM}, flat_max_rows=0)
    q = np.zeros(DIM, np.float32)
    q[0] = 1.0
    vecs = unit(np.random.default_rng(2), 30, DIM)
    vecs[:, 0] = -np.abs(vecs[:, 0]) - 0.5
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store.add(_items(0, 30), {"image": vecs})
    store.add(_items(30, 20, "text"), {"image": np.full((20, DIM), np.nan, np.float32)})
    assert store._absent_rows("image") == 20
    hits = store.dense("image", q, 10)
    assert [it.id for it, _ in hits] == _exact(vecs, q, 10)
    assert all(s < 0 for _, s in hits)
    # with a pushed-down filter the combined prefilter is used, same guarantee
    hits = store.dense("image", q, 50, Filters(doc_id=["d1"]))
    want = [i for i in _exact(vecs, q, 30) if int(i[1:]) % 4 == 1]
    assert [it.id for it, _ in hits] == want


def test_absent_count_follows_new_writes(tmp_path):
    store = LanceStore(str(tmp_path / "l"), spaces={"image": DIM}, flat_max_rows=0)
    q = np.zeros(DIM, np.float32)
    q[0] = 1.0
    vecs = unit(np.random.default_rng(3), 10, DIM)
    vecs[:, 0] = -np.abs(vecs[:, 0]) - 0.5
    store.add(_items(0, 10), {"image": vecs})
    assert store._absent_rows("image") == 0
    assert len(store.dense("image", q, 10)) == 10  # caches "nothing absent"
    store.add(_items(10, 3, "text"), {})  # no vectors at all: absent, zeros
    assert store._absent_rows("image") == 3
    ids = [it.id for it, _ in store.dense("image", q, 13)]
    assert sorted(ids) == sorted(f"r{j}" for j in range(10))
    store.delete(["d0", "d1", "d2", "d3"])
    assert store.dense("image", q, 5) == []


def test_all_absent_space_returns_nothing(tmp_path):
    store = LanceStore(str(tmp_path / "l"), spaces={"image": DIM, "text": 4})
    store.add(_items(0, 5), {"text": unit(np.random.default_rng(4), 5, 4)})
    assert store._absent_rows("image") == 5
    assert store.dense("image", unit(np.random.default_rng(5), 1, DIM)[0], 3) == []
    assert len(store.dense("text", unit(np.random.default_rng(6), 1, 4)[0], 3)) == 3


def test_queries_print_no_lance_warnings(tmp_path):
    script = textwrap.dedent(f"""
        import numpy as np
        from mmrag.store import LanceStore
        from mmrag.types import Filters, Item
        s = LanceStore({str(tmp_path / "l")!r}, spaces={{"image": 4}})
        v = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1]]
        v[5] = np.nan
        s.add([Item(id=f"r{{i}}", doc_id="d", source="/x", modality="image",
                    text=f"word{{i}} common")
               for i in range(6)], {{"image": v}})
        s.optimize()
        assert s.dense("image", v[0], 3)
        assert s.dense("image", v[0], 3, Filters(modality=["image"]))
        assert s.bm25("common", 3)
        assert s.bm25("common", 3, Filters(doc_id=["d"]))
        print("done")
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "done"
    assert "warn" not in res.stderr.lower(), res.stderr
    assert res.stderr.strip() == ""


def test_new_tables_use_format_2_1_and_optimize_adds_bitmaps(tmp_path):
    store = LanceStore(str(tmp_path / "l"), spaces={"image": DIM, "text": 4},
                       index_ids_min_rows=1)
    assert store._table.to_lance().data_storage_version == "2.1"
    vecs = unit(np.random.default_rng(7), 12, DIM)
    vecs[8:] = np.nan
    store.add(_items(0, 12), {"image": vecs})
    store.optimize()
    kinds = {tuple(ix.columns): ix.index_type for ix in store._table.list_indices()}
    assert kinds[("has_image",)] == kinds[("has_text",)] == kinds[("modality",)] == "Bitmap"
    assert store._absent_rows("image") == 4 and store._absent_rows("text") == 12
    ids = {it.id for it, _ in store.dense("image", vecs[0], 12, Filters(modality=["image"]))}
    assert ids == {f"r{j}" for j in range(8)}
    other = LanceStore(str(tmp_path / "o"), spaces={"image": DIM},
                       data_storage_version="2.2")
    assert other._table.to_lance().data_storage_version == "2.2"
