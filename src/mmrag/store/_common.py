"""Helpers shared by the store backends: vector checks, literal quoting, over-fetching.

Kept backend-neutral so LanceDB and Milvus validate input and treat "absent" vectors
(all-NaN rows) exactly alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np

from ..errors import ConfigError, StoreError
from ..types import Filters, Item

# Columns of ``Item.to_row()``, in a fixed order so schemas are stable across versions.
SCALAR_COLUMNS: tuple[str, ...] = (
    "id", "doc_id", "source", "modality", "text", "page", "chunk_start", "chunk_end",
    "section", "bbox", "mime", "size", "created", "media", "name", "metadata",
)
INT_COLUMNS = frozenset({"page", "chunk_start", "chunk_end", "size"})
FLOAT_COLUMNS = frozenset({"created"})

# Over-fetch for filters a backend cannot push down (path globs, metadata equality).
OVERFETCH_FACTOR = 10
OVERFETCH_MIN = 100
OVERFETCH_MAX = 2000


def vec_col(space: str) -> str:
    return f"vec_{space}"


def has_col(space: str) -> str:
    return f"has_{space}"


def check_spaces(spaces: Mapping[str, int]) -> dict[str, int]:
    """Validate space names (they become column names) and dims."""
    out: dict[str, int] = {}
    for name, dim in spaces.items():
        if not name or not name.replace("_", "").isalnum() or not name.isascii():
            raise ConfigError(f"vector space name {name!r} must be ASCII letters, digits or _")
        if int(dim) <= 0:
            raise ConfigError(f"vector space {name!r} needs a positive dim, got {dim!r}")
        out[name] = int(dim)
    return out


def prepare_vectors(items: Sequence[Item], vectors: Mapping[str, np.ndarray],
                    spaces: Mapping[str, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Space → (float32 (n, dim) L2-normalised matrix, bool "present" mask).

    All-NaN rows (and spaces missing from ``vectors``) are "absent": stored as zeros with
    the flag off, so dense search can prefilter them away. Re-normalising is a no-op for
    unit vectors and keeps dot product equal to cosine if a caller forgets.
    """
    n = len(items)
    unknown = set(vectors) - set(spaces)
    if unknown:
        raise StoreError(f"unknown vector space(s) {sorted(unknown)!r}; "
                         f"this store has {sorted(spaces)!r}")
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for space, dim in spaces.items():
        if space not in vectors or vectors[space] is None:
            out[space] = (np.zeros((n, dim), np.float32), np.zeros(n, bool))
            continue
        mat = np.asarray(vectors[space], dtype=np.float32)
        if mat.ndim == 1 and n == 1:
            mat = mat[None, :]
        if mat.shape != (n, dim):
            raise StoreError(f"vectors for space {space!r} have shape {mat.shape!r}, "
                             f"expected {(n, dim)!r}")
        nan = np.isnan(mat)
        # a 2-D array's row reduction is an array (numpy's stubs allow a scalar too)
        absent = cast(np.ndarray, nan.all(axis=1))
        partial = nan.any(axis=1) & ~absent
        if partial.any():
            bad = items[int(np.argmax(partial))].id
            raise StoreError(f"vector for item {bad!r} in space {space!r} is partly NaN")
        mat = np.where(absent[:, None], 0.0, mat).astype(np.float32)
        norms = np.linalg.norm(mat, axis=1, keepdims=True)
        mat = np.divide(mat, norms, out=np.zeros_like(mat), where=norms > 0)
        out[space] = (mat, ~absent & (norms[:, 0] > 0))
    return out


def query_vector(vector: np.ndarray, space: str, spaces: Mapping[str, int]) -> np.ndarray:
    if space not in spaces:
        raise StoreError(f"unknown vector space {space!r}; this store has {sorted(spaces)!r}")
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vec.shape[0] != spaces[space]:
        raise StoreError(f"query vector for space {space!r} has dim {vec.shape[0]}, "
                         f"expected {spaces[space]}")
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


def dedupe_last(items: Sequence[Item]) -> list[int]:
    """Indices to keep when a batch repeats an id: the last occurrence wins, as in upsert."""
    last: dict[str, int] = {}
    for i, item in enumerate(items):
        last[item.id] = i
    return sorted(last.values())


def fetch_size(k: int, filters: Filters | None) -> int:
    if filters is not None and filters.needs_post_filter:
        return min(max(k * OVERFETCH_FACTOR, OVERFETCH_MIN), max(OVERFETCH_MAX, k))
    return k


def post_filter(scored: list[tuple[Item, float]], k: int,
                filters: Filters | None) -> list[tuple[Item, float]]:
    if filters is not None:
        scored = [(item, s) for item, s in scored if filters.matches(item)]
    return scored[:k]


def sql_str(value: str) -> str:
    """A SQL string literal (DataFusion/LanceDB): single quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(sql_str(v) for v in values)})"


def milvus_str(value: str) -> str:
    """A Milvus expression string literal with C-style escapes."""
    s = (str(value).replace("\\", "\\\\").replace('"', '\\"')
         .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{s}"'


def milvus_in(column: str, values: Sequence[str]) -> str:
    return f"{column} in [{', '.join(milvus_str(v) for v in values)}]"
