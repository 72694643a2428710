"""LangChain tools over an :class:`~mmrag.index.Index`: ``multimodal_search`` and
``get_page``.

Tool results are content blocks, not a string, so a multimodal chat model sees the page
renders and images it retrieved next to their text. Each source shown is numbered
(``[n]``, see ``sources.py``) so the final answer can cite it; the numbered hits ride
along as the tool message's artifact, which the model never sees.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from PIL import Image

from ..errors import MissingDependencyError, MmragError
from ..search.searcher import page_item_id
from ..types import Hit, Item
from .sources import Source, SourceLedger

try:
    from langchain_core.messages.content import (
        ContentBlock,
        ImageContentBlock,
        create_image_block,
        create_text_block,
    )
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool, StructuredTool, ToolException
    from langgraph.prebuilt import InjectedState
except ImportError as exc:  # pragma: no cover - only without the extra
    raise MissingDependencyError("the agent tools", "agent") from exc

if TYPE_CHECKING:
    from ..catalog import DocRecord
    from ..index import Index

log = logging.getLogger(__name__)

MAX_K = 20
HIT_CHARS = 1500    # text of one search hit shown to the model
PAGE_CHARS = 8000   # text of one page returned by get_page

Blocks = list[ContentBlock]


class IndexTools:
    """The agent's view of one index. A lock serialises index access because a tool
    node may run parallel tool calls in threads, and encoders load on first use."""

    def __init__(self, index: Index):
        self.index = index
        self._lock = threading.Lock()
        gen = index.settings.generate
        self.max_images = gen.max_images if gen.images else 0
        self.image_side = gen.image_max_side
        self.image_format = gen.image_format

    def tools(self) -> list[BaseTool]:
        return [self._search_tool(), self._page_tool()]

    # -- multimodal_search --------------------------------------------------------------
    def search(self, query: str, k: int | None, ledger: SourceLedger
               ) -> tuple[Blocks, list[Source]]:
        if not query.strip():
            raise ToolException("query is empty; describe what to look for")
        try:
            with self._lock:
                # the query router (search.router) picks the modalities, and k when the
                # model gave none
                route = self.index.route(query, k)
                k = min(max(int(k or route.k or 5), 1), MAX_K)
                hits = self.index.search(query, k=k, route=route)
        except MmragError as exc:
            raise ToolException(str(exc)) from exc
        if not hits:
            return [create_text_block(f"No results for {query!r}. Try other words.")], []
        sources = [ledger.add(h) for h in hits]
        blocks: Blocks = [create_text_block(f"{len(hits)} result(s) for {query!r}:")]
        images = 0
        for source, hit in zip(sources, hits, strict=True):
            blocks.append(create_text_block(_hit_text(source.number, hit)))
            if images < self.max_images and hit.media_kind == "image" and hit.media_path:
                block = self._image(Path(hit.media_path))
                if block:
                    blocks.append(block)
                    images += 1
        return blocks, sources

    def _search_tool(self) -> BaseTool:
        def multimodal_search(query: str, k: int | None = None, *, config: RunnableConfig,
                              state: Annotated[dict, InjectedState] = None,  # type: ignore[assignment]
                              ) -> tuple[Blocks, list[Source]]:
            """Search the indexed documents, images and PDF pages by meaning and keywords.

            Returns the best matches, each numbered [n] with its file and page, its text,
            and images of the pages and pictures found. Call it again with reformulated
            queries (synonyms, sub-questions) when the results do not answer the question.

            Args:
                query: what to look for, in natural language or keywords
                k: how many results to return (1-20); leave it out to let the router pick
            """
            return self.search(query, k, SourceLedger.of_run(config, state))

        return StructuredTool.from_function(
            multimodal_search, response_format="content_and_artifact", parse_docstring=True,
            handle_tool_error=True)

    # -- get_page -----------------------------------------------------------------------
    def page(self, doc: str, page: int, ledger: SourceLedger) -> tuple[Blocks, list[Source]]:
        with self._lock:
            record = self._find_doc(doc)
            items = [it for it in self.index.store.get(record.item_ids) if it.page == page]
            if not items:
                pages = sorted({it.page for it in self.index.store.get(record.item_ids)})
                raise ToolException(f"{record.name} has no page {page}; its pages are "
                                    f"{_ranges(pages)}")
            order = {item_id: n for n, item_id in enumerate(record.item_ids)}
            items.sort(key=lambda it: order.get(it.id, len(order)))
            render = _render_item(items)
            media = self.index.media_path(render) if render else None
        head = _page_item(items, record.doc_id, page)
        text = _join_texts(it.text for it in items)
        source = ledger.add(Hit(item=head, score=0.0, snippet=text[:200],
                                media_path=str(media) if media else None))
        blocks: Blocks = [create_text_block(
            f"[{source.number}] {head.name or head.source}, page {page} "
            f"(doc {record.doc_id}), full text:\n{_clip(text, PAGE_CHARS) or '(no text)'}")]
        if media and self.max_images:
            block = self._image(media)
            if block:
                blocks.append(block)
        return blocks, [source]

    def _find_doc(self, doc: str) -> DocRecord:
        """A document by doc id, file name, source path/URL or path suffix."""
        docs = self.index.documents()
        wanted = doc.strip()
        for match in (lambda r: r.doc_id == wanted, lambda r: r.name == wanted,
                      lambda r: r.source == wanted,
                      lambda r: r.source.endswith("/" + wanted.lstrip("/"))):
            found = [r for r in docs if match(r)]
            if found:
                return found[0]
        names = ", ".join(sorted({r.name for r in docs})[:10]) or "none"
        raise ToolException(f"no document {doc!r} in the index; documents: {names}")

    def _page_tool(self) -> BaseTool:
        def get_page(doc: str, page: int, *, config: RunnableConfig,
                     state: Annotated[dict, InjectedState] = None,  # type: ignore[assignment]
                     ) -> tuple[Blocks, list[Source]]:
            """Read one whole page of a document: all its text, in order, and its image.

            Use it when a search result looks relevant but its excerpt is cut short, or to
            read the pages around it.

            Args:
                doc: the document's file name (e.g. report.pdf) or doc id from a result
                page: page number, from 1
            """
            return self.page(doc, page, SourceLedger.of_run(config, state))

        return StructuredTool.from_function(
            get_page, response_format="content_and_artifact", parse_docstring=True,
            handle_tool_error=True)

    def _image(self, path: Path) -> ImageContentBlock | None:
        try:
            return image_block(path.read_bytes(), self.image_side, self.image_format)
        except (OSError, ValueError) as exc:
            log.warning("cannot show %s to the model: %s", path, exc)
            return None


def make_tools(index: Index) -> list[BaseTool]:
    """``multimodal_search`` and ``get_page`` bound to ``index``."""
    return IndexTools(index).tools()


def image_block(data: bytes, max_side: int = 768, fmt: str = "webp") -> ImageContentBlock:
    """A base64 image content block, shrunk to ``max_side`` and re-encoded: page renders
    are stored large, and providers bill (and cap) images by size. Raises ``OSError`` /
    ``ValueError`` on undecodable data."""
    with Image.open(io.BytesIO(data)) as img:
        rgb = img.convert("RGB")
    rgb.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    rgb.save(buf, format=fmt.upper(), quality=80)
    return create_image_block(base64=base64.b64encode(buf.getvalue()).decode("ascii"),
                              mime_type=f"image/{fmt}")


def _hit_text(number: int, hit: Hit) -> str:
    it = hit.item
    where = f"{it.name or it.source}, page {it.page}"
    text = _clip(it.text or hit.snippet, HIT_CHARS) or "(no text; see the image)"
    return f"[{number}] {where} ({it.modality}, doc {it.doc_id}, score {hit.score:.3f}):\n{text}"


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _join_texts(texts: Any) -> str:
    """Join a page's item texts in order, skipping ones already contained (a PDF page's
    own item holds the text its chunks repeat)."""
    parts: list[str] = []
    for text in texts:
        text = text.strip()
        if text and not any(text in p for p in parts):
            parts.append(text)
    return "\n\n".join(parts)


def _render_item(items: list[Item]) -> Item | None:
    """The page render if the page has one, else the first item with an image."""
    with_media = [it for it in items if it.media]
    pages = [it for it in with_media if it.modality == "page"]
    return next(iter(pages or with_media), None)


def _page_item(items: list[Item], doc_id: str, page: int) -> Item:
    wanted = page_item_id(doc_id, page)
    return next((it for it in items if it.id == wanted), items[0])


def _ranges(pages: list[int]) -> str:
    if len(pages) < 2:
        return ", ".join(map(str, pages)) or "none"
    return f"{pages[0]}-{pages[-1]}" if pages == list(range(pages[0], pages[-1] + 1)) \
        else ", ".join(map(str, pages))
