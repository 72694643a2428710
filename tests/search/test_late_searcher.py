"""Searcher late interaction: centroid-index candidates when the token store has an index,
pooled-vector ANN otherwise; filters; and the colpali profile end to end (tiny random
ColPali: wiring only, never quality)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmrag import Index
from mmrag.config import SearchSettings
from mmrag.search.late import maxsim, mean_vector
from mmrag.search.query import Query
from mmrag.search.searcher import Searcher
from mmrag.store.multivec import MultiVectorStore
from mmrag.store.plaid import CentroidIndex
from mmrag.types import Filters, Item
from tests.factories import make_text_pdf

DIM = 32


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _corpus(n_pages=160, concepts=120, seed=0):
    """Pages around 6 of 120 recurring concepts; queries around 3 of one page's concepts."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.standard_normal((concepts, DIM)))
    pages, sets = [], []
    for _ in range(n_pages):
        chosen = rng.choice(concepts, 6, replace=False)
        n = int(rng.integers(30, 60))
        noise = 0.5 * rng.standard_normal((n, DIM)) / np.sqrt(DIM)
        pages.append(_unit(centres[chosen[rng.integers(0, 6, n)]] + noise))
        sets.append(chosen)
    queries = {}
    for t in rng.choice(n_pages, 12, replace=False):
        chosen = rng.choice(sets[t], 3, replace=False)
        noise = 0.5 * rng.standard_normal((8, DIM)) / np.sqrt(DIM)
        queries[f"query {t}"] = _unit(centres[chosen[rng.integers(0, 3, 8)]] + noise)
    return pages, queries


class _Encoder:
    space, dim, supports_text, supports_images = "colpali", DIM, True, False

    def __init__(self, queries):
        self.queries = queries

    def encode_queries_multi(self, texts):
        return [self.queries[t] for t in texts]


class _Store:
    """The main store's part the late path uses: pooled-vector ANN and get by id."""

    def __init__(self, items, pages):
        self.items = {it.id: it for it in items}
        self.means = {it.id: mean_vector(p) for it, p in zip(items, pages, strict=True)}
        self.dense_calls: list[Filters | None] = []

    def dense(self, space, vector, k, filters=None):
        self.dense_calls.append(filters)
        scored = [(it, float(self.means[i] @ vector)) for i, it in self.items.items()
                  if filters is None or filters.matches(it)]
        return sorted(scored, key=lambda s: -s[1])[:k]

    def get(self, ids):
        return [self.items[i] for i in ids if i in self.items]


@pytest.fixture()
def setup(tmp_path):
    def build(train_at):
        pages, queries = _corpus()
        items = [Item(id=f"d{i}:p1", doc_id=f"d{i}", source=f"/docs/{i}.pdf",
                      modality="page" if i % 2 else "image") for i in range(len(pages))]
        mv = MultiVectorStore(tmp_path / "mv", DIM, centroids=32, train_at=train_at)
        mv.add([it.id for it in items], pages)
        store = _Store(items, pages)
        searcher = Searcher(store, {"colpali": _Encoder(queries)},
                            SearchSettings(late_candidates=20, late_nprobe=4),
                            lambda _: None, {"colpali": mv})
        return searcher, store, mv, items, pages, queries
    return build


def _late(searcher, text, n, filters=None):
    lists = searcher.retrieve(Query(text=text), n, filters, mode="dense")
    return [(it.id, s) for it, s in lists["colpali:maxsim"].items]


def test_centroid_path_agrees_with_exact_maxsim_and_skips_pooled_ann(setup):
    searcher, store, mv, items, pages, queries = setup(train_at=50)
    assert mv.centroid_index is not None
    agree = []
    for text, q in queries.items():
        got = _late(searcher, text, 5)
        exact = maxsim(q, pages)
        want = {items[i].id for i in np.argsort(-exact)[:5]}
        agree.append(len(want & {i for i, _ in got}) / 5)
        top = int(np.argmax(exact))
        assert got[0] == (items[top].id, pytest.approx(float(exact[top]), abs=1e-2))
    assert np.mean(agree) >= 0.9
    assert store.dense_calls == []  # candidates came from the centroid index alone


def test_filters_keep_only_matching_items_and_add_filtered_ann_candidates(setup):
    searcher, store, mv, items, pages, queries = setup(train_at=50)
    only_pages = Filters(modality=["page"])
    for text, q in list(queries.items())[:4]:
        got = _late(searcher, text, 5, only_pages)
        assert got and all(store.items[i].modality == "page" for i, _ in got)
        exact = maxsim(q, pages)
        best_page = max((i for i in range(len(pages)) if i % 2), key=lambda i: exact[i])
        assert got[0][0] == items[best_page].id
    assert store.dense_calls and all(f is only_pages for f in store.dense_calls)
    # a filter no centroid candidate passes still answers from the store's filtered ANN
    one_doc = Filters(doc_id=["d7"])
    assert [i for i, _ in _late(searcher, next(iter(queries)), 5, one_doc)] == ["d7:p1"]


def test_without_index_the_pooled_ann_path_is_used(setup):
    searcher, store, mv, items, pages, queries = setup(train_at=0)
    assert mv.centroid_index is None
    text, q = next(iter(queries.items()))
    got = _late(searcher, text, 5)
    assert store.dense_calls == [None]
    cands = [it.id for it, _ in store.dense("colpali", mean_vector(q), 20)]
    assert {i for i, _ in got} <= set(cands)  # re-ranked pooled-ANN candidates only


def test_colpali_wiring_centroid_index_trained_used_and_maintained(tmp_path, tiny_colpali_path,
                                                                   monkeypatch):
    docs = tmp_path / "pics"
    docs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
            docs / f"noise{i}.png")
    (docs / "slides.pdf").write_bytes(make_text_pdf(["first slide", "second slide"]))
    settings = {"vision_model": str(tiny_colpali_path), "text_encoder": "hashing",
                "batch_size": 2}
    search = {"late_index_min_pages": 3, "late_centroids": 8}
    calls = []
    real_search = CentroidIndex.search

    def spy(self, *args, **kwargs):
        calls.append(args)
        return real_search(self, *args, **kwargs)

    monkeypatch.setattr(CentroidIndex, "search", spy)
    with Index(tmp_path / "idx", profile="colpali", encode=settings, search=search) as index:
        assert not index.add(docs).failed
        mv = index.multivec["colpali"]
        assert mv.centroid_index is not None and len(mv.centroid_index) == len(mv.ids()) == 6
        hits = index.search("first slide", k=5, group_by="item", mode="dense")
        late = [h for h in hits if "colpali:maxsim" in h.scores]
        assert calls and late and all(h.item.id in mv.centroid_index for h in late)
        index.delete(docs / "slides.pdf")
        assert len(mv.centroid_index) == 4
        first = mv.centroid_index
        index.optimize()  # retrains over what is left
        assert mv.centroid_index is not first and len(mv.centroid_index) == 4
    with Index(tmp_path / "idx", search=search) as again:  # the index is loaded back
        assert len(again.multivec["colpali"].centroid_index) == 4
