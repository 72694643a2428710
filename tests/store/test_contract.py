"""One contract suite, run against every store backend (LanceDB, Milvus Lite)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mmrag.errors import ConfigError, StoreError
from mmrag.search.fusion import rrf, top
from mmrag.store import Store
from mmrag.types import Filters, Item
from tests.store.conftest import N_DOCS, N_ROWS, RARE_ROW, RARE_WORD, SPACES, unit

ROOT = Path(__file__).resolve().parents[2]


def ids(scored):
    return [item.id for item, _ in scored]


def assert_descending(scored):
    scores = [s for _, s in scored]
    assert scores == sorted(scores, reverse=True)


def test_store_satisfies_protocol(filled):
    assert isinstance(filled, Store)


def test_add_and_count_roundtrip(filled, data):
    assert filled.count() == N_ROWS
    assert filled.doc_ids() == {f"doc{d}" for d in range(N_DOCS)}
    sample = [data.items[i] for i in (0, 1, 2, RARE_ROW)]
    got = filled.get([it.id for it in sample])
    # Every Item field survives the store (bbox tuple, metadata dict, ints, floats).
    assert [dataclasses.asdict(g) for g in got] == [dataclasses.asdict(s) for s in sample]


def test_upsert_replaces(filled, data):
    old = data.items[3]
    new = dataclasses.replace(old, text="completely new words zeppelin", page=9)
    vec = {s: unit(np.random.default_rng(99), 1, d) for s, d in SPACES.items()}
    filled.add([new], vec)
    assert filled.count() == N_ROWS
    [got] = filled.get([old.id])
    assert (got.text, got.page) == (new.text, 9)
    hits = filled.dense("text", vec["text"][0], 3)
    assert ids(hits)[0] == old.id
    assert ids(filled.bm25("zeppelin", 3)) == [old.id]


def test_duplicate_ids_in_one_batch_keep_last(open_store, backend, data):
    store = open_store(backend)
    first, second = data.items[4], dataclasses.replace(data.items[4], text="second version")
    vec = {s: unit(np.random.default_rng(5), 2, d) for s, d in SPACES.items()}
    store.add([first, second], vec)
    assert store.count() == 1
    assert store.get([first.id])[0].text == "second version"


def test_delete_by_doc_id(filled, data):
    gone = {"doc3", "doc4"}
    expected = sum(it.doc_id in gone for it in data.items)
    assert filled.delete(sorted(gone) + ["no-such-doc"]) == expected
    assert filled.count() == N_ROWS - expected
    assert filled.doc_ids() == {f"doc{d}" for d in range(N_DOCS)} - gone
    assert filled.get([it.id for it in data.items if it.doc_id in gone]) == []
    assert filled.delete(["doc3"]) == 0


def test_get_keeps_order_and_skips_missing(filled, data):
    wanted = [data.items[i].id for i in (150, 3, 77)]
    got = filled.get([wanted[0], "missing-1", wanted[1], wanted[2], "missing-2"])
    assert [g.id for g in got] == wanted
    assert filled.get([]) == []


@pytest.mark.parametrize("space", list(SPACES))
def test_dense_ranks_exact_match_first(filled, data, space):
    present = np.flatnonzero(data.present[space])
    for row in present[:: max(1, len(present) // 8)]:
        hits = filled.dense(space, data.vectors[space][row], 5)
        assert ids(hits)[0] == data.items[row].id
        assert hits[0][1] == pytest.approx(1.0, abs=1e-3)  # cosine similarity, not distance
        assert_descending(hits)


@pytest.mark.parametrize("space", list(SPACES))
def test_dense_never_returns_absent_vectors(filled, data, space):
    q = unit(np.random.default_rng(1), 1, SPACES[space])[0]
    hits = filled.dense(space, q, N_ROWS + 50)
    want = {data.items[i].id for i in np.flatnonzero(data.present[space])}
    assert set(ids(hits)) == want
    assert len(hits) == len(want)
    # Scores agree with exact cosine similarity computed here.
    vecs = {it.id: data.vectors[space][i] for i, it in enumerate(data.items)}
    for item, score in hits[:10]:
        assert score == pytest.approx(float(vecs[item.id] @ q), abs=1e-3)


def test_bm25_finds_rare_word_first(filled, data):
    rare = data.items[RARE_ROW].id
    hits = filled.bm25(RARE_WORD, 5)
    assert ids(hits) == [rare]
    assert hits[0][1] > 0
    mixed = filled.bm25(f"alpha bravo {RARE_WORD}", 10)
    assert ids(mixed)[0] == rare
    assert_descending(mixed)
    assert filled.bm25("", 5) == []
    assert filled.bm25("   ", 5) == []


def test_bm25_tolerates_query_syntax(filled):
    # User text with quotes, parentheses and operators must not raise.
    for q in ['what\'s "alpha" (bravo) AND OR NOT?', "a*b~2 ^3", "'; DROP TABLE items; --"]:
        hits = filled.bm25(q, 5)
        assert all(isinstance(item, Item) for item, _ in hits)


@pytest.mark.parametrize("text, query", [
    ("ICT 기술변화에 따른 미래 보안기술은 중요하다", "보안기술"),    # Korean, particle attached
    ("本产品适用于所有肤质，温和不刺激", "肤质"),                   # Chinese, no spaces
    ("ＡＢＣ株式会社の決算報告書", "決算 abc"),                      # kana/kanji, full-width Latin
])
def test_bm25_finds_words_inside_cjk_runs(open_store, backend, data, text, query):
    store = open_store(backend)
    store.add(data.items, data.vectors)
    target = dataclasses.replace(data.items[0], id="cjk", text=text)
    vec = {s: v[:1] for s, v in data.vectors.items()}
    store.add([target], vec)
    hits = store.bm25(query, 3)
    assert ids(hits)[:1] == ["cjk"]
    [got] = store.get(["cjk"])
    assert got.text == text  # the bigrams live in the terms column, not the shown text


def test_bm25_stems_english_words(open_store, backend, data):
    # Both backends stem English: a plural or a past tense in the text matches the
    # query's base form, and the other way round.
    store = open_store(backend)
    store.add(data.items, data.vectors)
    target = dataclasses.replace(data.items[0], id="stem",
                                 text="The quarterly zorbinators were recalibrated twice")
    store.add([target], {s: v[:1] for s, v in data.vectors.items()})
    assert ids(store.bm25("zorbinator", 3))[:1] == ["stem"]
    assert ids(store.bm25("recalibrating zorbinator", 3))[:1] == ["stem"]


def test_hybrid_rrf_prefers_item_strong_in_both(open_store, backend, data):
    store = open_store(backend)
    store.add(data.items, data.vectors)
    rng = np.random.default_rng(3)
    q = unit(rng, 1, SPACES["text"])[0]
    near = q + 0.05 * unit(rng, 1, SPACES["text"])[0]
    far = -q
    base = data.items[:3]
    both = dataclasses.replace(base[0], id="both", text="alpha quasar report")
    dense_only = dataclasses.replace(base[1], id="dense-only", text="alpha bravo")
    text_only = dataclasses.replace(base[2], id="text-only", text="quasar quasar quasar")
    vec_t = np.stack([near / np.linalg.norm(near), q, far])
    store.add([both, dense_only, text_only],
              {"text": vec_t, "image": unit(rng, 3, SPACES["image"])})
    dense = store.dense("text", q, 20)
    sparse = store.bm25("quasar", 20)
    assert ids(dense)[:2] == ["dense-only", "both"]
    assert ids(sparse)[0] in {"text-only", "both"} and "both" in ids(sparse)[:2]
    fused = top(rrf({"dense": [(i.id, s) for i, s in dense],
                     "bm25": [(i.id, s) for i, s in sparse]}), 3)
    assert fused[0][0] == "both"


FILTERS = {
    "modality": Filters(modality=["image", "page"]),
    "doc_id": Filters(doc_id=["doc1", "doc7", "o'brien"]),
    "path": Filters(path="/data/reports/*.pdf"),
    "metadata": Filters(metadata={"lang": "en", "n": 2}),
    "combined": Filters.build({"modality": "page", "path": "*.pdf", "lang": "de"}),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_filters_dense_and_bm25(filled, data, name):
    flt = FILTERS[name]
    matching = [i for i, it in enumerate(data.items) if flt.matches(it)]
    assert matching, "filter must select something for the test to mean anything"
    k = 5
    # Dense: the best row inside the filter is found first; nothing outside leaks in.
    in_space = [i for i in matching if data.present["text"][i]]
    target = in_space[len(in_space) // 2]
    hits = filled.dense("text", data.vectors["text"][target], k, filters=flt)
    assert ids(hits)[0] == data.items[target].id
    assert len(hits) == min(k, len(in_space))
    assert all(flt.matches(item) for item, _ in hits)
    # BM25: every row contains "alpha", so the filter alone decides what comes back.
    hits = filled.bm25("alpha", k, filters=flt)
    assert len(hits) == min(k, len(matching))
    assert all(flt.matches(item) for item, _ in hits)
    # Plain dicts are accepted too.
    as_dict = {"modality": flt.modality, "doc_id": flt.doc_id, "path": flt.path,
               **flt.metadata}
    as_dict = {k2: v for k2, v in as_dict.items() if v is not None}
    assert ids(filled.bm25("alpha", k, filters=as_dict)) == ids(hits)


def test_filter_values_are_quoted(open_store, backend, data):
    store = open_store(backend)
    odd = ["o'brien", 'say "hi"', "back\\slash"]
    items = [dataclasses.replace(data.items[i], id=f"odd-{i}", doc_id=d)
             for i, d in enumerate(odd)]
    store.add(items + data.items[:10],
              {s: np.concatenate([v[:3], v[:10]]) for s, v in data.vectors.items()})
    for d in odd:
        hits = store.bm25("alpha", 20, filters={"doc_id": d})
        assert [item.doc_id for item, _ in hits] == [d]
    assert store.delete(odd[:2]) == 2
    assert store.doc_ids() >= {odd[2]} and not store.doc_ids() & set(odd[:2])


def test_reopen_after_close_keeps_everything(open_store, backend, data):
    store = open_store(backend)
    store.add(data.items[:100], {s: v[:100] for s, v in data.vectors.items()})
    store.add(data.items[100:], {s: v[100:] for s, v in data.vectors.items()})
    store.close()
    again = open_store(backend)
    assert again.count() == N_ROWS
    assert again.get([data.items[RARE_ROW].id]) == [data.items[RARE_ROW]]
    assert ids(again.bm25(RARE_WORD, 3)) == [data.items[RARE_ROW].id]
    assert ids(again.dense("image", data.vectors["image"][1], 1)) == [data.items[1].id]


def test_dim_mismatch_on_reopen_raises(open_store, backend, data):
    store = open_store(backend)
    store.add(data.items[:5], {s: v[:5] for s, v in data.vectors.items()})
    store.close()
    with pytest.raises(ConfigError, match="dim"):
        open_store(backend, spaces={"text": 17, "image": 32})


def test_bad_vectors_raise(open_store, backend, data):
    store = open_store(backend)
    with pytest.raises(StoreError, match="shape"):
        store.add(data.items[:2], {"text": np.zeros((3, 16))})
    half = unit(np.random.default_rng(0), 1, 16)
    half[0, :4] = np.nan
    with pytest.raises(StoreError, match="NaN"):
        store.add(data.items[:1], {"text": half})
    with pytest.raises(StoreError, match="space"):
        store.add(data.items[:1], {"audio": half})
    assert store.count() == 0


def test_new_rows_after_optimize_are_searchable(open_store, backend, data):
    # Low thresholds force LanceDB to build ANN + id indexes on 200 rows.
    lance = backend.startswith("lancedb")
    opts = {"ann_min_rows": 100, "index_ids_min_rows": 50} if lance else {}
    store = open_store(backend, **opts)
    store.add(data.items, data.vectors)
    store.optimize()
    if lance:
        indexed = {c for idx in store._table.list_indices() for c in idx.columns}
        assert {"vec_text", "vec_image", "terms", "id"} <= indexed
    rng = np.random.default_rng(11)
    fresh = Item(id="fresh", doc_id="fresh-doc", source="/new.txt", modality="page",
                 text="alpha brandnewword")
    vec = {s: unit(rng, 1, d) for s, d in SPACES.items()}
    store.add([fresh], vec)
    for space in SPACES:
        assert ids(store.dense(space, vec[space][0], 3))[0] == "fresh"
    assert ids(store.bm25("brandnewword", 3)) == ["fresh"]
    store.optimize()  # folding the row in keeps it findable
    assert ids(store.bm25("brandnewword", 3)) == ["fresh"]
    assert ids(store.dense("text", vec["text"][0], 1)) == ["fresh"]
    assert store.count() == N_ROWS + 1


CHILD = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from mmrag.store import stores
    from tests.store.conftest import make_data, SPACES
    backend, uri = sys.argv[1], sys.argv[2]
    data = make_data()
    store = stores.create(backend, uri, "items", spaces=SPACES)
    store.add(data.items[:150], {s: v[:150] for s, v in data.vectors.items()})
    store.add(data.items[150:], {s: v[150:] for s, v in data.vectors.items()})
    print("added", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_rows_survive_sigkill_after_add(tmp_path, backend, data):
    if backend == "lancedb-s3":
        pytest.skip("same code as lancedb; S3 crash safety is in tests/store/test_lance_s3.py")
    if backend == "milvus-server":
        pytest.skip("a Milvus server's durability is the server's own")
    uri = str(tmp_path / ("milvus.db" if backend == "milvus" else "lance"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, backend, uri], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "added" in proc.stdout
    from mmrag.store import stores

    store = stores.create(backend, uri, "items", spaces=SPACES)
    try:
        assert store.count() == N_ROWS
        assert ids(store.bm25(RARE_WORD, 1)) == [data.items[RARE_ROW].id]
    finally:
        store.close()
