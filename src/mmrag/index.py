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
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from PIL import Image

from .catalog import Catalog, DocRecord
from .config import MediaSettings, Settings
from .encode import build_encoders
from .encode.active import apply_active
from .encode.base import Encoder
from .encode.caption import ImageCaptioner, captioners
from .errors import ConfigError, DiskFullError, MmragError, QueryError
from .ingest.executors import executors
from .ingest.fetch import fetch_url
from .ingest.media import MediaStore
from .ingest.office.convert import render_status
from .ingestion import Ingestion, one_line
from .locks import FileLock
from .search.query import Query
from .search.rerank import Reranker, rerankers
from .search.searcher import Searcher
from .store import stores
from .store.base import Store
from .store.multivec import MultiVectorStore
from .types import AddReport, Answer, Filters, Hit, Item

if TYPE_CHECKING:
    from .check import CheckReport
    from .generate.answerer import AnswerStream
    from .generate.base import Generator
    from .generate.rewrite import Rewrite
    from .search.router import Route

log = logging.getLogger(__name__)

MANIFEST = "mmrag.json"
# Spaces whose items keep a token matrix for MaxSim, by profile.
MULTIVECTOR_SPACES = {"colpali": ("colpali",)}
MANIFEST_ENCODE_KEYS = ("model", "encoder", "multivector")
# Present once this folder's catalog has written to its store: recovery may then delete
# uncatalogued rows of a shared store as its own crash's leftovers.
WROTE_MARK = "wrote-store"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


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
        self.media = _media_store(self.root, self.settings.media)
        # shared with other processes on this folder: see locks.py
        self.lock = FileLock(self.root / "index.lock")
        self.media_lock = FileLock(self.root / "media.lock")
        self._encoders: dict[str, Encoder] | None = None
        self._store: Store | None = None
        self._multivec: dict[str, MultiVectorStore] | None = None
        self._captioner: ImageCaptioner | None = None
        self._reranker: Reranker | None = None
        self._generators: dict[str, Generator] = {}  # by name, built on first ask
        self._router: Any = None  # the query router of search.router, built on first ask
        self._checker: Any = None  # the answer support checker, built on first ask
        self._embed_cache: Any = None  # (text encoder, its cached encode_text), on first ask
        self._optimized_at: float | None = None  # monotonic time of the last optimize
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
        if (s.profile and s.profile != built) or (
                not s.profile and s.encode.vision_model and built == "offline"):
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
        privacy = {**manifest.get("privacy", {}),
                   **s.privacy.model_dump(include=s.privacy.model_fields_set)}
        return s.model_copy(update={"profile": built, "encode": type(s.encode)(**enc),
                                    "store": type(s.store)(**store),
                                    "privacy": type(s.privacy)(**privacy)})

    def _read_manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def profile(self) -> str:
        return self.settings.resolved_profile

    @property
    def encoders(self) -> dict[str, Encoder]:
        if self._encoders is None:
            manifest = self._read_manifest()
            # a space `mmrag tune` switched reads its tuned model's column (encode/active.py)
            built = apply_active(build_encoders(self.settings), manifest.get("active", {}),
                                 self.root, self.settings)
            spaces = manifest.get("spaces")
            # An index keeps the spaces it was built with, even if a profile gains one.
            self._encoders = {n: e for n, e in built.items() if not spaces or n in spaces}
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

    @property
    def captioner(self) -> ImageCaptioner | None:
        """The image-to-text model of ``encode.caption_model``, loaded on first use."""
        enc = self.settings.encode
        if self._captioner is None and enc.caption_model:
            self._captioner = captioners.create(
                "transformers", enc.caption_model, device=enc.device, threads=enc.threads,
                prompt=enc.caption_prompt, max_new_tokens=enc.caption_max_new_tokens)
        return self._captioner

    @property
    def reranker(self) -> Reranker | None:
        """The second-stage model of ``search.rerank``, loaded on first search."""
        s, enc = self.settings.search, self.settings.encode
        name = s.rerank
        if self._reranker is None and name not in ("auto", "none", "", "off"):
            self._reranker = rerankers.create(
                name, model=s.rerank_model, device=enc.device, threads=enc.threads,
                precision=enc.precision, batch_size=enc.batch_size)
        return self._reranker

    @property
    def multivec(self) -> dict[str, MultiVectorStore]:
        """Token-matrix stores of the late-interaction spaces (empty for other profiles)."""
        if self._multivec is None:
            spaces = self._read_manifest().get("spaces") or {}
            if not spaces:
                spaces = {n: e.dim for n, e in self.encoders.items()}
            self._multivec = {
                name: MultiVectorStore(self.root / "multivec" / name, spaces[name],
                                       dtype=self.settings.encode.multivector,
                                       centroids=self.settings.search.late_centroids,
                                       train_at=self.settings.search.late_index_min_pages)
                for name in MULTIVECTOR_SPACES.get(self.profile, ()) if name in spaces}
        return self._multivec

    def _write_manifest(self, spaces: dict[str, int]) -> None:
        manifest = {
            "version": 1, "profile": self.profile, "spaces": spaces,
            "encode": {k: v for k, v in self.settings.encode.model_dump().items()
                       if k.endswith(MANIFEST_ENCODE_KEYS)},
            "encoders": {n: e.describe() for n, e in self.encoders.items()},
            "store": {"backend": self.settings.store.backend,
                      "collection": self.settings.store.collection},
            # an index made to blur faces or mask PII must keep doing so when it is reopened
            # without those settings (a later `mmrag add`, another server process)
            "privacy": self.settings.privacy.model_dump(),
        }
        tmp = self.root / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        tmp.replace(self.root / MANIFEST)

    def _recover(self) -> None:
        """Make store and catalog agree after a crash (see catalog.py for the order).

        Under the write lock, so a commit in flight in another process (rows stored, its
        catalog row not yet written) is not mistaken for a crash's leftovers. A failure
        (a full disk cannot take the deletes) only warns: the index still opens, and
        the next open or ``mmrag check --repair`` finishes the job.
        """
        try:
            with self.lock.hold():
                self._recover_locked()
        except Exception as exc:  # noqa: BLE001 - the index must still open
            log.warning("could not clean up after an interrupted run (%s); run `mmrag "
                        "check --repair` later", one_line(exc, ""))

    def _recover_locked(self) -> None:
        in_store = self.store.doc_ids()
        in_catalog = self.catalog.doc_ids()
        orphans = in_store - in_catalog
        if (orphans and not in_catalog and "://" in self.settings.store.uri
                and not (self.root / WROTE_MARK).exists()):
            # A shared store (s3://, a Milvus cluster) opened with an empty catalog by a
            # folder that never wrote to it is another machine reading, not a crash.
            log.warning("the store at %s holds %d document(s) this index's catalog does "
                        "not list; left alone (one machine writes a shared store; `mmrag "
                        "check --repair` deletes them)", self.settings.store.uri,
                        len(orphans))
            orphans = set()
        if orphans:
            log.warning("removing %d half-ingested document(s) left by an interrupted run",
                        len(orphans))
            self.store.delete(sorted(orphans))
        known = self.catalog.doc_ids() if self.multivec else set()
        for mv in self.multivec.values():
            stray = [i for i in mv.ids() if i.split(":", 1)[0] not in known]
            if stray:
                mv.delete(stray)
        # documents with no items (silent audio) are rightly absent from the store
        lost = {r.doc_id for r in self.catalog.all() if r.item_ids} - in_store
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
        executor = executors.create(self.settings.ingest.executor)
        if not (self.root / WROTE_MARK).exists():  # see _recover_locked
            (self.root / WROTE_MARK).touch()
        executor_is_local = self.settings.ingest.executor == "local"
        due = self._optimize_due()
        try:
            ingestion = Ingestion(self.settings, self.catalog, self.media, self.store,
                                  self.encoders, self.multivec,
                                  # a Ray run captions on its workers
                                  self.captioner if executor_is_local else None,
                                  write_lock=self.lock, media_lock=self.media_lock,
                                  optimize=due)
            report = executor.run(ingestion, sources, metadata, show_progress)
        except DiskFullError:
            self._after_disk_full()
            raise
        if ingestion.optimized:
            self._optimized_at = time.monotonic()
        return report

    def _optimize_due(self) -> bool:
        """Whether this add should end with an optimize (see ingest.optimize_interval_s)."""
        interval = self.settings.ingest.optimize_interval_s
        return (self._optimized_at is None
                or time.monotonic() - self._optimized_at >= interval)

    def _after_disk_full(self) -> None:
        """Leave a full disk's index as consistent as before the run: the media of the
        groups that never committed go (deleting frees space, needs none), then the
        space they held lets recovery delete any rows left uncatalogued."""
        try:
            self.collect_media()
        except Exception:  # the disk-full error is the one to report
            log.debug("media collection after a full disk failed", exc_info=True)
        self._recover()

    # -- read ------------------------------------------------------------------------
    def search(self, query: Any, k: int = 10, filters: Filters | dict[str, Any] | None = None,
               *, image: Any = None, group_by: str | None = None,
               mode: str = "hybrid", route: Route | bool = False) -> list[Hit]:
        """Search by text, image, or both.

        ``query`` is text, an image (path, bytes, PIL image, URL), a ``(text, image)``
        tuple or ``{"text": ..., "image": ...}``; ``image=`` adds an image to a text query.
        ``mode`` is ``hybrid`` (default), ``dense`` or ``bm25``; ``group_by`` is ``page``
        (default), ``doc`` or ``item``. ``route=True`` (or a :class:`Route`) limits the
        search to the modalities the query router picks for the text, unless ``filters``
        names modalities itself; a routed search that finds nothing searches everything.
        """
        if k < 1:
            raise QueryError(f"k must be at least 1, got {k!r}")
        q = self._to_query(query, image)
        flt = Filters.build(filters)
        if route is True:
            route = self.route(q.text or "", k, has_image=q.image is not None)
        if route and route.modalities and not (flt and flt.modality):
            from dataclasses import replace

            routed = replace(flt or Filters(), modality=list(route.modalities))
            hits = self._searcher().search(q, k, routed, group_by, mode)
            if hits:
                return hits
        return self._searcher().search(q, k, flt, group_by, mode)

    def route(self, question: str, k: int | None = None, *, has_image: bool = False) -> Route:
        """What the query router (``search.router``) makes of ``question``: the
        modalities to search and how many hits to fetch (``k`` is the default it starts
        from, ``generate.k`` if not given)."""
        from .search.router import create_router

        if self._router is None:
            self._router = create_router(self.settings.search.router)
        route: Route = self._router.route(question, k or self.settings.generate.k,
                                          has_image=has_image)
        return route

    def _searcher(self) -> Searcher:
        return Searcher(self.store, self.encoders, self.settings.search, self._media_path,
                        self.multivec, self.reranker)

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
            raise QueryError(f"cannot read query image {label!r}: {one_line(exc, '')}") from exc

    def get(self, item_id: str) -> Item | None:
        found = self.store.get([item_id])
        return found[0] if found else None

    def media_path(self, item: Item) -> Path | None:
        """Where the stored image/page render of an item is, if it has one."""
        return self.media.path(item.media) if item.media else None

    # -- answer ----------------------------------------------------------------------
    @overload
    def ask(self, question: str, image: Any = None, k: int | None = None, *,
            filters: Filters | dict[str, Any] | None = None, generator: str | None = None,
            stream: Literal[False] = False) -> Answer: ...

    @overload
    def ask(self, question: str, image: Any = None, k: int | None = None, *,
            filters: Filters | dict[str, Any] | None = None, generator: str | None = None,
            stream: Literal[True]) -> AnswerStream: ...

    def ask(self, question: str, image: Any = None, k: int | None = None, *,
            filters: Filters | dict[str, Any] | None = None, generator: str | None = None,
            stream: bool = False) -> Answer | AnswerStream:
        """Answer ``question`` from the indexed material, citing hits as ``[n]``.

        Retrieves ``k`` hits (default ``generate.k``) for the question and/or ``image``,
        prompts ``generator`` (default ``generate.generator``; ``extractive`` needs no model)
        and resolves the citations. ``stream=True`` returns an ``AnswerStream``: iterate it
        for text deltas, then read ``.answer``.
        """
        from .generate.answerer import Answerer

        if not (question or "").strip() and image is None:
            raise QueryError("ask needs a question, an image, or both")
        if k is not None and k < 1:
            raise QueryError(f"k must be at least 1, got {k!r}")
        picture = self._query_image(image) if image is not None else None
        flt = Filters.build(filters)
        # the router picks the modalities, and k when the caller gave none
        route = self.route(question or "", k, has_image=picture is not None)
        k = k or route.k

        def search(text: str | None, n: int, img: Image.Image | None) -> list[Hit]:
            return self.search(text, n, flt, image=img, route=route)

        enc = self._text_encoder()
        embed = self._cached_embed(enc)
        pending = Answerer(search, self._generator(generator), self._generate_settings(enc),
                           embed=embed, checker=self._support_checker(embed)
                           ).ask(question or "", picture, k)
        return _searched_for(pending, " ".join((question or "").split()), stream)

    @overload
    def chat(self, messages: Sequence[Any], image: Any = None, k: int | None = None, *,
             filters: Filters | dict[str, Any] | None = None, generator: str | None = None,
             rewritten: Rewrite | None = None, stream: Literal[False] = False) -> Answer: ...

    @overload
    def chat(self, messages: Sequence[Any], image: Any = None, k: int | None = None, *,
             filters: Filters | dict[str, Any] | None = None, generator: str | None = None,
             rewritten: Rewrite | None = None, stream: Literal[True]) -> AnswerStream: ...

    def chat(self, messages: Sequence[Any], image: Any = None, k: int | None = None, *,
             filters: Filters | dict[str, Any] | None = None, generator: str | None = None,
             rewritten: Rewrite | None = None, stream: bool = False) -> Answer | AnswerStream:
        """Answer the last user message of a conversation, as :meth:`ask` does, after
        rewriting it into a standalone query from the earlier turns ("and in the
        appendix?" → "What is the ... in the appendix?"; see ``generate/rewrite.py``).

        ``messages`` are ``{"role": "user"|"assistant", "content": ...}`` dicts (an
        assistant turn may carry ``citations`` as ``Answer.to_dict()`` gives them, or the
        ``Sources:`` lines mmrag prints) or plain strings (user turns). A follow-up that
        points back at the previous answer ("it", "that document") searches the documents
        it cited, or everything when they hold nothing relevant. ``Answer.query`` is the
        query searched; ``rewritten`` skips the rewrite (from :meth:`rewrite`).
        """
        rw = rewritten or self.rewrite(messages, generator=generator)
        flt = Filters.build(filters)
        if rw.doc_ids and rw.query and not (flt and flt.doc_id):
            from dataclasses import replace

            narrowed = replace(flt or Filters(), doc_id=list(rw.doc_ids))
            if self.search(rw.query, 1, narrowed):
                flt = narrowed
        if stream:
            return self.ask(rw.query, image, k, filters=flt, generator=generator, stream=True)
        return self.ask(rw.query, image, k, filters=flt, generator=generator)

    def rewrite(self, messages: Sequence[Any], *, generator: str | None = None) -> Rewrite:
        """The last user message of ``messages`` as a standalone query (what :meth:`chat`
        searches); the rewriter is ``generate.rewrite``."""
        from .generate.rewrite import create_rewriter, to_turns

        turns = to_turns(messages)
        if not turns or turns[-1].role != "user":
            raise QueryError("a chat must end with a user message")
        name = self.settings.generate.rewrite
        gen = self._generator(generator) if name in ("auto", "llm") else None
        return create_rewriter(name, gen).rewrite(turns[:-1], turns[-1].text)

    def _text_encoder(self) -> Encoder | None:
        """The encoder whose ``encode_text`` serves the weak-evidence rule and the support
        check of answers: space ``text`` first, else the first single-vector space that
        embeds text; None when no space embeds text."""
        spaces = {n: e for n, e in self.encoders.items()
                  if e.supports_text and n not in self.multivec}
        return spaces.get("text") or next(iter(spaces.values()), None)

    def _cached_embed(self, enc: Encoder | None) -> Callable[[Sequence[str]], Any] | None:
        """``enc.encode_text`` behind one cache per index, shared by the weak-evidence rule
        and the support checker (they embed the same source windows)."""
        from .generate.grounding import memo_embed

        if enc is None:
            return None
        if self._embed_cache is None or self._embed_cache[0] is not enc:
            self._embed_cache = (enc, memo_embed(enc.encode_text))
        return self._embed_cache[1]

    def _generate_settings(self, enc: Encoder | None) -> Any:
        """``generate`` settings with ``min_confidence`` resolved: unset means the value
        calibrated for this text encoder (generate/evidence.py), or the rule off."""
        from .generate.evidence import calibrated_threshold

        g = self.settings.generate
        if g.min_confidence is not None or enc is None:
            return g
        return g.model_copy(update={"min_confidence": calibrated_threshold(enc.describe())})

    def _support_checker(self, embed: Callable[[Sequence[str]], Any] | None) -> Any:
        """The configured support checker, built once per index (an NLI model is slow to
        load)."""
        from .generate.grounding import create_checker

        g = self.settings.generate
        if self._checker is None:
            self._checker = create_checker(g.support_checker, embed, nli_model=g.nli_model)
        return self._checker

    def _generator(self, name: str | None) -> Generator:
        """The named (or configured) generator, built once per index: local models are
        slow to load."""
        from .generate import create_generator

        settings = self.settings.generate
        if name and name != settings.generator:
            settings = settings.model_copy(update={"generator": name})
        if settings.generator not in self._generators:
            self._generators[settings.generator] = create_generator(settings)
        return self._generators[settings.generator]

    def documents(self) -> list[DocRecord]:
        return self.catalog.all()

    def delete(self, targets: str | Path | Iterable[str | Path]) -> int:
        """Delete documents by doc id, by source path/URL, or every source under a folder.

        Returns how many sources were removed; items go once no source refers to them,
        and so do the attachments of a removed e-mail (counted among the sources), and
        their media files that no other item shows (unless an add is running: then the
        next :meth:`optimize` collects them).
        """
        if isinstance(targets, (str, Path)):
            targets = [targets]
        with self.lock.hold():
            removed, shown = self._delete_locked(targets)
        if shown:
            self._collect_media_of(shown)
        return removed

    def _delete_locked(self, targets: Iterable[str | Path]) -> tuple[int, set[str]]:
        """Catalog rows first, then store rows: a crash in between leaves orphans that
        the next open removes, never a catalogued document with missing items."""
        records: dict[str, DocRecord] = {}
        for t in targets:
            t = str(t)
            found = self.catalog.by_doc_id(t) or self.catalog.under(t)
            if not found and "://" not in t:
                found = self.catalog.under(str(Path(t).expanduser().resolve()))
            for r in found:
                records[r.source] = r
        if not records:
            return 0, set()
        self.catalog.remove_sources(records)
        removed = {r.doc_id for r in records.values()} - self.catalog.doc_ids()
        family = self.catalog.descendants(removed)  # an e-mail's attachments go with it
        if family:
            self.catalog.remove_sources([r.source for r in family])
            records.update((r.source, r) for r in family)
        gone = sorted({r.doc_id for r in records.values()} - self.catalog.doc_ids())
        shown: set[str] = set()
        if gone:
            ids = [i for r in records.values() if r.doc_id in gone for i in r.item_ids]
            shown = {it.media for it in self.store.get(ids) if it.media}
            self.store.delete(gone)
            for mv in self.multivec.values():
                mv.delete(ids)
        return len(records), shown

    def _collect_media_of(self, keys: set[str]) -> None:
        """Delete the media of deleted items that no remaining item shows."""
        with self.media_lock.try_exclusive() as free:
            if not free:  # an add may be about to commit a row showing one of them
                log.info("an add is running: media of deleted documents is collected by "
                         "the next optimize")
                return
            from .check import store_rows

            with self.lock.hold():
                used = {key for _, _, key in store_rows(self) if key}
                self.media.remove(keys - used)

    def collect_media(self) -> int | None:
        """Delete media files no item refers to; returns how many, or None when an add
        was running (it writes media before committing the rows that show it)."""
        from .check import store_rows

        with self.media_lock.try_exclusive() as free:
            if not free:
                log.info("an add is running: media collection skipped")
                return None
            with self.lock.hold():
                used = {key for _, _, key in store_rows(self) if key}
                # no add runs, so every temp file is the leftover of a killed write
                return self.media.remove_unreferenced(used, tmp_age_s=0)

    def check(self, repair: bool = False) -> CheckReport:
        """Compare catalog, store, media and token-matrix shards (see check.py); with
        ``repair``, delete orphans and unreferenced media and forget incomplete
        documents so that adding their sources again re-indexes them."""
        from .check import check_index

        return check_index(self, repair)

    def info(self) -> dict[str, Any]:
        docs = self.catalog.all()
        return {"path": str(self.root), "profile": self.profile,
                "store": self.settings.store.backend, "documents": len(docs),
                "items": self.store.count(),
                "spaces": self._read_manifest().get("spaces", {}),
                "encoders": self._read_manifest().get("encoders", {}),
                "office_renders": render_status(self.settings.ingest)}

    def optimize(self) -> int | None:
        """Fold new rows into the store's indexes, retrain late-interaction centroid
        indexes (of stores holding ``search.late_index_min_pages`` pages) and collect
        unreferenced media; returns :meth:`collect_media`'s count."""
        with self.lock.hold():
            self.store.optimize()
            for mv in self.multivec.values():
                mv.optimize()
        self._optimized_at = time.monotonic()
        return self.collect_media()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        for mv in (self._multivec or {}).values():
            mv.close()
        self.catalog.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Index({str(self.root)!r}, profile={self.profile!r})"


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


def _searched_for(pending: AnswerStream, query: str, stream: bool) -> Answer | AnswerStream:
    """``pending`` with ``Answer.query`` set to what was searched."""
    from .generate.answerer import AnswerStream

    def steps() -> Iterator[str | Answer]:
        try:
            yield from pending
            answer = pending.answer
            answer.query = query
            yield answer
        finally:
            pending.close()  # a closed outer stream stops the generator now

    tagged = AnswerStream(steps())
    return tagged if stream else tagged.answer


def _media_store(root: Path, settings: MediaSettings) -> MediaStore:
    """The index folder's media/, or object storage at ``media.uri`` cached there."""
    if not settings.uri:
        return MediaStore(root / "media", settings)
    from .ingest.remote_media import RemoteMediaStore

    return RemoteMediaStore(settings.uri, root / "media", settings, settings.storage_options)


def _state_dir_for(uri: str) -> str:
    return str(Path("~/.cache/mmrag").expanduser() / hashlib.sha256(uri.encode()).hexdigest()[:16])


def iter_hits_json(hits: Sequence[Hit]) -> Iterator[dict[str, Any]]:
    for rank, hit in enumerate(hits, 1):
        yield {"rank": rank, **hit.to_dict()}
