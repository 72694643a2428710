"""Citation markers in answer text → Citations of the numbered hits."""

from __future__ import annotations

from mmrag.generate.citations import citations_for, cited_numbers, render_citations
from mmrag.types import Hit, Item


def _hits(n: int) -> list[Hit]:
    return [Hit(Item(f"d{i}:p{i}:t0", f"d{i}", f"/docs/f{i}.pdf", "text", page=i,
                     name=f"f{i}.pdf"), 1.0 / i) for i in range(1, n + 1)]


def test_single_lists_and_ranges_in_order_of_first_mention():
    text = "Alpha [2]. Beta [1, 3]. Gamma [4-6] and again [2]; delta [7–8]."
    assert cited_numbers(text) == [2, 1, 3, 4, 5, 6, 7, 8]


def test_non_citations_are_ignored():
    text = r"\documentclass[12pt]{llncs} see [x], [ ], [1a], [5-2] and [1-500]"
    assert cited_numbers(text) == []


def test_mixed_list_with_range_and_spaces():
    assert cited_numbers("[ 1 , 3 - 4 ]") == [1, 3, 4]


def test_citations_only_for_existing_hits_deduplicated():
    hits = _hits(3)
    cites = citations_for("See [3] and [9], also [1][3] and [0].", hits)
    assert [c.number for c in cites] == [3, 1]
    assert cites[0].item_id == hits[2].id and cites[0].page == 3
    assert cites[1].name == "f1.pdf" and cites[1].source == "/docs/f1.pdf"


def test_render_lists_one_line_per_citation_sorted():
    hits = _hits(2)
    text = render_citations(citations_for("b [2] a [1]", hits))
    assert text.splitlines() == ["[1] f1.pdf, page 1  (d1:p1:t0)",
                                 "[2] f2.pdf, page 2  (d2:p2:t0)"]
    assert render_citations([]) == ""
