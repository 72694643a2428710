"""MultiVectorStore: round trip, replace, delete, reopen, compact, layout checks."""

from __future__ import annotations

import numpy as np
import pytest

from mmrag.errors import ConfigError
from mmrag.search.late import binarize, maxsim
from mmrag.store.multivec import MultiVectorStore


def _mats(seed=0, dim=32, sizes=(5, 12, 1, 30)):
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        m = rng.standard_normal((n, dim)).astype(np.float32)
        out.append(m / np.linalg.norm(m, axis=1, keepdims=True))
    return out


def test_float16_round_trip_delete_and_reopen(tmp_path):
    mats = _mats()
    ids = ["a", "b", "c", "d"]
    with MultiVectorStore(tmp_path, dim=32) as store:
        store.add(ids[:2], mats[:2])
        store.add(ids[2:], mats[2:])
        got = store.get(["d", "a", "zzz"])
        assert got[2] is None
        np.testing.assert_allclose(got[0], mats[3], atol=1e-3)
        np.testing.assert_allclose(got[1], mats[0], atol=1e-3)
        assert got[0].dtype == np.float16 and isinstance(got[0], np.memmap)
        assert store.delete(["b", "nope"]) == 1
        assert store.count() == 3 and "b" not in store and "a" in store
        assert store.nbytes() == (5 + 1 + 30) * 32 * 2
    with MultiVectorStore(tmp_path, dim=32) as store:  # reopen sees the same rows
        assert store.ids() == ["a", "c", "d"]
        assert store.get(["b"]) == [None]
        np.testing.assert_allclose(store.get(["c"])[0], mats[2], atol=1e-3)


def test_replace_and_compact_keep_latest_rows(tmp_path):
    first, second = _mats(0), _mats(1)
    store = MultiVectorStore(tmp_path, dim=32)
    store.add(["a", "b"], first[:2])
    store.add(["a"], second[3:4])  # replaces a: 30 tokens now
    store.delete(["b"])
    assert len(list((tmp_path / "shards").glob("*.npy"))) == 2
    store.compact()
    assert len(list((tmp_path / "shards").glob("*.npy"))) == 1
    assert store.ids() == ["a"]
    np.testing.assert_allclose(store.get(["a"])[0], second[3], atol=1e-3)
    store.close()


def test_pooled_and_binary_layouts(tmp_path):
    mats = _mats(dim=64, sizes=(30, 9))
    pooled = MultiVectorStore(tmp_path / "p", dim=64, dtype="pooled", pool_factor=3)
    pooled.add(["x", "y"], mats)
    assert [len(m) for m in pooled.get(["x", "y"])] == [10, 3]
    binary = MultiVectorStore(tmp_path / "b", dim=64, dtype="binary")
    binary.add(["x", "y"], mats)
    got = binary.get(["x", "y"])
    assert got[0].dtype == np.uint8 and got[0].shape == (30, 8)
    np.testing.assert_array_equal(got[1], binarize(mats[1]))
    # scores through the stored float16 rows match the float32 originals
    fp = MultiVectorStore(tmp_path / "f", dim=64)
    fp.add(["x", "y"], mats)
    np.testing.assert_allclose(maxsim(mats[0][:4], fp.get(["x", "y"])),
                               maxsim(mats[0][:4], mats), atol=5e-3)


def test_bad_input_and_layout_mismatch(tmp_path):
    store = MultiVectorStore(tmp_path, dim=32)
    with pytest.raises(ConfigError):
        store.add(["a"], [np.zeros((3, 16), np.float32)])
    with pytest.raises(ConfigError):
        store.add(["a", "a"], _mats(sizes=(2, 2)))
    with pytest.raises(ConfigError):
        store.add(["a"], _mats(sizes=(2, 2)))
    assert store.count() == 0  # nothing half-written
    store.close()
    with pytest.raises(ConfigError, match="opened with"):
        MultiVectorStore(tmp_path, dim=64)
    with pytest.raises(ConfigError):
        MultiVectorStore(tmp_path / "x", dim=32, dtype="int4")  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", ["float16", "pooled", "binary"])
def test_rerank_reads_candidates_from_store(tmp_path, dtype):
    from mmrag.search.late import rerank

    mats = _mats(seed=5, dim=64, sizes=(40, 25, 60, 33))
    store = MultiVectorStore(tmp_path, dim=64, dtype=dtype)
    store.add(["p0", "p1", "p2", "p3"], mats)
    query = mats[2][::6]  # a page's own tokens: that page must win under every layout
    ranked = rerank(query, ["p0", "p1", "p2", "p3", "gone"], store)
    assert ranked[0][0] == "p2" and len(ranked) == 4
    store.close()
