"""Grounding: sentence split, numbers, per-sentence support, drop_unsupported, the NLI
checker's wiring, and the weak-evidence rule holding for every generator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mmrag.config import GenerateSettings
from mmrag.encode.hashing import HashingEncoder
from mmrag.errors import ConfigError
from mmrag.generate import create_generator
from mmrag.generate.answerer import Answerer
from mmrag.generate.base import Message
from mmrag.generate.evidence import retrieval_confidence
from mmrag.generate.grounding import (
    LexicalEmbeddingChecker,
    check_support,
    checkers,
    drop_unsupported,
    grounded_share,
    numbers_in,
    split_sentences,
)
from mmrag.generate.prompt import NOT_FOUND
from mmrag.types import Answer, Hit, Item
from tests.generate._fake_servers import FakeServer

REVENUE = ("The Zeppelin Works reported that quarterly revenue rose to 28.4 million euros "
           "in the third quarter of 2023. The company employed 1,250 people at the end of "
           "the year.")
FOXES = "The red fox hunts voles in snowy meadows. Foxes hear voles under the snow."
EMBED = HashingEncoder().encode_text


def _hit(n: int, text: str) -> Hit:
    item = Item(id=f"d{n}:p1", doc_id=f"d{n}", source=f"/docs/doc{n}.pdf",
                modality="page", text=text, name=f"doc{n}.pdf")
    return Hit(item=item, score=1.0, snippet=text[:80])


HITS = [_hit(1, REVENUE), _hit(2, FOXES)]


def _spans(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


# -- sentences and numbers -------------------------------------------------------------
def test_split_keeps_abbreviations_decimals_initials_and_trailing_markers():
    text = ("Revenue rose to 28.4 million, e.g. in Q3 [1]. Dr. Smith and J. Smith left. "
            "Fig. 3 shows it! Is it? [2]\nA bullet line\nThe end.")
    assert _spans(text) == ["Revenue rose to 28.4 million, e.g. in Q3 [1].",
                            "Dr. Smith and J. Smith left.", "Fig. 3 shows it!",
                            "Is it? [2]", "A bullet line", "The end."]
    for a, b in split_sentences(text):  # spans index the text itself
        assert text[a:b] == text[a:b].strip() and b > a


@pytest.mark.parametrize(("written", "value"), [
    ("28.4", "28.4"), ("28,4", "28.4"), ("1,000", "1000"), ("1.000.000", "1000000"),
    ("2.50", "2.5"), ("12%", "12"), ("10,000.5", "10000.5"), ("2023", "2023")])
def test_numbers_are_normalised(written, value):
    assert [v for _, v in numbers_in(f"about {written} units")] == [value]


def test_citation_markers_and_words_with_digits_are_not_numbers():
    assert numbers_in("GPT is good [1, 2] and v2 too [3-4].") == []
    assert [v for _, v in numbers_in("in 2023 10 people")] == ["2023", "10"]


# -- support -----------------------------------------------------------------------------
def test_supported_and_unsupported_sentences():
    text = ("Quarterly revenue rose to 28.4 million euros in the third quarter [1]. "
            "The company also opened a new factory in Brazil [1].")
    checker = LexicalEmbeddingChecker(EMBED)
    first, second = check_support(text, [REVENUE, FOXES], checker, 0.5)
    assert first.supported and first.source == 1 and first.numbers == []
    assert text[first.start:first.end] == first.text
    assert not second.supported and second.score < first.score
    assert grounded_share([first, second]) == 0.5


def test_a_number_no_cited_source_holds_is_flagged_even_when_the_words_match():
    text = "Quarterly revenue rose to 29.7 million euros in the third quarter of 2023 [1]."
    (s,) = check_support(text, [REVENUE, FOXES], LexicalEmbeddingChecker(EMBED), 0.5)
    assert s.numbers == ["29.7"] and not s.supported
    assert s.score >= 0.5  # the words alone would have passed: the number decides
    # the same figure written differently is found ("1250" vs "1,250"; "three" vs 3)
    ok = "The company employed 1250 people at the end of the year [1]."
    assert check_support(ok, [REVENUE], LexicalEmbeddingChecker(EMBED), 0.5)[0].supported


def test_a_number_only_in_an_uncited_source_is_flagged():
    text = "Foxes hunt 28.4 voles in snowy meadows [2]."  # 28.4 is in source 1 only
    (s,) = check_support(text, [REVENUE, FOXES], LexicalEmbeddingChecker(EMBED), 0.5)
    assert s.numbers == ["28.4"] and s.source == 2


def test_a_sentence_without_a_marker_is_checked_against_every_source():
    text = "The red fox hunts voles in snowy meadows."
    (s,) = check_support(text, [REVENUE, FOXES], LexicalEmbeddingChecker(EMBED), 0.5)
    assert s.supported and s.source == 2


def test_a_bare_marker_is_not_a_claim():
    assert check_support("[1]", [REVENUE], LexicalEmbeddingChecker(EMBED), 0.5) == []


def test_drop_unsupported_keeps_the_supported_sentences():
    text = ("Quarterly revenue rose to 28.4 million euros [1]. Pigs can fly over the moon [1]."
            "\nThe red fox hunts voles in snowy meadows [2].")
    support = check_support(text, [REVENUE, FOXES], LexicalEmbeddingChecker(EMBED), 0.5)
    assert [s.supported for s in support] == [True, False, True]
    kept = drop_unsupported(text, support)
    assert "Pigs" not in kept and "28.4 million euros [1]." in kept and "voles" in kept


def test_lexical_only_without_an_embed_function():
    checker = LexicalEmbeddingChecker(None)
    scores = checker.score(["red fox hunts voles"], [FOXES, REVENUE])
    assert scores.shape == (1, 2) and scores[0, 0] == 1.0 and scores[0, 1] == 0.0


def test_nli_checker_needs_a_model():
    with pytest.raises(ConfigError, match="nli_model"):
        checkers.create("nli", embed=None, model="")


def test_nli_checker_missing_folder_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        checkers.create("nli", embed=None, model=str(tmp_path / "absent" / "nli"))


@pytest.fixture(scope="module")
def tiny_nli(tmp_path_factory) -> str:
    """A random-weight 3-label BERT NLI cross-encoder from the real config class, with
    the bundled MiniLM tokenizer: proves loading and scoring wiring, never quality."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from mmrag.encode.text import bundled_model_path

    path = tmp_path_factory.mktemp("tiny-nli")
    tok = AutoTokenizer.from_pretrained(bundled_model_path())
    labels = {0: "contradiction", 1: "entailment", 2: "neutral"}
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=37, num_labels=3,
                     id2label=labels, label2id={v: k for k, v in labels.items()})
    BertForSequenceClassification(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_nli_checker_wiring_on_random_weights(tiny_nli):
    checker = checkers.create("nli", embed=None, model=tiny_nli)
    assert checker._entail == 1  # found by its label, not by position
    scores = checker.score(["Revenue rose.", "Foxes hunt voles."], [REVENUE, FOXES, ""])
    assert scores.shape == (2, 3) and np.all((scores >= 0) & (scores <= 1))
    text = "Quarterly revenue rose to 28.4 million euros [1]. It rose to 99 [1]."
    support = check_support(text, [REVENUE], checker, 0.0)
    assert [s.numbers for s in support] == [[], ["99"]]
    assert support[0].supported and not support[1].supported


# -- the Answerer ------------------------------------------------------------------------
class Scripted:
    """A generator that replies with fixed text and counts its calls."""

    supports_images = False

    def __init__(self, reply: str, name: str = "scripted"):
        self.reply, self.name, self.calls = reply, name, 0

    def stream(self, messages: list[Message], *, max_tokens: int,
               temperature: float) -> Iterator[str]:
        self.calls += 1
        yield from self.reply.split(" ")[:1]
        yield " " + " ".join(self.reply.split(" ")[1:])


def _answerer(gen, hits=HITS, **settings) -> Answerer:
    return Answerer(lambda text, n, img: list(hits), gen, GenerateSettings(**settings),
                    embed=EMBED)


MIXED = ("Quarterly revenue rose to 28.4 million euros in the third quarter [1]. "
         "Pigs can fly over the moon [1]. The red fox hunts voles in snowy meadows [2].")


def test_answer_carries_support_and_grounded():
    answer = _answerer(Scripted(MIXED)).ask("What did revenue rise to?").answer
    assert [s.supported for s in answer.support] == [True, False, True]
    assert answer.grounded == pytest.approx(2 / 3)
    assert answer.text == MIXED
    d = answer.to_dict()
    assert d["grounded"] == answer.grounded and len(d["support"]) == 3
    assert set(d["support"][1]) >= {"text", "start", "end", "score", "supported", "numbers"}


def test_drop_unsupported_filters_the_final_text_not_the_stream():
    stream = _answerer(Scripted(MIXED), drop_unsupported=True).ask("revenue?")
    streamed = "".join(stream)
    answer = stream.answer
    assert "Pigs" in streamed and "Pigs" not in answer.text
    assert answer.grounded == 1.0 and all(s.supported for s in answer.support)
    assert all(answer.text[s.start:s.end] == s.text for s in answer.support)
    assert [c.number for c in answer.citations] == [1, 2]


def test_an_answer_with_nothing_supported_is_not_found_once_dropped():
    answer = _answerer(Scripted("Pigs can fly over the moon [1]."),
                       drop_unsupported=True).ask("revenue?").answer
    assert not answer.found and answer.text == NOT_FOUND and answer.citations == []


def test_not_found_answers_have_no_support_and_count_as_grounded():
    answer = _answerer(Scripted(NOT_FOUND)).ask("revenue?").answer
    assert not answer.found and answer.support == [] and answer.grounded == 1.0


def test_retrieval_confidence_ranks_on_topic_above_off_topic():
    on = retrieval_confidence("red fox hunts voles", [REVENUE, FOXES], EMBED)
    off = retrieval_confidence("boil an egg soft yolk", [REVENUE, FOXES], EMBED)
    assert on is not None and off is not None and on > off
    assert retrieval_confidence("anything", ["", "   "], EMBED) is None  # no text: no rule


def _generator(kind: str, url: str, tmp_path: Path, monkeypatch):
    """A real generator of ``kind`` (providers pointed at a fake server; local models
    replaced by stand-ins, since only whether ``stream`` is reached matters here)."""
    if kind == "gemma":
        import mmrag.generate.gemma as gemma

        monkeypatch.setattr(gemma, "load", lambda path: (object(), object()))
        (tmp_path / "m.gguf").write_bytes(b"GGUF")
        return create_generator(GenerateSettings(generator="gemma",
                                                 model=str(tmp_path / "m.gguf")))
    if kind == "local":
        import mmrag.generate.local as local

        class Model:
            def eval(self):
                return self

            def to(self, device):
                return self

        monkeypatch.setattr(local, "_load", lambda source, name: (Model(), object(), False))
        return create_generator(GenerateSettings(generator="local", model="tiny/model"))
    base = f"{url}/v1" if kind == "openai" else url
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.setenv(env, "test-key")
    return create_generator(GenerateSettings(generator=kind, base_url=base, model="fake"))


@pytest.mark.parametrize("kind", ["extractive", "openai", "anthropic", "gemini", "gemma",
                                  "local"])
def test_weak_evidence_rule_holds_for_every_generator(kind, tmp_path, monkeypatch):
    with FakeServer() as server:
        gen = _generator(kind, server.url, tmp_path, monkeypatch)
        calls: list[int] = []
        real_stream = gen.stream

        def spy(*args, **kw):
            calls.append(1)
            return real_stream(*args, **kw)

        monkeypatch.setattr(gen, "stream", spy)
        strict = Answerer(lambda text, n, img: list(HITS), gen,
                          GenerateSettings(generator=kind, min_confidence=0.9,
                                           max_retries=0), embed=EMBED)
        answer = strict.ask("How long should I boil an egg for a soft yolk?").answer
        assert not answer.found and answer.text == NOT_FOUND and answer.citations == []
        assert calls == [] and server.requests == []  # the model was never called
        assert answer.generator == gen.name and answer.hits  # the hits are still shown


def test_weak_evidence_rule_lets_a_confident_question_through():
    gen = Scripted("The red fox hunts voles in snowy meadows [2].")
    question = "What does the red fox hunt in snowy meadows?"
    confidence = retrieval_confidence(question, [REVENUE, FOXES], EMBED)
    assert confidence is not None
    below = _answerer(gen, min_confidence=confidence - 0.01).ask(question).answer
    assert below.found and gen.calls == 1
    above = _answerer(gen, min_confidence=confidence + 0.01).ask(question).answer
    assert not above.found and gen.calls == 1  # not called again


def test_the_rule_is_off_without_an_embed_function():
    gen = Scripted("The red fox hunts voles [2].")
    answerer = Answerer(lambda text, n, img: list(HITS), gen,
                        GenerateSettings(min_confidence=0.99))
    answer = answerer.ask("eggs?").answer
    assert answer.found and gen.calls == 1
    assert isinstance(answer, Answer) and answer.support[0].supported  # lexical only


def test_memo_embed_encodes_each_text_once_and_forgets_the_oldest():
    from mmrag.generate.grounding import memo_embed

    seen: list[str] = []

    def embed(texts):
        seen.extend(texts)
        return EMBED(texts)

    cached = memo_embed(embed, max_items=2)
    first = cached(["a fox", "a vole", "a fox"])
    assert seen == ["a fox", "a vole"] and first.shape[0] == 3
    assert np.array_equal(first[0], first[2]) and np.allclose(first[0], EMBED(["a fox"])[0])
    cached(["a vole", "a fox"])
    assert seen == ["a fox", "a vole"]  # both cached
    cached(["snow"])  # evicts the least recently used ("a vole")
    cached(["a fox", "a vole"])
    assert seen == ["a fox", "a vole", "snow", "a vole"]
