"""Late interaction (ColBERT/ColPali MaxSim) in numpy, store-agnostic.

A page is a matrix of L2-normalised token vectors; a query too. The score is
``sum over query tokens of max over page tokens of q·p`` (MaxSim). Three ways to make the
page matrices cheaper, all measured in ``benchmarks/bench_maxsim.py``:

* ``pool_tokens``: hierarchical (Ward) clustering of a page's tokens into ``n / factor``
  clusters, each replaced by its renormalised mean (Clavié et al. 2024, "Reducing the
  footprint of multi-vector retrieval with minimal performance impact via token pooling").
* ``binarize``: one sign bit per dimension, packed; scored with Hamming similarity.
* two-stage ``rerank``: the mean-pooled single vector finds candidates in the regular
  store's ANN index, exact MaxSim reorders only those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["MultiVectorSource", "binarize", "hamming_maxsim", "maxsim", "maxsim_naive",
           "mean_vector", "pack", "pool_tokens", "rerank"]

# Document tokens scored per block (whole documents, at least one). Float blocks: 2^16
# tokens × 32 query tokens × 4 B = 8 MiB of similarities. Hamming blocks are smaller:
# its uint64 XOR/popcount temporaries run ~3x faster when they stay in cache (measured).
_CHUNK_TOKENS = 1 << 16
_CHUNK_BITS = 1 << 13


def _as_matrix(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a (tokens, dim) matrix, got shape {x.shape!r}")
    return x


def pack(docs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate token matrices into one flat matrix plus ``offsets`` (len(docs)+1)."""
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if not len(docs):
        return np.zeros((0, 0), dtype=np.float32), offsets
    return np.concatenate([_as_matrix(d) for d in docs], axis=0), offsets


def _segment_max(sims: np.ndarray, offsets: np.ndarray, fill: float) -> np.ndarray:
    """Per-segment max over columns of a (query tokens, doc tokens) block; empty segments
    get ``fill`` (reduceat would copy a neighbour). Reducing along the contiguous axis is
    ~50x faster than along rows."""
    n = len(offsets) - 1
    out = np.full((sims.shape[0], n), fill, dtype=np.float32)
    nonempty = offsets[1:] > offsets[:-1]
    if nonempty.any():
        starts = offsets[:-1][nonempty]
        out[:, nonempty] = np.maximum.reduceat(sims, starts, axis=1)[:, : len(starts)]
    return out


def _flat_scores(query: np.ndarray, flat: np.ndarray, offsets: np.ndarray,
                 sim: Any, chunk: int) -> np.ndarray:
    """Shared driver: chunk the flat token matrix on document boundaries, take the
    per-document max of ``sim(query, chunk)`` (query tokens × tokens), sum over the query."""
    n_docs = len(offsets) - 1
    scores = np.zeros(n_docs, dtype=np.float32)
    start_doc = 0
    while start_doc < n_docs:
        # the largest run of whole documents that fits the chunk budget (at least one)
        limit = offsets[start_doc] + chunk
        end_doc = int(np.searchsorted(offsets, limit, side="right")) - 1
        end_doc = min(max(end_doc, start_doc + 1), n_docs)
        lo, hi = offsets[start_doc], offsets[end_doc]
        sims = sim(query, flat[lo:hi])
        local = offsets[start_doc:end_doc + 1] - lo
        scores[start_doc:end_doc] = _segment_max(sims, local, 0.0).sum(axis=0)
        start_doc = end_doc
    return scores


def _torch() -> Any:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch ships with the model extras
        return None
    return torch


def _dot(query: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """(query tokens, doc tokens) inner products. numpy has no float16 BLAS (converting to
    float32 first costs ~4x the product), torch multiplies float16 directly on CPU; its
    fp32 result has fp16-rounded inputs only, like the stored tokens themselves."""
    if tokens.dtype == np.float16 and (torch := _torch()) is not None:
        import warnings

        with warnings.catch_warnings():  # memory-mapped rows are read-only; torch only reads
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(np.asarray(tokens))
        q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float16))
        return (q @ t.T).float().numpy()
    return np.ascontiguousarray(query, dtype=np.float32) @ tokens.astype(np.float32, copy=False).T


def maxsim(query: np.ndarray, docs: Sequence[np.ndarray] | tuple[np.ndarray, np.ndarray]
           ) -> np.ndarray:
    """MaxSim scores of one query (q, d) against many documents, float32 (n_docs,).

    ``docs`` is a list of (n_i, d) matrices or an already ``pack``-ed ``(flat, offsets)``
    pair. Vectorised: one BLAS product per chunk of documents and ``np.maximum.reduceat``
    over segment offsets, so no Python loop runs per document. An empty document scores 0.
    """
    q = _as_matrix(query).astype(np.float32, copy=False)
    flat, offsets = docs if isinstance(docs, tuple) else pack(docs)
    if len(offsets) <= 1:
        return np.zeros(0, dtype=np.float32)
    return _flat_scores(q, flat, offsets, _dot, _CHUNK_TOKENS)


