"""`Index.chat`: scripted multi-turn dialogues over documents built here; the rewritten
query each turn was searched as, and the pages the answers cite."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrag import Index
from mmrag.errors import QueryError
from tests.factories import make_png, make_text_pdf

FAST = {"encode": {"text_encoder": "hashing"}}
MANUAL = [
    "Pump operating guide. The maximum operating temperature of the pump is 80 degrees.",
    "The first chart shows the pump flow rate by month, peaking in July.",
    "The second chart shows the pump energy use by month, lowest in February.",
    "Appendix. In the appendix, the maximum operating temperature of the marine pump "
    "variant is 65 degrees.",
]


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("chat-docs")
    (d / "manual.pdf").write_bytes(make_text_pdf(MANUAL))
    (d / "almanac.md").write_text(
        "# Garden almanac\n\nTomatoes grow best in full sun with deep watering.\n\n"
        "## Appendix\n\nThe almanac appendix lists seed suppliers; the appendix is long.\n")
    (d / "harbour_boat_photo.png").write_bytes(make_png("boat", (96, 64)))
    return d


@pytest.fixture(scope="module")
def index(tmp_path_factory, docs) -> Index:
    with Index(tmp_path_factory.mktemp("chat-idx"), **FAST) as idx:
        report = idx.add(docs, show_progress=False)
        assert len(report.added) == 3, report.failed
        yield idx


def talk(index: Index, *questions: str) -> list:
    """Ask each question with the whole conversation so far, as a chat client would."""
    history: list[dict] = []
    answers = []
    for q in questions:
        history.append({"role": "user", "content": q})
        answer = index.chat(history)
        answers.append(answer)
        history.append({"role": "assistant", "content": answer.text,
                        "citations": [{"doc_id": c.doc_id, "name": c.name, "page": c.page}
                                      for c in answer.citations]})
    return answers


def cited(answer) -> list[tuple[str, int]]:
    return [(c.name, c.page) for c in answer.citations]


def test_and_in_the_appendix_is_searched_with_the_earlier_question(index):
    first, follow = talk(index, "What is the maximum operating temperature of the pump?",
                         "and in the appendix?")
    assert first.query == "What is the maximum operating temperature of the pump?"
    assert cited(first)[0] == ("manual.pdf", 1)
    assert follow.query == ("What is the maximum operating temperature of the pump in the "
                            "appendix?")
    assert cited(follow)[0] == ("manual.pdf", 4) and "65 degrees" in follow.text


def test_what_about_the_second_chart(index):
    first, follow = talk(index, "What does the first chart show?",
                         "what about the second chart?")
    assert cited(first)[0] == ("manual.pdf", 2)
    assert follow.query == "What does the second chart show?"
    assert cited(follow)[0] == ("manual.pdf", 3) and "energy use" in follow.text


def test_the_same_follow_up_alone_is_searched_as_it_is(index):
    (alone,) = talk(index, "what about the second chart?")
    assert alone.query == "what about the second chart?"


def test_a_new_topic_does_not_drag_old_terms_in(index):
    _, new = talk(index, "What does the first chart show?", "Where do tomatoes grow best?")
    assert new.query == "Where do tomatoes grow best?"
    assert [name for name, _ in cited(new)] == ["almanac.md"]


def test_its_appendix_stays_in_the_cited_document(index):
    """"its appendix" points back at the manual: the almanac, whose text says "appendix"
    more often, is not searched."""
    first, follow = talk(index, "What is the maximum operating temperature of the pump?",
                         "What does its appendix say?")
    assert {name for name, _ in cited(first)} == {"manual.pdf"}
    assert follow.hits and {h.item.name for h in follow.hits} == {"manual.pdf"}
    assert cited(follow)[0] == ("manual.pdf", 4)


def test_a_restriction_that_finds_nothing_is_dropped(index):
    """The previous answer cited a document no longer in the index (deleted since)."""
    answer = index.chat([
        {"role": "user", "content": "What does the first chart show?"},
        {"role": "assistant", "content": "Flow [1].",
         "citations": [{"doc_id": "gone0000", "name": "old.pdf", "page": 2}]},
        {"role": "user", "content": "what about the second chart?"}])
    assert answer.query == "What does the second chart show?"
    assert answer.found and cited(answer)[0] == ("manual.pdf", 3)


def test_stream_yields_the_same_answer_with_its_query(index):
    history = [{"role": "user", "content": "What does the first chart show?"},
               {"role": "assistant", "content": "Flow [1]."},
               {"role": "user", "content": "what about the second chart?"}]
    stream = index.chat(history, stream=True)
    text = "".join(stream)
    assert stream.answer.query == "What does the second chart show?"
    assert text.strip() == stream.answer.text == index.chat(history).text


def test_rewrite_is_what_chat_searches(index):
    history = ["What does the first chart show?", "what about the second chart?"]
    rw = index.rewrite(history)
    assert rw.followup and rw.query == "What does the second chart show?"
    assert index.chat(history, rewritten=rw).query == rw.query


def test_ask_reports_its_question_as_the_query(index):
    assert index.ask("  What does the first chart   show? ").query == \
        "What does the first chart show?"


@pytest.mark.parametrize(("messages", "match"), [
    ([], "must end with a user message"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
     "must end with a user message"),
    ([{"role": "robot", "content": "q"}], "role 'robot'"),
])
def test_bad_chats_are_one_line_errors(index, messages, match):
    with pytest.raises(QueryError, match=match):
        index.chat(messages)
