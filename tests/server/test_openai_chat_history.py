"""`/v1/chat/completions` resolves a follow-up from the earlier turns (Index.chat)."""

from __future__ import annotations

FIRST = "What was the zeppelin hangar rebuilt in?"


def _chat(client, *messages):
    return client.chat.completions.create(model="mmrag", messages=list(messages))


def test_a_follow_up_is_searched_as_a_standalone_query(client):
    first = _chat(client, {"role": "user", "content": FIRST})
    assert first.model_extra["mmrag"]["query"] == FIRST
    # the client echoes the reply, Sources lines included, as stock chat UIs do
    reply = first.choices[0].message.content
    assert "[1] report.pdf, page 2" in reply

    follow = _chat(client, {"role": "system", "content": "Be brief."},
                   {"role": "user", "content": FIRST},
                   {"role": "assistant", "content": reply},
                   {"role": "user", "content": "When was it rebuilt?"})
    extra = follow.model_extra["mmrag"]
    assert extra["query"] == "When was the zeppelin hangar rebuilt?"
    assert "1931" in follow.choices[0].message.content
    assert [(c["name"], c["page"]) for c in extra["citations"]][:1] == [("report.pdf", 2)]


def test_without_history_the_same_words_are_searched_as_they_are(client):
    alone = _chat(client, {"role": "user", "content": "When was it rebuilt?"})
    assert alone.model_extra["mmrag"]["query"] == "When was it rebuilt?"


def test_a_new_topic_after_a_chat_does_not_borrow_old_terms(client):
    resp = _chat(client, {"role": "user", "content": FIRST},
                 {"role": "assistant", "content": "It was rebuilt in aluminium [1]."},
                 {"role": "user", "content": "How are aphids controlled?"})
    extra = resp.model_extra["mmrag"]
    assert extra["query"] == "How are aphids controlled?"
    assert {c["name"] for c in extra["citations"]} == {"notes.md"}


def test_streamed_follow_up_carries_the_query_in_the_last_chunk(client):
    chunks = list(client.chat.completions.create(
        model="mmrag", stream=True,
        messages=[{"role": "user", "content": FIRST},
                  {"role": "assistant", "content": "Aluminium [1]."},
                  {"role": "user", "content": "and when?"}]))
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish[0].model_extra["mmrag"]["query"] == \
        "When was the zeppelin hangar rebuilt in?"
