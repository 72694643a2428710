"""`Index`: the one object users hold. It wires ingest → encode → store → search.

This is the only module that sees every stage; the stages see only their own ``base.py``
and ``types.py``. An index is a folder: ``mmrag.json`` (profile and models it was built
with), ``catalog.sqlite`` (documents and sources), ``media/`` (content-addressed page
renders and images) and, for the default backend, ``lancedb/``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .catalog import Catalog, DocRecord
from .config import Settings
from .encode import build_encoders
from .encode.base import Encoder
from .errors import ConfigError, IngestError, MmragError, QueryError
from .ingest import load, resolve
from .ingest.base import Piece
from .ingest.fetch import fetch_url
from .ingest.media import MediaStore
from .progress import Progress
from .search.query import Query
from .search.searcher import Searcher, page_item_id
from .store import stores
from .store.base import Store
from .types import AddReport, Blob, Failure, Filters, Hit, Item

log = logging.getLogger(__name__)

MANIFEST = "mmrag.json"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
# Flush a commit group early once it holds this many items, to bound memory.
MAX_PENDING_ITEMS = 4096


@dataclass(slots=True)
class _Doc:
    """A fully loaded document waiting for its text vectors and its store commit."""

    blob: Blob
    doc_id: str
    items: list[Item] = field(default_factory=list)
    vectors: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    replaces: str | None = None


class Index:
    """A multimodal index in a folder (or a folder plus a remote store).

    >>> index = Index("./.mmrag")                       # offline profile, LanceDB
    >>> index.add(["docs/", "https://example.org/a.pdf"]).summary()
    >>> hits = index.search("revenue by quarter", k=5)
    """

    def __init__(self, path_or_uri: str | Path = ".mmrag", profile: str | None = None, *,
                 config: str | Path | None = None, **settings: Any):
        path = str(path_or_uri)
        if "://" in path:  # a store URI (e.g. a Milvus cluster); local state in a cache dir
            settings.setdefault("store__uri", path)
            path = settings.pop("state_dir", None) or _state_dir_for(path)
        self.root = Path(path).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.settings = self._settings_with_manifest(
            Settings.load(config, profile=profile or None, **settings))
        self.catalog = Catalog(self.root / "catalog.sqlite")
        self.media = MediaStore(self.root / "media", self.settings.media)
        self._encoders: dict[str, Encoder] | None = None
        self._store: Store | None = None
        if (self.root / MANIFEST).exists():
            self._recover()

    # -- set-up ----------------------------------------------------------------------
    def _settings_with_manifest(self, s: Settings) -> Settings:
        """Reopen with the profile and models the index was built with.

        Asking for a different profile or model than the index holds is refused, because
        vectors of two models in one column are not comparable.
        """
        manifest = self._read_manifest()
        if not manifest:
            return s
        built = manifest["profile"]
        if (s.profile or s.encode.vision_model) and s.resolved_profile != built:
            raise ConfigError(f"index {str(self.root)!r} was built with profile {built!r}, "
                              f"not {s.resolved_profile!r}; use another index folder")
        enc = s.encode.model_dump()
        explicit = s.encode.model_fields_set
        for key, value in manifest.get("encode", {}).items():
            if key in explicit and enc[key] != value:
                raise ConfigError(f"index {str(self.root)!r} was built with {key}={value!r}, "
                                  f"not {enc[key]!r}; use another index folder")
            enc[key] = value
        store = {**manifest.get("store", {}), **{k: v for k, v in s.store.model_dump().items()
                                                 if v and k != "backend"}}
        return s.model_copy(update={"profile": built, "encode": type(s.encode)(**enc),
                                    "store": type(s.store)(**store)})

    def _read_manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def profile(self) -> str:
        return self.settings.resolved_profile

    @property
    def encoders(self) -> dict[str, Encoder]:
        if self._encoders is None:
            self._encoders = build_encoders(self.settings)
        return self._encoders

    @property
    def store(self) -> Store:
        if self._store is None:
            manifest = self._read_manifest()
            spaces = manifest.get("spaces") or {n: e.dim for n, e in self.encoders.items()}
            s = self.settings.store
            uri = s.uri or str(self.root / ("lancedb" if s.backend == "lancedb"
                                            else f"{s.backend}.db"))
            self._store = stores.create(s.backend, uri, s.collection, spaces=spaces,
                                        **s.options)
            if not manifest:
                self._write_manifest(spaces)
        return self._store

    def _write_manifest(self, spaces: dict[str, int]) -> None:
        manifest = {
            "version": 1, "profile": self.profile, "spaces": spaces,
            "encode": {k: v for k, v in self.settings.encode.model_dump().items()
                       if k.endswith(("model", "encoder"))},
            "encoders": {n: e.describe() for n, e in self.encoders.items()},
            "store": {"backend": self.settings.store.backend,
                      "collection": self.settings.store.collection},
        }
        tmp = self.root / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        tmp.replace(self.root / MANIFEST)

    def _recover(self) -> None:
        """Make store and catalog agree after a crash (see catalog.py for the order)."""
        in_store = self.store.doc_ids()
        in_catalog = self.catalog.doc_ids()
        orphans = in_store - in_catalog
        if orphans:
            log.warning("removing %d half-ingested document(s) left by an interrupted run",
                        len(orphans))
            self.store.delete(sorted(orphans))
        lost = in_catalog - in_store
        if lost:  # a store without durable writes lost them: forget, so re-adding works
            log.warning("%d catalogued document(s) missing from the store; they will be "
                        "re-indexed when added again", len(lost))
            self.catalog.remove_doc_ids(lost)

    # -- add -------------------------------------------------------------------------
    def add(self, sources: Any, *, metadata: dict[str, Any] | None = None,
            show_progress: bool | None = None) -> AddReport:
        """Ingest sources (paths, folders, URLs, bytes, base64, fsspec URLs).

        Bad sources are reported in ``AddReport.failed`` and never stop the run. Documents
        are committed in groups; each group is one atomic store write followed by one
        catalog transaction, so an interruption loses at most the group in flight.
        """
        report = AddReport()
        t0 = time.perf_counter()
        pending: list[_Doc] = []
        seen: set[str] = set()
        aliases: list[tuple[Blob, str]] = []  # same bytes twice in one run
        show = self.settings.show_progress if show_progress is None else show_progress
        with Progress("indexing", show) as bar:
            for entry in resolve(sources, self.settings.ingest):
                if isinstance(entry, Failure):
                    report.failed.append(entry)
                    bar.advance(entry.source, failed=True)
                    continue
                bar.advance(entry.name)
                doc = self._plan(entry, report, seen, aliases)
                if doc is None:
                    continue
                try:
                    self._load(doc, metadata or {})
                except MmragError as exc:
                    report.failed.append(Failure(entry.uri, _one_line(exc, entry.uri)))
                    continue
                except Exception as exc:  # a loader bug must not end the whole run
                    log.debug("loader crashed on %s", entry.uri, exc_info=True)
                    report.failed.append(Failure(entry.uri, f"{type(exc).__name__}: "
                                                            f"{_one_line(exc, entry.uri)}"))
                    continue
                if not doc.items:
                    report.failed.append(Failure(entry.uri, "no content found"))
                    continue
                pending.append(doc)
                seen.add(doc.doc_id)
                if (len(pending) >= self.settings.ingest.batch_size
                        or sum(len(d.items) for d in pending) >= MAX_PENDING_ITEMS):
                    self._commit(pending, report)
                    pending = []
            self._commit(pending, report)
        self._commit_aliases(aliases)
        if report.added or report.replaced:
            self.store.optimize()
        report.seconds = time.perf_counter() - t0
        return report

    def _plan(self, blob: Blob, report: AddReport, seen: set[str],
              aliases: list[tuple[Blob, str]]) -> _Doc | None:
        """Decide add / skip / replace before any decoding work is spent."""
        doc_id = hashlib.sha256(blob.data).hexdigest()[:16]
        old = self.catalog.by_source(blob.uri)
        if old and old.doc_id == doc_id:
            report.skipped.append(blob.uri)
            return None
        if self.catalog.by_doc_id(doc_id) or doc_id in seen:
            # Same bytes under another name: reuse its items, remember the new source.
            aliases.append((blob, doc_id))
            report.skipped.append(blob.uri)
            return None
        return _Doc(blob=blob, doc_id=doc_id, replaces=old.doc_id if old else None)

    def _load(self, doc: _Doc, metadata: dict[str, Any]) -> None:
        image_encoders = {n: e for n, e in self.encoders.items() if e.supports_images}
        batch: list[tuple[int, Image.Image]] = []
        for piece in load(doc.blob, self.settings.ingest):
            idx = len(doc.items)
            doc.items.append(self._item(doc, piece, metadata))
            if piece.image is not None and image_encoders:
                batch.append((idx, piece.image))
            if len(batch) >= self.settings.encode.batch_size:
                self._encode_images(doc, batch, image_encoders)
                batch = []
        if batch:
            self._encode_images(doc, batch, image_encoders)

    def _item(self, doc: _Doc, piece: Piece, metadata: dict[str, Any]) -> Item:
        blob = doc.blob
        if piece.modality == "page":
            item_id = page_item_id(doc.doc_id, piece.page)
        elif piece.modality == "image":
            item_id = f"{doc.doc_id}:i{piece.page}"
        else:
            item_id = f"{doc.doc_id}:p{piece.page}:t{len(doc.items)}"
        media = ""
        if piece.media is not None or piece.image is not None:
            media = self.media.put_media(piece)
        return Item(id=item_id, doc_id=doc.doc_id, source=blob.uri, modality=piece.modality,
                    text=piece.text, page=piece.page, chunk_start=piece.chunk_start,
                    chunk_end=piece.chunk_end, section=piece.section, bbox=piece.bbox,
                    mime=blob.mime, size=len(blob.data), media=media, name=blob.name,
                    metadata={**blob.metadata, **piece.metadata, **metadata})

    @staticmethod
    def _encode_images(doc: _Doc, batch: list[tuple[int, Image.Image]],
                       encoders: dict[str, Encoder]) -> None:
        for space, enc in encoders.items():
            vecs = enc.encode_images([img for _, img in batch])
            slot = doc.vectors.setdefault(space, {})
            for (idx, _), vec in zip(batch, vecs, strict=True):
                slot[idx] = vec

    def _commit(self, docs: list[_Doc], report: AddReport) -> None:
        if not docs:
            return
        items = [it for d in docs for it in d.items]
        try:
            vectors = self._vectors(docs, items)
            self.store.add(items, vectors)
        except Exception as exc:
            log.debug("commit failed", exc_info=True)
            reason = f"could not store: {_one_line(exc, '')}"
            report.failed.extend(Failure(d.blob.uri, reason) for d in docs)
            return
        self.catalog.commit([DocRecord(d.doc_id, d.blob.uri, d.blob.name, d.blob.mime,
                                       len(d.blob.data), [it.id for it in d.items],
                                       time.time()) for d in docs])
        for d in docs:
            (report.replaced if d.replaces else report.added).append(d.blob.uri)
        report.items += len(items)
        stale = [d.replaces for d in docs if d.replaces and not self.catalog.by_doc_id(d.replaces)]
        if stale:
            self.store.delete(stale)

    def _commit_aliases(self, aliases: list[tuple[Blob, str]]) -> None:
        records = []
        for blob, doc_id in aliases:
            twins = self.catalog.by_doc_id(doc_id)
            if twins:  # absent when the original failed to store
                records.append(DocRecord(doc_id, blob.uri, blob.name, blob.mime,
                                         len(blob.data), twins[0].item_ids, time.time()))
        self.catalog.commit(records)

    def _vectors(self, docs: list[_Doc], items: list[Item]) -> dict[str, np.ndarray]:
        """One matrix per space; rows of items without a vector there are NaN."""
        out: dict[str, np.ndarray] = {}
        chunked = {(it.doc_id, it.page) for it in items if it.modality == "text"}
        for space, enc in self.encoders.items():
            mat = np.full((len(items), enc.dim), np.nan, dtype=np.float32)
            if enc.supports_images:
                row = 0
                for d in docs:
                    for idx, vec in d.vectors.get(space, {}).items():
                        mat[row + idx] = vec
                    row += len(d.items)
            elif enc.supports_text:
                rows = [i for i, it in enumerate(items) if _embed_text(it, chunked)]
                if rows:
                    mat[rows] = enc.encode_text([items[i].text for i in rows])
            out[space] = mat
        return out

    # -- read ------------------------------------------------------------------------
    def search(self, query: Any, k: int = 10, filters: Filters | dict[str, Any] | None = None,
               *, image: Any = None, group_by: str | None = None,
               mode: str = "hybrid") -> list[Hit]:
        """Search by text, image, or both.

        ``query`` is text, an image (path, bytes, PIL image, URL), a ``(text, image)``
        tuple or ``{"text": ..., "image": ...}``; ``image=`` adds an image to a text query.
        ``mode`` is ``hybrid`` (default), ``dense`` or ``bm25``; ``group_by`` is ``page``
        (default), ``doc`` or ``item``.
        """
        if k < 1:
            raise QueryError(f"k must be at least 1, got {k!r}")
        q = self._to_query(query, image)
        return self._searcher().search(q, k, Filters.build(filters), group_by, mode)

    def _searcher(self) -> Searcher:
        return Searcher(self.store, self.encoders, self.settings.search, self._media_path)

    def _media_path(self, key: str) -> str | None:
        path = self.media.path(key)
        return str(path) if path.exists() else None

    def _to_query(self, query: Any, image: Any) -> Query:
        if isinstance(query, Query):
            return query
        text = None
        if isinstance(query, tuple):
            text, image = query
        elif isinstance(query, dict):
            text, image = query.get("text"), query.get("image", image)
        elif isinstance(query, str) and not _looks_like_image(query):
            text = query
        elif query is not None:
            image = query
        return Query(text=text, image=self._query_image(image) if image is not None else None)

    def _query_image(self, ref: Any) -> Image.Image:
        """Decode a query image from a PIL image, bytes, path, data: URI or URL."""
        if isinstance(ref, Image.Image):
            return ref.convert("RGB")
        label = str(ref)[:80] if not isinstance(ref, bytes) else "<bytes>"
        try:
            if isinstance(ref, bytes):
                data = ref
            elif str(ref).startswith(("http://", "https://")):
                data = fetch_url(str(ref), self.settings.ingest).data
            elif str(ref).startswith("data:"):
                data = base64.b64decode(str(ref).split(",", 1)[1])
            else:
                data = Path(ref).expanduser().read_bytes()
            with Image.open(io.BytesIO(data)) as img:
                return img.convert("RGB")
        except MmragError:
            raise
        except Exception as exc:
            raise QueryError(f"cannot read query image {label!r}: {_one_line(exc, '')}") from exc

    def get(self, item_id: str) -> Item | None:
        found = self.store.get([item_id])
        return found[0] if found else None

    def media_path(self, item: Item) -> Path | None:
        """Where the stored image/page render of an item is, if it has one."""
        return self.media.path(item.media) if item.media else None

    def documents(self) -> list[DocRecord]:
        return self.catalog.all()

    def delete(self, targets: str | Path | Iterable[str | Path]) -> int:
        """Delete documents by doc id, by source path/URL, or every source under a folder.

        Returns how many sources were removed; items go once no source refers to them.
        """
        if isinstance(targets, (str, Path)):
            targets = [targets]
        records: dict[str, DocRecord] = {}
        for t in targets:
            t = str(t)
            found = self.catalog.by_doc_id(t) or self.catalog.under(t)
            if not found and "://" not in t:
                found = self.catalog.under(str(Path(t).expanduser().resolve()))
            for r in found:
                records[r.source] = r
        if not records:
            return 0
        self.catalog.remove_sources(records)
        gone = sorted({r.doc_id for r in records.values()} - self.catalog.doc_ids())
        if gone:
            self.store.delete(gone)
        return len(records)

    def info(self) -> dict[str, Any]:
        docs = self.catalog.all()
        return {"path": str(self.root), "profile": self.profile,
                "store": self.settings.store.backend, "documents": len(docs),
                "items": self.store.count(),
                "spaces": self._read_manifest().get("spaces", {}),
                "encoders": self._read_manifest().get("encoders", {})}

    def optimize(self) -> None:
        self.store.optimize()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        self.catalog.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Index({str(self.root)!r}, profile={self.profile!r})"


def _embed_text(item: Item, chunked: set[tuple[str, int]]) -> bool:
    """Whether an item gets a text vector.

    A page whose text is also split into chunks is embedded through those chunks only:
    the page text would be truncated by the encoder anyway and cost a second forward pass.
    """
    if not item.text.strip():
        return False
    return not (item.modality == "page" and (item.doc_id, item.page) in chunked)


def _looks_like_image(text: str) -> bool:
    if text.startswith("data:image/"):
        return True
    if text.startswith(("http://", "https://")):
        return Path(text.split("?", 1)[0]).suffix.lower() in IMAGE_SUFFIXES
    if len(text) > 1024 or "\n" in text:
        return False
    try:
        path = Path(text).expanduser()
        return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    except OSError:
        return False


def _one_line(exc: BaseException, source: str) -> str:
    """The first line of an error, without the source prefix IngestError already adds."""
    if isinstance(exc, IngestError):
        msg = exc.reason
    else:
        msg = str(exc) or type(exc).__name__
    msg = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    if source and msg.startswith(source + ": "):
        msg = msg[len(source) + 2:]
    return msg[:300]


def _state_dir_for(uri: str) -> str:
    return str(Path("~/.cache/mmrag").expanduser() / hashlib.sha256(uri.encode()).hexdigest()[:16])


def iter_hits_json(hits: Sequence[Hit]) -> Iterator[dict[str, Any]]:
    for rank, hit in enumerate(hits, 1):
        yield {"rank": rank, **hit.to_dict()}
