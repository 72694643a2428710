"""The add pipeline: sources → pieces → items + vectors → one store write per group.

Documents are committed in groups. Each group is one atomic store write followed by one
catalog transaction (see catalog.py for why that order makes crashes safe).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from .catalog import Catalog, DocRecord
from .config import Settings
from .encode.base import Encoder
from .encode.caption import ImageCaptioner
from .encode.zeroshot import ZeroShot, zero_shot_encoder
from .errors import DiskFullError, IngestError, MmragError, disk_full
from .ingest import load, resolve
from .ingest.attachments import child_blob, child_doc_id, is_attachment, plausible
from .ingest.audio import SAMPLE_RATE
from .ingest.base import Piece
from .ingest.facets import describe
from .ingest.media import MediaStore
from .ingest.privacy import mask_text, protect
from .locks import FileLock
from .progress import Progress
from .search.late import mean_vector
from .search.searcher import page_item_id
from .store.base import Store
from .store.multivec import MultiVectorStore
from .timing import StageTimes, bind, recording, stage
from .types import AddReport, Blob, Failure, Item

log = logging.getLogger(__name__)

T = TypeVar("T")

# Flush a commit group early once it holds this many items, to bound memory.
MAX_PENDING_ITEMS = 4096


@dataclass(slots=True)
class _Doc:
    """A fully loaded document waiting for its text vectors and its store commit."""

    blob: Blob
    doc_id: str
    items: list[Item] = field(default_factory=list)
    vectors: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    multi: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    replaces: str | None = None
    replaces_ids: list[str] = field(default_factory=list)
    replaces_family: list[DocRecord] = field(default_factory=list)  # the old attachments
    media: dict[int, Future[str]] = field(default_factory=dict)  # item index → stored key
    parent: str = ""  # doc id of the document this one is attached to
    depth: int = 0  # attachment nesting: 0 for a source, 1 for an e-mail's attachment...
    attachments: list[Piece] = field(default_factory=list)  # files found inside, to load


class Ingestion:
    """Adds sources to an index's store and catalog; built by ``Index.add`` per call."""

    def __init__(self, settings: Settings, catalog: Catalog, media: MediaStore, store: Store,
                 encoders: dict[str, Encoder],
                 multivec: dict[str, MultiVectorStore] | None = None,
                 captioner: ImageCaptioner | None = None, *,
                 write_lock: FileLock | None = None, media_lock: FileLock | None = None,
                 optimize: bool = True):
        self.settings = settings
        self.optimize = optimize  # fold this run's rows into the indexes at its end
        self.optimized = False  # it did, and the optimize succeeded
        # see locks.py: commits exclude recovery/checks of other processes, and media
        # written before its commit is kept from garbage collection for the whole run
        self._write_lock = write_lock
        self._media_lock = media_lock
        self.captioner = captioner
        self.multivec = multivec or {}
        self.catalog = catalog
        self.media = media
        self.store = store
        self.encoders = encoders
        # encoders that embed while loading (their vectors do not wait for the commit)
        self._image_encoders = {n: e for n, e in encoders.items() if e.supports_images}
        self._audio_encoders = {n: e for n, e in encoders.items() if _takes_audio(e)}
        # loaders cut audio into clips only when something embeds them
        self._ingest = (settings.ingest.model_copy(update={"audio_clips": True})
                        if self._audio_encoders else settings.ingest)
        self.privacy: dict[str, int] = {}  # counts of what privacy settings removed
        # ingest.auto_tags: zero-shot labels scored on the clip space's image vectors
        self.tagger = _tagger(settings, encoders)
        # Page renders are JPEG-encoded and written on a second thread while the loader and
        # the encoders go on (PIL and file writes release the GIL); commit waits for them.
        self._writer: ThreadPoolExecutor | None = None

    def run(self, sources: Any, metadata: dict[str, Any] | None = None,
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
        times = StageTimes()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="mmrag-media")
        with recording(times), Progress("indexing", show) as bar, self._media_in_use(), \
                self._finally_no_writer():
            for entry in timed(resolve(sources, self.settings.ingest), "read"):
                if isinstance(entry, Failure):
                    report.failed.append(entry)
                    bar.advance(entry.source, failed=True)
                    continue
                bar.advance(entry.name)
                try:
                    doc = self._plan(entry, report, seen, aliases)
                    if doc is not None:
                        self._load(doc, metadata or {})
                except MmragError as exc:
                    report.failed.append(Failure(entry.uri, one_line(exc, entry.uri)))
                    entry.cleanup()
                    continue
                except Exception as exc:  # a loader bug or a vanished file: not the run's end
                    log.debug("loader crashed on %s", entry.uri, exc_info=True)
                    report.failed.append(Failure(entry.uri, f"{type(exc).__name__}: "
                                                            f"{one_line(exc, entry.uri)}"))
                    entry.cleanup()
                    continue
                if doc is None:  # skipped or an alias: its bytes are not needed again
                    entry.cleanup()
                    continue
                if not doc.items and not _may_be_empty(entry):
                    report.failed.append(Failure(entry.uri, "no content found"))
                    entry.cleanup()
                    continue
                # attachments join their parent's commit group: all or none are stored
                family = [doc, *self._children(doc, metadata or {}, report)]
                pending.extend(family)
                seen.update(d.doc_id for d in family)
                if (len(pending) >= self.settings.ingest.batch_size
                        or sum(len(d.items) for d in pending) >= MAX_PENDING_ITEMS):
                    self._commit(pending, report)
                    pending = []
            self._commit(pending, report)
            with self._writing():
                self._commit_aliases(aliases)
            self._optimize_after(report)
        report.seconds = time.perf_counter() - t0
        report.timings = times.as_dict()
        report.privacy, self.privacy = self.privacy, {}
        return report

    def _optimize_after(self, report: AddReport) -> None:
        """End of a local run: optimize if it wrote rows and ``Index.add`` asked for it
        (``ingest.optimize_interval_s``)."""
        if (report.added or report.replaced) and self.optimize:
            self._optimize()

    def _optimize(self) -> None:
        """Fold the run's rows into the store's indexes. Not fatal: they are committed and
        searchable already (scanned), and a full disk must not turn into a failed add."""
        try:
            with stage("optimize"), self._writing():
                self.store.optimize()
            self.optimized = True
        except Exception as exc:  # noqa: BLE001 - the rows are committed already
            log.warning("could not optimize the store (%s); search works, and `mmrag "
                        "optimize` retries", one_line(exc, ""))

    def _writing(self) -> AbstractContextManager[None]:
        return self._write_lock.hold() if self._write_lock is not None else nullcontext()

    def _media_in_use(self) -> AbstractContextManager[None]:
        return self._media_lock.shared() if self._media_lock is not None else nullcontext()

    @contextmanager
    def _finally_no_writer(self) -> Iterator[None]:
        """Wait for queued media writes, then forget the writer (it is per run)."""
        try:
            yield
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
            self._writer = None

    def _plan(self, blob: Blob, report: AddReport, seen: set[str],
              aliases: list[tuple[Blob, str]]) -> _Doc | None:
        """Decide add / skip / replace before any decoding work is spent."""
        doc_id = blob.sha256()[:16]
        old = self.catalog.by_source(blob.uri)
        if old and old.doc_id == doc_id:
            report.skipped.append(blob.uri)
            return None
        if self.catalog.by_doc_id(doc_id) or doc_id in seen:
            # Same bytes under another name: reuse its items, remember the new source.
            aliases.append((blob, doc_id))
            report.skipped.append(blob.uri)
            return None
        return _Doc(blob=blob, doc_id=doc_id, replaces=old.doc_id if old else None,
                    replaces_ids=old.item_ids if old else [],
                    replaces_family=self.catalog.descendants([old.doc_id]) if old else [])

    def _load(self, doc: _Doc, metadata: dict[str, Any]) -> None:
        image_encoders, audio_encoders = self._image_encoders, self._audio_encoders
        batch: list[tuple[int, Image.Image]] = []
        sounds: list[tuple[int, np.ndarray]] = []
        for piece in timed(load(doc.blob, self._ingest), "load"):
            if is_attachment(piece):  # a document of its own, loaded after this one
                doc.attachments.append(piece)
                continue
            with stage("privacy"):  # before anything is stored, captioned or embedded
                shown = protect(piece, self.settings.privacy, self.privacy)
            with stage("caption"):
                self._caption(piece)
            with stage("facets"):
                readings = self._facets(piece)
            idx = len(doc.items)
            doc.items.append(self._item(doc, piece, metadata))
            self._write_media(doc, idx, piece)
            doc.items.extend(self._item(doc, r, metadata) for r in readings)
            if shown is not None and image_encoders:
                batch.append((idx, shown))
            if len(batch) >= self.settings.encode.batch_size:
                self._encode_images(doc, batch, image_encoders)
                batch = []
            if piece.audio is not None and audio_encoders:
                sounds.append((idx, piece.audio))
                piece.audio = None
            if len(sounds) >= self.settings.encode.batch_size:
                self._encode_audio(doc, sounds, audio_encoders)
                sounds = []
        if batch:
            self._encode_images(doc, batch, image_encoders)
        if sounds:
            self._encode_audio(doc, sounds, audio_encoders)

    def _children(self, parent: _Doc, metadata: dict[str, Any],
                  report: AddReport) -> list[_Doc]:
        """The files a loader found inside ``parent`` (an e-mail's attachments), each
        sniffed and loaded as a document of its own, recursively up to
        ``ingest.attachment_depth``. A child that cannot be read is reported under its
        own name; the parent and its other children are still added. Types no loader
        reads (an .exe, a signature) are skipped: the parent's text names them."""
        pieces, parent.attachments = parent.attachments, []
        if parent.depth >= self.settings.ingest.attachment_depth:
            if pieces:
                log.info("%s: %d attachment(s) nested deeper than ingest.attachment_depth "
                         "not indexed", parent.blob.uri, len(pieces))
            return []
        family: list[_Doc] = []
        for piece in pieces:
            blob = self._child_blob(parent, piece, report)
            if blob is None:
                continue
            child = _Doc(blob=blob, doc_id=child_doc_id(parent.doc_id, blob),
                         parent=parent.doc_id, depth=parent.depth + 1)
            try:
                self._load(child, metadata)
            except Exception as exc:  # MmragError or a loader bug: this child only
                log.debug("attachment %s failed", blob.uri, exc_info=True)
                report.failed.append(Failure(blob.uri, one_line(exc, blob.uri)))
                continue
            if not child.items and not _may_be_empty(blob):
                report.failed.append(Failure(blob.uri, "no content found"))
                continue
            family += [child, *self._children(child, metadata, report)]
        return family

    def _child_blob(self, parent: _Doc, piece: Piece, report: AddReport) -> Blob | None:
        """The attachment as a sniffed, size-checked Blob, or None when no loader reads
        it (or its sniffed type contradicts the declared one: a binary attachment whose
        bytes happen to look like text)."""
        found = next(iter(resolve(child_blob(parent.blob, parent.doc_id, piece),
                                  self.settings.ingest)))
        if isinstance(found, Failure):
            if found.reason.startswith("unsupported file type"):
                log.debug("%s skipped: %s", found.source, found.reason)
            else:
                report.failed.append(found)
            return None
        if not plausible(found.mime, piece.metadata.get("content_type", "")):
            log.debug("%s skipped: sniffed %s, declared %s", found.uri, found.mime,
                      piece.metadata.get("content_type"))
            return None
        return found

    def _caption(self, piece: Piece) -> None:
        """Append a generated caption to image and figure text, so BM25 and the text
        space find pictures by what they show (pages are read by their text or OCR)."""
        if self.captioner is None or piece.modality != "image" or piece.image is None:
            return
        caption = self.captioner.caption([piece.image])[0]
        caption = mask_text(caption, self.settings.privacy, self.privacy)
        if caption:
            piece.text = f"{piece.text}\n{caption}".strip()
            piece.metadata["generated_caption"] = caption
            piece.metadata["caption_model"] = self.captioner.model_name

    def _facets(self, piece: Piece) -> list[Piece]:
        """Kind facets, colours and orientation of a picture or page render as one line
        of its text and as metadata; each chart read off it as a text piece of its own
        on the same page (see ingest/facets.py). Its OCR lines are dropped after.

        Why a piece of its own: a chart's table and sentences are long, and appended to
        the picture's OCR text they lengthen it, so BM25's length normalisation lowers
        every match of the picture's own words; as a separate item they are found on
        their own and the page still collects both."""
        lines, piece.ocr = piece.ocr, None
        if (not self._ingest.visual_facets or piece.image is None
                or piece.modality not in ("image", "page")):
            return []
        found = describe(piece.image, lines.lines if lines is not None else (),
                         lines.rotation if lines is not None else 0)
        extra = mask_text(found.line(), self.settings.privacy, self.privacy)
        if extra:
            piece.text = f"{piece.text}\n{extra}".strip()
        piece.metadata.update(found.metadata())
        return [Piece(modality="text", text=mask_text(c.text(), self.settings.privacy,
                                                      self.privacy),
                      page=piece.page, section="chart", bbox=piece.bbox,
                      metadata={"origin": "chart", "facets": ["chart", c.kind],
                                "charts": [c.to_dict()]})
                for c in found.charts]

    def _item(self, doc: _Doc, piece: Piece, metadata: dict[str, Any]) -> Item:
        blob = doc.blob
        if piece.modality == "page":
            item_id = page_item_id(doc.doc_id, piece.page)
        elif piece.modality == "image":  # several figures may share a page
            item_id = f"{doc.doc_id}:p{piece.page}:i{len(doc.items)}"
        else:
            item_id = f"{doc.doc_id}:p{piece.page}:t{len(doc.items)}"
        return Item(id=item_id, doc_id=doc.doc_id, source=blob.uri, modality=piece.modality,
                    text=piece.text, page=piece.page, chunk_start=piece.chunk_start,
                    chunk_end=piece.chunk_end, section=piece.section, bbox=piece.bbox,
                    mime=blob.mime, size=blob.size, name=blob.name,
                    metadata={**blob.metadata, **piece.metadata, **metadata})

    def _write_media(self, doc: _Doc, idx: int, piece: Piece) -> None:
        """Queue the piece's media for writing; ``_commit`` puts the key in the item."""
        if not self.settings.privacy.store_media:  # off: vectors and text only
            return
        if piece.media is None and piece.image is None:
            return
        if piece.image is not None:
            piece.image.load()  # decode here: the encoders read the same image meanwhile
        if self._writer is None:  # not inside run(): write now
            doc.media[idx] = _done(self._put_media(piece))
            return
        doc.media[idx] = self._writer.submit(bind(self._put_media), piece)

    def _put_media(self, piece: Piece) -> str:
        with stage("media"):
            return self.media.put_media(piece)

    def _encode_images(self, doc: _Doc, batch: list[tuple[int, Image.Image]],
                       encoders: dict[str, Encoder]) -> None:
        images = [img for _, img in batch]
        for space, enc in encoders.items():
            slot = doc.vectors.setdefault(space, {})
            if space in self.multivec:  # late interaction: keep every token, ANN on the mean
                with stage(f"embed:{space}"):
                    mats = enc.encode_images_multi(images)  # type: ignore[attr-defined]
                multi = doc.multi.setdefault(space, {})
                for (idx, _), mat in zip(batch, mats, strict=True):
                    multi[idx] = mat
                    slot[idx] = mean_vector(mat)
                continue
            with stage(f"embed:{space}"):
                vecs = enc.encode_images(images)
            for (idx, _), vec in zip(batch, vecs, strict=True):
                slot[idx] = vec
            if self.tagger is not None and enc is self.tagger.encoder:
                with stage("tags"):
                    found = self.tagger.tags(vecs)
                for (idx, _), tags in zip(batch, found, strict=True):
                    _add_tags(doc.items[idx], tags)

    def _encode_audio(self, doc: _Doc, batch: list[tuple[int, np.ndarray]],
                      encoders: dict[str, Encoder]) -> None:
        waves = [wave for _, wave in batch]
        for space, enc in encoders.items():
            with stage(f"embed:{space}"):
                vecs = enc.encode_audio(waves, sampling_rate=SAMPLE_RATE)  # type: ignore
            slot = doc.vectors.setdefault(space, {})
            for (idx, _), vec in zip(batch, vecs, strict=True):
                slot[idx] = vec

    def _text_into(self, space: str, enc: Encoder) -> bool:
        """Whether text items also get vectors in this image space: a CLIP/SigLIP dual
        encoder (``encode.clip_text_items``), so an image query finds passages; not a
        late-interaction space (its text tower embeds queries only)."""
        return (self.settings.encode.clip_text_items and enc.supports_text
                and enc.supports_images and space not in self.multivec
                and not _takes_audio(enc))

    def _commit(self, docs: list[_Doc], report: AddReport) -> None:
        if not docs:
            return
        items = [it for d in docs for it in d.items]
        try:
            for d in docs:  # media first: a stored row never points at a missing file
                for idx, written in d.media.items():
                    d.items[idx].media = written.result()
            vectors = self._vectors(docs, items)
            with self._writing():
                self._store_group(docs, items, vectors)
                self._catalog_group(docs)
                self._finish_group(docs, report, items)
        except DiskFullError:
            raise
        except Exception as exc:
            if disk_full(exc):  # every later group would fail alike: stop with one line
                raise DiskFullError(f"no space left on the device of the index; "
                                    f"{len(report.added) + len(report.replaced)} source(s) "
                                    f"were added before it filled; free space and run "
                                    f"again to add the rest") from exc
            log.debug("commit failed", exc_info=True)
            reason = f"could not store: {one_line(exc, '')}"
            report.failed.extend(Failure(d.blob.uri, reason) for d in docs)

    def _store_group(self, docs: list[_Doc], items: list[Item],
                     vectors: dict[str, np.ndarray]) -> None:
        """One atomic store write (plus token matrices) for a commit group."""
        with stage("store"):
            if items:  # a group of silent recordings has nothing to store
                self.store.add(items, vectors)
            for space, mv in self.multivec.items():
                pairs = [(d.items[i].id, m) for d in docs
                         for i, m in d.multi.get(space, {}).items()]
                if pairs:
                    mv.add([p[0] for p in pairs], [p[1] for p in pairs])

    def _catalog_group(self, docs: list[_Doc]) -> None:
        """Register the group; if that fails (a full disk), take its rows back out of the
        store at once, so they are not left as orphans until the next open."""
        try:
            with stage("catalog"):
                self.catalog.commit([DocRecord(d.doc_id, d.blob.uri, d.blob.name,
                                               d.blob.mime, d.blob.size,
                                               [it.id for it in d.items], time.time(),
                                               d.parent) for d in docs])
        except BaseException:
            try:  # only what the catalog lacks: a failure after COMMIT keeps the group
                new = sorted({d.doc_id for d in docs} - self.catalog.doc_ids())
                self.store.delete(new)
                ids = [it.id for d in docs if d.doc_id in new for it in d.items]
                for mv in self.multivec.values():
                    mv.delete(ids)
            except Exception:  # still orphans: recovery on the next open removes them
                log.debug("could not undo an uncatalogued store write", exc_info=True)
            raise

    def _finish_group(self, docs: list[_Doc], report: AddReport, items: list[Item]) -> None:
        for d in docs:
            (report.replaced if d.replaces else report.added).append(d.blob.uri)
            d.blob.cleanup()  # a spooled download's temp file goes as soon as it is stored
        report.items += len(items)
        stale = [d for d in docs if d.replaces and not self.catalog.by_doc_id(d.replaces)]
        if stale:
            self._drop_replaced(stale)

    def _drop_replaced(self, stale: list[_Doc]) -> None:
        """Delete the old versions of replaced documents and of their attachments: those
        the new version no longer has (their catalog rows still point at the old
        parent) and those it has again (their rows were just overwritten by source)."""
        old = [d.replaces for d in stale if d.replaces]
        left = self.catalog.descendants(old)
        self.catalog.remove_sources([r.source for r in left])
        family = {r.doc_id: r for d in stale for r in d.replaces_family}
        family.update((r.doc_id, r) for r in left)
        dead = set(family) - self.catalog.doc_ids()
        self.store.delete(old + sorted(dead))
        ids = [i for d in stale for i in d.replaces_ids]
        ids += [i for doc_id in dead for i in family[doc_id].item_ids]
        for mv in self.multivec.values():
            mv.delete(ids)

    def _commit_aliases(self, aliases: list[tuple[Blob, str]]) -> None:
        records = []
        for blob, doc_id in aliases:
            twins = self.catalog.by_doc_id(doc_id)
            if twins:  # absent when the original failed to store
                records.append(DocRecord(doc_id, blob.uri, blob.name, blob.mime,
                                         blob.size, twins[0].item_ids, time.time()))
        self.catalog.commit(records)

    def _vectors(self, docs: list[_Doc], items: list[Item]) -> dict[str, np.ndarray]:
        """One matrix per space; rows of items without a vector there are NaN."""
        out: dict[str, np.ndarray] = {}
        chunked = {(it.doc_id, it.page) for it in items if it.modality == "text"}
        for space, enc in self.encoders.items():
            mat = np.full((len(items), enc.dim), np.nan, dtype=np.float32)
            if enc.supports_images or _takes_audio(enc):  # vectors made while loading
                row = 0
                for d in docs:
                    for idx, vec in d.vectors.get(space, {}).items():
                        mat[row + idx] = vec
                    row += len(d.items)
                if self._text_into(space, enc):  # passages join the image–text space
                    rows = [i for i, it in enumerate(items)
                            if it.modality == "text" and it.text.strip()]
                    if rows:
                        with stage(f"embed:{space}"):
                            mat[rows] = enc.encode_text([items[i].text for i in rows])
            elif enc.supports_text:
                rows = [i for i, it in enumerate(items) if _embed_text(it, chunked)]
                if rows:
                    with stage(f"embed:{space}"):
                        mat[rows] = enc.encode_text([items[i].text for i in rows])
            out[space] = mat
        return out


