"""`mmrag eval` scoring: page-level and document-level relevance, image query lines, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mmrag.errors import ConfigError, QueryError
from mmrag.eval.answers import citation_precision
from mmrag.eval.metrics import ndcg_at
from mmrag.eval.runner import (
    TOP_N,
    EvalQuery,
    evaluate,
    rank_keys,
    read_queries,
    top_pages,
)
from mmrag.types import Citation, Hit, Item


def _hit(name: str, page: int = 1, score: float = 1.0) -> Hit:
    item = Item(f"{name}:{page}", name, f"/docs/{name}", "page", page=page, name=name)
    return Hit(item, score)


def _write(tmp_path: Path, *rows: dict | str) -> Path:
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows))
    return path


def _dcg(ranks: list[int]) -> float:
    return sum(1 / math.log2(r + 1) for r in ranks)


# -- parsing --------------------------------------------------------------------------------
def test_page_null_is_document_level_and_missing_page_is_page_one(tmp_path):
    path = _write(tmp_path, {"id": "a", "query": "x", "relevant": [
        {"file": "sub/memo.docx", "page": None}, {"file": "paper.pdf", "page": 3},
        {"file": "photo.jpg"}]})
    (q,) = read_queries(path)
    assert q.relevant == {("memo.docx", None), ("paper.pdf", 3), ("photo.jpg", 1)}


def test_document_entry_subsumes_page_entries_of_the_same_file(tmp_path):
    path = _write(tmp_path, {"query": "x", "relevant": [
        {"file": "deck.pptx", "page": 2}, {"file": "deck.pptx", "page": None},
        {"file": "other.pdf", "page": 2}]})
    assert read_queries(path)[0].relevant == {("deck.pptx", None), ("other.pdf", 2)}


def test_image_lines_get_their_own_kind_and_keep_the_label(tmp_path):
    docs = tmp_path / "docs"
    absolute = tmp_path / "elsewhere" / "q.png"
    rel = [{"file": "a.png", "page": 1}]
    path = _write(tmp_path,
                  {"id": "i", "image": "img/a.png", "relevant": rel, "kind": "visual"},
                  {"id": "ti", "query": " red car ", "image": str(absolute), "relevant": rel,
                   "kind": "visual"},
                  {"id": "e", "query": "", "image": "a.png", "relevant": rel},
                  {"id": "t", "query": "plain", "relevant": rel, "kind": "text"})
    by_id = {q.id: q for q in read_queries(path, image_root=docs)}
    assert (by_id["i"].kind, by_id["i"].label) == ("image", "visual")
    assert by_id["i"].request() == (None, str(docs / "img" / "a.png"))
    assert (by_id["ti"].kind, by_id["ti"].label) == ("text+image", "visual")
    assert by_id["ti"].request() == ("red car", str(absolute))
    assert (by_id["e"].kind, by_id["e"].label) == ("image", "all")
    assert (by_id["t"].kind, by_id["t"].label) == ("text", "text")
    assert by_id["t"].request() == ("plain", None)


@pytest.mark.parametrize("row, what", [
    ({"relevant": [{"file": "a.pdf"}]}, "query"),
    ({"query": "  ", "relevant": [{"file": "a.pdf"}]}, "no 'image'"),
    ({"query": "x", "image": 7, "relevant": [{"file": "a.pdf"}]}, "'image'"),
    ({"query": "x", "relevant": ["a.pdf"]}, "AttributeError"),
    ({"query": "x", "relevant": [{"file": "a.pdf", "page": "two"}]}, "two"),
    ("[1, 2]", "JSON object"),
    ("{not json", "JSONDecodeError"),
])
def test_malformed_lines_are_one_line_errors_naming_the_line(tmp_path, row, what):
    path = _write(tmp_path, {"query": "fine", "relevant": [{"file": "a.pdf"}]}, row)
    with pytest.raises(ConfigError) as info:
        read_queries(path)
    message = str(info.value)
    assert f"{path}:2:" in message and what in message and "\n" not in message


# -- scoring --------------------------------------------------------------------------------
def test_document_level_file_counts_once_at_its_first_rank():
    relevant = {("memo.docx", None)}
    hits = [_hit("other.pdf"), _hit("memo.docx", 1), _hit("memo.docx", 2), _hit("memo.docx", 3)]
    assert rank_keys(hits, relevant) == [("other.pdf", 1), ("memo.docx", None)]
    report = evaluate([EvalQuery("q", "x", relevant, "office")], lambda q: hits)
    row = report["queries"][0]
    assert row["recall@1"] == 0.0 and row["recall@5"] == 1.0
    assert row["mrr@10"] == 0.5
    # counted once: three relevant pages would have pushed DCG above the ideal of one hit
    assert row["ndcg@5"] == pytest.approx(_dcg([2]) / _dcg([1]), abs=1e-4)


def test_mixed_page_and_document_relevance():
    relevant = {("mail.eml", None), ("paper.pdf", 2)}
    hits = [_hit("mail.eml", 4), _hit("paper.pdf", 1), _hit("mail.eml", 1), _hit("paper.pdf", 2)]
    ranked = rank_keys(hits, relevant)
    # pages of the page-level file stay apart: page 1 is not relevant, page 2 is
    assert ranked == [("mail.eml", None), ("paper.pdf", 1), ("paper.pdf", 2)]
    row = evaluate([EvalQuery("q", "x", relevant)], lambda q: hits)["queries"][0]
    assert row["recall@1"] == 0.5 and row["recall@5"] == 1.0
    assert row["ndcg@5"] == pytest.approx(ndcg_at(ranked, relevant, 5), abs=1e-4)
    assert row["ndcg@5"] == pytest.approx(_dcg([1, 3]) / _dcg([1, 2]), abs=1e-4)


def test_top_pages_keep_real_pages_scores_and_relevance():
    relevant = {("memo.docx", None), ("paper.pdf", 2)}
    hits = [_hit("memo.docx", 2, 0.9), _hit("memo.docx", 2, 0.8), _hit("paper.pdf", 1, 0.5),
            _hit("paper.pdf", 2, 0.25)] + [_hit(f"x{i}.png", 1, 0.1) for i in range(12)]
    top = top_pages(hits, relevant)
    assert len(top) == TOP_N
    assert top[:3] == [{"page": "memo.docx#2", "score": 0.9, "relevant": True},
                       {"page": "paper.pdf#1", "score": 0.5, "relevant": False},
                       {"page": "paper.pdf#2", "score": 0.25, "relevant": True}]
    assert not any(t["relevant"] for t in top[3:])


def test_query_error_scores_zero_and_the_run_goes_on():
    def search(q: EvalQuery) -> list[Hit]:
        if q.image is not None:
            raise QueryError("image queries need a vision encoder\nsecond line")
        return [_hit("a.pdf")]

    queries = [EvalQuery("img", "", {("a.pdf", 1)}, "image", "visual", Path("a.png")),
               EvalQuery("txt", "a", {("a.pdf", 1)}, "text")]
    report = evaluate(queries, search, "offline")
    img, txt = report["queries"]
    assert img["error"] == "image queries need a vision encoder"
    assert img["ndcg@5"] == 0.0 and img["top"] == [] and img["label"] == "visual"
    assert "error" not in txt and txt["ndcg@5"] == 1.0
    assert report["by_kind"]["image"]["n"] == 1 and report["overall"]["recall@1"] == 0.5


def test_citation_on_any_page_of_a_document_level_file_is_precise():
    def cite(name: str, page: int) -> Citation:
        return Citation(1, f"{name}:{page}", "d", f"/docs/{name}", name, page, "page")

    relevant = {("memo.docx", None), ("paper.pdf", 2)}
    cites = [cite("memo.docx", 3), cite("paper.pdf", 1), cite("paper.pdf", 2)]
    assert citation_precision(cites, relevant) == pytest.approx(2 / 3)
