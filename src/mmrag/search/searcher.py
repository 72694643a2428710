"""Turns a query into ranked, grouped hits: one retriever per (vector space × query part)
plus BM25, fused, then grouped by page or document.

Everything here is store-agnostic: stores return scored items, this module decides how
lists combine, so the LanceDB and Milvus backends rank identically.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from ..config import SearchSettings
from ..encode.base import Encoder, l2_normalize
from ..errors import QueryError
from ..store.base import ScoredItems, Store
from ..types import Filters, Hit, Item
from .fusion import G, collapse, mean_of_present, normalise, rrf, top
from .late import mean_vector, rerank
from .query import Query
from .rerank import Reranker

SNIPPET_CHARS = 280
IMAGE_MODALITIES = ("image", "page")  # the items an image encoder embeds as pictures
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(slots=True)
class Retrieval:
    """One ranked list and whether it is lexical (BM25) or dense, for weighted fusion."""

    items: ScoredItems
    dense: bool


class Searcher:
    """Runs the retrievers a query calls for and fuses them.

    ``page_item`` looks up the page item of a (doc, page) so a text-chunk hit can still
    show its page image.
    """

    def __init__(self, store: Store, encoders: Mapping[str, Encoder], settings: SearchSettings,
                 media_path: Callable[[str], str | None],
                 multivec: Mapping[str, Any] | None = None,
                 reranker: Reranker | None = None):
        self.multivec = dict(multivec or {})
        self.reranker = reranker
        self.store = store
        self.encoders = encoders
        self.settings = settings
        self.media_path = media_path

    # -- retrieval -------------------------------------------------------------------
    def retrieve(self, query: Query, n: int, filters: Filters | None,
                 mode: str = "hybrid") -> dict[str, Retrieval]:
        lists: dict[str, Retrieval] = {}
        if query.text and mode in ("hybrid", "bm25"):
            lists["bm25"] = Retrieval(self.store.bm25(query.text, n, filters), dense=False)
        if mode in ("hybrid", "dense"):
            for name, vec, space in self._query_vectors(query):
                wanted, scope = self._scope(name, space, filters)
                if wanted:
                    lists[name] = Retrieval(self.store.dense(space, vec, n, scope), dense=True)
            if query.text:
                for space in self.multivec:
                    lists[f"{space}:maxsim"] = Retrieval(
                        self._late(space, query.text, n, filters), dense=True)
        if not lists:
            raise QueryError(self._unsupported(query, mode))
        return lists

    def _scope(self, name: str, space: str,
               filters: Filters | None) -> tuple[bool, Filters | None]:
        """(run it?, filters) of one dense list. A text query in an image–text space looks
        at pictures and pages only: passages there (``encode.clip_text_items``) serve image
        queries, and text-to-text matching is the text space's job, done better there.
        Not run when the user's modality filter leaves nothing to look at."""
        enc = self.encoders[space]
        if not (name.endswith(":text") and enc.supports_images):
            return True, filters
        flt = filters or Filters()
        kinds = [m for m in (flt.modality or list(IMAGE_MODALITIES)) if m in IMAGE_MODALITIES]
        return bool(kinds), replace(flt, modality=kinds)

    def _query_vectors(self, query: Query) -> list[tuple[str, np.ndarray, str]]:
        """(list name, vector, space) for every space able to embed a part of the query."""
        out: list[tuple[str, np.ndarray, str]] = []
        early = self.settings.query_fusion == "early"
        for space, enc in self.encoders.items():
            text_vec = image_vec = None
            if query.text and enc.supports_text and space not in self.multivec:
                text_vec = enc.encode_text([query.text])[0]
            if query.image is not None and enc.supports_images:
                image_vec = enc.encode_images([query.image])[0]
            if early and text_vec is not None and image_vec is not None:
                w = self.settings.image_weight
                out.append((f"{space}:text+image",
                            l2_normalize((1 - w) * text_vec + w * image_vec), space))
                continue
            if text_vec is not None:
                out.append((f"{space}:text", text_vec, space))
            if image_vec is not None:
                out.append((f"{space}:image", image_vec, space))
        return out

    def _late(self, space: str, text: str, n: int, filters: Filters | None) -> ScoredItems:
        """Late interaction: candidates from the token centroid index when the store has
        one (else the pooled vector's ANN), then exact MaxSim on their stored tokens."""
        query_tokens = self.encoders[space].encode_queries_multi([text])[0]  # type: ignore
        mv = self.multivec[space]
        index = getattr(mv, "centroid_index", None)
        want = max(n, self.settings.late_candidates)
        if index is None or not len(index):
            by_id = self._pooled_candidates(space, query_tokens, want, filters)
        else:
            ids, _ = index.search(query_tokens, self.settings.late_nprobe, want)
            if filters is None:  # fetch items for the final n only
                ranked = rerank(query_tokens, ids, mv, k=n)
                found = {it.id: it for it in self.store.get([i for i, _ in ranked])}
                return [(found[i], s) for i, s in ranked if i in found]
            # a filter may reject most centroid candidates: the store's own filtered ANN
            # search adds candidates that satisfy it
            by_id = {it.id: it for it in self.store.get(ids) if filters.matches(it)}
            by_id.update(self._pooled_candidates(space, query_tokens, want, filters))
        ranked = rerank(query_tokens, list(by_id), mv, k=n)
        return [(by_id[i], score) for i, score in ranked]

    def _pooled_candidates(self, space: str, query_tokens: np.ndarray, k: int,
                           filters: Filters | None) -> dict[str, Item]:
        """The pooled (mean) query vector's ANN neighbours in the main store."""
        hits = self.store.dense(space, mean_vector(query_tokens), k, filters)
        return {it.id: it for it, _ in hits}

    def _unsupported(self, query: Query, mode: str) -> str:
        if query.image is not None and not query.text:
            return ("image queries need a vision encoder: open the index with profile='clip' "
                    "and encode.vision_model set")
        return f"no retriever can answer a {query.kind} query in mode {mode!r}"

    # -- fusion ----------------------------------------------------------------------
    def fuse(self, lists: Mapping[str, Retrieval], key: Callable[[Item], G],
             how: Literal["max", "mean"] = "max") -> dict[G, float]:
        """Fused score per ``key`` (an item, page or document), lists collapsed to keys
        first (see fusion.py for why).

        ``weighted`` (default): dense lists share ``alpha`` and lexical lists ``1 - alpha``,
        each list's scores over its best (``dense_norm`` may min-max cosines). A page's
        BM25 evidence is the mean of its page-level score (the page item, all its text) and
        its chunk-level score (best chunk), where it has both: a page whose query words
        are spread over several chunks keeps the credit its whole text earns, and a page
        with one lucky chunk does not win on that chunk alone. ``rrf``: reciprocal ranks.
        """
        s = self.settings
        if s.fusion == "rrf":
            return rrf({name: collapse([(it, sc) for it, sc in r.items], key, how)
                        for name, r in lists.items()}, k=s.rrf_k)
        n_dense = sum(r.dense for r in lists.values()) or 1
        n_lex = sum(not r.dense for r in lists.values()) or 1
        fused: dict[G, float] = {}
        for r in lists.values():
            if r.dense:
                w = s.alpha / n_dense
                part = normalise(collapse([(it, sc) for it, sc in r.items], key, how),
                                 s.dense_norm)
            else:
                w = (1 - s.alpha) / n_lex
                part = self._lexical(r.items, key, how)
            for k, v in part.items():
                fused[k] = fused.get(k, 0.0) + w * v
        return fused

    def _lexical(self, scored: ScoredItems, key: Callable[[Item], G],
                 how: Literal["max", "mean"]) -> dict[G, float]:
        levels: dict[bool, list[tuple[Item, float]]] = {True: [], False: []}
        for it, sc in scored:
            levels[it.modality == "page"].append((it, sc))
        parts = [normalise(collapse(level, key, how), "max")
                 for level in levels.values() if level]
        if self.settings.lexical_levels == "max" or len(parts) < 2:
            return normalise(collapse(scored, key, how), "max")
        return mean_of_present(parts)

    def _rerank(self, text: str, ranked: list[tuple[Hashable, float]],
                best: Mapping[Hashable, Item], parts: dict[str, dict[str, float]]
                ) -> list[tuple[Hashable, float]]:
        """Re-score the best ``rerank_candidates`` groups that have text (by their best
        text item); the reranker's score is kept in ``Hit.scores['rerank']``. Returns
        the new order with RRF-scale scores."""
        assert self.reranker is not None
        cands = [g for g, _ in ranked[:self.settings.rerank_candidates]
                 if best[g].text.strip()]
        scores = self.reranker.score(text, [best[g].text for g in cands],
                                     keys=[best[g].id for g in cands])
        reranked = sorted(zip(cands, scores.tolist(), strict=True), key=lambda p: -p[1])
        for g, score in reranked:
            parts[best[g].id]["rerank"] = float(score)
        k = self.settings.rrf_k
        if self.settings.rerank_fusion == "weighted":
            # the reranker's scores stand in for dense evidence: the same convex share
            # (alpha) as first-stage fusion, over the first stage normalised by its best
            first = normalise(ranked, "max")
            again = normalise(reranked, "minmax")
            a = self.settings.alpha
            return top({g: (1 - a) * v + a * again.get(g, 0.0) for g, v in first.items()},
                        len(ranked))
        if self.settings.rerank_fusion == "replace":
            head = {g for g, _ in reranked}
            order = [g for g, _ in reranked] + [g for g, _ in ranked if g not in head]
            return [(g, 1.0 / (k + rank + 1)) for rank, g in enumerate(order)]
        return top(rrf({"first": ranked, "rerank": reranked}, k=k), len(ranked))

    # -- public ----------------------------------------------------------------------
    def search(self, query: Query, k: int = 10, filters: Filters | None = None,
               group_by: str | None = None, mode: str = "hybrid") -> list[Hit]:
        group_by = group_by or self.settings.group_by
        # Grouping collapses several items into one hit, so fetch more than k candidates.
        n = max(self.settings.candidates, k * (4 if group_by != "item" else 1))
        lists = self.retrieve(query, n, filters, mode)
        items: dict[str, Item] = {}
        parts: dict[str, dict[str, float]] = {}
        for name, r in lists.items():
            for it, sc in r.items:
                items.setdefault(it.id, it)
                parts.setdefault(it.id, {})[name] = float(sc)
        # members of a group in order of their own fused score; the group's own score
        # comes from fusing the collapsed lists
        item_score = self.fuse(lists, lambda it: it.id)
        how: Literal["max", "mean"] = "mean" if self.settings.group_score == "mean" else "max"
        group_score: dict[Hashable, float] = self.fuse(
            lists, lambda it: _group_key(it, group_by), how)
        members: dict[Hashable, list[str]] = {}
        for item_id, _ in top(item_score, len(item_score)):
            members.setdefault(_group_key(items[item_id], group_by), []).append(item_id)
        ranked = top(group_score, len(group_score))
        if self.reranker is not None and query.text:
            best = {g: _best_text(items, members[g]) for g, _ in ranked}
            ranked = self._rerank(query.text, ranked, best, parts)
        chosen = [[items[i] for i in members[g]] for g, _ in ranked[:k]]
        pages = self._page_media(chosen)
        hits: list[Hit] = []
        for (_g, score), group in zip(ranked[:k], chosen, strict=True):
            best_item = group[0]
            media = next((m.media for m in group if m.media), "") or pages.get(
                page_item_id(group[0].doc_id, group[0].page), "")
            hits.append(Hit(item=best_item, score=score,
                            snippet=self._snippet(group, query.text),
                            media_path=self.media_path(media) if media else None,
                            scores=parts[best_item.id], matches=len(group)))
        return hits

    def _page_media(self, groups: list[list[Item]]) -> dict[str, str]:
        """Media keys of the page items behind text-only groups, in one store lookup."""
        wanted = [page_item_id(g[0].doc_id, g[0].page) for g in groups
                  if not any(m.media for m in g) and g[0].mime == "application/pdf"]
        return {it.id: it.media for it in self.store.get(wanted)} if wanted else {}

    @staticmethod
    def _snippet(members: list[Item], text: str | None) -> str:
        """The best text-bearing member, cut around the first query word it contains."""
        for it in members:
            if it.text.strip():
                return make_snippet(it.text, text)
        return members[0].name


def page_item_id(doc_id: str, page: int) -> str:
    return f"{doc_id}:p{page}"


def _best_text(items: Mapping[str, Item], member_ids: list[str]) -> Item:
    """The group's best member that has text (what a reranker can read), else its best."""
    return next((items[i] for i in member_ids if items[i].text.strip()), items[member_ids[0]])


def _group_key(item: Item, group_by: str) -> tuple:
    if group_by == "doc":
        return (item.doc_id,)
    if group_by == "page":
        return (item.doc_id, item.page)
    return (item.id,)


def make_snippet(text: str, query: str | None, width: int = SNIPPET_CHARS) -> str:
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    start = 0
    if query:
        words = [w for w in _WORD.findall(query.lower()) if len(w) > 3]
        low = flat.lower()
        hits = [low.find(w) for w in words if low.find(w) >= 0]
        if hits:
            start = max(0, min(hits) - width // 4)
    end = min(len(flat), start + width)
    cut = flat[start:end]
    return ("…" if start else "") + cut + ("…" if end < len(flat) else "")
