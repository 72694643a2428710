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
    evaluate_answers,
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
