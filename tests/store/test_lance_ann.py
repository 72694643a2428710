"""LanceStore ANN lifecycle: the index is retrained once the table outgrows the rows it
was trained at (in optimize() and right after a large add), and small tables are
searched exactly whatever indexes they have."""

from __future__ import annotations

import numpy as np

from mmrag.store import LanceStore
from mmrag.types import Filters, Item
from tests.store.conftest import unit

DIM = 16


def _items(start: int, n: int) -> list[Item]:
    return [Item(id=f"r{j}", doc_id=f"d{j % 7}", source=f"/x/{j}", modality="image",
                 text=f"row {j}") for j in range(start, start + n)]


def _vecs(seed: int, n: int) -> np.ndarray:
    return unit(np.random.default_rng(seed), n, DIM)


def _exact(vecs: np.ndarray, q: np.ndarray, k: int, keep=None) -> list[str]:
    order = np.argsort(-(vecs @ q), kind="stable")
    ids = [f"r{j}" for j in order if keep is None or keep(j)]
    return ids[:k]


def _fill(store: LanceStore, n: int, seed: int = 0, start: int = 0) -> np.ndarray:
    v = _vecs(seed, n)
    store.add(_items(start, n), {"image": v})
    return v


def test_optimize_retrains_once_rows_reach_the_factor(tmp_path):
    store = LanceStore(str(tmp_path / "l"), spaces={"image": DIM}, ann_min_rows=100,
                       retrain_factor=4, auto_index=False, flat_max_rows=0)
    _fill(store, 99)
    store.optimize()
    assert store.trained_rows("image") is None  # under ann_min_rows: no index
    _fill(store, 1, seed=1, start=99)
    store.optimize()
    assert store.trained_rows("image") == 100
    _fill(store, 299, seed=2, start=100)  # 399 rows < 4 × 100
    store.optimize()
    assert store.trained_rows("image") == 100
    _fill(store, 1, seed=3, start=399)  # 400 rows = 4 × 100
    store.optimize()
    assert store.trained_rows("image") == 400
    # the old index is gone: one index on the column, covering every row
    assert [name for name, _ in store.vector_indexes("image")] == ["vec_image_ann_n400"]
    stats = store._table.index_stats("vec_image_ann_n400")
    assert stats.num_indexed_rows == 400 and stats.num_unindexed_rows == 0


def test_large_add_retrains_without_optimize(tmp_path):
    store = LanceStore(str(tmp_path / "l"), spaces={"image": DIM}, ann_min_rows=100,
                       retrain_factor=4, flat_max_rows=0)
    _fill(store, 120)  # crosses ann_min_rows: the first index is trained by the add
    assert store.trained_rows("image") == 120
    _fill(store, 300, seed=1, start=120)  # 420 rows < 480: kept
    assert store.trained_rows("image") == 120
    vecs = _fill(store, 100, seed=2, start=420)  # 520 ≥ 480: retrained by this add
    assert store.trained_rows("image") == 520
    q = vecs[7]
    assert store.dense("image", q, 1)[0][0].id == "r427"


def test_auto_index_off_leaves_adds_alone(tmp_path):
    store = LanceStore(str(tmp_path / "l"), spaces={"image": DIM}, ann_min_rows=100,
                       auto_index=False)
    _fill(store, 500)
    assert store.trained_rows("image") is None
    assert store.needs_vector_index("image")


def test_index_of_unknown_training_size_counts_as_ann_min_rows(tmp_path):
    from lancedb.index import IvfFlat

    store = LanceStore(str(tmp_path / "l"), spaces={"image": DIM}, ann_min_rows=100,
                       retrain_factor=4, auto_index=False)
    _fill(store, 300)
    # an index built by an older version: default name, no recorded row count
    store._table.create_index("vec_image", config=IvfFlat(distance_type="dot",
                                                          num_partitions=2))
    assert store.vector_indexes("image") == [("vec_image_idx", None)]
    assert store.trained_rows("image") == 100 and not store.needs_vector_index("image")
    _fill(store, 100, seed=1, start=300)
    store.optimize()
    assert store.vector_indexes("image") == [("vec_image_ann_n400", 400)]


def test_small_tables_are_searched_exactly_despite_a_coarse_index(tmp_path):
    # IVF_FLAT with 16 partitions probed one at a time misses true neighbours; below
    # flat_max_rows the store must not use it.
    opts = {"ann_index": "IVF_FLAT", "ann_partitions": 16, "nprobes": 1,
            "refine_factor": 0, "ann_min_rows": 100}
    coarse = LanceStore(str(tmp_path / "l"), spaces={"image": DIM}, flat_max_rows=0,
                        **opts)
    vecs = _fill(coarse, 600)
    assert coarse.trained_rows("image") == 600
    queries = _vecs(9, 20)
    missed = sum(
        [it.id for it, _ in coarse.dense("image", q, 10)] != _exact(vecs, q, 10)
        for q in queries)
    assert missed > 0  # the index alone is approximate here
    coarse.close()
    exact = LanceStore(str(tmp_path / "l"), spaces={"image": DIM}, flat_max_rows=10_000,
                       **opts)
    assert exact.trained_rows("image") == 600  # same table, same index
    for q in queries:
        hits = exact.dense("image", q, 10)
        assert [it.id for it, _ in hits] == _exact(vecs, q, 10)
        assert np.allclose([s for _, s in hits], np.sort(vecs @ q)[::-1][:10], atol=1e-5)
        # a filtered query goes through LanceDB, bypassing the index: exact too
        hits = exact.dense("image", q, 5, Filters(doc_id=["d3"]))
        assert [it.id for it, _ in hits] == _exact(vecs, q, 5, keep=lambda j: j % 7 == 3)


def test_in_memory_matrix_follows_writes_and_absent_rows(tmp_path):
    store = LanceStore(str(tmp_path / "l"), spaces={"image": DIM})
    vecs = _fill(store, 50)
    q = vecs[3]
    assert store.dense("image", q, 1)[0][0].id == "r3"
    store.add([Item(id="new", doc_id="dn", source="/n", modality="image", text="n")],
              {"image": q[None, :]})
    assert {it.id for it, _ in store.dense("image", q, 2)} == {"r3", "new"}
    store.delete(["d3"])  # r3 is in doc d3
    assert [it.id for it, _ in store.dense("image", q, 1)] == ["new"]
    # rows without a vector are never returned, even when they are all that is left
    store.add(_items(100, 5), {"image": np.full((5, DIM), np.nan, np.float32)})
    got = {it.id for it, _ in store.dense("image", q, 100)}
    assert got and not got & {f"r{j}" for j in range(100, 105)}
