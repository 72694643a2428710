"""Loaders for plain text, Markdown and HTML: decode, find sections, chunk.

Offsets (``chunk_start``/``chunk_end``) point into the extracted document text: the
decoded file with newlines normalised for text and Markdown, the visible text for HTML.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

from ..config import IngestSettings
from ..types import Blob
from .base import Piece, loaders
from .chunk import chunk_spans, section_spans

__all__ = ["decode_text", "html_to_text", "load_html", "load_markdown", "load_text",
           "markdown_headings", "text_pieces"]

log = logging.getLogger(__name__)


def decode_text(data: bytes) -> str:
    """Decode bytes as UTF-8 (BOMs honoured), else a detected charset, else latin-1;
    newlines are normalised to ``\\n``."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                       (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            text = data.decode(codec, errors="replace")
            break
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _detect(data)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


def _detect(data: bytes) -> str:
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[: 1 << 20]).best()
        if best is not None and best.encoding:
            return data.decode(best.encoding, errors="replace")
    except Exception:  # detection is best effort; latin-1 never fails
        log.debug("charset detection failed", exc_info=True)
    return data.decode("latin-1")


def text_pieces(text: str, sections: Sequence[tuple[int, int, str]] | None,
                settings: IngestSettings, page: int = 1,
                metadata: dict[str, Any] | None = None) -> Iterator[Piece]:
    """Chunk ``text`` section by section into ``Piece(modality="text")``."""
    if sections is None:
        sections = [(0, len(text), "")]
    for start, end, path in sections:
        for s, e in chunk_spans(text, settings.chunk_size, settings.chunk_overlap, start, end):
            yield Piece(modality="text", text=text[s:e], page=page, chunk_start=s,
                        chunk_end=e, section=path, metadata=dict(metadata or {}))


@loaders.register("text")
def load_text(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """Plain text: one section, chunked."""
    yield from text_pieces(decode_text(blob.data), None, settings)


def markdown_headings(text: str) -> list[tuple[int, int, int, str]]:
    """ATX and setext headings as ``(offset, body_offset, level, title)`` (code blocks and
    front matter do not count, thanks to a real CommonMark parser)."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    starts = [0]
    for m in re.finditer("\n", text):
        starts.append(m.end())
    heads = []
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open" or not tok.map:
            continue
        inline = tokens[i + 1] if i + 1 < len(tokens) else None
        words = ""
        if inline is not None:
            words = "".join(" " if c.type in ("softbreak", "hardbreak") else c.content
                            for c in inline.children or [] if c.type != "html_inline")
            words = words or inline.content
        first, last = tok.map
        offset = starts[first] if first < len(starts) else len(text)
        body = starts[last] if last < len(starts) else len(text)
        heads.append((offset, body, int(tok.tag[1:]), words))
    return heads


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FM_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.M)


@loaders.register("markdown")
def load_markdown(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """Markdown: sections from the heading trail, chunks within each section. YAML front
    matter is kept in the text but its ``---`` lines are not taken for headings."""
    text = decode_text(blob.data)
    meta: dict[str, Any] = {}
    front = _FRONT_MATTER.match(text)
    heads = markdown_headings(text)
    if front:
        heads = [h for h in heads if h[0] >= front.end()]
        title = _FM_TITLE.search(front.group(1))
        if title:
            meta["title"] = title.group(1).strip("\"' ")
    top = [h for h in heads if h[2] == 1]
    if top and "title" not in meta:
        meta["title"] = " ".join(top[0][3].split())
    yield from text_pieces(text, section_spans(text, heads), settings, metadata=meta)


# --- HTML -------------------------------------------------------------------------------

_DROP = {"script", "style", "nav", "noscript", "template", "iframe", "svg", "canvas", "head",
         "object", "embed", "button", "select", "input", "textarea", "math"}
_BLOCK = {"p", "div", "section", "article", "main", "aside", "header", "footer",
          "blockquote", "pre", "ul", "ol", "li", "table", "tr", "thead", "tbody", "tfoot",
          "dl", "dt", "dd", "figure", "figcaption", "form", "fieldset", "address", "details",
          "summary", "hr", "caption", "center", "body", "html"}
_LINE = {"br", "li", "tr", "dt", "dd"}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_WS = re.compile(r"\s+")


class _Writer:
    """Accumulates visible text, collapsing whitespace and keeping block breaks."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.newlines = 0  # trailing "\n" count of what was written
        self.headings: list[tuple[int, int, int, str]] = []

    def write(self, s: str) -> None:
        if not s:
            return
        self.parts.append(s)
        self.size += len(s)
        body = s.rstrip("\n")
        self.newlines = len(s) - len(body) + (self.newlines if not body else 0)

    def words(self, s: str) -> None:
        s = _WS.sub(" ", s)
        if not self.parts or self.newlines or self.parts[-1].endswith(" "):
            s = s.lstrip(" ")
        self.write(s)

    def breaks(self, n: int) -> None:
        if not self.parts:
            return
        if not self.newlines and self.parts[-1].endswith(" "):
            last = self.parts[-1].rstrip(" ")
            self.size -= len(self.parts[-1]) - len(last)
            self.parts[-1] = last
        if self.newlines < n:
            self.write("\n" * (n - self.newlines))


def _walk(node: Any, out: _Writer) -> None:
    from bs4 import Comment, NavigableString, Tag

    for child in node.children:
        if isinstance(child, Comment):
            continue
        if isinstance(child, NavigableString):
            if type(child) is NavigableString:  # skip CData, doctype, processing instructions
                out.words(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name.lower()
        if name in _DROP:
            continue
        if name in _HEADINGS:
            title = child.get_text(" ", strip=True)
            if title:
                out.breaks(2)
                offset = out.size
                out.words(title)
                out.headings.append((offset, out.size, _HEADINGS[name], title))
                out.breaks(2)
            continue
        if name == "pre":
            out.breaks(2)
            out.write(child.get_text())
            out.breaks(2)
            continue
        if name in ("td", "th"):
            out.words(" ")
        if name in _BLOCK:
            out.breaks(1 if name in _LINE else 2)
        elif name == "br":
            out.breaks(1)
        _walk(child, out)
        if name in _BLOCK:
            out.breaks(1 if name in _LINE else 2)


def html_to_text(data: bytes | str) -> tuple[str, list[tuple[int, int, int, str]], str]:
    """Visible text of an HTML document, its headings and its ``<title>``."""
    from bs4 import BeautifulSoup

    try:
        import lxml  # noqa: F401

        parser = "lxml"
    except ImportError:
        parser = "html.parser"
    soup = BeautifulSoup(data, parser)
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    out = _Writer()
    try:
        _walk(soup, out)
    except RecursionError:  # absurdly nested markup: fall back to flat text
        out = _Writer()
        for tag in soup(list(_DROP)):
            tag.decompose()
        out.write(soup.get_text("\n"))
        out.headings.clear()
    text = "".join(out.parts).replace("\r\n", "\n").replace("\r", "\n")
    return text, out.headings, title


@loaders.register("html")
def load_html(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """HTML: scripts, styles and navigation dropped; headings become sections."""
    text, heads, title = html_to_text(blob.data)
    meta = {"title": title} if title else {}
    yield from text_pieces(text, section_spans(text, heads), settings, metadata=meta)
