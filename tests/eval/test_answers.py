"""Answer metrics (token F1, ROUGE-L, citation precision) and `mmrag eval-answers`."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.errors import ConfigError
from mmrag.eval.answers import (
    citation_precision,
    citation_recall,
    contains_key_facts,
    corpus_bleu,
    evaluate_answers,
    exact_match,
    key_facts,
    lcs_length,
    read_answer_queries,
    rouge_l,
    token_f1,
)
from mmrag.eval.runner import EvalQuery
from mmrag.types import Answer, Citation
from tests.factories import make_text_pdf


def _lcs_brute(a: list[str], b: list[str]) -> int:
    """Longest subsequence of ``a`` that is also one of ``b``, by trying them all."""
    def is_sub(sub, seq):
        it = iter(seq)
        return all(x in it for x in sub)
    for n in range(min(len(a), len(b)), 0, -1):
        if any(is_sub(c, b) for c in itertools.combinations(a, n)):
            return n
    return 0


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


@pytest.mark.parametrize("a, b", [
    ("x y z w v", "y w x v"), ("a b c b d a b", "b d c a b a"), ("p q", "r s"),
    ("k k k", "k"), ("", "a b"),
])
def test_lcs_matches_brute_force(a, b):
    assert lcs_length(a.split(), b.split()) == _lcs_brute(a.split(), b.split())


def test_token_f1_on_hand_made_pairs():
    # "the"/"a" are dropped; pred = cat sat on mat, ref = cat sat: 2 common
    assert token_f1("The cat sat on the mat", "a cat sat") == pytest.approx(_f1(2 / 4, 2 / 2))
    # bag of words: repeated tokens count up to their count in the reference
    pred, ref = "red red red fox".split(), "red fox fox jumps".split()
    common = sum((Counter(pred) & Counter(ref)).values())  # red, fox = 2
    assert token_f1(" ".join(pred), " ".join(ref)) == pytest.approx(_f1(common / 4, common / 4))
    assert token_f1("cat sat [1]", "Cat, sat!") == 1.0  # citations and punctuation ignored
    assert token_f1("nothing", "else") == 0.0 and token_f1("", "x") == 0.0


def test_rouge_l_on_hand_made_pairs():
    # classic example: LCS("police kill gunman", "police killed gunman") = 2
    assert rouge_l("police kill the gunman", "police killed the gunman") == \
        pytest.approx(_f1(2 / 3, 2 / 3))
    # word order matters for ROUGE-L but not for token F1
    assert rouge_l("gunman kill police", "police kill gunman") == pytest.approx(1 / 3)
    assert token_f1("gunman kill police", "police kill gunman") == 1.0
    pred, ref = "one two three four five", "two four six"
    lcs = _lcs_brute(pred.split(), ref.split())
    assert rouge_l(pred, ref) == pytest.approx(_f1(lcs / 5, lcs / 3))


def _cite(name: str, page: int, n: int = 1) -> Citation:
    return Citation(n, f"{name}:{page}", "d", f"/docs/{name}", name, page, "page")


def test_citation_precision():
    relevant = {("a.pdf", 2)}
    assert citation_precision([_cite("a.pdf", 2), _cite("a.pdf", 3, 2)], relevant) == 0.5
    assert citation_precision([_cite("a.pdf", 2)], relevant) == 1.0
    assert citation_precision([], relevant) is None


def test_exact_match_is_normalised():
    assert exact_match("Mark. [1]", "mark")
    assert exact_match("The  Green, 3pm!", "green 3pm")
    assert not exact_match("Mark was the leader [1]", "Mark.")
    assert not exact_match("", "Mark.")


def test_key_facts_are_the_numbers_and_names_of_the_head():
    numbers, names = key_facts("DeepSeek-V3 75.9; Claude-3.5-Sonnet-1022 is higher at 78.0")
    assert numbers == {"3", "75.9"} and names == {"deepseek-v3"}  # the head only
    numbers, names = key_facts("Chipper 20,843 total chunks (Base 128: 64,058)")
    assert numbers == {"20843"} and names == set()  # sentence-initial word is not a name
    numbers, names = key_facts("About 38B parameters, i.e. 5.4x Mistral's size")
    assert numbers == {"38", "5.4"} and names == {"mistral"}
    assert key_facts("Round winner recommends 'The Quantum Universe' by Brian Cox") == \
        (set(), {"quantum", "universe", "brian", "cox"})


@pytest.mark.parametrize("answer, reference, want", [
    ("The Transformer (big) model reaches 28.4 BLEU [1]", "28.4 BLEU for the big model", True),
    ("It reaches 28.40 BLEU [2]", "28.4", True),          # same number, written longer
    ("It reaches 27.3 BLEU [1]", "28.4 BLEU", False),    # wrong number
    ("Chipper made 20843 chunks", "Chipper 20,843 total chunks", True),
    ("ORQA was first [1]", "ORQA (Lee et al., 2019), pretrained with ICT", True),
    ("It was Lee [1]", "ORQA (Lee et al., 2019)", False),  # the name in the head is missing
    ("Mark [3]", "Mark.", True),                           # no number/name: all head tokens
    ("the leader is Sue", "Mark.", False),
    ("Brian Cox wrote it", "'The Quantum Universe' by Brian Cox and Jeff Forshaw", False),
    ("The Quantum Universe by Brian Cox", "'The Quantum Universe' by Brian Cox and Jeff "
     "Forshaw", True),                                    # 4 of 6 names: at least half
])
def test_containment_of_the_reference_key_fact(answer, reference, want):
    assert contains_key_facts(answer, reference) is want


def test_corpus_bleu_ignores_citations_and_ranks_closer_answers_higher():
    pytest.importorskip("sacrebleu")
    refs = ["the cat sat on the mat today", "a red fox hunts voles in snowy meadows"]
    same = corpus_bleu(["the cat sat on the mat today [1]", "a red fox hunts voles in snowy "
                        "meadows [2, 3]"], refs)
    near = corpus_bleu(["the cat sat on a mat", "the red fox hunts in meadows"], refs)
    far = corpus_bleu(["dogs bark", "it rains"], refs)
    assert same == pytest.approx(100.0)
    assert same > near > far >= 0.0
    assert corpus_bleu([], []) is None


def test_citation_recall_is_the_share_of_relevant_pages_cited():
    relevant = {("a.pdf", 1), ("a.pdf", 2)}
    assert citation_recall([_cite("a.pdf", 2)], relevant) == 0.5
    assert citation_recall([_cite("a.pdf", 1), _cite("a.pdf", 2, 2), _cite("b.pdf", 1, 3)],
                           relevant) == 1.0
    assert citation_recall([], relevant) == 0.0
    assert citation_recall([_cite("x.docx", 4)], {("x.docx", None)}) == 1.0  # whole file
    assert citation_recall([_cite("a.pdf", 1)], set()) is None


def test_evaluate_answers_reports_em_containment_recall_grounded_answered():
    q1 = EvalQuery("1", "q1", {("t.pdf", 1)}, "table")
    q2 = EvalQuery("2", "q2", {("t.pdf", 2), ("t.pdf", 3)}, "table")
    q3 = EvalQuery("3", "q3", {("u.pdf", 1)}, "text")
    answers = {
        "q1": Answer("28.4 [1]", citations=[_cite("t.pdf", 1)], grounded=1.0),
        "q2": Answer("BLEU of 41.0 on French [1]", citations=[_cite("t.pdf", 2)],
                     grounded=0.5),
        "q3": Answer("not found", found=False, grounded=1.0)}
    report = evaluate_answers([(q1, "28.4"), (q2, "41.8 BLEU"), (q3, "Mark.")],
                              lambda q: answers[q], "fake")
    by_id = {r["id"]: r for r in report["queries"]}
    assert by_id["1"]["exact_match"] == 1.0 and by_id["1"]["contained"] == 1.0
    assert by_id["2"]["exact_match"] == 0.0 and by_id["2"]["contained"] == 0.0
    assert by_id["2"]["citation_recall"] == 0.5 and by_id["3"]["citation_recall"] == 0.0
    assert by_id["3"]["grounded"] is None  # a not-found answer claims nothing
    overall = report["overall"]
    assert overall["exact_match"] == pytest.approx(1 / 3, abs=1e-4)
    assert overall["em_or_contained"] == pytest.approx(1 / 3, abs=1e-4)
    assert overall["citation_recall"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-4)
    assert overall["grounded"] == pytest.approx(0.75)  # mean over the two found answers
    assert overall["found"] == pytest.approx(2 / 3, abs=1e-4)  # the answered share
    assert report["by_kind"]["text"]["grounded"] is None


def test_evaluate_answers_reads_groundedness_only_when_answers_carry_it():
    class Bare:  # an answer object from before Answer.grounded existed
        text, citations, found, seconds = "x [1]", [_cite("a.pdf", 1)], True, 0.1

    q = EvalQuery("1", "q", {("a.pdf", 1)}, "text")
    report = evaluate_answers([(q, "x")], lambda _: Bare(), "old")  # type: ignore[arg-type]
    assert report["overall"]["grounded"] is None and report["overall"]["exact_match"] == 1.0


def test_evaluate_answers_aggregates_by_kind():
    q1 = EvalQuery("1", "q1", {("a.pdf", 1)}, "text")
    q2 = EvalQuery("2", "q2", {("b.png", 1)}, "visual")
    q3 = EvalQuery("3", "q3", {("a.pdf", 2)}, "text")
    answers = {"q1": Answer("cat sat [1]", citations=[_cite("a.pdf", 1)], seconds=1.0),
               "q2": Answer("not found", found=False, seconds=3.0),
               "q3": Answer("dog [1]", citations=[_cite("a.pdf", 9)], seconds=2.0)}
    seen: list[tuple[int, int]] = []
    report = evaluate_answers([(q1, "cat sat"), (q2, "blue bars"), (q3, "dog ran")],
                              lambda q: answers[q], "fake",
                              progress=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    overall = report["overall"]
    assert report["n"] == 3 and report["generator"] == "fake"
    assert overall["token_f1"] == pytest.approx((1.0 + 0.0 + _f1(1, 0.5)) / 3, abs=1e-4)
    assert overall["citation_precision"] == 0.5 and overall["cited"] == 2
    assert overall["found"] == pytest.approx(2 / 3, abs=1e-4)
    assert overall["latency_p50"] == 2.0
    assert report["by_kind"]["visual"]["citation_precision"] is None
    assert report["by_kind"]["text"]["n"] == 2


def test_read_answer_queries_keeps_only_answered(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(
        json.dumps({"id": "a", "query": "x", "relevant": [{"file": "f.pdf"}], "answer": "y"})
        + "\n\n" + json.dumps({"query": "z", "relevant": [{"file": "g.pdf", "page": 2}]}))
    rows = read_answer_queries(path)
    assert [(q.id, ref) for q, ref in rows] == [("a", "y")]
    path.write_text(json.dumps({"query": "z", "relevant": [{"file": "g.pdf"}]}))
    with pytest.raises(ConfigError, match="answer"):
        read_answer_queries(path)


def test_cli_eval_answers_on_a_tiny_set(tmp_path, monkeypatch):
    monkeypatch.setenv("MMRAG_ENCODE__TEXT_ENCODER", "hashing")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.pdf").write_bytes(make_text_pdf([
        "Intro page about nothing much.", "Calibrate the spectrometer with argon lamps."]))
    (docs / "fox.md").write_text("# Foxes\n\nThe red fox hunts voles in snowy meadows.\n")
    rows = [
        {"id": "q1", "query": "How is the spectrometer calibrated?", "kind": "text",
         "relevant": [{"file": "guide.pdf", "page": 2}],
         "answer": "Calibrate the spectrometer with argon lamps."},
        {"id": "q2", "query": "What does the red fox hunt?", "kind": "text",
         "relevant": [{"file": "fox.md", "page": 1}], "answer": "Voles, in snowy meadows."},
        {"id": "q3", "query": "no answer field", "relevant": [{"file": "fox.md"}]},
    ]
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps(r) for r in rows))
    result = CliRunner().invoke(app, ["eval-answers", str(queries), "--docs", str(docs),
                                      "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(result.stdout)
    assert report["n"] == 2 and report["generator"] == "extractive"
    by_id = {q["id"]: q for q in report["queries"]}
    assert by_id["q1"]["token_f1"] == 1.0 and by_id["q1"]["citations"] == ["guide.pdf#2"]
    assert by_id["q2"]["citation_precision"] == 1.0
    assert report["overall"]["citation_precision"] == 1.0 and report["overall"]["found"] == 1
    table = CliRunner().invoke(app, ["eval-answers", str(queries), "--docs", str(docs)])
    assert table.exit_code == 0 and "token_f1" in table.stdout and "overall" in table.stdout
    assert Path(queries).exists()
