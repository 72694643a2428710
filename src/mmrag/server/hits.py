"""Hits and citations as the HTTP API sends them: ids, text, and URLs instead of paths.

A client gets ``media_url`` (the hit's own image or page render), ``thumb_url`` and
``page_url``: the render of the page the hit sits on, so a viewer can draw the hit's
``bbox`` (PDF points, top-left origin) over it, scaled by ``page_width``/``page_height``
(points). A text chunk or figure of a PDF borrows these from its page item, fetched for
all hits in one store lookup. Server file paths are never sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..index import Index
from ..search.searcher import page_item_id
from ..types import Answer, Hit, Item
from .ids import media_id

__all__ = ["answer_json", "hits_json", "media_url"]

THUMB = 256  # the side of ``thumb_url`` thumbnails
_PDF = "application/pdf"


def media_url(collection: str, key: str | None) -> str | None:
    public = media_id(collection, key) if key else None
    return f"/media/{public}" if public else None


def _key(path: str | None, fallback: str) -> str | None:
    return Path(path).name if path else (fallback or None)


def _pages(index: Index, hits: list[Hit]) -> dict[str, Item]:
    """The page items behind hits that are not pages themselves, by item id: those of
    PDFs, and those of any hit with a bbox, whose points mean nothing to a viewer without
    the page's size (office documents, attachments and converted files have pages too)."""
    wanted = sorted({page_item_id(h.doc_id, h.page) for h in hits
                     if h.modality != "page" and (h.item.mime == _PDF or h.item.bbox)})
    return {it.id: it for it in index.store.get(wanted)} if wanted else {}


def _points(item: Item | None, key: str) -> float | None:
    value = item.metadata.get(key) if item is not None else None
    return float(value) if isinstance(value, (int, float)) else None


def _hit(collection: str, hit: Hit, pages: dict[str, Item]) -> dict[str, Any]:
    it = hit.item
    page = it if it.modality == "page" else pages.get(page_item_id(it.doc_id, it.page))
    own = media_url(collection, _key(hit.media_path, it.media))
    page_key = page.media if page is not None else None
    if page is None and it.mime.startswith("image/"):
        page_key = it.media  # an image file is its own (only) page
    page_url = media_url(collection, page_key)
    return {
        "id": it.id, "doc_id": it.doc_id, "name": it.name, "source": it.source,
        "page": it.page, "modality": it.modality, "score": round(float(hit.score), 6),
        "snippet": hit.snippet, "section": it.section or None, "mime": it.mime,
        "bbox": [round(float(v), 2) for v in it.bbox] if it.bbox else None,
        "page_width": _points(page, "width_pt"), "page_height": _points(page, "height_pt"),
        "media_url": own, "media_type": hit.media_kind if own else None,
        "thumb_url": f"{own}?thumb={THUMB}" if own and hit.media_kind == "image" else None,
        "page_url": page_url or (own if it.modality == "page" else None),
        "matches": hit.matches,
        # video frames, transcript lines and audio clips: where in the recording
        **{k: it.metadata[k] for k in ("start", "end", "timestamp") if k in it.metadata},
    }


def hits_json(index: Index, collection: str, hits: list[Hit]) -> list[dict[str, Any]]:
    """Hits for the API. Blocks (one store lookup): call it off the event loop."""
    pages = _pages(index, hits)
    return [_hit(collection, h, pages) for h in hits]


def answer_json(index: Index, collection: str, answer: Answer) -> dict[str, Any]:
    """The final ``done`` object of an answer: its text and its citations, each with the
    URLs of the hit it cites (citation ``[n]`` is the answer's hit ``n``), and its
    grounding (``grounded`` and the per-sentence ``support``; ``text`` is the final text,
    without the unsupported sentences when ``generate.drop_unsupported`` is on)."""
    views = hits_json(index, collection, answer.hits)
    citations = []
    for c in answer.citations:
        view = views[c.number - 1] if 0 < c.number <= len(views) else {}
        citations.append({
            "number": c.number, "item_id": c.item_id, "doc_id": c.doc_id, "name": c.name,
            "page": c.page, "modality": c.modality, "snippet": c.snippet,
            **{k: view.get(k) for k in ("media_url", "thumb_url", "page_url", "bbox",
                                        "page_width", "page_height")}})
        region = getattr(c, "bbox", None)  # the quoted cell, where one was located
        if region and view.get("bbox"):  # same frame as the hit's box: page points
            citations[-1]["bbox"] = [round(float(v), 2) for v in region]
    return {"text": answer.text, "found": answer.found, "generator": answer.generator,
            "seconds": round(answer.seconds, 3), "citations": citations,
            "grounded": round(answer.grounded, 4),
            "support": [s.to_dict() for s in answer.support]}
