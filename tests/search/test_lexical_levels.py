"""A page's BM25 evidence at two granularities: its whole text and its best chunk."""

from __future__ import annotations

from mmrag.config import SearchSettings
from mmrag.search.query import Query
from mmrag.search.searcher import Searcher
from mmrag.types import Item


def _item(doc: str, kind: str, n: int = 0) -> Item:
    item_id = f"{doc}:p1" if kind == "page" else f"{doc}:p1:t{n}"
    return Item(id=item_id, doc_id=doc, source=f"{doc}.pdf", modality=kind, text="words",
                page=1, mime="application/pdf", name=f"{doc}.pdf")


class FakeStore:
    """BM25 only. Page A matches across its whole text (page item 9.0) and only partly
    in any one chunk (7.0); page B has one lucky chunk (10.0) and little else (4.0)."""

    def bm25(self, query, k, filters=None):
        return [(_item("B", "text", 1), 10.0), (_item("A", "page"), 9.0),
                (_item("A", "text", 1), 7.0), (_item("B", "page"), 4.0)]

    def dense(self, *a, **kw):
        return []

    def get(self, ids):
        return []


def _pages(levels: str) -> list[str]:
    searcher = Searcher(FakeStore(), {}, SearchSettings(lexical_levels=levels),  # type: ignore
                        media_path=lambda key: None)
    hits = searcher.search(Query(text="spread words"), k=2, mode="bm25")
    return [h.item.doc_id for h in hits]


def test_mean_of_levels_prefers_the_page_that_matches_as_a_whole():
    assert _pages("mean") == ["A", "B"]


def test_max_over_items_lets_one_lucky_chunk_win():
    assert _pages("max") == ["B", "A"]


def test_hit_item_is_the_groups_best_item_and_keeps_its_raw_score():
    searcher = Searcher(FakeStore(), {}, SearchSettings(), media_path=lambda key: None)  # type: ignore
    hits = searcher.search(Query(text="spread words"), k=2, mode="bm25")
    by_doc = {h.item.doc_id: h for h in hits}
    assert by_doc["B"].item.modality == "text" and by_doc["B"].scores == {"bm25": 10.0}
    assert by_doc["A"].item.modality == "page" and by_doc["A"].matches == 2


class FlatDenseStore(FakeStore):
    """BM25 is sure of A (12 vs 9); the dense list barely tells pages apart (cosines
    0.21 vs 0.20: nothing in the index is close to the query) but prefers B."""

    def bm25(self, query, k, filters=None):
        return [(_item("A", "page"), 12.0), (_item("B", "page"), 9.0),
                (_item("C", "page"), 1.0)]

    def dense(self, space, vector, k, filters=None):
        return [(_item("B", "text", 1), 0.21), (_item("C", "text", 1), 0.205),
                (_item("A", "text", 1), 0.20)]


class OneVector:
    supports_text, supports_images, dim = True, False, 2

    def encode_text(self, texts):
        import numpy as np
        return np.ones((len(texts), 2), dtype=np.float32)


def _fused(dense_norm: str) -> list[str]:
    searcher = Searcher(FlatDenseStore(), {"text": OneVector()},  # type: ignore
                        SearchSettings(dense_norm=dense_norm, alpha=0.5),
                        media_path=lambda key: None)
    return [h.item.doc_id for h in searcher.search(Query(text="q"), k=3)]


def test_a_flat_weak_dense_list_cannot_overturn_a_clear_bm25_winner():
    assert _fused("max")[0] == "A"


def test_min_max_stretches_the_same_flat_list_into_a_confident_one():
    assert _fused("minmax")[0] == "B"
