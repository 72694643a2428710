"""Second-stage rerankers: bi-encoder (bundled MiniLM), cross-encoder wiring, and how the
searcher folds their order into the first stage's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from mmrag import Index
from mmrag.errors import ConfigError
from mmrag.search.rerank import BiEncoderReranker, CrossEncoderReranker, rerankers

DOCS = [("storm.md", b"Storm petrels feed by pattering over the waves at night."),
        ("tax.md", b"File the quarterly tax return before the end of the month."),
        ("puffin.md", b"Puffins dig nesting burrows in the soil of grassy cliff tops.")]


class PreferTax:
    """A scripted reranker that puts anything about tax first: order is what we check."""

    name = "prefer-tax"

    def __init__(self, **_: object):
        self.seen: list[str] = []

    def score(self, query: str, texts: Sequence[str],
              keys: Sequence[str] | None = None) -> np.ndarray:
        self.seen.extend(texts)
        return np.array([1.0 if "tax" in t else 0.0 for t in texts], dtype=np.float32)


@pytest.fixture(scope="module")
def bi():
    return BiEncoderReranker()


def test_bi_encoder_scores_the_relevant_passage_highest(bi):
    texts = [t.decode() for _, t in DOCS]
    scores = bi.score("where do seabirds nest", texts)
    assert scores.shape == (3,) and int(np.argmax(scores)) == 2


def test_bi_encoder_embeds_each_candidate_once(bi, monkeypatch):
    calls: list[int] = []
    real = bi.encoder.encode_text

    def counting(texts):
        calls.append(len(texts))
        return real(texts)

    monkeypatch.setattr(bi.encoder, "encode_text", counting)
    texts, keys = [t.decode() for _, t in DOCS], ["a", "b", "c"]
    first = bi.score("petrels at night", texts, keys)
    second = bi.score("petrels at night", texts, keys)
    assert calls == [3, 1, 1]  # candidates once, then only the query
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_cross_encoder_needs_a_model():
    with pytest.raises(ConfigError, match="rerank_model"):
        CrossEncoderReranker()


def test_cross_encoder_missing_folder_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not found") as err:
        CrossEncoderReranker(model=str(tmp_path / "nope"))
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    """A random-weight BERT cross-encoder from the real config class, with the bundled
    MiniLM tokenizer: proves loading and scoring wiring, never quality."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from mmrag.encode.text import bundled_model_path

    path = tmp_path_factory.mktemp("tiny-cross-encoder")
    tok = AutoTokenizer.from_pretrained(bundled_model_path())
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=37, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_cross_encoder_wiring_on_random_weights(tiny_cross_encoder):
    ce = rerankers.create("cross-encoder", model=tiny_cross_encoder)
    texts = [t.decode() for _, t in DOCS]
    a = ce.score("where do seabirds nest", texts)
    b = ce.score("where do seabirds nest", texts)
    assert a.shape == (3,) and np.isfinite(a).all()
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert len(set(np.round(a, 6).tolist())) > 1  # pairs are really read, not one constant


def _index(tmp_path, **search):
    return Index(tmp_path / "idx", profile="offline", show_progress=False,
                 encode={"text_encoder": "hashing", "image_descriptor": False},
                 search=search)


def test_replace_puts_the_rerankers_choice_first(tmp_path):
    with _index(tmp_path, rerank="tests.search.test_rerank.PreferTax",
                rerank_fusion="replace") as idx:
        idx.add(DOCS)
        hits = idx.search("petrels pattering over waves", k=3)
        assert hits[0].item.name == "tax.md"
        assert hits[0].scores["rerank"] == 1.0
        assert idx.reranker.seen  # it saw candidate text


@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_fusion_blends_first_stage_and_reranker(tmp_path, fusion):
    with _index(tmp_path, rerank="tests.search.test_rerank.PreferTax",
                rerank_fusion=fusion) as idx:
        idx.add(DOCS)
        hits = idx.search("petrels pattering over waves", k=3)
    names = [h.item.name for h in hits]
    # first stage: storm first; reranker: tax first; RRF of the two keeps both on top
    assert set(names[:2]) == {"storm.md", "tax.md"}
    assert all("rerank" in h.scores for h in hits)


def test_no_rerank_for_image_only_queries(tmp_path):
    from PIL import Image

    with Index(tmp_path / "idx", profile="offline", show_progress=False,
               encode={"text_encoder": "hashing"},
               search={"rerank": "tests.search.test_rerank.PreferTax"}) as idx:
        img = Image.new("RGB", (64, 64), (200, 30, 30))
        idx.add([("red.png", _png(img)), *DOCS])
        hits = idx.search(None, image=img, k=2)
        assert hits[0].item.name == "red.png" and "rerank" not in hits[0].scores
        assert idx.reranker.seen == []


def _png(img) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_auto_reranks_nothing_and_bi_encoder_is_opt_in(tmp_path):
    with _index(tmp_path / "a") as plain:
        assert plain.reranker is None
    with Index(tmp_path / "b", profile="offline", show_progress=False,
               encode={"text_encoder": "model2vec", "image_descriptor": False}) as fast:
        assert fast.settings.search.rerank == "auto"
        assert fast.settings.encode.text_encoder == "model2vec"
        assert fast.reranker is None
    with Index(tmp_path / "b", profile="offline", show_progress=False,
               search={"rerank": "bi-encoder"}) as chosen:
        assert isinstance(chosen.reranker, BiEncoderReranker)
