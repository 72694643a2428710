"""MultiVectorStore's centroid index: training threshold, persistence, add after training,
delete, retrain on optimize, compact, binary layout and adds racing a retrain."""

from __future__ import annotations

import numpy as np
import pytest

from mmrag.search.late import maxsim, rerank
from mmrag.store.multivec import MultiVectorStore
from mmrag.store.plaid import CentroidIndex


def _pages(n, seed=0, dim=32, concepts=40):
    """Token matrices around 4 of 40 shared concepts each, like test_plaid's corpus."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((concepts, dim))
    out = []
    for _ in range(n):
        chosen = rng.choice(concepts, 4, replace=False)
        m = centres[chosen[rng.integers(0, 4, int(rng.integers(20, 40)))]]
        m = m + 0.5 * np.linalg.norm(m, axis=1, keepdims=True) * rng.standard_normal(m.shape) \
            / np.sqrt(dim)
        out.append((m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32))
    return out


def _codes_rows(store):
    return {r[0] for r in store._db.execute("SELECT id FROM codes")}


def test_trains_at_threshold_and_persists_across_reopen(tmp_path):
    pages = _pages(36)
    ids = [f"p{i}" for i in range(36)]
    with MultiVectorStore(tmp_path, dim=32, centroids=16, train_at=30) as store:
        store.add(ids[:20], pages[:20])
        assert store.centroid_index is None and not _codes_rows(store)
        store.add(ids[20:32], pages[20:32])  # reaches 30: this add trains
        index = store.centroid_index
        assert index is not None and index.k == 16 and len(index) == 32
        assert _codes_rows(store) == set(ids[:32])
        store.add(ids[32:], pages[32:])  # after training: codes assigned at add time
        assert len(index) == 36 and "p35" in index and "p35" in _codes_rows(store)
        before = {i: index.page(i) for i in ids}
        files = list((tmp_path / "centroids").glob("*.npy"))
        assert len(files) == 1
    with MultiVectorStore(tmp_path, dim=32, centroids=16, train_at=30) as store:
        again = store.centroid_index
        assert again is not None and len(again) == 36
        np.testing.assert_allclose(again.centroids, index.centroids)
        for i in ids:
            np.testing.assert_array_equal(again.page(i).codes, before[i].codes)
            np.testing.assert_array_equal(again.page(i).vectors, before[i].vectors)


def test_candidates_from_store_index_rerank_to_exact_top1(tmp_path):
    pages = _pages(50, seed=1)
    ids = [f"p{i}" for i in range(50)]
    with MultiVectorStore(tmp_path, dim=32, centroids=16, train_at=10) as store:
        store.add(ids, pages)
        for target in (3, 17, 41):
            q = pages[target][::3]
            cands, _ = store.centroid_index.search(q, 4, 10)
            ranked = rerank(q, cands, store, k=1)
            assert ranked[0][0] == ids[int(np.argmax(maxsim(q, pages)))]


def test_delete_drops_codes_and_compact_keeps_index(tmp_path):
    pages = _pages(24, seed=2)
    ids = [f"p{i}" for i in range(24)]
    store = MultiVectorStore(tmp_path, dim=32, centroids=8, train_at=20)
    store.add(ids, pages)
    assert store.delete(["p3", "p4", "nope"]) == 2
    index = store.centroid_index
    assert "p3" not in index and len(index) == 22 and "p3" not in _codes_rows(store)
    assert all("p3" != c for c in index.search(pages[3], 8, 24)[0])
    store.compact()
    assert len(index) == 22 and _codes_rows(store) == set(ids) - {"p3", "p4"}
    store.close()
    with MultiVectorStore(tmp_path, dim=32, centroids=8, train_at=20) as again:
        assert len(again.centroid_index) == 22 and "p4" not in again.centroid_index


def test_optimize_retrains_and_old_centroid_file_goes(tmp_path):
    pages = _pages(30, seed=3)
    ids = [f"p{i}" for i in range(30)]
    store = MultiVectorStore(tmp_path, dim=32, centroids=8, train_at=10)
    store.add(ids[:12], pages[:12])
    first = store.centroid_index
    old_file = next((tmp_path / "centroids").glob("*.npy"))
    store.add(ids[12:], pages[12:])
    store.n_centroids = 12
    store.optimize()
    assert store.centroid_index is not first and store.centroid_index.k == 12
    assert len(store.centroid_index) == 30 and not old_file.exists()
    assert len(list((tmp_path / "centroids").glob("*"))) == 1
    store.close()


def test_below_threshold_or_disabled_never_trains(tmp_path):
    pages = _pages(12, seed=4)
    ids = [f"p{i}" for i in range(12)]
    with MultiVectorStore(tmp_path / "a", dim=32, train_at=0) as store:
        store.add(ids, pages)
        store.optimize()
        assert store.centroid_index is None
    with MultiVectorStore(tmp_path / "b", dim=32, train_at=100) as store:
        store.add(ids, pages)
        store.optimize()
        assert store.centroid_index is None
        assert store.build_centroids(4) is not None  # explicit training still works


def test_binary_layout_codes_come_from_the_stored_bits(tmp_path):
    pages = _pages(30, seed=5, dim=64)
    ids = [f"p{i}" for i in range(30)]
    with MultiVectorStore(tmp_path, dim=64, dtype="binary", centroids=8, train_at=30) as store:
        store.add(ids, pages)
        index = store.centroid_index
        decoded = store.decode(store.get(["p7"])[0])
        np.testing.assert_allclose(np.linalg.norm(decoded, axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(index.page("p7").codes, index.encode([decoded])[0].codes)
        cands, _ = index.search(pages[7][::3], 4, 5)
        assert "p7" in cands


def test_pages_added_while_retraining_are_encoded_at_the_swap(tmp_path, monkeypatch):
    pages = _pages(26, seed=6)
    ids = [f"p{i}" for i in range(26)]
    store = MultiVectorStore(tmp_path, dim=32, centroids=8, train_at=0)
    store.add(ids[:20], pages[:20])
    real_train = CentroidIndex.train.__func__

    def train_and_race(cls, sample, k, **kw):
        store.add(["late"], pages[20:21])  # lands after the snapshot, before the swap
        store.add(["p0"], pages[21:22])  # replaces a snapshotted page
        store.delete(["p1"])
        return real_train(cls, sample, k, **kw)

    monkeypatch.setattr(CentroidIndex, "train", classmethod(train_and_race))
    index = store.build_centroids()
    assert "late" in index and "p1" not in index and len(index) == 20
    np.testing.assert_array_equal(index.page("p0").codes, index.encode(pages[21:22])[0].codes)
    assert _codes_rows(store) == set(store.ids())
    store.close()


def test_failed_training_leaves_the_add_committed(tmp_path, monkeypatch, caplog):
    def boom(*_a, **_k):
        raise RuntimeError("k-means exploded\nsecond line")

    monkeypatch.setattr(CentroidIndex, "train", classmethod(boom))
    with MultiVectorStore(tmp_path, dim=32, train_at=2) as store:
        store.add(["a", "b"], _pages(2))
        assert store.count() == 2 and store.centroid_index is None
        assert "k-means exploded" in caplog.text and "second line" not in caplog.text
        with pytest.raises(RuntimeError):
            store.optimize()  # an explicit retrain reports the failure
