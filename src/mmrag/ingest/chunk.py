"""Text chunking shared by the text, Markdown, HTML and PDF loaders.

Chunks are ``(start, end)`` character offsets into the extracted document text, so a hit
can be highlighted in context. A chunk ends at the last paragraph break inside its window,
else the last sentence end, else the last space, and only cuts a word when it must.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["chunk_spans", "section_spans"]

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE = re.compile(r"[.!?\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*\s+")
_SPACE = re.compile(r"\s+")


def chunk_spans(text: str, size: int, overlap: int = 0, start: int = 0,
                end: int | None = None) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` into chunks of at most ``size`` characters that overlap by
    about ``overlap`` characters; spans are trimmed of surrounding whitespace."""
    end = len(text) if end is None else min(end, len(text))
    size = max(1, size)
    # An overlap close to the size would make chunks crawl forward a few characters at a time.
    overlap = max(0, min(overlap, size // 2))
    spans: list[tuple[int, int]] = []
    pos = _skip_space(text, start, end)
    while pos < end:
        cut = end if end - pos <= size else _best_break(text, pos, pos + size)
        s, e = pos, cut
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
        if cut >= end:
            break
        nxt = cut - overlap if overlap else cut
        if overlap and nxt > pos:
            # Start the overlap on a word boundary rather than mid-word.
            m = _SPACE.search(text, nxt, cut)
            if m and nxt > 0 and not text[nxt - 1].isspace():
                nxt = m.end()
        nxt = max(nxt, pos + 1)
        pos = _skip_space(text, nxt, end)
    return spans


def _skip_space(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos


def _best_break(text: str, lo: int, hi: int) -> int:
    """End offset of a chunk starting at ``lo`` with a window ending at ``hi``."""
    floor = lo + (hi - lo) // 3  # never accept a break that leaves a tiny chunk
    for pattern in (_PARAGRAPH, _SENTENCE, _SPACE):
        best = -1
        for m in pattern.finditer(text, floor, hi):
            best = m.end() if pattern is not _SPACE else m.start()
        if best > floor:
            return best
    return hi


def section_spans(text: str, headings: Sequence[tuple[int, int, int, str]],
                  ) -> list[tuple[int, int, str]]:
    """Turn headings into ``(start, end, path)`` spans covering ``text``.

    Each heading is ``(offset, body_offset, level, title)``: where the heading starts, where
    its body starts (just after the heading line), its level 1-6 and its title. ``path`` is
    the heading trail, e.g. ``"Intro > Setup"``. A heading with a blank body is folded into
    the next span so that no chunk holds only a title.
    """
    heads = sorted(headings, key=lambda h: h[0])
    length = len(text)
    spans: list[tuple[int, int, str]] = []
    first = heads[0][0] if heads else length
    if text[:first].strip():
        spans.append((0, first, ""))
    trail: list[tuple[int, str]] = []
    pending: int | None = None
    for i, (offset, body, level, title) in enumerate(heads):
        while trail and trail[-1][0] >= level:
            trail.pop()
        trail.append((level, " ".join(title.split())))
        stop = heads[i + 1][0] if i + 1 < len(heads) else length
        start = offset if pending is None else pending
        if i + 1 < len(heads) and not text[body:stop].strip():
            pending = start  # nothing under this heading: merge into the next section
            continue
        pending = None
        spans.append((start, stop, " > ".join(t for _, t in trail if t)))
    return [s for s in spans if s[1] > s[0]]
