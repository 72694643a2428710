"""Turns a query into ranked, grouped hits: one retriever per (vector space × query part)
plus BM25, fused, then grouped by page or document.

Everything here is store-agnostic: stores return scored items, this module decides how
lists combine, so the LanceDB and Milvus backends rank identically.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import SearchSettings
from ..encode.base import Encoder, l2_normalize
from ..errors import QueryError
from ..store.base import ScoredItems, Store
from ..types import Filters, Hit, Item
from .fusion import rrf, top, weighted
from .late import mean_vector, rerank
from .query import Query
from .rerank import Reranker

SNIPPET_CHARS = 280
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
                lists[name] = Retrieval(self.store.dense(space, vec, n, filters), dense=True)
            if query.text:
                for space in self.multivec:
                    lists[f"{space}:maxsim"] = Retrieval(
                        self._late(space, query.text, n, filters), dense=True)
        if not lists:
            raise QueryError(self._unsupported(query, mode))
        return lists

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
    def fuse(self, lists: Mapping[str, Retrieval]) -> tuple[dict[str, float], dict[str, Item],
                                                            dict[str, dict[str, float]]]:
        ranked = {name: [(it.id, s) for it, s in r.items] for name, r in lists.items()}
        if self.settings.fusion == "weighted":
            n_dense = sum(r.dense for r in lists.values()) or 1
            n_lex = sum(not r.dense for r in lists.values()) or 1
            a = self.settings.alpha
            weights = {name: (a / n_dense if r.dense else (1 - a) / n_lex)
                       for name, r in lists.items()}
            fused = weighted(ranked, weights)
        else:
            fused = rrf(ranked, k=self.settings.rrf_k)
        items: dict[str, Item] = {}
        parts: dict[str, dict[str, float]] = {}
        for name, r in lists.items():
            for it, s in r.items:
                items.setdefault(it.id, it)
                parts.setdefault(it.id, {})[name] = float(s)
        return fused, items, parts

    def _rerank(self, text: str, fused: dict[str, float], items: Mapping[str, Item],
                parts: dict[str, dict[str, float]]) -> dict[str, float]:
        """Re-score the best ``rerank_candidates`` that have text; the reranker's score is
        kept in ``Hit.scores['rerank']``. Returns the new fused scores (RRF scale)."""
        assert self.reranker is not None
        ordered = top(fused, len(fused))
        cands = [i for i, _ in ordered[:self.settings.rerank_candidates]
                 if items[i].text.strip()]
        scores = self.reranker.score(text, [items[i].text for i in cands], keys=cands)
        reranked = sorted(zip(cands, scores.tolist(), strict=True), key=lambda p: -p[1])
        for item_id, score in reranked:
            parts[item_id]["rerank"] = float(score)
        k = self.settings.rrf_k
        if self.settings.rerank_fusion == "replace":
            head = {i for i, _ in reranked}
            order = [i for i, _ in reranked] + [i for i, _ in ordered if i not in head]
            return {item_id: 1.0 / (k + rank + 1) for rank, item_id in enumerate(order)}
        return rrf({"first": ordered, "rerank": reranked}, k=k)

    # -- public ----------------------------------------------------------------------
    def search(self, query: Query, k: int = 10, filters: Filters | None = None,
               group_by: str | None = None, mode: str = "hybrid") -> list[Hit]:
        group_by = group_by or self.settings.group_by
        # Grouping collapses several items into one hit, so fetch more than k candidates.
        n = max(self.settings.candidates, k * (4 if group_by != "item" else 1))
        lists = self.retrieve(query, n, filters, mode)
        fused, items, parts = self.fuse(lists)
        if self.reranker is not None and query.text:
            fused = self._rerank(query.text, fused, items, parts)
        groups: dict[tuple, list[tuple[str, float]]] = {}
        for item_id, score in top(fused, len(fused)):
            it = items[item_id]
            key = _group_key(it, group_by)
            groups.setdefault(key, []).append((item_id, score))
        ranked_groups = self._rank_groups(list(groups.values()))[:k]
        chosen = [[items[i] for i, _ in members] for members, _ in ranked_groups]
        pages = self._page_media(chosen)
        hits: list[Hit] = []
        for (members, group_score), group in zip(ranked_groups, chosen, strict=True):
            best_id, _ = members[0]
            media = next((m.media for m in group if m.media), "") or pages.get(
                page_item_id(group[0].doc_id, group[0].page), "")
            hits.append(Hit(item=items[best_id], score=group_score,
                            snippet=self._snippet(group, query.text),
                            media_path=self.media_path(media) if media else None,
                            scores=parts[best_id], matches=len(members)))
        return hits

    def _rank_groups(self, groups: list[list[tuple[str, float]]]
                     ) -> list[tuple[list[tuple[str, float]], float]]:
        """Groups with their score, best first. ``max`` (default) scores a page or a
        document by its best item; ``mean`` by the mean of its items among the candidates,
        so a video whose frames match throughout beats one with a single lucky frame."""
        if self.settings.group_score == "mean":
            scored = [(m, sum(s for _, s in m) / len(m)) for m in groups]
            return sorted(scored, key=lambda g: -g[1])
        return [(m, m[0][1]) for m in groups]  # already in order of their best member

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
