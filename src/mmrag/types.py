"""Plain data that flows between the stages.

Every stage imports this module and its own ``base.py`` only, so these types are the
whole vocabulary shared by ingest, encode, store and search.
"""

from __future__ import annotations

import hashlib
import io
import json
import operator
import os
import time
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO, Literal

Modality = Literal["image", "text", "page", "audio"]
MODALITIES: tuple[str, ...] = ("image", "text", "page", "audio")
AUDIO_EXTS = frozenset({"ogg"})  # stored media that is sound (ingest/audio.py writes Ogg/Opus)
_BLOCK = 1 << 20  # read size when hashing a file-backed Blob


class Blob:
    """The bytes of one source plus where they came from.

    Loaders never touch the network or the file system: the resolver turns every kind of
    source (path, URL, bytes, base64) into a Blob first, so loaders stay pure functions.

    A Blob holds its bytes in ``data`` or reads them from a local file at ``path``: a long
    video must stream from disk rather than sit whole in memory. Use :attr:`size`,
    :meth:`head`, :meth:`open` and :meth:`sha256`, which never load a file-backed Blob;
    ``data`` loads the file once, on first use, for the loaders of small kinds (text,
    images, PDFs) that need every byte anyway. A ``temporary`` file (a spooled download)
    belongs to the Blob: :meth:`cleanup` deletes it, and so does garbage collection.
    """

    __slots__ = ("uri", "name", "mime", "metadata", "path", "_data", "_size", "_sha256",
                 "_finalizer", "__weakref__")

    def __init__(self, uri: str, data: bytes | None = None, name: str = "",
                 mime: str = "application/octet-stream",
                 metadata: dict[str, Any] | None = None, path: str | None = None,
                 *, temporary: bool = False):
        if data is None and path is None:
            raise ValueError(f"Blob {uri!r} needs data or a path")
        self.uri = uri
        self.name = name
        self.mime = mime
        self.metadata: dict[str, Any] = {} if metadata is None else metadata
        self.path = path
        self._data = data
        self._size: int | None = None
        self._sha256: str | None = None
        self._finalizer = (weakref.finalize(self, _unlink, path)
                           if temporary and path is not None else None)

    @property
    def data(self) -> bytes:
        """All bytes; a file-backed Blob reads its file here, once (small kinds only)."""
        if self._data is None:
            assert self.path is not None
            with open(self.path, "rb") as fh:
                self._data = fh.read()
        return self._data

    @data.setter
    def data(self, value: bytes) -> None:
        self._data, self._size, self._sha256 = value, None, None

    @property
    def size(self) -> int:
        """Bytes count, from ``os.stat`` for a file (kept, so it outlives the file)."""
        if self._data is not None:
            return len(self._data)
        if self._size is None:
            assert self.path is not None
            self._size = os.stat(self.path).st_size
        return self._size

    def open(self) -> BinaryIO:
        """A binary file object over the bytes, without loading a file-backed Blob."""
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self.path is not None
        return open(self.path, "rb")

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes, for sniffing the type."""
        if self._data is not None:
            return bytes(self._data[:n])
        with self.open() as fh:
            return fh.read(n)

    def sha256(self) -> str:
        """Hex SHA-256 of the bytes, streamed in 1 MiB blocks for a file (kept once done)."""
        if self._sha256 is None:
            if self._data is not None:
                self._sha256 = hashlib.sha256(self._data).hexdigest()
            else:
                digest = hashlib.sha256()
                with self.open() as fh:
                    while block := fh.read(_BLOCK):
                        digest.update(block)
                self._sha256 = digest.hexdigest()
        return self._sha256

    def cleanup(self) -> None:
        """Delete a temporary file now (idempotent; garbage collection does it too)."""
        if self._finalizer is not None and self._finalizer.alive:
            if self._data is None:
                _ = self.size  # kept, for reports made after the file is gone
            self._finalizer()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Blob):
            return NotImplemented
        same = (self.uri, self.name, self.mime, self.metadata, self.path) == \
            (other.uri, other.name, other.mime, other.metadata, other.path)
        if not same:
            return False
        if self._data is None and other._data is None:
            return True  # the same file
        return self.data == other.data

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it was

    def __repr__(self) -> str:
        where = f"path={self.path!r}" if self._data is None else f"size={len(self._data)}"
        return (f"Blob(uri={self.uri!r}, name={self.name!r}, mime={self.mime!r}, {where}, "
                f"metadata={self.metadata!r})")


def _unlink(path: str) -> None:
    """Remove a temporary file; already gone is fine (a finalizer must not raise)."""
    try:
        os.unlink(path)
    except OSError:
        pass


@dataclass(slots=True)
class Item:
    """One searchable unit: a text chunk, a whole image, or a PDF page.

    ``media`` is the content hash of the stored media file (page render or image), empty
    for pure text. ``text`` is what BM25 and the text encoder see.
    """

    id: str
    doc_id: str
    source: str
    modality: str
    text: str = ""
    page: int = 1
    chunk_start: int = 0
    chunk_end: int = 0
    section: str = ""
    bbox: tuple[float, float, float, float] | None = None
    mime: str = ""
    size: int = 0
    created: float = field(default_factory=time.time)
    media: str = ""
    name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """Flatten to the scalar columns every store keeps (bbox/metadata as JSON)."""
        row = asdict(self)
        row["bbox"] = json.dumps(list(self.bbox)) if self.bbox else ""
        row["metadata"] = json.dumps(self.metadata, sort_keys=True, default=str)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Item:
        """Inverse of :meth:`to_row`; ignores store-specific extra columns."""
        names = cls.__dataclass_fields__.keys()
        kw = {k: row[k] for k in names if k in row}
        bbox = kw.get("bbox") or ""
        kw["bbox"] = tuple(json.loads(bbox)) if isinstance(bbox, str) and bbox else None
        meta = kw.get("metadata") or "{}"
        kw["metadata"] = json.loads(meta) if isinstance(meta, str) else dict(meta)
        for key in ("page", "chunk_start", "chunk_end", "size"):
            if key in kw and kw[key] is not None:
                kw[key] = int(kw[key])
        return cls(**kw)


@dataclass(slots=True)
class Hit:
    """A search result: the best item of a group (page, document or item) and its score.

    ``media_path`` points at the stored media file so a UI can show it; ``scores`` keeps
    the per-retriever contributions for debugging fusion.
    """

    item: Item
    score: float
    snippet: str = ""
    media_path: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    matches: int = 1

    @property
    def media_kind(self) -> str | None:
        """``image`` or ``audio`` (a clip of a sound or of the spoken words): what the
        media is for, so image-only consumers (VLM prompts, thumbnails) skip clips."""
        if not self.media_path:
            return None
        return "audio" if self.media_path.rsplit(".", 1)[-1] in AUDIO_EXTS else "image"

    @property
    def id(self) -> str:
        return self.item.id

    @property
    def doc_id(self) -> str:
        return self.item.doc_id

    @property
    def page(self) -> int:
        return self.item.page

    @property
    def modality(self) -> str:
        return self.item.modality

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self.item).items() if k != "text"}
        d.update(score=self.score, snippet=self.snippet, media_path=self.media_path,
                 scores=self.scores, matches=self.matches)
        return d


@dataclass(slots=True)
class Failure:
    """A source that could not be ingested, with a one-line reason for the user."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass(slots=True)