def maxsim_naive(query: np.ndarray, docs: Sequence[np.ndarray]) -> np.ndarray:
    """Reference double loop; only for tests."""
    out = []
    for doc in docs:
        total = 0.0
        for qv in np.asarray(query, dtype=np.float64):
            total += max((float(qv @ dv) for dv in np.asarray(doc, dtype=np.float64)),
                         default=0.0)
        out.append(total)
    return np.asarray(out, dtype=np.float32)


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def mean_vector(mat: np.ndarray) -> np.ndarray:
    """The single vector for ANN candidate generation: normalised mean of the tokens."""
    mat = _as_matrix(mat)
    if not len(mat):
        return np.zeros(mat.shape[1], dtype=np.float32)
    return _normalize(mat.astype(np.float32).mean(axis=0))


def pool_tokens(mat: np.ndarray, factor: int = 3) -> np.ndarray:
    """Hierarchical token pooling: Ward-cluster the tokens into ``ceil(n / factor)`` groups,
    replace each by its mean, renormalise. ``factor <= 1`` or tiny pages pass through.

    Ward on the normalised vectors merges tokens that are close in cosine, so redundant
    patches (white margins, repeated texture) collapse while distinct content survives.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    mat = _as_matrix(mat).astype(np.float32, copy=False)
    n = len(mat)
    target = max(1, -(-n // max(1, int(factor))))
    if factor <= 1 or n <= 2 or target >= n:
        return _normalize(mat)
    labels = fcluster(linkage(mat.astype(np.float64), method="ward"), target,
                      criterion="maxclust")
    k = int(labels.max())
    sums = np.zeros((k, mat.shape[1]), dtype=np.float64)
    np.add.at(sums, labels - 1, mat)
    return _normalize(sums)


def binarize(mat: np.ndarray) -> np.ndarray:
    """Sign bits packed 8 per byte: (n, d) float → (n, ceil(d / 8)) uint8."""
    return np.packbits(_as_matrix(mat) > 0, axis=-1)


if hasattr(np, "bitwise_count"):  # numpy >= 2
    def _popcount(x: np.ndarray) -> np.ndarray:
        return np.bitwise_count(x)
else:  # pragma: no cover - numpy 1.x
    _POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(x: np.ndarray) -> np.ndarray:
        return _POP8[x.view(np.uint8)].reshape(*x.shape, -1).sum(axis=-1, dtype=np.uint16)


def _words(bits: np.ndarray) -> np.ndarray:
    """View packed bytes as uint64 words (zero-padded) so one popcount covers 64 bits."""
    bits = np.ascontiguousarray(bits, dtype=np.uint8)
    pad = (-bits.shape[-1]) % 8
    if pad:
        bits = np.pad(bits, [(0, 0)] * (bits.ndim - 1) + [(0, pad)])
    return bits.view(np.uint64)


def hamming_maxsim(query: np.ndarray, docs: Sequence[np.ndarray] | tuple[np.ndarray, np.ndarray],
                   dim: int | None = None) -> np.ndarray:
    """MaxSim over binarised tokens with similarity ``1 - 2 * hamming / dim`` (≈ cosine of
    the sign vectors, in [-1, 1]). ``query`` is float (binarised here) or packed bits;
    ``docs`` are packed bits as from ``binarize`` (list or ``pack``-ed pair)."""
    query = np.asarray(query)
    qbits = query if query.dtype == np.uint8 else binarize(query)
    flat, offsets = docs if isinstance(docs, tuple) else pack(docs)
    if len(offsets) <= 1:
        return np.zeros(0, dtype=np.float32)
    dim = int(dim or qbits.shape[1] * 8)
    qw = _words(qbits)

    def sim(_: Any, tokens: np.ndarray) -> np.ndarray:
        tw = np.ascontiguousarray(_words(tokens).T)  # (words, tokens): contiguous rows
        dist = np.zeros((len(qw), tw.shape[1]), dtype=np.uint16)
        for w in range(qw.shape[1]):  # a handful of 64-bit words: loop them, not tokens
            dist += _popcount(qw[:, w, None] ^ tw[w][None, :])
        return 1.0 - (2.0 / dim) * dist.astype(np.float32)

    return _flat_scores(qw, flat, offsets, sim, _CHUNK_BITS)


class MultiVectorSource(Protocol):
    """What ``rerank`` needs from a multi-vector store (``MultiVectorStore`` fits)."""

    dtype: str

    def get(self, ids: Sequence[str]) -> list[np.ndarray | None]: ...


def rerank(query_multi: np.ndarray, candidate_ids: Sequence[str], store: MultiVectorSource,
           k: int | None = None) -> list[tuple[str, float]]:
    """Second stage of late-interaction search: exact MaxSim of the query tokens over the
    candidates' stored token matrices (candidates come from the pooled vector's ANN search
    in the regular store). Ids the store does not hold are dropped. Best first."""
    ids = list(dict.fromkeys(candidate_ids))
    if not ids:
        return []
    mats = store.get(ids)
    keep = [(i, m) for i, m in zip(ids, mats, strict=True) if m is not None]
    if not keep:
        return []
    docs = [m for _, m in keep]
    if getattr(store, "dtype", "") == "binary":
        scores = hamming_maxsim(query_multi, docs)
    else:
        scores = maxsim(query_multi, docs)
    order = np.argsort(-scores, kind="stable")
    if k is not None:
        order = order[:k]
    return [(keep[i][0], float(scores[i])) for i in order]
