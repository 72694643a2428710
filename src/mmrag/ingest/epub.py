"""EPUB e-books (2 and 3): chapters in spine order through the HTML loader's text
extraction, headings as sections, pictures as ``image`` items, Dublin Core metadata.

An EPUB is a zip: ``META-INF/container.xml`` names the package document (OPF), whose
manifest lists the files and whose spine gives the reading order. The zip directory is
checked before anything is decompressed (:func:`~mmrag.ingest.containers.open_zip`: the
``ingest.office_max_unzipped_bytes`` and ``office_max_zip_ratio`` limits office files
have), so a zip bomb is refused in one line. The book is one document: every item is on
page 1 and keeps its section (chapter heading trail); a chapter without headings takes
its table-of-contents label. DRM-encrypted books are refused, not indexed as noise.
"""

from __future__ import annotations

import logging
import posixpath
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urldefrag

from ..config import IngestSettings
from ..errors import IngestError
from ..types import Blob
from .base import Piece, loaders
from .chunk import section_spans
from .containers import ZIP_ERRORS, ZIP_MEMBER_ERRORS, open_zip
from .office.pictures import picture_pieces
from .text import html_to_text, text_pieces

__all__ = ["Book", "load_epub", "read_book"]

log = logging.getLogger(__name__)

_CONTAINER = "META-INF/container.xml"
_ENCRYPTION = "META-INF/encryption.xml"
# Font obfuscation (IDPF, Adobe) hides fonts only; any other algorithm is DRM on content.
_FONT_OBFUSCATION = ("http://www.idpf.org/2008/embedding",
                     "http://ns.adobe.com/pdf/enc#RC")
_DOCUMENT_TYPES = {"application/xhtml+xml", "text/html", "application/x-dtbook+xml"}
_IMG = re.compile(r"<(?:img|image)\b[^>]*>", re.I)
_SRC = re.compile(r"""(?:\bsrc|\bhref)\s*=\s*(["'])(.*?)\1""", re.I | re.S)
_ALT = re.compile(r"""\balt\s*=\s*(["'])(.*?)\1""", re.I | re.S)


@dataclass(slots=True)
class Book:
    """What the package document says: metadata, reading order, labels, pictures."""

    opf: str
    metadata: dict[str, Any] = field(default_factory=dict)
    spine: list[str] = field(default_factory=list)  # member paths, in reading order
    types: dict[str, str] = field(default_factory=dict)  # member path → media type
    labels: dict[str, str] = field(default_factory=dict)  # member path → TOC label
    cover: str = ""