class AddReport:
    """Summary of one ``Index.add`` call."""

    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    items: int = 0
    seconds: float = 0.0
    # seconds per stage (read, load ⊃ parse/chunk/render/figures/ocr, media, embed:<space>,
    # store, catalog, optimize); OCR is thread time and may exceed the wall time
    timings: dict[str, float] = field(default_factory=dict)
    # what privacy settings removed: faces_blurred, exif_stripped, pii_<type> (email, ...)
    privacy: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        return (f"added {len(self.added)}, skipped {len(self.skipped)}, "
                f"replaced {len(self.replaced)}, failed {len(self.failed)} "
                f"({self.items} items, {self.seconds:.1f}s)")


@dataclass(slots=True)
class Citation:
    """What ``[n]`` in an answer points at: one retrieved item, by file, page and id.

    ``bbox`` is the region of the page the answer quotes, in the item's own units (PDF
    points, top-left origin, like ``Item.bbox``): the table cell quoted when it can be
    located, else the cited item's box; None when the item has no box (plain text)."""

    number: int
    item_id: str
    doc_id: str
    source: str
    name: str
    page: int
    modality: str
    media_path: str | None = None
    snippet: str = ""
    bbox: tuple[float, float, float, float] | None = None

    @classmethod
    def from_hit(cls, number: int, hit: Hit) -> Citation:
        it = hit.item
        return cls(number=number, item_id=it.id, doc_id=it.doc_id, source=it.source,
                   name=it.name, page=it.page, modality=it.modality,
                   media_path=hit.media_path, snippet=hit.snippet,
                   bbox=tuple(it.bbox) if it.bbox else None)  # type: ignore[arg-type]

    def label(self) -> str:
        """``[1] report.pdf, page 3`` — the line a terminal or a UI prints."""
        where = f", page {self.page}" if self.modality in ("page", "image", "text") \
            and self.page else ""
        return f"[{self.number}] {self.name or self.source}{where}"


