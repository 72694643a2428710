"""The store stage's contract, shared by the LanceDB and Milvus backends.

A store keeps items (scalar columns from :meth:`Item.to_row`), one vector column per
vector space, and a full-text index over ``text``. Fusion, grouping and query encoding
live in ``search/`` so every backend behaves alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..registry import Registry
from ..types import Filters, Item

ScoredItems = list[tuple[Item, float]]


@runtime_checkable
class Store(Protocol):
    """Constructed as ``Store(uri, collection, spaces={"text": 384}, **options)``.

    ``add`` is atomic per call for LanceDB (one commit): after a crash either all of its
    rows are visible or none. Milvus splits an add larger than one gRPC request into
    several upserts, each atomic; either way the catalog is written after the store, so
    rows of an interrupted add belong to no catalogued document and recovery drops them.
    Vector rows that are all-NaN mean "no vector in this space" for that item; such rows
    are never returned by :meth:`dense` for that space. Higher scores are better.

    Optional: ``refs() -> list[(id, doc_id, media)]`` of every row, a cheap full scan
    for ``mmrag check``; without it the check reads catalogued ids through :meth:`get`.
    """

    def add(self, items: Sequence[Item], vectors: Mapping[str, np.ndarray]) -> None: ...

    def delete(self, doc_ids: Sequence[str]) -> int: ...

    def get(self, ids: Sequence[str]) -> list[Item]: ...

    def dense(self, space: str, vector: np.ndarray, k: int,
              filters: Filters | None = None) -> ScoredItems: ...

    def bm25(self, query: str, k: int, filters: Filters | None = None) -> ScoredItems: ...

    def doc_ids(self) -> set[str]: ...

    def count(self) -> int: ...

    def optimize(self) -> None:
        """Fold new rows into the ANN and full-text indexes (LanceDB indexes lazily)."""
        ...

    def close(self) -> None: ...


stores: Registry[Store] = Registry("store")
