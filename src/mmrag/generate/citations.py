"""Citations: find ``[n]``, ``[n, m]`` and ``[n-m]`` markers in an answer and resolve them.

Generators cite sources by the numbers the prompt gave them (``[1]`` is the first hit).
Models invent numbers and ranges now and then, so only numbers that name a hit become
:class:`~mmrag.types.Citation` objects; the rest are dropped rather than shown as links
to nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..types import Citation, Hit

__all__ = ["MAX_RANGE", "cited_numbers", "citations_for", "render_citations"]

# "[3]", "[1, 2]", "[2-4]", "[1,3-5]", "[2–4]" (en dash); nothing else inside the brackets,
# so "[x]" or a LaTeX "[12pt]" is not a citation.
_MARKER = re.compile(r"\[(\s*\d+(?:\s*[-–]\s*\d+)?(?:\s*[,;]\s*\d+(?:\s*[-–]\s*\d+)?)*\s*)\]")
_RANGE = re.compile(r"(\d+)\s*[-–]\s*(\d+)")
# A range wider than this is a number that happens to contain a dash, not a citation.
MAX_RANGE = 20


def cited_numbers(text: str) -> list[int]:
    """Every number cited in ``text``, in order of first appearance, without repeats."""
    seen: dict[int, None] = {}
    for marker in _MARKER.finditer(text):
        for piece in re.split(r"[,;]", marker.group(1)):
            piece = piece.strip()
            rng = _RANGE.fullmatch(piece)
            if rng:
                lo, hi = int(rng.group(1)), int(rng.group(2))
                if lo <= hi and hi - lo <= MAX_RANGE:
                    seen.update(dict.fromkeys(range(lo, hi + 1)))
            elif piece.isdigit():
                seen[int(piece)] = None
    return list(seen)


def citations_for(text: str, hits: Sequence[Hit]) -> list[Citation]:
    """The citations ``text`` makes, resolved against the numbered ``hits`` (``[1]`` is
    ``hits[0]``), in order of first mention; numbers with no hit are ignored."""
    return [Citation.from_hit(n, hits[n - 1]) for n in cited_numbers(text)
            if 1 <= n <= len(hits)]


def render_citations(citations: Sequence[Citation]) -> str:
    """One ``[n] file, page p (item id)`` line per citation, sorted by number."""
    return "\n".join(f"{c.label()}  ({c.item_id})"
                     for c in sorted(citations, key=lambda c: c.number))
