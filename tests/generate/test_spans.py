"""Answer-type rules and the Markdown table parser behind the extractive span answers."""

from __future__ import annotations

import pytest

from mmrag.generate.spans import answer_type, has_value, parse_tables


@pytest.mark.parametrize("question, kind", [
    ("How many laptops were delivered in January?", "number"),  # a month is context
    ("How many trucks were used?", "number"),
    ("What BLEU score does the big model reach?", "number"),
    ("What tensile strength does the datasheet give?", "number"),
    ("When did the bridge open?", "date"),
    ("In what year was the engineer employed?", "date"),
    ("Who sent the email?", "name"),
    ("Which author wrote the preface?", "name"),
    ("Which dataset has a large model?", "entity"),
    ("What is in the cell under the second header?", "entity"),
    ("How do I install the class?", None),
    ("Why can keyword search fail?", None),
    ("a table whose cells contain a duckling picture", None),  # a description, not "who"
    ("Korean report passage on incident response", None),
])
def test_answer_type_rules(question, kind):
    assert answer_type(question) == kind


def test_a_value_counts_only_when_the_question_does_not_name_it():
    assert has_value("The deck is 212 metres long", "number", "How long is the deck?")
    assert has_value("It took two years", "number", "How long did it take?")
    assert not has_value("Base 256", "number", "mean chunks for Base 256?")
    assert has_value("It opened in March 1998", "date", "When did it open?")
    assert not has_value("It opened in the spring", "date", "When did it open?")
    assert has_value("It was designed by Margit Halvorsen", "name", "Who designed it?")
    assert not has_value("Designed by the engineer", "name", "Who designed it?")
    assert has_value("Bcc: john@example.com", "name", "Who was copied?")


def test_parse_tables_reads_header_rows_and_escaped_pipes():
    text = ("Table 2: results\n\n| Model | BLEU EN-DE | Note |\n|---|---|---|\n"
            "| Transformer (big) | 28.4 | a \\| b |\n| Base | 27.3 |\n\nAfter the table.")
    [table] = parse_tables(text)
    assert table.header == ["Model", "BLEU EN-DE", "Note"]
    assert table.rows == [["Transformer (big)", "28.4", "a | b"], ["Base", "27.3", ""]]
    assert parse_tables("| not | a table |\nno separator line") == []
