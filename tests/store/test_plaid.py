"""CentroidIndex: training, page codes, search agreement with exact MaxSim, mutation."""

from __future__ import annotations

import numpy as np
import pytest

from mmrag.errors import ConfigError
from mmrag.search.late import maxsim
from mmrag.store.plaid import CentroidIndex, PageCodes, nearest_centroids


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _corpus(n_pages=200, dim=32, concepts=150, per_page=6, seed=0):
    """Pages of noisy tokens around 6 of 150 shared concepts (cosine ≈ 0.9 to the centre),
    plus one of 3 'background' centres for 40 % of their tokens; queries: 8 tokens around
    3 of one page's concepts. Concepts recur on ~8 pages, so the top 5 is a real ranking."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((concepts + 3, dim)))
    pages, chosen_sets = [], []
    for _ in range(n_pages):
        chosen = rng.choice(concepts, per_page, replace=False)
        n = int(rng.integers(40, 80))
        pick = np.where(rng.random(n) < 0.4, concepts + rng.integers(0, 3),
                        chosen[rng.integers(0, per_page, n)])
        pages.append(_unit(centres[pick] + 0.5 * rng.standard_normal((n, dim)) / np.sqrt(dim)))
        chosen_sets.append(chosen)
    queries = []
    for target in rng.choice(n_pages, 16, replace=False):
        chosen = rng.choice(chosen_sets[target], 3, replace=False)
        pick = chosen[rng.integers(0, 3, 8)]
        queries.append(_unit(centres[pick] + 0.5 * rng.standard_normal((8, dim)) / np.sqrt(dim)))
    return pages, queries


@pytest.fixture(scope="module")
def built():
    pages, queries = _corpus()
    # fewer centroids (48) than concepts (150): page vectors must carry the difference
    index = CentroidIndex.train(np.concatenate(pages), 48, seed=1)
    ids = [f"p{i}" for i in range(len(pages))]
    index.add(ids, index.encode(pages))
    return index, pages, queries, ids


def test_candidates_reranked_exactly_agree_with_exact_maxsim_top5(built):
    index, pages, queries, ids = built
    agree, recall = [], []
    for q in queries:
        exact = {ids[i] for i in np.argsort(-maxsim(q, pages))[:5]}
        cands, approx = index.search(q, nprobe=2, ncandidates=20)
        assert len(cands) == 20 and np.all(np.diff(approx) <= 0)  # best first
        rows = [int(c[1:]) for c in cands]
        reranked = [cands[i] for i in np.argsort(-maxsim(q, [pages[r] for r in rows]))[:5]]
        recall.append(len(exact & set(cands)) / 5)
        agree.append(len(exact & set(reranked)) / 5)
    assert np.mean(recall) >= 0.9 and np.mean(agree) >= 0.9


def test_more_probes_and_candidates_never_lose_the_exact_top1(built):
    index, pages, queries, ids = built
    for q in queries:
        best = ids[int(np.argmax(maxsim(q, pages)))]
        assert best in index.search(q, nprobe=index.k, ncandidates=len(ids), refine=1)[0]


def test_encode_gives_unique_codes_and_quantised_centroid_means(built):
    index, pages, _, _ = built
    page = pages[3]
    got = index.encode([page])[0]
    assigned = nearest_centroids(page, index.centroids)
    np.testing.assert_array_equal(got.codes, np.unique(assigned))
    assert got.codes.dtype == np.uint16 and got.vectors.dtype == np.int8
    for code, vec in zip(got.codes, got.vectors, strict=True):
        mean = _unit(page[assigned == code].sum(axis=0))
        np.testing.assert_allclose(vec / 127.0, mean, atol=1 / 127)
    # a batch encodes each page as if alone, empty pages included
    batch = index.encode([pages[5], np.zeros((0, index.dim), np.float32), page])
    np.testing.assert_array_equal(batch[2].codes, got.codes)
    assert len(batch[1].codes) == 0 and batch[1].vectors.shape == (0, index.dim)
    assert index.encode([]) == []


def test_bytes_round_trip(built):
    index, pages, _, _ = built
    page = index.encode([pages[0]])[0]
    back = index.decode(*CentroidIndex.to_bytes(page))
    np.testing.assert_array_equal(back.codes, page.codes)
    np.testing.assert_array_equal(back.vectors, page.vectors)


def test_add_replace_remove_change_what_search_returns():
    pages, queries = _corpus(n_pages=60, seed=4)
    index = CentroidIndex.train(np.concatenate(pages), 16, seed=0)
    index.add(["a", "b"], index.encode(pages[:2]))
    own = pages[1][::4]  # page b's own tokens: b must win
    assert index.search(own, 4, 2)[0][0] == "b"
    index.add(["b"], index.encode(pages[2:3]))  # replace b's content
    assert len(index) == 2
    np.testing.assert_array_equal(index.page("b").codes, index.encode(pages[2:3])[0].codes)
    index.remove(["b", "missing"])
    assert "b" not in index and len(index) == 1
    assert "b" not in index.search(own, 4, 5)[0]
    index.remove(["a"])
    assert index.search(own, 4, 5) == ([], pytest.approx(np.zeros(0)))


def test_bad_input_raises_config_error(built):
    index = built[0]
    with pytest.raises(ConfigError, match="does not match"):
        index.search(np.zeros((3, index.dim + 1), np.float32))
    with pytest.raises(ConfigError, match="centroids"):
        CentroidIndex(np.zeros((0, 8), np.float32))
    with pytest.raises(ConfigError, match="sample"):
        CentroidIndex.train(np.zeros((0, 8), np.float32), 4)
    with pytest.raises(ConfigError, match="do not fit"):
        index.add(["x"], [PageCodes(np.zeros(2, np.uint16), np.zeros((2, 3), np.int8))])


def test_train_caps_k_for_small_samples():
    rng = np.random.default_rng(0)
    index = CentroidIndex.train(rng.standard_normal((40, 8)), 4096)
    assert index.k == 10
    np.testing.assert_allclose(np.linalg.norm(index.centroids, axis=1), 1.0, atol=1e-5)


def test_segment_max_without_torch_matches(monkeypatch):
    from mmrag.store import plaid

    rng = np.random.default_rng(2)
    values = rng.standard_normal((30, 5)).astype(np.float32)
    offsets = np.array([0, 1, 4, 12, 30])
    want = np.stack([values[a:b].max(axis=0) for a, b in zip(offsets[:-1], offsets[1:],
                                                             strict=True)])
    np.testing.assert_array_equal(plaid._segment_max_rows(values, offsets), want)
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # import torch fails
    np.testing.assert_array_equal(plaid._segment_max_rows(values, offsets), want)
