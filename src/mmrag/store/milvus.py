"""Milvus backend: Milvus Lite (embedded, a local path) or a Milvus cluster (http/https URI).

The same code talks to both through ``pymilvus.MilvusClient``; Milvus Lite runs an
in-process gRPC server per data folder. BM25 is Milvus' own: a ``BM25`` function turns
``text`` (analyzed) into a sparse vector that Milvus scores at query time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, MissingDependencyError, StoreError
from ..types import Filters, Item
from ._common import (
    FLOAT_COLUMNS,
    INT_COLUMNS,
    SCALAR_COLUMNS,
    check_spaces,
    dedupe_last,
    fetch_size,
    has_col,
    milvus_in,
    post_filter,
    prepare_vectors,
    query_vector,
    vec_col,
)
from .base import ScoredItems, stores
from .terms import TERMS_COLUMN, lexical_text

try:  # optional extra: mmrag[milvus]
    import pymilvus
    from pymilvus import DataType, Function, FunctionType, MilvusClient
except ImportError:  # pragma: no cover - exercised only without the extra
    pymilvus = None

logger = logging.getLogger(__name__)

DEFAULT_SPACES: dict[str, int] = {"text": 384}
SPARSE_FIELD = "text_sparse"
MAX_TOPK = 16384  # Milvus' limit on search limit/offset
# A server refuses gRPC messages over 64 MiB (proxy.grpc.serverMaxRecvSize); a request is
# cut well under that, since the per-row estimate below ignores protobuf framing.
MAX_REQUEST_BYTES = 48 * 2**20

# VARCHAR byte limits. Keys that are too long are an error; other strings are cut.
VARCHAR_MAX: dict[str, int] = {
    "id": 512, "doc_id": 512, "source": 4096, "modality": 32, "text": 65535,
    "section": 2048, "bbox": 512, "mime": 256, "media": 256, "name": 2048,
    "metadata": 65535,
}

# Milvus Lite starts one gRPC server per data folder and pymilvus never stops it;
# count users per folder so close() can stop the server (and release its LOCK).
_LITE_USERS: dict[str, int] = {}
_LITE_LOCK = threading.Lock()


# A collection property says how the terms field was made; older collections lack it.
_TERMS_PROPERTY = "mmrag.terms"
_STEMMED = "nfkc, cjk bigrams, snowball english"


def _is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://", "tcp://", "unix:"))


def _cut(value: str, limit: int) -> str:
    raw = value.encode("utf-8")
    if len(raw) <= limit:
        return value
    return raw[:limit].decode("utf-8", errors="ignore")


@stores.register("milvus")
class MilvusStore:
    """Items of one collection in Milvus (Lite for a local path, or a cluster).

    ``uri``: a local path (``index/milvus.db`` or any folder path) runs Milvus Lite
    embedded; ``http(s)://host:19530`` talks to a cluster (``token`` and ``db_name`` in
    ``options``). Milvus Lite allows ONE process per data folder: it holds an exclusive
    ``flock`` on ``<folder>/LOCK`` while open, and a second process fails with
    ``StoreError``. Stores in the same process share the server; :meth:`close` of the
    last one stops it.

    Durability: Milvus Lite appends each write to its WAL and flushes the file to the OS
    before ``add`` returns, so rows survive a SIGKILL of the process (``durability="wal"``,
    the default). ``durability="flush"`` also seals the write into an fsync'ed segment
    (``MilvusClient.flush``), which survives an OS crash but costs one segment per add.

    Options: ``token``, ``db_name``, ``durability`` (``wal``|``flush``), ``index_type``
    (vector index, default ``AUTOINDEX``), ``index_params`` (dict), ``search_params``
    (dict), ``timeout`` (seconds per call), ``max_request_bytes`` (an ``add`` is sent as
    several upserts of at most this estimated size; default 48 MiB, under the server's
    64 MiB gRPC limit). Opening with a different dim for a space
    raises ``ConfigError``; so does asking for a space the collection lacks (Milvus cannot
    add vector fields to an existing collection).
    """

    def __init__(self, uri: str, collection: str = "items",
                 spaces: Mapping[str, int] | None = None, **options: Any):
        if pymilvus is None:
            raise MissingDependencyError("Milvus store", "milvus")
        known = {"token", "db_name", "durability", "index_type", "index_params",
                 "search_params", "timeout", "max_request_bytes"}
        unknown = set(options) - known
        if unknown:
            raise ConfigError(f"unknown Milvus store option(s) {sorted(unknown)!r}")
        self.durability = options.get("durability", "wal")
        if self.durability not in ("wal", "flush"):
            raise ConfigError(f"durability must be 'wal' or 'flush', got {self.durability!r}")
        self.uri = str(uri)
        self.collection = collection
        self.options = options
        self._timeout = options.get("timeout")
        self._max_request = int(options.get("max_request_bytes", MAX_REQUEST_BYTES))
        if self._max_request <= 0:
            raise ConfigError(f"max_request_bytes must be positive, got {self._max_request}")
        self._lite_path: str | None = None
        self._fts = TERMS_COLUMN
        self._stem = True
        wanted = check_spaces(DEFAULT_SPACES if spaces is None else spaces)
        self._client = self._connect()
        try:
            self.spaces = self._open_or_create(wanted)
        except Exception:
            self.close()
            raise

    # ------------------------------------------------------------------ setup

    def _connect(self) -> MilvusClient:
        if _is_remote(self.uri):
            try:
                return MilvusClient(uri=self.uri, token=self.options.get("token", ""),
                                    db_name=self.options.get("db_name", ""))
            except Exception as exc:
                raise StoreError(f"cannot connect to Milvus at {self.uri!r}: {exc}") from exc
        from milvus_lite.server_manager import server_manager_instance

        path = os.path.abspath(os.path.expanduser(self.uri))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with _LITE_LOCK:
            local = server_manager_instance.start_and_get_uri(path)
            if local is None:
                raise StoreError(
                    f"cannot open Milvus Lite data folder {path!r}; is another process "
                    f"using it? (Milvus Lite allows one process per data folder)")
            _LITE_USERS[path] = _LITE_USERS.get(path, 0) + 1
        self._lite_path = path
        return MilvusClient(uri=local)

    def _schema(self, spaces: Mapping[str, int]):
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        for name in SCALAR_COLUMNS:
            if name == "id":
                schema.add_field(name, DataType.VARCHAR, is_primary=True,
                                 max_length=VARCHAR_MAX[name])
            elif name == "text":
                schema.add_field(name, DataType.VARCHAR, max_length=VARCHAR_MAX[name])
            elif name in INT_COLUMNS:
                schema.add_field(name, DataType.INT64)
            elif name in FLOAT_COLUMNS:
                schema.add_field(name, DataType.DOUBLE)
            else:
                schema.add_field(name, DataType.VARCHAR, max_length=VARCHAR_MAX[name])
        for space, dim in spaces.items():
            schema.add_field(vec_col(space), DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field(has_col(space), DataType.BOOL)
        # terms arrive stemmed (lexical_text(stem=True)): Milvus Lite's analyser ignores
        # stemming filters, and a server's default analyser has none
        schema.add_field(TERMS_COLUMN, DataType.VARCHAR, max_length=VARCHAR_MAX["text"],
                         enable_analyzer=True)
        schema.add_field(SPARSE_FIELD, DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                     input_field_names=[TERMS_COLUMN],
                                     output_field_names=[SPARSE_FIELD]))
        return schema

    def _open_or_create(self, wanted: dict[str, int]) -> dict[str, int]:
        c = self._client
        if not c.has_collection(self.collection):
            index = c.prepare_index_params()
            for space in wanted:
                index.add_index(field_name=vec_col(space), metric_type="IP",
                                index_type=self.options.get("index_type", "AUTOINDEX"),
                                params=dict(self.options.get("index_params") or {}))
            index.add_index(field_name=SPARSE_FIELD, index_type="SPARSE_INVERTED_INDEX",
                            metric_type="BM25")
            c.create_collection(self.collection, schema=self._schema(wanted),
                                consistency_level="Strong",
                                properties={_TERMS_PROPERTY: _STEMMED})
            # sync=False skips pymilvus' 0.5 s polling per index; the collection is
            # empty, and load_collection waits for the indexes to exist anyway.
            c.create_index(self.collection, index, sync=False)
            c.load_collection(self.collection)
            return dict(wanted)
        desc = c.describe_collection(self.collection)
        # collections made before the terms field run BM25 over raw text (no CJK bigrams)
        terms = [f for f in desc["fields"] if f["name"] == TERMS_COLUMN]
        self._fts = TERMS_COLUMN if terms else "text"
        # collections made before stemming keep unstemmed terms: their queries must too
        self._stem = (desc.get("properties") or {}).get(_TERMS_PROPERTY) == _STEMMED
        have: dict[str, int] = {}
        for field in desc["fields"]:
            if field["name"].startswith("vec_") and field["type"] == DataType.FLOAT_VECTOR:
                have[field["name"][4:]] = int(field["params"]["dim"])
        for space, dim in wanted.items():
            if space not in have:
                raise ConfigError(
                    f"Milvus collection {self.collection!r} at {self.uri!r} has no vector "
                    f"space {space!r} (it has {sorted(have)!r}); use a new collection")
            if have[space] != dim:
                raise ConfigError(
                    f"vector space {space!r} of collection {self.collection!r} at "
                    f"{self.uri!r} has dim {have[space]}, not {dim}; use the encoder the "
                    f"index was built with or a new collection")
        c.load_collection(self.collection)
        return have

    # ------------------------------------------------------------------ writes

    def _rows(self, items: Sequence[Item], vectors: Mapping[str, np.ndarray]) -> list[dict]:
        prepared = prepare_vectors(items, vectors, self.spaces)
        rows = []
        for i, item in enumerate(items):
            row = item.to_row()
            for key in ("id", "doc_id"):
                if len(row[key].encode("utf-8")) > VARCHAR_MAX[key]:
                    raise StoreError(f"{key} {row[key][:60]!r}... is longer than "
                                     f"{VARCHAR_MAX[key]} bytes")
            for key, limit in VARCHAR_MAX.items():
                if isinstance(row[key], str):
                    cut = _cut(row[key], limit)
                    if cut is not row[key] and key != "text":
                        logger.warning("%s of %r cut to %d bytes for Milvus", key, item.id,
                                       limit)
                    row[key] = cut
            if self._fts == TERMS_COLUMN:
                row[TERMS_COLUMN] = _cut(lexical_text(row["text"], stem=self._stem),
                                         VARCHAR_MAX["text"])
            for space, (mat, present) in prepared.items():
                row[vec_col(space)] = mat[i].tolist()
                row[has_col(space)] = bool(present[i])
            rows.append(row)
        return rows

    def add(self, items: Sequence[Item], vectors: Mapping[str, np.ndarray]) -> None:
        if not items:
            return
        keep = dedupe_last(items)
        if len(keep) != len(items):
            items = [items[i] for i in keep]
            vectors = {s: np.asarray(v)[keep] for s, v in vectors.items() if v is not None}
        rows = self._rows(items, vectors)
        try:
            # One upsert request = one WAL batch: all its rows or none. An add larger than
            # one request is several batches, so a crash can leave some of them; the
            # catalog is written after the store (catalog.py), so such rows belong to no
            # catalogued document and recovery deletes them.
            for batch in _batches(rows, self._max_request):
                self._client.upsert(self.collection, batch, timeout=self._timeout)
            if self.durability == "flush":
                self._client.flush(self.collection, timeout=self._timeout)
        except Exception as exc:
            raise StoreError(f"Milvus write of {len(items)} items failed: {exc}") from exc

    def _count(self, where: str = "") -> int:
        res = self._client.query(self.collection, filter=where, output_fields=["count(*)"],
                                 timeout=self._timeout)
        return int(res[0]["count(*)"]) if res else 0

    def delete(self, doc_ids: Sequence[str]) -> int:
        doc_ids = list(dict.fromkeys(doc_ids))
        if not doc_ids:
            return 0
        where = milvus_in("doc_id", doc_ids)
        n = self._count(where)
        if n:
            self._client.delete(self.collection, filter=where, timeout=self._timeout)
            if self.durability == "flush":
                self._client.flush(self.collection, timeout=self._timeout)
        return n

    # ------------------------------------------------------------------ reads

    @staticmethod
    def _item(entity: Mapping[str, Any]) -> Item:
        return Item.from_row({k: entity[k] for k in SCALAR_COLUMNS if k in entity})

    def get(self, ids: Sequence[str]) -> list[Item]:
        ids = list(ids)
        unique = list(dict.fromkeys(ids))
        found: dict[str, Item] = {}
        for i in range(0, len(unique), 1000):
            res = self._client.get(self.collection, ids=unique[i:i + 1000],
                                   output_fields=list(SCALAR_COLUMNS), timeout=self._timeout)
            found.update((r["id"], self._item(r)) for r in res)
        return [found[i] for i in ids if i in found]

    @staticmethod
    def _where(filters: Filters | None, extra: str | None = None) -> str:
        parts = [extra] if extra else []
        if filters is not None:
            if filters.modality:
                parts.append(milvus_in("modality", filters.modality))
            if filters.doc_id:
                parts.append(milvus_in("doc_id", filters.doc_id))
        return " and ".join(f"({p})" for p in parts)

    def _search(self, data: list, field: str, metric: str, k: int, where: str,
                filters: Filters | None) -> ScoredItems:
        params: dict[str, Any] = {"metric_type": metric}
        if metric == "IP":
            params["params"] = dict(self.options.get("search_params") or {})
        res = self._client.search(self.collection, data=data, anns_field=field,
                                  limit=min(fetch_size(k, filters), MAX_TOPK), filter=where,
                                  output_fields=list(SCALAR_COLUMNS), search_params=params,
                                  timeout=self._timeout)
        hits = res[0] if res else []
        # Milvus Lite reports BM25 as a negative distance, a cluster as a positive
        # score; BM25 is never negative, so abs() reads both the same.
        scored = [(self._item(h["entity"]),
                   abs(float(h["distance"])) if metric == "BM25" else float(h["distance"]))
                  for h in hits]
        return post_filter(scored, k, filters)

    def dense(self, space: str, vector: np.ndarray, k: int,
              filters: Filters | None = None) -> ScoredItems:
        if k <= 0:
            return []
        vec = query_vector(vector, space, self.spaces)
        filters = Filters.build(filters)
        where = self._where(filters, f"{has_col(space)} == true")
        return self._search([vec.tolist()], vec_col(space), "IP", k, where, filters)

    def bm25(self, query: str, k: int, filters: Filters | None = None) -> ScoredItems:
        if k <= 0 or not query or not query.strip():
            return []
        filters = Filters.build(filters)
        if self._fts == TERMS_COLUMN:
            query = lexical_text(query, stem=self._stem)
        return self._search([query], SPARSE_FIELD, "BM25", k, self._where(filters), filters)

    def doc_ids(self) -> set[str]:
        out: set[str] = set()
        it = self._client.query_iterator(self.collection, batch_size=1000, filter="",
                                         output_fields=["doc_id"], timeout=self._timeout)
        try:
            while batch := it.next():
                out.update(r["doc_id"] for r in batch)
        finally:
            it.close()
        return out

    def refs(self) -> list[tuple[str, str, str]]:
        """``(id, doc_id, media)`` of every row, for a consistency check."""
        out: list[tuple[str, str, str]] = []
        it = self._client.query_iterator(self.collection, batch_size=1000, filter="",
                                         output_fields=["id", "doc_id", "media"],
                                         timeout=self._timeout)
        try:
            while batch := it.next():
                out.extend((r["id"], r["doc_id"], r.get("media") or "") for r in batch)
        finally:
            it.close()
        return out

    def count(self) -> int:
        return self._count()

    def optimize(self) -> None:
        """Seal the in-memory segment; Milvus builds vector and BM25 indexes itself."""
        self._client.flush(self.collection, timeout=self._timeout)

    def close(self) -> None:
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            try:
                client.close()
            except Exception:  # pragma: no cover - best effort on shutdown
                logger.debug("closing Milvus client failed", exc_info=True)
        path, self._lite_path = self._lite_path, None
        if path is None:
            return
        from milvus_lite.server_manager import server_manager_instance

        with _LITE_LOCK:
            _LITE_USERS[path] = _LITE_USERS.get(path, 1) - 1
            if _LITE_USERS[path] <= 0:
                del _LITE_USERS[path]
                server_manager_instance.release_server(path)


def _row_bytes(row: Mapping[str, Any]) -> int:
    """A row's rough size on the wire: strings as UTF-8, vectors as float32, 8 bytes per
    other value, plus a little per field."""
    size = 0
    for value in row.values():
        if isinstance(value, str):
            size += len(value.encode("utf-8")) + 4
        elif isinstance(value, list):
            size += 4 * len(value) + 8
        else:
            size += 8
    return size


def _batches(rows: list[dict], limit: int) -> list[list[dict]]:
    """Consecutive runs of ``rows`` of at most ``limit`` estimated bytes (a row larger
    than that goes alone)."""
    out: list[list[dict]] = []
    batch: list[dict] = []
    size = 0
    for row in rows:
        n = _row_bytes(row)
        if batch and size + n > limit:
            out.append(batch)
            batch, size = [], 0
        batch.append(row)
        size += n
    if batch:
        out.append(batch)
    return out
