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


# ---- the region a citation quotes -----------------------------------------------------

TABLE = ("| Model | BLEU EN-DE | BLEU EN-FR |\n|---|---|---|\n"
         "| Transformer (base model) | 27.3 | 38.1 |\n| Transformer (big) | 28.4 | 41.8 |")
COL_X = [72.0, 232.0, 322.0, 412.0]
ROW_Y = [[1, 100.0, 120.0], [1, 120.0, 140.0], [1, 140.0, 160.0]]
TABLE_BOX = (72.0, 100.0, 412.0, 160.0)


def _table_hit(**meta) -> Hit:
    metadata = {"table": True, "col_x": COL_X, "row_y": ROW_Y, **meta}
    return Hit(Item("t:1:tab", "t", "/docs/t.pdf", "text", text=TABLE, page=1, name="t.pdf",
                    bbox=TABLE_BOX, metadata=metadata), 1.0)


def test_a_citation_of_a_table_cell_carries_the_cell_box():
    hits = [_hit_plain(), _table_hit()]
    [cite] = citations_for("Transformer (big), BLEU EN-DE: 28.4 [2]", hits)
    assert cite.bbox == (COL_X[1], ROW_Y[2][1], COL_X[2], ROW_Y[2][2])
    # a model's paraphrase naming only a value found once in the table: that cell
    [cite] = citations_for("The big model scores 41.8 on French [2].", hits)
    assert cite.bbox == (COL_X[2], ROW_Y[2][1], COL_X[3], ROW_Y[2][2])
    # two cells quoted before one marker: the box around both
    [cite] = citations_for("base 27.3 and big 28.4 [2]", hits)
    assert cite.bbox == (COL_X[1], ROW_Y[1][1], COL_X[2], ROW_Y[2][2])


def test_without_a_located_cell_the_citation_has_the_item_box_or_none():
    hits = [_hit_plain(), _table_hit()]
    [cite] = citations_for("Transformers translate well [2]", hits)
    assert cite.bbox == TABLE_BOX  # no cell quoted: the whole table
    [cite] = citations_for("Plain prose [1]", hits)
    assert cite.bbox is None  # a text chunk without a box
    # cell edges that do not fit the Markdown (a column dropped): no guessing
    odd = [_hit_plain(), _table_hit(col_x=COL_X[:3])]
    [cite] = citations_for("Transformer (big), BLEU EN-DE: 28.4 [2]", odd)
    assert cite.bbox == TABLE_BOX
    # a row on another page than the item's (a table split over pages): not drawn there
    moved = [_hit_plain(), _table_hit(row_y=[ROW_Y[0], ROW_Y[1], [2, 40.0, 60.0]])]
    [cite] = citations_for("Transformer (big), BLEU EN-DE: 28.4 [2]", moved)
    assert cite.bbox == TABLE_BOX


def test_each_marker_quotes_only_the_text_before_it():
    hits = [_table_hit(), _table_hit()]
    cites = citations_for("Base: 27.3 [1]. Big: 28.4 [2].", hits)
    assert [c.bbox for c in cites] == [(COL_X[1], ROW_Y[1][1], COL_X[2], ROW_Y[1][2]),
                                       (COL_X[1], ROW_Y[2][1], COL_X[2], ROW_Y[2][2])]


def _hit_plain() -> Hit:
    return Hit(Item("p:1:t0", "p", "/docs/p.pdf", "text", text="Plain prose.", page=1,
                    name="p.pdf"), 1.0)