def _tagger(settings: Settings, encoders: dict[str, Encoder]) -> ZeroShot | None:
    """The zero-shot labeller of ``ingest.auto_tags``; labels without a CLIP/SigLIP
    model are a one-line error before anything is read."""
    if not settings.ingest.auto_tags:
        return None
    return ZeroShot(zero_shot_encoder(encoders), settings.ingest.auto_tags,
                    settings.ingest.auto_tags_threshold)


def _add_tags(item: Item, tags: list[str]) -> None:
    """Tags into metadata (``Filters`` match a list by membership) and into the text, so
    BM25 and the text space find a picture by its label too."""
    if not tags:
        return
    old = [str(t) for t in item.metadata.get("tags") or []]
    item.metadata["tags"] = list(dict.fromkeys([*old, *tags]))
    item.text = f"{item.text}\ntags: {', '.join(tags)}".strip()


def _may_be_empty(blob: Blob) -> bool:
    """Audio and video may rightly hold nothing to index (silence, no speech, and
    transcription off): recorded as added with no items, not failed, and not decoded
    again when re-added."""
    return blob.mime.startswith(("audio/", "video/"))


def _takes_audio(encoder: Encoder) -> bool:
    """Audio–text encoders (CLAP) embed clips while loading, like image encoders; their
    text tower serves queries only, so item text is not embedded into their space."""
    return bool(getattr(encoder, "supports_audio", False))


def _done(value: str) -> Future[str]:
    future: Future[str] = Future()
    future.set_result(value)
    return future


def timed(items: Iterable[T], name: str) -> Iterator[T]:
    """``items`` re-yielded, with the time spent producing each one recorded as ``name``
    (a generator's own work; the consumer's time between items is not counted)."""
    it = iter(items)
    try:
        while True:
            with stage(name):
                try:
                    value = next(it)
                except StopIteration:
                    return
            yield value
    finally:  # an abandoned loop must still close the loader (it holds the open PDF)
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _embed_text(item: Item, chunked: set[tuple[str, int]]) -> bool:
    """Whether an item gets a text vector.

    A page whose text is also split into chunks is embedded through those chunks only:
    the page text would be truncated by the encoder anyway and cost a second forward pass.
    """
    if not item.text.strip():
        return False
    return not (item.modality == "page" and (item.doc_id, item.page) in chunked)


def one_line(exc: BaseException, source: str) -> str:
    """The first line of an error, without the source prefix IngestError already adds."""
    if isinstance(exc, IngestError):
        msg = exc.reason
    else:
        msg = str(exc) or type(exc).__name__
    msg = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    if source and msg.startswith(source + ": "):
        msg = msg[len(source) + 2:]
    return msg[:300]
