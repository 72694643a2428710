"""LanceDB backend: one Lance table per collection, native BM25, flat or IVF vector search.

Why these choices:

* Every ``add`` is one ``merge_insert`` on ``id``: a single Lance commit, so a crash leaves
  either the whole batch or nothing, and re-adding an id replaces the row (upsert).
* LanceDB scans rows that are not yet in an index (flat for vectors, brute BM25 for text),
  so new rows are searchable at once; :meth:`LanceStore.optimize` folds them into the
  indexes and compacts the many small fragments that batched ingest writes.
* Below ``ann_min_rows`` rows exact flat search is both exact and fast enough (a 50k×512
  scan is a few ms), so the ANN index is only built when it pays. The defaults below were
  tuned with ``benchmarks/bench_query.py`` (see ``benchmarks/results/query.md``).
* Tables under ``flat_max_rows`` answer unfiltered dense queries exactly from an
  in-memory matrix (numpy, reloaded when the table version changes, so the first query
  after a write pays one column read); LanceDB's own flat scan re-reads the column on
  every query (``benchmarks/results/scale.md`` has the crossover).
* IVF centroids trained on 20k rows fit 1M rows badly (partitions grow lopsided, recall
  and latency drift), so the row count an index was trained at is kept in its name
  (``vec_<space>_ann_n<rows>``) and the index is retrained once the table holds
  ``retrain_factor`` times that, by :meth:`LanceStore.optimize` and right after the
  ``add`` that crosses it. The name travels with the index in the same commit, on a
  local disk or object storage alike, so no sidecar can disagree with it.
* Vectors are unit length and searched with the ``dot`` metric; LanceDB reports
  ``1 - dot`` as distance, turned back into cosine similarity (higher is better).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError, StoreError
from ..types import Filters, Item
from ._common import (
    FLOAT_COLUMNS,
    INT_COLUMNS,
    SCALAR_COLUMNS,
    check_spaces,
    dedupe_last,
    fetch_size,
    has_col,
    post_filter,
    prepare_vectors,
    query_vector,
    sql_in,
    vec_col,
)
from .base import ScoredItems, stores
from .terms import TERMS_COLUMN, lexical_text

if TYPE_CHECKING:
    from lancedb import DBConnection

logger = logging.getLogger(__name__)

DEFAULT_SPACES: dict[str, int] = {"text": 384}

# ANN defaults, from benchmarks/results/query.md (512-d, 1M rows, 2 cores): IVF_SQ with
# ~2k rows per partition, 6 probes and a 5x exact re-rank gave recall@10 ≈ 0.99 on
# low-intrinsic-dimension data where IVF_PQ (64×8-d codes) stayed < 0.9 even re-ranking
# 400 rows; SQ builds faster too (~80 s at 1M). LanceDB's flat scan is ~50 ms at 20k×512
# and ~200 ms at 100k on 2 cores, so the index pays early.
ANN_DEFAULTS: dict[str, Any] = {
    "ann_min_rows": 20_000,        # below this: exact flat search
    "ann_index": "IVF_SQ",         # or IVF_PQ (smaller, lower recall), IVF_FLAT,
                                   # IVF_HNSW_SQ (HNSW builds slowly on few cores)
    "ann_partitions": None,        # IVF partitions; None = rows / ann_partition_rows
    "ann_partition_rows": 2048,
    "ann_sub_vector_dims": 8,      # IVF_PQ only: dims per PQ sub-vector (512-d → 64 codes)
    "nprobes": 6,
    "refine_factor": 5,            # re-rank k*5 candidates with the stored exact vectors
    "ef": 100,                     # HNSW search breadth (IVF_HNSW_SQ only)
    "m": 20,
    "ef_construction": 300,
    "index_ids_min_rows": 10_000,  # BTree on id/doc_id speeds merge_insert, get, delete
    "flat_max_rows": 20_000,       # below this: exact search from an in-memory matrix
    "retrain_factor": 4.0,         # retrain the ANN index at this × its trained-at rows
    "auto_index": True,            # build/retrain right after an add that crosses it
}

# LanceDB's caches (MiB). Its own defaults (6 GiB of index, 1 GiB of metadata) suit a
# machine given to one table; and every add + optimize leaves the superseded index and
# manifest versions in them, so a server under steady uploads grew ~0.35 MiB per add
# without bound (benchmarks/results/server.md). IVF_SQ codes take a byte a dimension, so
# 256 MiB holds the codes of ~650k 384-d vectors: raise it for bigger tables.
CACHE_MB: dict[str, float] = {"index_cache_mb": 256.0, "metadata_cache_mb": 64.0}
# Versions older than this are removed by optimize(): a reader always starts from the
# latest (read_consistency_s = 0), so only a query running longer than this could lose
# its files; thousands of kept versions cost memory on every open and listing.
KEEP_VERSIONS_S = 120.0

_ANN_NAME = "_ann_n"  # vec_<space>_ann_n<rows>: the rows an index was trained at


def _arrow_schema(spaces: Mapping[str, int]) -> pa.Schema:
    fields = []
    for name in SCALAR_COLUMNS:
        if name in INT_COLUMNS:
            typ = pa.int64()
        elif name in FLOAT_COLUMNS:
            typ = pa.float64()
        else:
            typ = pa.string()
        fields.append(pa.field(name, typ))
    fields.append(pa.field(TERMS_COLUMN, pa.string()))
    for space, dim in spaces.items():
        fields.append(pa.field(vec_col(space), pa.list_(pa.float32(), dim)))
        fields.append(pa.field(has_col(space), pa.bool_()))
    return pa.schema(fields)


def _spaces_of(schema: pa.Schema) -> dict[str, int]:
    out: dict[str, int] = {}
    for field in schema:
        if field.name.startswith("vec_") and pa.types.is_fixed_size_list(field.type):
            out[field.name[4:]] = field.type.list_size
    return out


@stores.register("lancedb")
class LanceStore:
    """Items of one collection in one LanceDB table (``uri`` is a folder or object-store URI).

    ``options`` (all optional): the keys of :data:`ANN_DEFAULTS`, ``storage_options``
    (dict passed to ``lancedb.connect`` for s3/gcs), ``cleanup_older_than_s`` (seconds of
    old versions :meth:`optimize` keeps, default 120; LanceDB's own is 7 days),
    ``index_cache_mb`` and ``metadata_cache_mb`` (LanceDB's caches, see :data:`CACHE_MB`),
    ``data_storage_version`` (Lance file format of a new table, default ``"2.1"``; an
    existing table keeps its own), ``read_consistency_s`` (how stale a read of another
    process's writes may be; default 0: always the latest).

    Opening an existing table with a different dim for a space raises ``ConfigError``.
    A space the table lacks is added as an all-absent column (existing rows get no
    vector there); spaces in the table but not asked for are kept and filled as absent.
    """

    def __init__(self, uri: str, collection: str = "items",
                 spaces: Mapping[str, int] | None = None, **options: Any):
        import lancedb

        unknown = (set(options) - set(ANN_DEFAULTS)
                   - {"storage_options", "cleanup_older_than_s", "data_storage_version",
                      "read_consistency_s", *CACHE_MB})
        if unknown:
            raise ConfigError(f"unknown LanceDB store option(s) {sorted(unknown)!r}")
        self.uri = str(uri)
        self.collection = collection
        self.options = {**ANN_DEFAULTS, **CACHE_MB, "data_storage_version": "2.1",
                        "cleanup_older_than_s": KEEP_VERSIONS_S, **options}
        wanted = check_spaces(DEFAULT_SPACES if spaces is None else spaces)
        if "://" not in self.uri:
            os.makedirs(self.uri, exist_ok=True)
        # Several processes may share an index (two adds and a server): 0 s makes every
        # read and write start from the latest committed version, so a merge_insert never
        # joins against a stale table (which would duplicate ids another process just
        # wrote) and a server sees what a CLI add committed. The check costs a version
        # listing, lost in a query's time (7.0 vs 7.0 ms at 10k rows).
        consistency = timedelta(seconds=float(options.get("read_consistency_s", 0.0)))
        try:
            db = lancedb.connect(self.uri, storage_options=options.get("storage_options"),
                                 read_consistency_interval=consistency,
                                 session=self._session(lancedb))
        except Exception as exc:  # pragma: no cover - depends on the uri scheme
            raise StoreError(f"cannot open LanceDB at {self.uri!r}: {exc}") from exc
        self._db: DBConnection | None = db  # None once closed
        self._table = self._open_or_create(db, wanted)
        # Tables made before the terms column keep BM25 over raw text (no CJK bigrams)
        # until they are re-indexed; new writes to them cannot add a column mid-way.
        self._fts = TERMS_COLUMN if TERMS_COLUMN in self._table.schema.names else "text"
        if self._fts == "text":
            logger.warning("%s at %s predates CJK-aware full-text search; re-index to "
                           "enable it", self.collection, self.uri)
        self._absent_cache: dict[str, tuple[int, int]] = {}
        # space -> (version, dataset, row ids, unit vectors, present mask): exact path
        self._matrix_cache: dict[str, tuple[int, Any, np.ndarray, np.ndarray,
                                            np.ndarray]] = {}
        self._count_cache: tuple[int, int] = (-1, 0)
        self.spaces = _spaces_of(self._table.schema)

    # ------------------------------------------------------------------ setup

    def _session(self, lancedb: Any) -> Any:
        """LanceDB caches bounded by ``index_cache_mb`` / ``metadata_cache_mb``."""
        return lancedb.Session(
            index_cache_size_bytes=int(float(self.options["index_cache_mb"]) * 2**20),
            metadata_cache_size_bytes=int(float(self.options["metadata_cache_mb"]) * 2**20))

    def _open_or_create(self, db: DBConnection, wanted: dict[str, int]):
        try:
            table = db.open_table(self.collection)
        except (ValueError, FileNotFoundError, RuntimeError):
            table = None
        if table is None:
            from lancedb.index import FTS

            # Lance file format 2.1, not 2.2 (pylance 14's "stable"): 2.2 encodes columns
            # with few distinct values (modality, page, created, metadata, ...) so that
            # taking 10 result rows decodes whole pages, ~5-10 ms per such column per
            # query (~50 ms at 1M rows); 2.1 takes them in < 0.5 ms.
            version = str(self.options["data_storage_version"])
            table = db.create_table(
                self.collection, schema=_arrow_schema(wanted), exist_ok=True,
                storage_options={"new_table_data_storage_version": version})
            # Creating the FTS index on the empty table means BM25 never needs a
            # rebuild: later rows are scanned until optimize() merges them in.
            if not self._has_index(table, TERMS_COLUMN):
                table.create_index(TERMS_COLUMN, config=FTS())
            return table
        have = _spaces_of(table.schema)
        missing_cols = [c for c in SCALAR_COLUMNS if c not in table.schema.names]
        if missing_cols:
            raise ConfigError(f"table {self.collection!r} at {self.uri!r} is not an mmrag "
                              f"table (missing columns {missing_cols!r})")
        for space, dim in wanted.items():
            if space in have and have[space] != dim:
                raise ConfigError(
                    f"vector space {space!r} of collection {self.collection!r} at {self.uri!r}"
                    f" has dim {have[space]}, not {dim}; use the encoder the index was built"
                    f" with or a new collection")
        new = {s: d for s, d in wanted.items() if s not in have}
        if new:
            # Null columns: has_<space> is NULL, which the "= true" prefilter excludes.
            table.add_columns([f for s, d in new.items()
                               for f in (pa.field(vec_col(s), pa.list_(pa.float32(), d)),
                                         pa.field(has_col(s), pa.bool_()))])
            logger.info("added vector space(s) %s to %s", sorted(new), self.collection)
        return table

    @staticmethod
    def _has_index(table, column: str) -> bool:
        return any(column in idx.columns for idx in table.list_indices())

    # ------------------------------------------------------------------ writes

    def _to_arrow(self, items: Sequence[Item], vectors: Mapping[str, np.ndarray]) -> pa.Table:
        keep = dedupe_last(items)
        if len(keep) != len(items):
            items = [items[i] for i in keep]
            vectors = {s: np.asarray(v)[keep] for s, v in vectors.items() if v is not None}
        rows = [item.to_row() for item in items]
        cols: dict[str, Any] = {name: [r[name] for r in rows] for name in SCALAR_COLUMNS}
        schema = _arrow_schema(self.spaces)
        if self._fts == TERMS_COLUMN:
            cols[TERMS_COLUMN] = [lexical_text(r["text"]) for r in rows]
        else:
            schema = schema.remove(schema.get_field_index(TERMS_COLUMN))
        for space, (mat, present) in prepare_vectors(items, vectors, self.spaces).items():
            dim = mat.shape[1]
            cols[vec_col(space)] = pa.FixedSizeListArray.from_arrays(
                pa.array(mat.reshape(-1), pa.float32()), dim)
            cols[has_col(space)] = pa.array(present, pa.bool_())
        return pa.table(cols, schema=schema)

    def add(self, items: Sequence[Item], vectors: Mapping[str, np.ndarray]) -> None:
        if not items:
            return
        data = self._to_arrow(items, vectors)
        try:
            (self._table.merge_insert("id").when_matched_update_all()
             .when_not_matched_insert_all().execute(data))
        except Exception as exc:
            raise StoreError(f"LanceDB write of {len(items)} items failed: {exc}") from exc
        if self.options["auto_index"]:
            self._reindex_grown()

    def delete(self, doc_ids: Sequence[str]) -> int:
        doc_ids = list(dict.fromkeys(doc_ids))
        if not doc_ids:
            return 0
        where = sql_in("doc_id", doc_ids)
        n = self._table.count_rows(where)
        if n:
            self._table.delete(where)
        return n

    # ------------------------------------------------------------------ reads

    @staticmethod
    def _items(tbl: pa.Table) -> list[Item]:
        return [Item.from_row(r) for r in tbl.select(list(SCALAR_COLUMNS)).to_pylist()]

    def get(self, ids: Sequence[str]) -> list[Item]:
        ids = list(ids)
        found: dict[str, Item] = {}
        unique = list(dict.fromkeys(ids))
        for i in range(0, len(unique), 1000):
            chunk = unique[i:i + 1000]
            tbl = (self._table.search().where(sql_in("id", chunk))
                   .select(list(SCALAR_COLUMNS)).limit(len(chunk)).to_arrow())
            found.update((it.id, it) for it in self._items(tbl))
        return [found[i] for i in ids if i in found]

    @staticmethod
    def _where(filters: Filters | None, extra: str | None = None) -> str | None:
        parts = [extra] if extra else []
        if filters is not None:
            if filters.modality:
                parts.append(sql_in("modality", filters.modality))
            if filters.doc_id:
                parts.append(sql_in("doc_id", filters.doc_id))
        return " AND ".join(f"({p})" for p in parts) or None

    def _absent_rows(self, space: str) -> int:
        """Rows without a vector in ``space`` (``has_<space>`` false or NULL).

        Counted once per table version (a bitmap-indexed or 1-byte-per-row scan), so
        :meth:`dense` can skip the per-query has_ prefilter when nothing is absent.
        """
        version = self._table.version
        hit = self._absent_cache.get(space)
        if hit is not None and hit[0] == version:
            return hit[1]
        n = self._table.count_rows(f"{has_col(space)} IS NOT TRUE")
        self._absent_cache[space] = (version, n)
        return n

    def _rows(self) -> int:
        """Row count, read once per table version (dense() asks on every query)."""
        version = self._table.version
        if self._count_cache[0] != version:
            self._count_cache = (version, self._table.count_rows())
        return self._count_cache[1]

    def _matrix(self, space: str) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
        """A pinned dataset, row ids, vectors and present mask of ``space``, read once
        per table version from that one snapshot (so the row ids stay valid for it)."""
        version = self._table.version
        hit = self._matrix_cache.get(space)
        if hit is not None and hit[0] == version:
            return hit[1:]
        ds = self._table.to_lance()
        tbl = ds.to_table(columns=[vec_col(space), has_col(space)], with_row_id=True)
        rowids = tbl["_rowid"].to_numpy()
        col = tbl[vec_col(space)].combine_chunks()
        dim = self.spaces[space]
        if col.null_count:  # a space added to an existing table: old rows hold NULL
            col = col.fill_null(pa.scalar([0.0] * dim, col.type))
        mat = col.values.to_numpy(zero_copy_only=False).reshape(-1, dim).astype(
            np.float32, copy=False)
        present = tbl[has_col(space)].fill_null(False).to_numpy(
            zero_copy_only=False).astype(bool)
        self._matrix_cache[space] = (ds.version, ds, rowids, mat, present)
        return ds, rowids, mat, present

    def _exact(self, space: str, vec: np.ndarray, limit: int) -> ScoredItems:
        """Exact top-``limit`` by dot product over the in-memory matrix of a small table;
        the winning rows are taken by row id from the same snapshot (~1 ms, where a
        lookup by id scans the id column)."""
        ds, rowids, mat, present = self._matrix(space)
        if not len(rowids):
            return []
        sims = mat @ vec
        sims[~present] = -np.inf
        limit = min(limit, int(present.sum()))
        if limit <= 0:
            return []
        top = np.argpartition(-sims, limit - 1)[:limit]
        top = top[np.argsort(-sims[top], kind="stable")]
        tbl = ds._take_rows(rowids[top].tolist(), columns=list(SCALAR_COLUMNS))
        return list(zip(self._items(tbl), sims[top].astype(float).tolist(), strict=True))

    def _dense_query(self, space: str, vec: np.ndarray, limit: int, where: str | None,
                     prefilter: bool, extra: Sequence[str] = ()) -> pa.Table:
        o = self.options
        q = self._table.search(vec, vector_column_name=vec_col(space)).distance_type("dot")
        if self._rows() < int(o["flat_max_rows"]):
            q = q.bypass_vector_index()  # small table: exact, even if an index exists
        if where:
            q = q.where(where, prefilter=prefilter)
        # Naming _distance in the projection keeps it and silences lance's deprecation
        # warning about auto-projected score columns (lancedb 0.40's Python builder has
        # no disable_scoring_autoprojection; this is the equivalent).
        q = q.select([*SCALAR_COLUMNS, *extra, "_distance"]).limit(limit)
        # Query knobs only matter once an index exists; flat search ignores them.
        q = q.nprobes(int(o["nprobes"])).ef(int(o["ef"]))
        if o["refine_factor"]:
            q = q.refine_factor(int(o["refine_factor"]))
        return q.to_arrow()

    def dense(self, space: str, vector: np.ndarray, k: int,
              filters: Filters | None = None) -> ScoredItems:
        if k <= 0:
            return []
        vec = query_vector(vector, space, self.spaces)
        filters = Filters.build(filters)
        limit = fetch_size(k, filters)
        where = self._where(filters)
        if where is None and self._rows() < int(self.options["flat_max_rows"]):
            return post_filter(self._exact(space, vec, limit), k, filters)
        has = f"{has_col(space)} = true"
        absent = self._absent_rows(space)
        if absent == 0:
            # Every row has a vector: no has_ filter at all (the common case).
            tbl = self._dense_query(space, vec, limit, where, prefilter=True)
        elif absent >= self.count():
            return []
        elif where is None:
            # Absent vectors are stored as zeros (similarity 0), so they almost never
            # reach the top: search unfiltered, drop them here, and only if one was
            # dropped pay for the exact prefilter (76 ms at 1M rows without a bitmap on
            # has_, 14 ms with one, vs ~10 ms for the whole unfiltered search). Dropping
            # them in Python is cheaper than LanceDB's post-filter (1-7 ms at 1M rows).
            tbl = self._dense_query(space, vec, limit, None, prefilter=True,
                                    extra=[has_col(space)])
            present = tbl[has_col(space)].fill_null(False)
            if not pc.all(present).as_py():
                tbl = self._dense_query(space, vec, limit, has, prefilter=True)
        else:
            tbl = self._dense_query(space, vec, limit, f"({has}) AND {where}",
                                    prefilter=True)
        sims = (1.0 - tbl["_distance"].to_numpy()).tolist()
        return post_filter(list(zip(self._items(tbl), sims, strict=True)), k, filters)

    def bm25(self, query: str, k: int, filters: Filters | None = None) -> ScoredItems:
        if k <= 0 or not query or not query.strip():
            return []
        filters = Filters.build(filters)
        if self._fts == TERMS_COLUMN:
            query = lexical_text(query)
        q = self._table.search(query, query_type="fts", fts_columns=self._fts)
        where = self._where(filters)
        if where:
            q = q.where(where, prefilter=True)
        tbl = (q.select([*SCALAR_COLUMNS, "_score"])  # named: no autoprojection warning
               .limit(fetch_size(k, filters)).to_arrow())
        scores = tbl["_score"].to_numpy().astype(float).tolist()
        return post_filter(list(zip(self._items(tbl), scores, strict=True)), k, filters)

    def doc_ids(self) -> set[str]:
        tbl = self._table.search().select(["doc_id"]).limit(None).to_arrow()
        return set(tbl["doc_id"].to_pylist())

    def refs(self) -> list[tuple[str, str, str]]:
        """``(id, doc_id, media)`` of every row: what a consistency check compares with
        the catalog and the media folder."""
        tbl = self._table.search().select(["id", "doc_id", "media"]).limit(None).to_arrow()
        return list(zip(tbl["id"].to_pylist(), tbl["doc_id"].to_pylist(),
                        tbl["media"].to_pylist(), strict=True))

    def count(self) -> int:
        return self._table.count_rows()

    # ------------------------------------------------------------------ tune (column swap)

    def rows(self, columns: Sequence[str], where: str | None = None) -> pa.Table:
        """Every row's ``columns`` (optionally filtered): what ``mmrag tune`` reads to
        build training pairs and to re-embed a space."""
        q = self._table.search().select(list(columns))
        if where:
            q = q.where(where)
        return q.limit(None).to_arrow()

    def add_space(self, space: str, dim: int) -> None:
        """Add an all-absent vector column now (re-embedding fills it while queries keep
        using the old one)."""
        check_spaces({space: dim})
        if space in self.spaces:
            if self.spaces[space] != dim:
                raise ConfigError(f"vector space {space!r} exists with dim "
                                  f"{self.spaces[space]}, not {dim}")
            return
        self._table.add_columns([pa.field(vec_col(space), pa.list_(pa.float32(), dim)),
                                 pa.field(has_col(space), pa.bool_())])
        self.spaces = _spaces_of(self._table.schema)

    def set_vectors(self, space: str, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Write one space's vectors of existing rows, other columns untouched: one
        ``merge_insert`` of (id, vec, has) only, so a crash keeps all or none of them."""
        if not len(ids):
            return
        dim = self.spaces[space]
        mat = np.asarray(vectors, dtype=np.float32).reshape(len(ids), dim)
        data = pa.table({"id": pa.array(list(ids), pa.string()),
                         vec_col(space): pa.FixedSizeListArray.from_arrays(
                             pa.array(mat.reshape(-1), pa.float32()), dim),
                         has_col(space): pa.array([True] * len(ids), pa.bool_())})
        try:
            self._table.merge_insert("id").when_matched_update_all().execute(data)
        except Exception as exc:
            raise StoreError(f"LanceDB write of {len(ids)} {space!r} vectors failed: "
                             f"{exc}") from exc

    def drop_spaces(self, spaces: Sequence[str]) -> None:
        """Drop vector columns nothing searches any more (a tune's superseded model)."""
        cols = [c for s in spaces if s in self.spaces for c in (vec_col(s), has_col(s))]
        if cols:
            self._table.drop_columns(cols)
            self.spaces = _spaces_of(self._table.schema)

    # ------------------------------------------------------------------ maintenance

    def _vector_index_config(self, n: int, dim: int):
        from lancedb.index import HnswSq, IvfFlat, IvfPq, IvfSq

        o = self.options
        kind = str(o["ann_index"]).upper()
        if o["ann_partitions"] is not None:
            parts: int | None = int(o["ann_partitions"])
        elif kind == "IVF_HNSW_SQ":
            parts = None  # LanceDB sizes HNSW partitions itself (~1M rows each)
        else:
            # ~2k rows per partition: nprobes=6 scans ~12k SQ codes at 1M rows.
            parts = min(4096, max(1, n // int(o["ann_partition_rows"])))
        if kind == "IVF_HNSW_SQ":
            return HnswSq(distance_type="dot", num_partitions=parts, m=int(o["m"]),
                          ef_construction=int(o["ef_construction"]))
        if kind == "IVF_PQ":
            sub = max(1, dim // int(o["ann_sub_vector_dims"]))
            while dim % sub:
                sub -= 1
            return IvfPq(distance_type="dot", num_partitions=parts, num_sub_vectors=sub)
        if kind == "IVF_SQ":
            return IvfSq(distance_type="dot", num_partitions=parts)
        if kind == "IVF_FLAT":
            return IvfFlat(distance_type="dot", num_partitions=parts)
        raise ConfigError(f"unknown ann_index {o['ann_index']!r}; choose IVF_HNSW_SQ, "
                          f"IVF_PQ, IVF_SQ or IVF_FLAT")

    def vector_indexes(self, space: str) -> list[tuple[str, int | None]]:
        """``(name, trained-at rows)`` of the ANN indexes on ``space``'s column; the
        rows are None for an index made before they were recorded."""
        out: list[tuple[str, int | None]] = []
        for idx in self._table.list_indices():
            if list(idx.columns) != [vec_col(space)]:
                continue
            head, _, rows = idx.name.rpartition(_ANN_NAME)
            out.append((idx.name, int(rows) if head == vec_col(space) and rows.isdigit()
                        else None))
        return out

    def trained_rows(self, space: str) -> int | None:
        """Rows the ANN index of ``space`` was trained at (None: no index)."""
        found = self.vector_indexes(space)
        if not found:
            return None
        # an index from before the count was recorded: as if trained at the threshold
        return max(r if r is not None else int(self.options["ann_min_rows"])
                   for _, r in found)

    def needs_vector_index(self, space: str, rows: int | None = None) -> bool:
        """No index yet and ``ann_min_rows`` reached, or ``retrain_factor`` × the
        trained-at rows reached."""
        n = self.count() if rows is None else rows
        if n < int(self.options["ann_min_rows"]):
            return False
        trained = self.trained_rows(space)
        return trained is None or n >= float(self.options["retrain_factor"]) * trained

    def build_vector_index(self, space: str, replace: bool = True) -> None:
        """Build (or retrain) the ANN index of one space now, whatever the row count.

        The new index is committed under a name holding the row count before the old
        one is dropped, so queries always have an index; a crash in between leaves two,
        and the next build drops the extra.
        """
        n = self.count()
        if n == 0:
            return
        old = [name for name, _ in self.vector_indexes(space)]
        name = f"{vec_col(space)}{_ANN_NAME}{n}"
        config = self._vector_index_config(n, self.spaces[space])
        self._table.create_index(vec_col(space), config=config, replace=replace, name=name)
        for stale in old:
            if stale != name:
                self._table.drop_index(stale)

    def _reindex_grown(self) -> None:
        """After an add: build or retrain the ANN index of each space that outgrew it."""
        n = self.count()
        if n < int(self.options["ann_min_rows"]):
            return
        for space in self.spaces:
            if self.needs_vector_index(space, n):
                logger.info("training %s index on %s at %d rows (was %s)",
                            self.options["ann_index"], vec_col(space), n,
                            self.trained_rows(space))
                try:
                    self.build_vector_index(space)
                except Exception as exc:  # the rows are committed: flat search still works
                    logger.warning("could not train the %s index after an add (%s); "
                                   "`mmrag optimize` retries", vec_col(space), exc)

    def optimize(self) -> None:
        """Build indexes that now pay off, fold new rows into existing ones, compact files."""
        from lancedb.index import FTS, Bitmap, BTree

        n = self.count()
        if not self._has_index(self._table, self._fts):
            self._table.create_index(self._fts, config=FTS())
        if n >= int(self.options["index_ids_min_rows"]):
            for column in ("id", "doc_id"):
                if not self._has_index(self._table, column):
                    self._table.create_index(column, config=BTree())
            # Bitmaps make the has_<space> prefilter of a filtered dense query (and the
            # absent-row count) cheap: 76 → 14 ms at 1M rows; each builds in < 1 s.
            for column in ("modality", *(has_col(s) for s in self.spaces)):
                if not self._has_index(self._table, column):
                    self._table.create_index(column, config=Bitmap())
        for space in self.spaces:
            if self.needs_vector_index(space, n):
                logger.info("training %s index on %s at %d rows (was %s)",
                            self.options["ann_index"], vec_col(space), n,
                            self.trained_rows(space))
                self.build_vector_index(space)
        cleanup = self.options.get("cleanup_older_than_s")
        self._table.optimize(cleanup_older_than=None if cleanup is None
                             else timedelta(seconds=float(cleanup)))

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None and hasattr(db, "close"):
            db.close()
