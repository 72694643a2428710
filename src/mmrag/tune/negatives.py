"""Hard negatives mined from the index itself: what BM25 and the dense space rank high
for a pseudo-query, minus what would be a false negative.

A candidate is skipped when it sits on the positive's own page (a page and its chunks
share text), is a near-duplicate of the positive (the same boilerplate on many pages),
or contains the pseudo-query verbatim (a sentence repeated elsewhere answers it too):
training the model away from a right answer is worse than no negative at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..store.base import Store
from .pairs import Pair, Passage

__all__ = ["DUPLICATE_JACCARD", "is_near_duplicate", "mine_negatives", "pick_negatives"]

DUPLICATE_JACCARD = 0.8  # word-set overlap above which two passages count as one
_WORD = re.compile(r"\w+")


def _word_set(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def is_near_duplicate(a: str, b: str, threshold: float = DUPLICATE_JACCARD) -> bool:
    wa, wb = _word_set(a), _word_set(b)
    if not wa or not wb:
        return wa == wb
    return len(wa & wb) / len(wa | wb) >= threshold


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def pick_negatives(pair: Pair, ranked: Sequence[Sequence[Passage]], n: int) -> list[str]:
    """The first ``n`` acceptable candidates, taking turns between the ranked lists (BM25,
    dense) so both kinds of hard negative are represented."""
    out: list[str] = []
    seen: set[str] = set()
    query = _norm(pair.query)
    depth = max((len(r) for r in ranked), default=0)
    for rank in range(depth):
        for lst in ranked:
            if rank >= len(lst) or len(out) >= n:
                continue
            c = lst[rank]
            if (c.id in seen or c.id == pair.passage_id or c.page_key == pair.page_key
                    or not c.text.strip() or (query and query in _norm(c.text))
                    or is_near_duplicate(c.text, pair.positive)
                    or any(is_near_duplicate(c.text, o) for o in out)):
                seen.add(c.id)
                continue
            seen.add(c.id)
            out.append(c.text)
    return out


def mine_negatives(pairs: Sequence[Pair], store: Store, space: str,
                   encode: Callable[[list[str]], object], n: int = 1, k: int = 10,
                   on_batch: Callable[[int], None] | None = None, batch: int = 64) -> None:
    """Fill ``pair.negatives`` from the store's BM25 and ``space`` dense top-``k``."""
    import numpy as np

    if n <= 0:
        return
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        vecs = np.asarray(encode([p.query for p in chunk]))
        for pair, vec in zip(chunk, vecs, strict=True):
            lists = [[_passage(it) for it, _ in store.bm25(pair.query, k)],
                     [_passage(it) for it, _ in store.dense(space, vec, k)]]
            pair.negatives = pick_negatives(pair, lists, n)
        if on_batch is not None:
            on_batch(len(chunk))


def _passage(item) -> Passage:  # an Item: only what the filters read
    return Passage(item.id, item.doc_id, int(item.page), item.text, item.section,
                   item.modality)
