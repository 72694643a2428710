"""Append-only on-disk storage of per-item token matrices for late interaction.

The regular store (LanceDB or Milvus) keeps each page's mean-pooled vector for ANN
candidate generation; this store keeps the page's token matrix for the exact MaxSim
second stage (``search/late.py``), so late interaction works with any backend.

Layout under ``root``::

    index.sqlite        meta(key, value) + items(id, shard, offset, n)
    shards/<hex>.npy    one flat (tokens, width) array per ``add`` call

A shard is written to a temporary name, fsynced and renamed before its rows are committed
in one SQLite transaction, so after a crash either all of an ``add`` is visible or none
(an orphan shard file is possible and removed by ``compact``). Reads memory-map shards,
so only the pages asked for are paged in. ``dtype``:

* ``float16``: tokens as given, half precision (2 B × dim per token).
* ``pooled``: ``pool_tokens(…, factor)`` first (≈ factor × fewer tokens), then float16.
* ``binary``: sign bits (dim / 8 B per token), scored with Hamming MaxSim.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import ConfigError, StoreError
from ..search.late import binarize, pack, pool_tokens

__all__ = ["MultiVectorStore"]

Dtype = Literal["float16", "pooled", "binary"]
_DTYPES = ("float16", "pooled", "binary")


class MultiVectorStore:
    """Token matrices keyed by item id; ``get`` returns them in the order asked."""

    def __init__(self, root: str | Path, dim: int, dtype: Dtype = "float16",
                 pool_factor: int = 3):
        if dtype not in _DTYPES:
            raise ConfigError(f"unknown multi-vector dtype {dtype!r}; choose one of "
                              f"{', '.join(_DTYPES)}")
        if int(dim) <= 0:
            raise ConfigError(f"multi-vector dim must be positive, got {dim!r}")
        self.root = Path(root)
        self.dim, self.dtype, self.pool_factor = int(dim), dtype, int(pool_factor)
        (self.root / "shards").mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._maps: dict[str, np.ndarray] = {}
        self._db = sqlite3.connect(self.root / "index.sqlite", check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, "
                         "shard TEXT NOT NULL, offset INTEGER NOT NULL, n INTEGER NOT NULL)")
        self._check_meta()

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

    def add(self, ids: Sequence[str], mats: Sequence[np.ndarray]) -> None:
        """Store (or replace) the token matrices of ``ids``; atomic per call."""
        ids = [str(i) for i in ids]
        if len(ids) != len(mats):
            raise ConfigError(f"{len(ids)} ids but {len(mats)} token matrices")
        if len(set(ids)) != len(ids):
            raise ConfigError("duplicate ids in one multi-vector add")
        if not ids:
            return
        flat, offsets = pack([self.encode(m) for m in mats])
        shard = uuid.uuid4().hex
        final = self.root / "shards" / f"{shard}.npy"
        tmp = final.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(flat))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write multi-vector shard {str(final)!r}: {exc}") from exc
        rows = [(i, shard, int(offsets[j]), int(offsets[j + 1] - offsets[j]))
                for j, i in enumerate(ids)]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"cannot index multi-vector shard {shard!r}: {exc}") from exc

    def delete(self, ids: Sequence[str]) -> int:
        """Forget ``ids``; returns how many were held. Space comes back on ``compact``."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.executemany("DELETE FROM items WHERE id = ?", [(str(i),) for i in ids])
            self._db.execute("COMMIT")
            return max(cur.rowcount, 0)

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
                final = self.root / "shards" / f"{shard}.npy"
                tmp = final.with_suffix(".tmp")
                with open(tmp, "wb") as fh:
                    np.save(fh, np.ascontiguousarray(flat))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, final)
                rows = [(shard, int(offsets[j]), i) for j, i in enumerate(ids)]
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("UPDATE items SET shard=?, offset=? WHERE id=?", rows)
                self._db.execute("COMMIT")
            for name in old:
                (self.root / "shards" / f"{name}.npy").unlink(missing_ok=True)
            for tmp in (self.root / "shards").glob("*.tmp"):
                tmp.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            self._maps.clear()
            self._db.close()

    def __enter__(self) -> MultiVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
