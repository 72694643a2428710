"""Hard-negative mining skips the positive's page, near-duplicates and false negatives."""

from __future__ import annotations

import numpy as np

from mmrag.tune.negatives import is_near_duplicate, mine_negatives, pick_negatives
from mmrag.tune.pairs import Pair, Passage
from mmrag.types import Item

POS = "Puffins nest in burrows dug into grassy cliff tops every spring season."


def _pair() -> Pair:
    return Pair("where do puffins nest", POS, "p1", ("d1", 2), "cloze")


def test_skips_own_page_duplicates_and_texts_containing_the_query():
    same_page = Passage("p2", "d1", 2, "Another chunk of the very same page about gannets.")
    dup = Passage("p3", "d7", 9, POS + " Copyright 2024.")  # boilerplate repeated elsewhere
    answer = Passage("p4", "d3", 1, "Guides say: where do puffins nest? On cliffs.")
    good1 = Passage("p5", "d4", 1, "Gannets dive from thirty metres to catch mackerel.")
    good2 = Passage("p6", "d5", 1, "Albatrosses glide for hours without flapping wings.")
    bm25 = [same_page, dup, answer, good1]
    dense = [dup, good2, good1]
    negs = pick_negatives(_pair(), [bm25, dense], n=3)
    assert sorted(negs) == sorted([good1.text, good2.text])  # nothing else was acceptable


def test_takes_turns_between_lists():
    a = [Passage(f"a{i}", f"da{i}", 1, f"bm25 candidate number {i} about cliffs and sea")
         for i in range(3)]
    b = [Passage(f"b{i}", f"db{i}", 1, f"dense neighbour {i} on wings, fish and birds")
         for i in range(3)]
    assert pick_negatives(_pair(), [a, b], n=2) == [a[0].text, b[0].text]


def test_near_duplicate_threshold():
    assert is_near_duplicate("the cat sat on the mat", "The cat sat on the mat!")
    assert not is_near_duplicate("the cat sat on the mat", "a dog ran in the park")


class FakeStore:
    """BM25 and dense lists of stored items, as a store returns them."""

    def __init__(self, items):
        self.items = items
        self.dense_calls = []

    def bm25(self, query, k, filters=None):
        return [(it, 1.0) for it in self.items[:k]]

    def dense(self, space, vector, k, filters=None):
        self.dense_calls.append(space)
        return [(it, 0.5) for it in reversed(self.items[-k:])]


def test_mine_negatives_reads_both_retrievers_of_the_serving_column():
    items = [Item(id="p1", doc_id="d1", source="s", modality="text", text=POS, page=2),
             Item(id="x", doc_id="d2", source="s", modality="text", page=1,
                  text="Gannets dive from thirty metres to catch mackerel."),
             Item(id="y", doc_id="d3", source="s", modality="text", page=1,
                  text="Yeast ferments sugars and releases carbon dioxide gas.")]
    store = FakeStore(items)
    pairs = [_pair()]
    mine_negatives(pairs, store, "text_t1", lambda qs: np.ones((len(qs), 4)), n=2)
    assert store.dense_calls == ["text_t1"]
    # rank 1: BM25 offers the positive itself (skipped), dense offers y; rank 2: BM25 x
    assert pairs[0].negatives == [items[2].text, items[1].text]
