"""Combining ranked lists from several retrievers (dense spaces, BM25, query parts).

Fusion works on item ids so it is store-agnostic; the caller keeps the Item objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Ranked = Sequence[tuple[str, float]]  # (item id, score), best first


def rrf(lists: Mapping[str, Ranked], k: int = 60,
        weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Reciprocal rank fusion: only ranks matter, so scores of different scales mix safely.

    Returns id → fused score (not sorted). ``weights`` scales a list's contribution.
    """
    fused: dict[str, float] = {}
    for name, ranked in lists.items():
        w = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, (item_id, _) in enumerate(ranked):
            fused[item_id] = fused.get(item_id, 0.0) + w / (k + rank + 1)
    return fused


def weighted(lists: Mapping[str, Ranked], weights: Mapping[str, float]) -> dict[str, float]:
    """Convex combination of min-max normalised scores.

    Min-max per list puts BM25 (unbounded) and cosine (-1..1) on one 0..1 scale; an item
    missing from a list gets 0 there, which is what "not retrieved" should cost.
    """
    fused: dict[str, float] = {}
    for name, ranked in lists.items():
        if not ranked:
            continue
        scores = [s for _, s in ranked]
        lo, hi = min(scores), max(scores)
        span = hi - lo
        w = weights.get(name, 0.0)
        for item_id, s in ranked:
            norm = (s - lo) / span if span > 0 else 1.0
            fused[item_id] = fused.get(item_id, 0.0) + w * norm
    return fused


def top(fused: Mapping[str, float], n: int) -> list[tuple[str, float]]:
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
