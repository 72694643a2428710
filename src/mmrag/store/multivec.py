"""Append-only on-disk storage of per-item token matrices for late interaction.

The regular store (LanceDB or Milvus) keeps each page's mean-pooled vector for ANN
candidate generation; this store keeps the page's token matrix for the exact MaxSim
second stage (``search/late.py``), so late interaction works with any backend.

Layout under ``root``::

    index.sqlite        meta(key, value) + items(id, shard, offset, n)
                        + codes(id, codes, vectors): each page's centroid-index entry
    shards/<hex>.npy    one flat (tokens, width) array per ``add`` call
    centroids/<hex>.npy k-means centroids of the token centroid index (``store/plaid.py``)

A shard is written to a temporary name, fsynced and renamed before its rows are committed
in one SQLite transaction, so after a crash either all of an ``add`` is visible or none
(an orphan shard file is possible and removed by ``compact``). Reads memory-map shards,
so only the pages asked for are paged in. ``dtype``:

* ``float16``: tokens as given, half precision (2 B × dim per token).
* ``pooled``: ``pool_tokens(…, factor)`` first (≈ factor × fewer tokens), then float16.
* ``binary``: sign bits (dim / 8 B per token), scored with Hamming MaxSim.

Once ``train_at`` pages are held (and again on ``optimize``), a ``CentroidIndex`` is trained
on a sample of the stored tokens; from then on every ``add`` assigns the new pages' codes in
the same transaction as their rows, and ``delete`` drops them. A page's codes are computed
from its stored form, so training, later adds and binary layouts all see the same tokens.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import ConfigError, StoreError
from ..search.late import binarize, pack, pool_tokens
from .plaid import CentroidIndex, PageCodes

__all__ = ["MultiVectorStore"]

log = logging.getLogger(__name__)

Dtype = Literal["float16", "pooled", "binary"]
_DTYPES = ("float16", "pooled", "binary")
# k-means sample: tokens per centroid (faiss's default is 256; 16 gave the same top-5
# agreement on the benchmark at 1/16 of the training time) and pages encoded per batch.
_SAMPLE_PER_CENTROID = 16
_BATCH_PAGES = 32


class MultiVectorStore:
    """Token matrices keyed by item id; ``get`` returns them in the order asked."""

    def __init__(self, root: str | Path, dim: int, dtype: Dtype = "float16",
                 pool_factor: int = 3, *, centroids: int = 4096, train_at: int = 0):
        if dtype not in _DTYPES:
            raise ConfigError(f"unknown multi-vector dtype {dtype!r}; choose one of "
                              f"{', '.join(_DTYPES)}")
        if int(dim) <= 0:
            raise ConfigError(f"multi-vector dim must be positive, got {dim!r}")
        self.root = Path(root)
        self.dim, self.dtype, self.pool_factor = int(dim), dtype, int(pool_factor)
        # k-means size of the centroid index and the page count that triggers training
        # (0 = never: callers keep the pooled-vector candidates)
        self.n_centroids, self.train_at = int(centroids), int(train_at)
        self._train_failed = False  # an add-triggered failure waits for optimize()
        (self.root / "shards").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._maps: dict[str, np.ndarray] = {}
        self._db = sqlite3.connect(self.root / "index.sqlite", check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, "
                         "shard TEXT NOT NULL, offset INTEGER NOT NULL, n INTEGER NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS codes (id TEXT PRIMARY KEY, "
                         "codes BLOB NOT NULL, vectors BLOB NOT NULL)")
        self._check_meta()
        self.centroid_index: CentroidIndex | None = self._load_centroids()

    def _check_meta(self) -> None:
        want = {"dim": self.dim, "dtype": self.dtype, "pool_factor": self.pool_factor}
        row = self._db.execute("SELECT value FROM meta WHERE key='layout'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('layout', ?)", (json.dumps(want),))
            return
        have = json.loads(row[0])
        if have != want:
            raise ConfigError(f"multi-vector store {str(self.root)!r} holds {have!r}, "
                              f"opened with {want!r}")

    # -- writing -----------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Stored columns per token: dim (float16) or packed bytes (binary)."""
        return -(-self.dim // 8) if self.dtype == "binary" else self.dim

    def encode(self, mat: np.ndarray) -> np.ndarray:
        """The stored form of one (n, dim) float token matrix."""
        mat = np.asarray(mat, dtype=np.float32)
        if mat.ndim != 2 or mat.shape[1] != self.dim:
            raise ConfigError(f"token matrix shape {mat.shape!r} does not match dim {self.dim}")
        if self.dtype == "binary":
            return binarize(mat)
        if self.dtype == "pooled":
            mat = pool_tokens(mat, self.pool_factor)
        return mat.astype(np.float16)

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Float32 tokens back from a stored matrix (binary: ±1/√dim sign vectors), what
        the centroid index is trained on and assigns codes from."""
        if self.dtype == "binary":
            signs = np.unpackbits(np.asarray(stored), axis=-1, count=self.dim)
            return (signs.astype(np.float32) * 2 - 1) / np.sqrt(self.dim, dtype=np.float32)
        return np.asarray(stored, dtype=np.float32)

    def add(self, ids: Sequence[str], mats: Sequence[np.ndarray]) -> None:
        """Store (or replace) the token matrices of ``ids``; atomic per call."""
        ids = [str(i) for i in ids]
        if len(ids) != len(mats):
            raise ConfigError(f"{len(ids)} ids but {len(mats)} token matrices")
        if len(set(ids)) != len(ids):
            raise ConfigError("duplicate ids in one multi-vector add")
        if not ids:
            return
        stored = [self.encode(m) for m in mats]
        index = self.centroid_index
        pages = index.encode([self.decode(m) for m in stored]) if index is not None else []
        flat, offsets = pack(stored)
        shard = uuid.uuid4().hex
        _write_npy(self.root / "shards" / f"{shard}.npy", flat)
        rows = [(i, shard, int(offsets[j]), int(offsets[j + 1] - offsets[j]))
                for j, i in enumerate(ids)]
        with self._lock:
            if index is not self.centroid_index:  # retrained meanwhile: codes are stale
                index = self.centroid_index
                pages = index.encode([self.decode(m) for m in stored]) if index else []
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)", rows)
                self._db.executemany("INSERT OR REPLACE INTO codes VALUES (?, ?, ?)",
                                     [(i, *CentroidIndex.to_bytes(p))
                                      for i, p in zip(ids, pages, strict=False)])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"cannot index multi-vector shard {shard!r}: {exc}") from exc
            if index is not None:
                index.add(ids, pages)
        if (self.centroid_index is None and self.train_at and not self._train_failed
                and self.count() >= self.train_at):
            self._train_quietly()

    def delete(self, ids: Sequence[str]) -> int:
        """Forget ``ids``; returns how many were held. Space comes back on ``compact``."""
        keys = [(str(i),) for i in ids]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.executemany("DELETE FROM items WHERE id = ?", keys)
            gone = max(cur.rowcount, 0)
            self._db.executemany("DELETE FROM codes WHERE id = ?", keys)
            self._db.execute("COMMIT")
            if self.centroid_index is not None:
                self.centroid_index.remove([k[0] for k in keys])
            return gone

    # -- reading -----------------------------------------------------------------------
    def _shard(self, name: str) -> np.ndarray:
        arr = self._maps.get(name)
        if arr is None:
            arr = np.load(self.root / "shards" / f"{name}.npy", mmap_mode="r")
            self._maps[name] = arr
        return arr

    def _locate(self, ids: Sequence[str]) -> dict[str, tuple[str, int, int]]:
        found: dict[str, tuple[str, int, int]] = {}
        keys = [str(i) for i in ids]
        with self._lock:
            for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
                part = keys[start:start + 500]
                marks = ",".join("?" * len(part))
                for row in self._db.execute(
                        f"SELECT id, shard, offset, n FROM items WHERE id IN ({marks})", part):
                    found[row[0]] = (row[1], row[2], row[3])
        return found

    def get(self, ids: Sequence[str]) -> list[np.ndarray | None]:
        """Stored matrices (read-only memory-mapped views), ``None`` for unknown ids."""
        where = self._locate(ids)
        out: list[np.ndarray | None] = []
        with self._lock:
            for i in ids:
                loc = where.get(str(i))
                if loc is None:
                    out.append(None)
                else:
                    shard, off, n = loc
                    out.append(self._shard(shard)[off:off + n])
        return out

    def ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM items ORDER BY id")]

    def missing_shards(self) -> list[str]:
        """Ids whose shard file is gone (a damaged folder): their matrices are lost."""
        with self._lock:
            rows = self._db.execute("SELECT id, shard FROM items").fetchall()
        present = {p.stem for p in (self.root / "shards").glob("*.npy")}
        return [i for i, shard in rows if shard not in present]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def __len__(self) -> int:
        return self.count()

    def __contains__(self, item_id: object) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM items WHERE id = ?",
                                    (str(item_id),)).fetchone() is not None

    def nbytes(self) -> int:
        """Bytes of live token data (excluding deleted rows not yet compacted)."""
        itemsize = 1 if self.dtype == "binary" else 2
        with self._lock:
            tokens = self._db.execute("SELECT COALESCE(SUM(n), 0) FROM items").fetchone()[0]
        return int(tokens) * self.width * itemsize

    # -- maintenance -------------------------------------------------------------------
    def compact(self) -> None:
        """Rewrite live rows into one shard and delete the others (and orphans)."""
        with self._lock:
            ids = self.ids()
            mats = [np.array(m) for m in self.get(ids)]
            old = {p.stem for p in (self.root / "shards").glob("*.npy")}
            self._maps.clear()
            if ids:
                flat, offsets = pack(mats)
                shard = uuid.uuid4().hex
                _write_npy(self.root / "shards" / f"{shard}.npy", flat)
                rows = [(shard, int(offsets[j]), i) for j, i in enumerate(ids)]
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("UPDATE items SET shard=?, offset=? WHERE id=?", rows)
                self._db.execute("COMMIT")
            for name in old:
                (self.root / "shards" / f"{name}.npy").unlink(missing_ok=True)
            for tmp in (self.root / "shards").glob("*.tmp"):
                tmp.unlink(missing_ok=True)
            self._remove_stale_centroids()

    # -- centroid index ----------------------------------------------------------------
    def _meta(self, key: str) -> dict | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def _load_centroids(self) -> CentroidIndex | None:
        meta = self._meta("centroids")
        if meta is None:
            return None
        path = self.root / "centroids" / meta["file"]
        try:
            index = CentroidIndex(np.load(path))
        except (OSError, ValueError) as exc:
            log.warning("multi-vector store %s: centroid index unreadable (%s); searching "
                        "without it until optimize() retrains", self.root, exc)
            return None
        rows = self._db.execute("SELECT id, codes, vectors FROM codes").fetchall()
        index.add([r[0] for r in rows], [index.decode(r[1], r[2]) for r in rows])
        return index

    def optimize(self) -> None:
        """(Re)train the centroid index once the store holds ``train_at`` pages."""
        if self.train_at and self.count() >= self.train_at:
            self.build_centroids()

    def _train_quietly(self) -> None:
        """Training triggered by an ``add``: the rows are already committed, so a failure
        only leaves the pooled-vector path in use; say so in one line."""
        try:
            self.build_centroids()
        except Exception as exc:  # noqa: BLE001 - the add itself succeeded
            self._train_failed = True
            log.warning("multi-vector store %s: centroid index not trained: %s", self.root,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def build_centroids(self, n_centroids: int | None = None, *, seed: int = 0
                        ) -> CentroidIndex | None:
        """Train k-means on a sample of the stored tokens, encode every page, then swap
        the new index in with one transaction. Slow parts run without the lock, so reads
        and adds go on; pages added or replaced meanwhile are encoded again at the swap."""
        where = self._locate(self.ids())
        if not where:
            return None
        k = int(n_centroids or self.n_centroids)
        t0 = time.perf_counter()
        sample = self._sample(list(where), k * _SAMPLE_PER_CENTROID, np.random.default_rng(seed))
        index = CentroidIndex.train(sample, k, seed=seed)
        t1 = time.perf_counter()
        pages = self._encode_ids(index, list(where))
        t2 = time.perf_counter()
        # optimize() on a large store takes minutes: say where they went
        index.build_info = {"sample_tokens": len(sample), "kmeans_s": t1 - t0,
                            "encode_s": t2 - t1, "pages": len(pages)}
        log.info("%s: k-means of %d centroids on %d tokens in %.1f s; %d pages encoded in "
                 "%.1f s", self.root, index.k, len(sample), t1 - t0, len(pages), t2 - t1)
        name = f"{uuid.uuid4().hex}.npy"
        with self._lock:  # compact() deletes unreferenced centroid files: write under lock
            _write_npy(self.root / "centroids" / name, index.centroids)
            now = self._locate(self.ids())
            redo = [i for i, loc in now.items() if where.get(i) != loc]
            pages.update(self._encode_ids(index, redo))
            keep = [i for i in now if i in pages]
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM codes")
                self._db.executemany("INSERT INTO codes VALUES (?, ?, ?)",
                                     [(i, *CentroidIndex.to_bytes(pages[i])) for i in keep])
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('centroids', ?)",
                                 (json.dumps({"file": name, "k": index.k}),))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"cannot save the centroid index of {str(self.root)!r}: "
                                 f"{exc}") from exc
            index.add(keep, [pages[i] for i in keep])
            self.centroid_index = index
            self._remove_stale_centroids()
        return index

    def _sample(self, ids: list[str], size: int, rng: np.random.Generator) -> np.ndarray:
        """About ``size`` tokens spread evenly over all pages (k-means wants the whole
        distribution, not a few pages' worth)."""
        per_page = max(1, -(-size // len(ids)))
        parts = []
        for start in range(0, len(ids), 500):
            for m in self.get(ids[start:start + 500]):
                if m is not None and len(m):
                    take = rng.choice(len(m), min(per_page, len(m)), replace=False)
                    parts.append(self.decode(m[np.sort(take)]))
        if not parts:
            raise StoreError(f"multi-vector store {str(self.root)!r} holds no tokens to "
                             f"train centroids on")
        return np.concatenate(parts)

    def _encode_ids(self, index: CentroidIndex, ids: list[str]) -> dict[str, PageCodes]:
        out: dict[str, PageCodes] = {}
        for start in range(0, len(ids), _BATCH_PAGES):
            part = ids[start:start + _BATCH_PAGES]
            found = [(i, m) for i, m in zip(part, self.get(part), strict=True) if m is not None]
            pages = index.encode([self.decode(m) for _, m in found])
            out.update(zip((i for i, _ in found), pages, strict=True))
        return out

    def _remove_stale_centroids(self) -> None:
        meta = self._meta("centroids")
        for path in (self.root / "centroids").glob("*"):
            if meta is None or path.name != meta["file"]:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            self._maps.clear()
            self._db.close()

    def __enter__(self) -> MultiVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_npy(path: Path, array: np.ndarray) -> None:
    """Write to a temporary name, fsync, rename: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {str(path)!r}: {exc}") from exc
