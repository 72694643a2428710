"""Follow-up rewriting: the rules, reading turns back, and the LLM rewriter's fallback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mmrag.errors import GenerationError, QueryError
from mmrag.generate.base import Message
from mmrag.generate.rewrite import (
    LLMRewriter,
    RuleRewriter,
    SourceRef,
    Turn,
    create_rewriter,
    to_turns,
    topic,
)

REPORT = SourceRef("d1", "report.pdf", 2)


def dialogue(*questions: str, sources: list[SourceRef] | None = None) -> list[str]:
    """Rewrite each question after the ones before it (every answer citing ``sources``)."""
    rules, history, out = RuleRewriter(), [], []
    for q in questions:
        out.append(rules.rewrite(history, q).query)
        history += [Turn("user", q), Turn("assistant", "an answer [1]", sources or [])]
    return out


@pytest.mark.parametrize(("first", "follow", "expected"), [
    ("What is the maximum operating temperature?", "and in the appendix?",
     "What is the maximum operating temperature in the appendix?"),
    ("What does the first chart show?", "what about the second chart?",
     "What does the second chart show?"),
    ("Who designed the zeppelin hangar?", "When was it built?",
     "When was the zeppelin hangar built?"),
    ("Who designed the zeppelin hangar?", "What is its capacity?",
     "What is the capacity of the zeppelin hangar?"),
    ("What was quarterly revenue in 2023?", "how about 2022?",
     "What was quarterly revenue in 2022?"),
    ("What was the zeppelin hangar rebuilt in?", "and when?",
     "When was the zeppelin hangar rebuilt in?"),
    ("What is the warranty period?", "in the appendix...",
     "What is the warranty period in the appendix?"),
])
def test_follow_ups_become_standalone_queries(first, follow, expected):
    assert dialogue(first, follow)[1] == expected


@pytest.mark.parametrize("question", [
    "What is the capital of France?",
    "How do I control aphids in a greenhouse?",
    "Which document says that every person is born free and equal?",
    "Which words should stay lowercase in the title of an LNCS paper?",
    "What does this command do?",
])
def test_standalone_questions_pass_through_and_borrow_nothing(question):
    first, second = dialogue("What does the first chart show in the zeppelin report?", question)
    assert second == question
    assert not RuleRewriter.is_followup(question, "What does the first chart show?")


@pytest.mark.parametrize("question", ["What is that?", "Who made this?",
                                      "What does that chart say?", "Is this one newer?"])
def test_demonstratives_that_point_back_make_a_follow_up(question):
    assert RuleRewriter.is_followup(question, "What does the first chart show?")


def test_chained_follow_ups_build_on_the_rewritten_question():
    assert dialogue("What does the first chart show?", "what about the second chart?",
                    "and in the appendix?") == [
        "What does the first chart show?", "What does the second chart show?",
        "What does the second chart show in the appendix?"]


def test_first_turn_is_never_a_follow_up():
    assert dialogue("and in the appendix?") == ["and in the appendix?"]


def test_deictic_follow_ups_carry_the_cited_documents_and_others_do_not():
    rules = RuleRewriter()
    history = [Turn("user", "Who designed the zeppelin hangar?"),
               Turn("assistant", "Hugo [1].", [REPORT, SourceRef("d2", "notes.md", 1)])]
    for q in ("Who wrote that document?", "When was it built?", "what about the second chart?"):
        rw = rules.rewrite(history, q)
        assert rw.followup and rw.doc_ids == ["d1", "d2"], q
        assert rw.describe().endswith("(in report.pdf, notes.md)")
    plain = rules.rewrite(history, "and in the appendix?")
    assert plain.followup and plain.doc_ids == []
    assert rules.rewrite(history, "Where do foxes live?").doc_ids == []


def test_the_latest_answer_s_sources_count():
    history = [Turn("user", "Who designed the zeppelin hangar?"),
               Turn("assistant", "Hugo [1].", [SourceRef("old", "old.pdf", 1)]),
               Turn("user", "What is the capital of France?"),
               Turn("assistant", "Paris [1].", [REPORT])]
    assert RuleRewriter().rewrite(history, "Who wrote it?").doc_ids == ["d1"]


def test_topic_is_the_longest_run_of_content_words():
    assert topic("Who designed the zeppelin hangar?") == "the zeppelin hangar"
    assert topic("What is it?") == ""


def test_turns_read_citations_from_dicts_and_from_printed_sources_lines():
    turns = to_turns([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "A [1].\n\nSources:\n"
                                         "[1] report.pdf, page 2  (abc123:p2:t3)"},
        {"role": "assistant", "content": "B [1].",
         "citations": [{"doc_id": "d9", "name": "x.md", "page": 1}]},
        {"role": "user", "content": [{"type": "text", "text": "q2"}]},
        "q3"])
    assert [(t.role, t.text) for t in turns] == [
        ("user", "q1"), ("assistant", "A [1]."), ("assistant", "B [1]."), ("user", "q2"),
        ("user", "q3")]
    assert turns[1].sources == [SourceRef("abc123", "report.pdf", 2)]
    assert turns[2].sources == [SourceRef("d9", "x.md", 1)]


@pytest.mark.parametrize("bad", [[{"role": "tool", "content": "x"}], [42],
                                 [{"role": "user", "content": 7}]])
def test_bad_messages_are_one_line_errors(bad):
    with pytest.raises(QueryError) as err:
        to_turns(bad)
    assert "message 0" in str(err.value) and "\n" not in str(err.value)


class Scripted:
    """A generator that replies with ``reply`` (or raises it) and records its prompts."""

    name = "scripted"
    supports_images = False

    def __init__(self, reply: str | Exception):
        self.reply = reply
        self.seen: list[list[Message]] = []

    def stream(self, messages: list[Message], *, max_tokens: int,
               temperature: float) -> Iterator[str]:
        self.seen.append(messages)
        if isinstance(self.reply, Exception):
            raise self.reply
        yield from self.reply.split(" ")[:1]
        yield from (" " + w for w in self.reply.split(" ")[1:])


HISTORY = [Turn("user", "Who designed the zeppelin hangar?"), Turn("assistant", "Hugo [1].",
                                                                  [REPORT])]


def test_llm_rewriter_uses_the_model_s_query_and_the_rules_sources():
    gen = Scripted('Query: "When was the Lakehurst zeppelin hangar built?"\nextra line')
    rw = LLMRewriter(gen).rewrite(HISTORY, "When was it built?")
    assert rw.query == "When was the Lakehurst zeppelin hangar built?"
    assert rw.followup and rw.doc_ids == ["d1"]
    prompt = gen.seen[0][1].text
    assert "Who designed the zeppelin hangar?" in prompt and "When was it built?" in prompt


@pytest.mark.parametrize("reply", [GenerationError("rate limited"), RuntimeError("boom"), "  "])
def test_llm_rewriter_falls_back_to_the_rules(reply):
    rw = LLMRewriter(Scripted(reply)).rewrite(HISTORY, "When was it built?")
    assert rw.query == "When was the zeppelin hangar built?"


def test_llm_rewriter_is_not_asked_without_history():
    gen = Scripted("something else")
    assert LLMRewriter(gen).rewrite([], "When was it built?").query == "When was it built?"
    assert gen.seen == []


def test_auto_picks_llm_for_a_model_and_rules_for_extractive():
    assert create_rewriter("auto", Scripted("x")).name == "llm"
    extractive = Scripted("x")
    extractive.name = "extractive"
    assert create_rewriter("auto", extractive).name == "rules"
    assert create_rewriter("none", None).rewrite(HISTORY, "When was it built?").query == \
        "When was it built?"