@loaders.register("epub")
def load_epub(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """Text chunks of the chapters in reading order, then the pictures they show."""
    with open_zip(blob.data, blob.uri, max_bytes=settings.office_max_unzipped_bytes,
                  max_ratio=settings.office_max_zip_ratio) as zf:
        book = read_book(zf, blob.uri)
        text, heads, pictures = _chapters(zf, book, blob.uri)
        if not text.strip() and not pictures:
            raise IngestError(blob.uri, "empty e-book: no text or pictures in its chapters")
        spans = section_spans(text, heads)
        yield from text_pieces(text, spans, settings, metadata=book.metadata)
        for path, offset, alt in pictures:
            data = _member(zf, path)
            if not data:
                continue
            yield from picture_pieces(data, blob.uri, settings, page=1, alt=alt, name=path,
                                      section=_section_at(spans, offset),
                                      metadata=book.metadata)


def read_book(zf: zipfile.ZipFile, uri: str) -> Book:
    """Parse container.xml and the OPF; IngestError when they are missing or broken."""
    from bs4 import BeautifulSoup

    names = set(zf.namelist())
    if _CONTAINER not in names:
        raise IngestError(uri, f"corrupt e-book: no {_CONTAINER}")
    _refuse_drm(zf, names, uri)
    root = BeautifulSoup(_required(zf, _CONTAINER, uri), "xml").find("rootfile")
    opf = unquote(str(root.get("full-path", ""))) if root else ""
    if opf not in names:
        raise IngestError(uri, f"corrupt e-book: package document {opf!r} not found")
    pkg = BeautifulSoup(_required(zf, opf, uri), "xml")
    book = Book(opf=opf, metadata=_dublin_core(pkg))
    base = posixpath.dirname(opf)
    ids: dict[str, str] = {}
    for item in pkg.find_all("item"):
        href = item.get("href")
        if not href:
            continue
        path = _join(base, str(href))
        ids[str(item.get("id", ""))] = path
        book.types[path] = str(item.get("media-type", "")).lower()
        if "cover-image" in str(item.get("properties", "")).split():
            book.cover = path
    for ref in pkg.find_all("itemref"):
        path = ids.get(str(ref.get("idref", "")), "")
        if path and book.types.get(path) in _DOCUMENT_TYPES and path in names:
            book.spine.append(path)
    cover = pkg.find("meta", attrs={"name": "cover"})
    if cover is not None and not book.cover:
        book.cover = ids.get(str(cover.get("content", "")), "")
    book.labels = _toc_labels(zf, pkg, ids, book.types)
    return book


def _refuse_drm(zf: zipfile.ZipFile, names: set[str], uri: str) -> None:
    if _ENCRYPTION not in names:
        return
    xml = zf.read(_ENCRYPTION).decode("utf-8", "replace")
    methods = re.findall(r"""EncryptionMethod[^>]*Algorithm\s*=\s*["']([^"']+)""", xml)
    if any(not m.startswith(_FONT_OBFUSCATION) for m in methods):
        raise IngestError(uri, "DRM-protected e-book: its chapters are encrypted")


def _dublin_core(pkg: Any) -> dict[str, Any]:
    """title, author (creators joined by "; "), language, publisher, date."""
    meta: dict[str, Any] = {}
    for key, tag in (("title", "title"), ("author", "creator"), ("language", "language"),
                     ("publisher", "publisher"), ("date", "date")):
        values = [" ".join(el.get_text(" ").split()) for el in pkg.find_all(tag)]
        values = [v for v in dict.fromkeys(values) if v]
        if values:
            meta[key] = "; ".join(values) if key == "author" else values[0]
    return meta


def _toc_labels(zf: zipfile.ZipFile, pkg: Any, ids: dict[str, str],
                types: dict[str, str]) -> dict[str, str]:
    """Chapter labels from the EPUB 3 navigation document, else the EPUB 2 NCX."""
    from bs4 import BeautifulSoup

    nav = next((p for p, item in ((ids.get(str(i.get("id", "")), ""), i)
                                  for i in pkg.find_all("item"))
                if "nav" in str(item.get("properties", "")).split()), "")
    ncx = next((p for p, t in types.items() if t == "application/x-dtbncx+xml"), "")
    labels: dict[str, str] = {}
    try:
        if nav:
            soup = BeautifulSoup(_member(zf, nav), "xml")
            for a in soup.find_all("a"):
                _label(labels, posixpath.dirname(nav), a.get("href"), a.get_text(" "))
        elif ncx:
            soup = BeautifulSoup(_member(zf, ncx), "xml")
            for point in soup.find_all("navPoint"):
                text, content = point.find("text"), point.find("content")
                if text is not None and content is not None:
                    _label(labels, posixpath.dirname(ncx), content.get("src"),
                           text.get_text(" "))
    except Exception:  # a broken table of contents costs the labels, not the book
        log.debug("unreadable EPUB table of contents", exc_info=True)
    return labels


def _label(labels: dict[str, str], base: str, href: Any, text: str) -> None:
    if not href:
        return
    path = _join(base, urldefrag(str(href))[0])
    label = " ".join(text.split())
    if label and path not in labels:  # the first entry names the chapter file
        labels[path] = label


def _chapters(zf: zipfile.ZipFile, book: Book, uri: str,
              ) -> tuple[str, list[tuple[int, int, int, str]], list[tuple[str, int, str]]]:
    """The book's text (chapters joined by blank lines), its headings, and its pictures as
    ``(member path, text offset, alt text)`` in reading order (cover first)."""
    parts: list[str] = []
    heads: list[tuple[int, int, int, str]] = []
    pictures: dict[str, tuple[int, str]] = {}
    if book.cover:
        pictures[book.cover] = (0, "cover")
    size = 0
    for path in book.spine:
        data = _member(zf, path)
        try:
            with warnings.catch_warnings():  # XHTML read by the HTML parser, on purpose
                warnings.simplefilter("ignore")
                text, chapter_heads, title = html_to_text(data)
        except Exception as exc:  # one unreadable chapter: the rest of the book is kept
            log.warning("%s: chapter %s skipped: %s", uri, path, type(exc).__name__)
            continue
        text = text.strip("\n")
        lead = len(text) - len(text.lstrip("\n"))
        start = size + (2 if parts else 0)
        label = book.labels.get(path) or title
        if not chapter_heads and label:  # the chapter's name stands in for a heading
            heads.append((start, start, 1, label))
        heads += [(start + max(0, o - lead), start + max(0, b - lead), lv, t)
                  for o, b, lv, t in chapter_heads]
        for src, alt in _images(data):
            target = _join(posixpath.dirname(path), src)
            if book.types.get(target, "").startswith("image/") and target not in pictures:
                pictures[target] = (start, alt)
        if text:
            parts.append(text)
            size = start + len(text)
    return "\n\n".join(parts), heads, [(p, o, a) for p, (o, a) in pictures.items()]


def _images(xhtml: bytes) -> list[tuple[str, str]]:
    """``(src, alt)`` of the pictures a chapter shows (``<img>``, SVG ``<image>``)."""
    text = xhtml.decode("utf-8", "replace")
    out = []
    for m in _IMG.finditer(text):
        found = _SRC.search(m.group(0))  # src, href or xlink:href
        src = found.group(2).strip() if found else ""
        if not src or src.startswith(("data:", "http:", "https:")):
            continue
        alt = _ALT.search(m.group(0))
        out.append((urldefrag(src)[0], " ".join(alt.group(2).split()) if alt else ""))
    return out


def _section_at(spans: list[tuple[int, int, str]], offset: int) -> str:
    for start, end, path in spans:
        if start <= offset < end:
            return path
    return spans[0][2] if spans else ""


def _join(base: str, href: str) -> str:
    return posixpath.normpath(posixpath.join(base, unquote(href))).lstrip("/")


def _member(zf: zipfile.ZipFile, path: str) -> bytes:
    """A member's bytes (its size was checked with the zip directory), b"" if absent or
    damaged: a broken picture costs only itself."""
    try:
        return zf.read(path)
    except ZIP_MEMBER_ERRORS:
        return b""


def _required(zf: zipfile.ZipFile, path: str, uri: str) -> bytes:
    """A member the book cannot be read without; IngestError when it is damaged."""
    try:
        return zf.read(path)
    except ZIP_ERRORS as exc:
        raise IngestError(uri, f"corrupt e-book: {path}: {exc}") from None
