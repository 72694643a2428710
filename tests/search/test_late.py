"""MaxSim, token pooling, binarisation and two-stage rerank against naive references."""

from __future__ import annotations

import numpy as np
import pytest

from mmrag.search.late import (
    binarize,
    hamming_maxsim,
    maxsim,
    maxsim_naive,
    mean_vector,
    pack,
    pool_tokens,
    rerank,
)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _corpus(n_pages=40, dim=64, concepts=60, per_page=6, tokens=(30, 90), sigma=0.5, seed=0):
    """Pages drawing their tokens around 6 of 60 shared concept centres (like patches of a
    figure or text block, with topics recurring across pages), cosine ≈ 0.9 to the centre;
    so several pages partly match a query and the top 5 is more than one hit plus noise."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((concepts, dim)))
    pages, page_concepts = [], []
    for _ in range(n_pages):
        chosen = rng.choice(concepts, per_page, replace=False)
        n = int(rng.integers(*tokens))
        pick = chosen[rng.integers(0, per_page, n)]
        pages.append(_unit(centres[pick] + sigma * rng.standard_normal((n, dim)) / np.sqrt(dim)))
        page_concepts.append(chosen)
    return pages, (centres, page_concepts), rng


def _queries(corpus_concepts, rng, n=12, q_tokens=8, sigma=0.5):
    """Each query: noisy tokens around 4 of one target page's concepts."""
    centres, page_concepts = corpus_concepts
    dim = centres.shape[1]
    out = []
    for target in rng.choice(len(page_concepts), n, replace=False):
        chosen = rng.choice(page_concepts[target], 4, replace=False)
        pick = chosen[rng.integers(0, 4, q_tokens)]
        noise = sigma * rng.standard_normal((q_tokens, dim)) / np.sqrt(dim)
        out.append((int(target), _unit(centres[pick] + noise)))
    return out


def test_maxsim_matches_naive_double_loop():
    rng = np.random.default_rng(1)
    docs = [_unit(rng.standard_normal((n, 16))) for n in (1, 7, 30, 2)]
    q = _unit(rng.standard_normal((5, 16)))
    np.testing.assert_allclose(maxsim(q, docs), maxsim_naive(q, docs), rtol=1e-5, atol=1e-5)
    # packed input, float16 docs and an empty document (scores 0) give the same answers
    flat, offsets = pack(docs)
    np.testing.assert_allclose(maxsim(q, (flat, offsets)), maxsim_naive(q, docs), atol=1e-5)
    half = [d.astype(np.float16) for d in docs]
    np.testing.assert_allclose(maxsim(q, half), maxsim_naive(q, docs), atol=5e-3)
    with_empty = maxsim(q, [docs[0], np.zeros((0, 16), np.float32), docs[1]])
    assert with_empty[1] == 0.0
    np.testing.assert_allclose(with_empty[[0, 2]], maxsim_naive(q, docs[:2]), atol=1e-5)
    assert maxsim(q, []).shape == (0,)


def test_maxsim_chunking_crosses_document_boundaries(monkeypatch):
    import mmrag.search.late as late

    monkeypatch.setattr(late, "_CHUNK_TOKENS", 10)  # forces many chunks, some one doc wide
    monkeypatch.setattr(late, "_CHUNK_BITS", 10)
    rng = np.random.default_rng(2)
    docs = [_unit(rng.standard_normal((n, 8))) for n in (3, 25, 4, 4, 11, 1)]
    q = _unit(rng.standard_normal((3, 8)))
    np.testing.assert_allclose(maxsim(q, docs), maxsim_naive(q, docs), atol=1e-5)
    bits = [binarize(d) for d in docs]
    monkeypatch.setattr(late, "_CHUNK_BITS", 1 << 13)
    whole = hamming_maxsim(q, bits)
    monkeypatch.setattr(late, "_CHUNK_BITS", 10)
    np.testing.assert_allclose(hamming_maxsim(q, bits), whole)


def test_pool_tokens_reduces_by_factor_and_keeps_top5():
    pages, centres, rng = _corpus()
    pooled = [pool_tokens(p, 3) for p in pages]
    for p, pp in zip(pages, pooled, strict=True):
        assert len(pp) == -(-len(p) // 3)
        np.testing.assert_allclose(np.linalg.norm(pp, axis=1), 1.0, atol=1e-5)
    agree = []
    for _, q in _queries(centres, rng):
        exact = set(np.argsort(-maxsim(q, pages))[:5])
        approx = set(np.argsort(-maxsim(q, pooled))[:5])
        agree.append(len(exact & approx) / 5)
    assert np.mean(agree) >= 0.8
    assert pool_tokens(pages[0], 1).shape == pages[0].shape


def test_binary_hamming_maxsim_ranks_true_page_first():
    pages, centres, rng = _corpus(dim=128)
    bits = [binarize(p) for p in pages]
    assert bits[0].dtype == np.uint8 and bits[0].shape == (len(pages[0]), 16)
    for target, q in _queries(centres, rng):
        assert int(np.argmax(hamming_maxsim(q, bits))) == target
        # packed query gives the same scores as a float query
        np.testing.assert_allclose(hamming_maxsim(binarize(q), bits), hamming_maxsim(q, bits))


def test_hamming_matches_sign_cosine_reference():
    rng = np.random.default_rng(3)
    docs = [rng.standard_normal((n, 24)).astype(np.float32) for n in (4, 9)]
    q = rng.standard_normal((3, 24)).astype(np.float32)
    signs = [np.where(d > 0, 1.0, -1.0) / np.sqrt(24) for d in docs]
    ref = maxsim_naive(np.where(q > 0, 1.0, -1.0) / np.sqrt(24), signs)
    np.testing.assert_allclose(hamming_maxsim(q, [binarize(d) for d in docs]), ref, atol=1e-5)


class _DictStore:
    def __init__(self, mats, dtype="float16"):
        self.mats, self.dtype = mats, dtype

    def get(self, ids):
        return [self.mats.get(i) for i in ids]


def test_rerank_orders_candidates_by_exact_maxsim():
    pages, centres, rng = _corpus()
    store = _DictStore({f"p{i}": p.astype(np.float16) for i, p in enumerate(pages)})
    target, q = _queries(centres, rng, n=1)[0]
    # stage 1: mean vectors (what the regular store's ANN index holds)
    means = np.stack([mean_vector(p) for p in pages])
    cands = [f"p{i}" for i in np.argsort(-(means @ mean_vector(q)))[:10]]
    assert f"p{target}" in cands
    ranked = rerank(q, cands + ["unknown"], store, k=5)
    assert ranked[0][0] == f"p{target}"
    assert len(ranked) == 5 and [s for _, s in ranked] == sorted((s for _, s in ranked),
                                                                 reverse=True)
    exact = maxsim(q, [pages[int(c[1:])] for c in cands])
    assert ranked[0][1] == pytest.approx(float(exact.max()), abs=1e-2)
    bin_store = _DictStore({k: binarize(v) for k, v in store.mats.items()}, dtype="binary")
    assert rerank(q, cands, bin_store)[0][0] == f"p{target}"
    assert rerank(q, [], store) == [] and rerank(q, ["nope"], store) == []
