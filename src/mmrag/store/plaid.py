"""PLAID-style centroid index: token-level candidate generation for late interaction.

After Santhanam et al. 2022, "PLAID: an efficient engine for late interaction retrieval".
k-means centroids are trained on a sample of page tokens and every token is assigned its
nearest centroid. A page keeps, per centroid its tokens use, one *page vector*: the
normalised mean of its tokens on that centroid, int8-quantised. PLAID keeps a residual per
token instead; one vector per (page, centroid) is ~10x fewer and, because a page rarely
has two distinct topics on one centroid, nearly as precise. Scoring with the bare centroids
(PLAID's "centroid interaction") was tried first: with fewer centroids than the data has
topics, a centroid merges several and near-tied pages become indistinguishable (top-5
agreement 0.1-0.5 with 1024 centroids on ``benchmarks/bench_maxsim.py``; ~1.0 with page
vectors). A query:

1. scores every centroid once, ``S = Q · Cᵀ`` (query tokens × centroids), and follows each
   query token's ``nprobe`` best centroids through inverted lists (centroid → page
   vectors) to candidate pages, scored from the page vectors reached (a query token that
   reaches none of a page's vectors counts its worst probed ``S``, an upper bound);
2. re-scores the best ``refine × ncandidates`` with MaxSim over all their page vectors;
3. hands the best ``ncandidates`` to exact MaxSim over the stored token matrices
   (``search/late.rerank``), done by the caller.

Everything is vectorised over CSR arrays: no Python loop per page or token. Only the
centroids, codes, page vectors and inverted lists live in RAM (~140 B per page vector of
128 dims); the token matrices stay on disk and only the final candidates are read.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Sequence
from typing import NamedTuple, cast

import numpy as np

from ..errors import ConfigError

__all__ = ["CentroidIndex", "PageCodes", "nearest_centroids"]

# Tokens per block when assigning codes: 4096 tokens × 4096 centroids × 4 B = 64 MiB of
# similarities; larger blocks were no faster (measured), smaller ones lose BLAS efficiency.
_ASSIGN_TOKENS = 1 << 12
_Q = 127.0  # int8 scale of the unit-norm page vectors


class PageCodes(NamedTuple):
    """One page in the index: its sorted unique centroid ids and, row for row, the int8
    page vector (normalised mean of the page's tokens on that centroid, × 127)."""

    codes: np.ndarray
    vectors: np.ndarray


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def nearest_centroids(tokens: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the most similar (inner product) centroid of every token, in blocks so the
    similarity matrix stays small."""
    tokens = np.asarray(tokens, dtype=np.float32)
    out = np.empty(len(tokens), dtype=np.int64)
    ct = np.ascontiguousarray(centroids.T)
    for lo in range(0, len(tokens), _ASSIGN_TOKENS):
        out[lo:lo + _ASSIGN_TOKENS] = (tokens[lo:lo + _ASSIGN_TOKENS] @ ct).argmax(axis=1)
    return out


def _csr(lengths: np.ndarray) -> np.ndarray:
    ptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    return ptr


def _take_rows(ptr: np.ndarray, data: np.ndarray, rows: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``rows`` of a CSR array, concatenated, plus their offsets (len(rows)+1)."""
    starts, lens = ptr[rows], ptr[rows + 1] - ptr[rows]
    offsets = _csr(lens)
    idx = np.repeat(starts - offsets[:-1], lens) + np.arange(offsets[-1])
    return np.take(data, idx, axis=0), offsets


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, best first."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


class CentroidIndex:
    """Centroids plus, per page id, its ``PageCodes``; searched through inverted lists.

    ``add``/``remove`` are cheap and mark the CSR arrays stale; the next ``search`` rebuilds
    them in one vectorised pass (O(total page vectors)). Thread-safe.
    """

    def __init__(self, centroids: np.ndarray):
        centroids = np.asarray(centroids, dtype=np.float32)
        if centroids.ndim != 2 or not len(centroids):
            raise ConfigError(f"centroids must be a non-empty (k, dim) matrix, got shape "
                              f"{centroids.shape!r}")
        self.centroids = _unit(centroids)
        self.code_dtype = np.dtype(np.uint16 if len(centroids) <= 1 << 16 else np.int32)
        self._lock = threading.RLock()
        self._pages: dict[str, PageCodes] = {}  # the truth; the CSR below derives from it
        self._stale = True
        self._ids: list[str] = []
        self._ptr = np.zeros(1, dtype=np.int64)  # page row → its entries
        self._codes = np.zeros(0, dtype=self.code_dtype)  # entry → centroid
        self._vectors = np.zeros((0, self.dim), dtype=np.int8)  # entry → page vector
        self._entry_row = np.zeros(0, dtype=np.int32)  # entry → page row
        self._inv_ptr = np.zeros(self.k + 1, dtype=np.int64)  # centroid → its entries
        self._inv = np.zeros(0, dtype=np.int32)
        # timings of the build that made this index (set by MultiVectorStore.build_centroids)
        self.build_info: dict[str, float] = {}

    @property
    def k(self) -> int:
        return len(self.centroids)

    @property
    def dim(self) -> int:
        return self.centroids.shape[1]

    # -- training and encoding -----------------------------------------------------------
    @classmethod
    def train(cls, sample: np.ndarray, n_centroids: int, *, niter: int = 10,
              seed: int = 0) -> CentroidIndex:
        """Spherical k-means (faiss) on a (tokens, dim) sample; ``k`` is capped at a quarter
        of the sample so every centroid has points to settle on."""
        try:
            import faiss
        except ImportError as exc:  # pragma: no cover - faiss-cpu is a core dependency
            raise ConfigError("the late-interaction centroid index needs faiss-cpu: "
                              "pip install faiss-cpu") from exc
        sample = np.asarray(sample, dtype=np.float32)
        if sample.ndim != 2 or not len(sample):
            raise ConfigError(f"k-means needs a non-empty (tokens, dim) sample, got shape "
                              f"{sample.shape!r}")
        sample = np.ascontiguousarray(_unit(sample))
        k = max(1, min(int(n_centroids), len(sample) // 4))
        km = faiss.Kmeans(sample.shape[1], k, niter=niter, seed=seed, spherical=True,
                          verbose=False, min_points_per_centroid=1,
                          max_points_per_centroid=-(-len(sample) // k))
        km.train(sample)
        return cls(cast(np.ndarray, km.centroids))  # set by train()

    def encode(self, mats: Sequence[np.ndarray]) -> list[PageCodes]:
        """``PageCodes`` of each (tokens, dim) float matrix: one nearest-centroid pass over
        the batch's tokens, then one sort groups tokens by (page, centroid) for the means."""
        if not mats:
            return []
        lengths = np.fromiter((len(m) for m in mats), dtype=np.int64, count=len(mats))
        tokens = np.concatenate([np.asarray(m, dtype=np.float32).reshape(-1, self.dim)
                                 for m in mats])
        if not len(tokens):
            return [self._empty() for _ in mats]
        page = np.repeat(np.arange(len(mats), dtype=np.int64), lengths)
        keys = page * self.k + nearest_centroids(tokens, self.centroids)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        sums = np.add.reduceat(tokens[order], starts, axis=0)
        vectors = np.rint(_unit(sums) * _Q).astype(np.int8)
        uniq = keys[starts]
        codes = (uniq % self.k).astype(self.code_dtype)
        bounds = np.searchsorted(uniq // self.k, np.arange(len(mats) + 1))
        return [PageCodes(codes[a:b], vectors[a:b]) for a, b in zip(bounds[:-1], bounds[1:],
                                                                     strict=True)]

    def _empty(self) -> PageCodes:
        return PageCodes(np.zeros(0, self.code_dtype), np.zeros((0, self.dim), np.int8))

    def decode(self, codes: bytes, vectors: bytes) -> PageCodes:
        """``PageCodes`` from the bytes of ``to_bytes`` (how the store persists them)."""
        c = np.frombuffer(codes, dtype=self.code_dtype)
        return PageCodes(c, np.frombuffer(vectors, dtype=np.int8).reshape(len(c), self.dim))

    @staticmethod
    def to_bytes(page: PageCodes) -> tuple[bytes, bytes]:
        return page.codes.tobytes(), page.vectors.tobytes()

    # -- mutation ------------------------------------------------------------------------
    def add(self, ids: Iterable[str], pages: Iterable[PageCodes]) -> None:
        """Register (or replace) pages with their ``PageCodes`` from ``encode``."""
        with self._lock:
            for i, p in zip(ids, pages, strict=True):
                if len(p.codes) != len(p.vectors) or p.vectors.shape[1:] != (self.dim,):
                    raise ConfigError(f"page codes of {i!r} do not fit a {self.dim}-d index")
                self._pages[str(i)] = p
            self._stale = True

    def remove(self, ids: Iterable[str]) -> None:
        with self._lock:
            for i in ids:
                self._pages.pop(str(i), None)
            self._stale = True

    def __len__(self) -> int:
        return len(self._pages)

    def __contains__(self, item_id: object) -> bool:
        return str(item_id) in self._pages

    def page(self, item_id: str) -> PageCodes | None:
        return self._pages.get(str(item_id))

    def _rebuild(self) -> None:
        """Concatenate the pages into CSR arrays and invert them (centroid → entries); the
        per-page arrays become views of the concatenation so nothing is held twice."""
        ids = list(self._pages)
        pages = [self._pages[i] for i in ids]
        lengths = np.fromiter((len(p.codes) for p in pages), dtype=np.int64, count=len(ids))
        ptr = _csr(lengths)
        codes = np.concatenate([p.codes for p in pages]) if pages else self._codes[:0]
        vectors = np.concatenate([p.vectors for p in pages]) if pages else self._vectors[:0]
        self._ids, self._ptr, self._codes, self._vectors = ids, ptr, codes, vectors
        self._entry_row = np.repeat(np.arange(len(ids), dtype=np.int32), lengths)
        self._inv = np.argsort(codes, kind="stable").astype(
            np.int32 if len(codes) < 1 << 31 else np.int64)
        self._inv_ptr = _csr(np.bincount(codes, minlength=self.k))
        self._pages = {i: PageCodes(codes[a:b], vectors[a:b])
                       for i, a, b in zip(ids, ptr[:-1], ptr[1:], strict=True)}
        self._stale = False

    # -- search --------------------------------------------------------------------------
    def search(self, query: np.ndarray, nprobe: int = 4, ncandidates: int = 100,
               refine: int = 4) -> tuple[list[str], np.ndarray]:
        """The ``ncandidates`` best page ids by page-vector MaxSim, best first, with those
        approximate scores (stages 1 and 2 of the module docstring)."""
        q = np.asarray(query, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ConfigError(f"query token matrix shape {q.shape!r} does not match "
                              f"centroid dim {self.dim}")
        with self._lock:
            if self._stale:
                self._rebuild()
            ids, ptr, vectors = self._ids, self._ptr, self._vectors
            inv_ptr, inv, entry_row = self._inv_ptr, self._inv, self._entry_row
        if not ids or not len(q) or ncandidates < 1:
            return [], np.zeros(0, dtype=np.float32)
        qs = q / _Q  # page vectors are stored × 127
        sims = q @ self.centroids.T
        nprobe = max(1, min(int(nprobe), self.k))
        probe = np.argpartition(-sims, nprobe - 1, axis=1)[:, :nprobe]
        fill = np.take_along_axis(sims, probe, axis=1).min(axis=1)
        entries, _ = _take_rows(inv_ptr, inv, np.unique(probe))
        rows, approx = _probe_scores(qs, vectors, entries, entry_row, fill)
        rows = rows[_top(approx, max(1, int(refine)) * int(ncandidates))]
        scores = _page_maxsim(qs, *_take_rows(ptr, vectors, rows))
        best = _top(scores, int(ncandidates))
        return [ids[r] for r in rows[best]], scores[best]

    def nbytes(self) -> int:
        """RAM held for scoring: centroids, CSR arrays, inverted lists, page-id strings and
        the per-page views."""
        with self._lock:
            if self._stale:
                self._rebuild()
            arrays = (self.centroids, self._ptr, self._codes, self._vectors, self._entry_row,
                      self._inv_ptr, self._inv)
            ids = sum(sys.getsizeof(i) + 8 for i in self._ids)
            views = sys.getsizeof(self._pages) + sum(
                sys.getsizeof(p) + sys.getsizeof(p.codes) + sys.getsizeof(p.vectors)
                for p in self._pages.values())
            return int(sum(a.nbytes for a in arrays) + ids + views)


def _probe_scores(qs: np.ndarray, vectors: np.ndarray, entries: np.ndarray,
                  entry_row: np.ndarray, fill: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stage 1: pages owning the probed entries, scored ``Σ_q max(best reached page vector
    of q, fill[q])``. Cost ∝ the probed lists' lengths, not the collection."""
    if not len(entries):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    entries = entries[np.argsort(entry_row[entries], kind="stable")]  # group by page
    rows = entry_row[entries]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    best = _segment_max_rows(_sims(qs, np.take(vectors, entries, axis=0)),
                             np.r_[starts, len(entries)])
    return rows[starts].astype(np.int64), np.maximum(best, fill).sum(axis=1)


def _page_maxsim(qs: np.ndarray, vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Stage 2: MaxSim of the query over each page's vectors (pages given as CSR offsets;
    every page holds at least one vector)."""
    if len(offsets) <= 1:
        return np.zeros(0, dtype=np.float32)
    return _segment_max_rows(_sims(qs, vectors), offsets).sum(axis=1)


def _sims(qs: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(vectors, query tokens) products; this orientation (the long axis first) is ~1.5x
    faster in BLAS than its transpose for 20 query tokens (measured)."""
    return vectors.astype(np.float32) @ np.ascontiguousarray(qs.T, dtype=np.float32)


def _segment_max_rows(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Max over each run of rows ``offsets[i]:offsets[i+1]`` (all non-empty). Pages hold a
    few rows each here, where ``np.maximum.reduceat`` pays ~1 µs per segment and torch's
    ``segment_reduce`` ~5x less (measured), so torch is used when importable."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch ships with the core dependencies
        return np.maximum.reduceat(values, offsets[:-1], axis=0)
    out = torch.segment_reduce(torch.from_numpy(values), "max",
                               offsets=torch.from_numpy(offsets.astype(np.int64)), axis=0)
    return out.numpy()
