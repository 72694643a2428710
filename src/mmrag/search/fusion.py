"""Combining ranked lists from several retrievers (dense spaces, BM25, query parts).

Fusion works on keys (item ids, or page/document keys once lists are collapsed) so it is
store-agnostic; the caller keeps the Item objects.

Why lists are collapsed to pages *before* fusing: BM25 often finds a page through one of
its text chunks while the dense list finds it through another chunk or its page render.
Fused item by item, neither match adds to the other and the page scores like its single
best item, so a hybrid could rank below both of its components. Collapsed first, a page
strong in both lists gets both contributions.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Literal, TypeVar

Ranked = Sequence[tuple[str, float]]  # (item id, score), best first
Norm = Literal["max", "minmax"]
K = TypeVar("K", bound=Hashable)  # what a list ranks: item ids, items, page keys
G = TypeVar("G", bound=Hashable)  # what a list is collapsed to (page, document)


def rrf(lists: Mapping[str, Sequence[tuple[K, float]]], k: int = 60,
        weights: Mapping[str, float] | None = None) -> dict[K, float]:
    """Reciprocal rank fusion: only ranks matter, so scores of different scales mix safely.

    Returns key → fused score (not sorted). ``weights`` scales a list's contribution.
    """
    fused: dict[K, float] = {}
    for name, ranked in lists.items():
        w = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, (key, _) in enumerate(ranked):
            fused[key] = fused.get(key, 0.0) + w / (k + rank + 1)
    return fused


def normalise(ranked: Sequence[tuple[K, float]], how: Norm) -> dict[K, float]:
    """Scores of one list on a 0..1 scale.

    ``max`` divides by the best score: a list whose matches are all alike (a dense list
    with nothing close to the query, BM25 matching one common word) stays flat near 1 and
    cannot reorder the other list's pages; its clear winners still stand out. ``minmax``
    maps the list's own range to 0..1, which stretches even a flat, weak list into a
    confident-looking one (the failure behind equal-weight fusion losing to BM25).
    """
    if not ranked:
        return {}
    scores = [s for _, s in ranked]
    hi, lo = max(scores), min(scores)
    if how == "max":
        return {key: (s / hi if hi > 0 else 0.0) for key, s in ranked}
    span = hi - lo
    return {key: ((s - lo) / span if span > 0 else 1.0) for key, s in ranked}


def weighted(lists: Mapping[str, Ranked], weights: Mapping[str, float],
             norms: Mapping[str, Norm] | None = None) -> dict[str, float]:
    """Convex combination of normalised scores (min-max unless ``norms`` says otherwise);
    an item missing from a list gets 0 there, which is what "not retrieved" should cost."""
    fused: dict[str, float] = {}
    for name, ranked in lists.items():
        w = weights.get(name, 0.0)
        how = (norms or {}).get(name, "minmax")
        for key, norm in normalise(ranked, how).items():
            fused[key] = fused.get(key, 0.0) + w * norm
    return fused


def collapse(ranked: Sequence[tuple[K, float]], key: Callable[[K], G],
             how: Literal["max", "mean"] = "max") -> list[tuple[G, float]]:
    """One entry per group (page, document), best first: its best member's score, or the
    mean of its members in this list."""
    members: dict[G, list[float]] = {}
    for item_key, score in ranked:
        members.setdefault(key(item_key), []).append(score)
    if how == "mean":
        scored = [(g, sum(s) / len(s)) for g, s in members.items()]
    else:
        scored = [(g, max(s)) for g, s in members.items()]
    return sorted(scored, key=lambda gs: -gs[1])


def mean_of_present(parts: Sequence[Mapping[K, float]]) -> dict[K, float]:
    """Per key, the mean of the maps it appears in (absent maps do not pull it down)."""
    total: dict[K, float] = {}
    count: dict[K, int] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + value
            count[key] = count.get(key, 0) + 1
    return {key: total[key] / count[key] for key in total}


def top(fused: Mapping[K, float], n: int) -> list[tuple[K, float]]:
    return sorted(fused.items(), key=lambda kv: (-kv[1], str(kv[0])))[:n]