@dataclass(slots=True)
class SentenceSupport:
    """How well the sources back one sentence of an answer (see
    :mod:`mmrag.generate.grounding`).

    ``start``/``end`` are character offsets into the answer text the sentence was cut
    from (before any unsupported sentence was dropped). ``source`` is the number of the
    best-matching source (``[n]``), 0 when none was given; ``numbers`` lists numbers in
    the sentence that appear in no source it was checked against, which always makes the
    sentence unsupported.
    """

    text: str
    start: int
    end: int
    score: float
    supported: bool
    source: int = 0
    numbers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Answer:
    """A generated answer, the hits it was given (numbered from 1 as ``[1]``, ``[2]``...)
    and the citations the text actually uses.

    ``found`` is False when retrieval gave no usable evidence and the text says so instead
    of guessing. ``support`` holds one entry per sentence of the generated text and
    ``grounded`` the share of those sentences the sources support, in [0, 1]; a not-found
    answer makes no claims, so it has no support entries and ``grounded`` is 1.0 (callers
    averaging groundedness should skip answers with ``found`` False). ``query`` is what
    was searched: the question, or for ``Index.chat`` the follow-up rewritten into a
    standalone query.
    """

    text: str
    hits: list[Hit] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    found: bool = True
    generator: str = ""
    seconds: float = 0.0
    support: list[SentenceSupport] = field(default_factory=list)
    grounded: float = 1.0
    query: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "found": self.found, "generator": self.generator,
                "seconds": self.seconds, "grounded": self.grounded, "query": self.query,
                "support": [s.to_dict() for s in self.support],
                "citations": [asdict(c) for c in self.citations],
                "hits": [h.to_dict() for h in self.hits]}


@dataclass(slots=True)
class Filters:
    """Restricts a search. Stores push down what their query language can express and
    must check :meth:`matches` on what comes back, so every backend filters alike.

    ``path`` is a glob over the source URI (``*.pdf``, ``/data/reports/**``);
    ``metadata`` is equality on keys of ``Item.metadata``, membership where the item
    holds a list (``{"to": "bob@example.com"}`` matches an e-mail to Bob and Sue), or a
    range given as a dict of ``gt``/``gte``/``lt``/``lte`` bounds. A string is compared
    at its bound's precision, so ``{"date": {"gte": "2023-01", "lte": "2023-03"}}`` takes
    every ISO date of January to March.
    """

    modality: list[str] | None = None
    doc_id: list[str] | None = None
    path: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, value: Filters | dict[str, Any] | None) -> Filters | None:
        if value is None or isinstance(value, Filters):
            return value
        known = {"modality", "doc_id", "path", "metadata"}
        kw: dict[str, Any] = {"metadata": dict(value.get("metadata") or {})}
        for key, val in value.items():
            if key in ("modality", "doc_id"):
                kw[key] = [val] if isinstance(val, str) else list(val)
            elif key == "path":
                kw[key] = val
            elif key not in known:
                kw["metadata"][key] = val
        return cls(**kw)

    @property
    def needs_post_filter(self) -> bool:
        """True when a store cannot push everything down and should over-fetch."""
        return bool(self.path or self.metadata)

    def matches(self, item: Item) -> bool:
        from fnmatch import fnmatchcase

        if self.modality and item.modality not in self.modality:
            return False
        if self.doc_id and item.doc_id not in self.doc_id:
            return False
        if self.path and not (fnmatchcase(item.source, self.path)
                              or fnmatchcase(item.name, self.path)):
            return False
        return all(_meta_matches(item.metadata.get(k), v) for k, v in self.metadata.items())


_RANGE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def parse_filter(expr: str) -> tuple[str, Any]:
    """``key=value``, ``key>=value``, ``key<value``... (the CLI's ``--filter``) as a
    :class:`Filters` entry; a value that reads as JSON (``3``, ``true``) is typed."""
    for token, name in ((">=", "gte"), ("<=", "lte"), (">", "gt"), ("<", "lt"), ("=", "")):
        key, sep, raw = expr.partition(token)
        if sep and key.strip() and "=" not in key and "<" not in key and ">" not in key:
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
            if isinstance(value, (dict, list)):
                value = raw
            return key.strip(), {name: value} if name else value
    raise ValueError(f"filter {expr!r} is not key=value, key>=value, key<=value, key>value "
                     "or key<value")


def _meta_matches(value: Any, want: Any) -> bool:
    if isinstance(want, dict) and want and set(want) <= _RANGE.keys():
        return value is not None and all(_compare(op, value, want[name])
                                         for name, op in _RANGE.items() if name in want)
    if isinstance(value, list) and not isinstance(want, list):
        return want in value
    return bool(value == want)


def _compare(op: Any, value: Any, bound: Any) -> bool:
    if isinstance(value, str) and isinstance(bound, str):
        value = value[:len(bound)]  # "2023-01-09T21:00:43+00:00" <= "2023-01-09"
    try:
        return bool(op(value, bound))
    except TypeError:  # a number against a string: no match, not an error
        return False
