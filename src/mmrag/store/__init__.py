"""Store stage: items, vectors and full text in LanceDB (default) or Milvus.

Importing this package registers both backends in :data:`stores`; the Milvus module
imports without pymilvus and raises ``MissingDependencyError`` only when constructed.
"""

from __future__ import annotations

from .base import ScoredItems, Store, stores
from .lance import LanceStore
from .milvus import MilvusStore

__all__ = ["LanceStore", "MilvusStore", "ScoredItems", "Store", "stores"]
