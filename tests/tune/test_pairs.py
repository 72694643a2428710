"""Pseudo-query builders on passages made in code."""

from __future__ import annotations

import random

from mmrag.tune.pairs import (
    Passage,
    build_pairs,
    caption_pairs,
    cloze_pairs,
    generator_pairs,
    heading_pairs,
    split_pairs,
    split_sentences,
)

BODY = ("Puffins nest in burrows dug into grassy cliff tops every spring. "
        "Both parents feed the single chick with small fish for six weeks. "
        "The young bird leaves the burrow alone at night and swims out to sea.")


def test_heading_from_section_path_and_numbered_line():
    p = Passage("a", "d1", 3, f"2.1 Nesting Habits\n{BODY}", section="Birds > Puffin Colonies")
    pairs = heading_pairs([p])
    queries = {pair.query for pair in pairs}
    assert "Puffin Colonies" in queries                     # last step of the section path
    assert "Nesting Habits" in queries               # section number dropped
    for pair in pairs:
        assert pair.kind == "heading" and pair.page_key == ("d1", 3)
        assert pair.passage_id == "a"
    nesting = next(p for p in pairs if p.query == "Nesting Habits")
    assert "Nesting Habits" not in nesting.positive and "burrows" in nesting.positive


def test_sentence_text_is_not_a_heading():
    p = Passage("a", "d1", 1, BODY)
    assert heading_pairs([p]) == []


def test_caption_asks_for_its_page_without_the_caption():
    page = Passage("pg", "d1", 4, f"Results\nFigure 3: Revenue by quarter for the three "
                                  f"regions\n{BODY}", modality="page")
    fig = Passage("fig", "d1", 4, "Figure 3: Revenue by quarter for the three regions",
                  modality="image", metadata={"caption": "Figure 3: Revenue by quarter for "
                                                         "the three regions"})
    pairs = caption_pairs([page, fig])
    assert len(pairs) == 1                           # the same caption counted once
    pair = pairs[0]
    assert pair.query == "Revenue by quarter for the three regions"  # label dropped
    assert pair.passage_id == "pg" and pair.kind == "caption"
    assert "Revenue by quarter" not in pair.positive and "Puffins" in pair.positive


def test_inverse_cloze_removes_the_sentence_from_its_passage():
    p = Passage("a", "d1", 1, BODY)
    pairs = cloze_pairs([p], random.Random(0), per_passage=2)
    assert len(pairs) == 2
    for pair in pairs:
        assert pair.query in BODY
        assert pair.query not in pair.positive
        assert pair.kind == "cloze"


def test_sentences_do_not_run_into_headings():
    text = "## Nesting\nPuffins nest in burrows on cliffs.\nThey lay one egg a year in May."
    sents = split_sentences(text)
    assert sents == ["Puffins nest in burrows on cliffs.", "They lay one egg a year in May."]


def test_generator_questions_and_bad_replies_dropped():
    ps = [Passage(str(i), "d", i, BODY) for i in range(4)]
    replies = iter(["Where do puffins nest?", "", "ok", "How long are chicks fed?\nextra"])
    pairs = generator_pairs(ps, lambda prompt: next(replies), 4, random.Random(0))
    assert sorted(p.query for p in pairs) == ["How long are chicks fed?",
                                              "Where do puffins nest?"]
    assert all(p.kind == "generator" and p.positive == BODY for p in pairs)


def test_build_pairs_dedupes_caps_and_splits():
    ps = [Passage(str(i), f"d{i}", 1, f"Chapter Heading {i}\n{BODY}") for i in range(10)]
    everything = build_pairs(ps)
    # 10 headings + 3 sentences: the shared body's cloze queries count once
    assert len(everything) == 13
    pairs = build_pairs(ps, max_pairs=10)
    assert len(pairs) == 10
    assert len({p.query.lower() for p in pairs}) == len(pairs)
    train, held = split_pairs(pairs, 0.2)
    assert len(held) == 2 and len(train) == 8
    assert not {id(p) for p in train} & {id(p) for p in held}
