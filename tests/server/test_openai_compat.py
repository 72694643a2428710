"""`/v1/chat/completions` and `/v1/models` through the real `openai` client over HTTP."""

from __future__ import annotations

import base64

import httpx
import openai
import pytest

from tests.factories import make_png

QUESTION = "What was the zeppelin hangar rebuilt in?"


def _ask(client, content, **kw):
    return client.chat.completions.create(
        model="mmrag", messages=[{"role": "user", "content": content}], **kw)


def test_models_lists_mmrag(client):
    assert [m.id for m in client.models.list()] == ["mmrag"]
    assert client.models.retrieve("mmrag").owned_by == "mmrag"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_answer_cites_the_right_document_and_page(client):
    resp = _ask(client, QUESTION)
    assert resp.object == "chat.completion" and resp.model == "mmrag"
    assert resp.id.startswith("chatcmpl-") and resp.created > 0
    choice = resp.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    text = choice.message.content
    assert "aluminium" in text and "[1]" in text
    body, _, sources = text.partition("\n\nSources:\n")
    assert sources.startswith("[1] report.pdf, page 2")
    extra = resp.model_extra["mmrag"]
    assert extra["found"] is True and extra["generator"] == "extractive"
    first = extra["citations"][0]
    assert (first["name"], first["page"], first["number"]) == ("report.pdf", 2, 1)
    usage = resp.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_stream_joins_to_the_non_streaming_text(client):
    whole = _ask(client, QUESTION).choices[0].message.content
    chunks = list(_ask(client, QUESTION, stream=True, stream_options={"include_usage": True}))
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 2  # deltas
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    assert finish[0].model_extra["mmrag"]["citations"][0]["page"] == 2
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_raw_stream_is_sse_ending_with_done(server_url):
    body = {"model": "mmrag", "stream": True,
            "messages": [{"role": "user", "content": QUESTION}]}
    with httpx.stream("POST", f"{server_url}/v1/chat/completions", json=body) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line for line in resp.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


def test_only_the_last_user_message_is_the_question(client):
    resp = client.chat.completions.create(model="mmrag", messages=[
        {"role": "system", "content": "You are a gardening assistant."},
        {"role": "user", "content": "How do I control aphids?"},
        {"role": "assistant", "content": "With ladybirds and neem oil [1]."},
        {"role": "user", "content": [{"type": "text", "text": QUESTION}]}])
    text = resp.choices[0].message.content
    assert "aluminium" in text and "notes.md" not in text


def test_an_image_part_is_accepted(client):
    uri = "data:image/png;base64," + base64.b64encode(make_png("boat", (64, 48))).decode()
    resp = _ask(client, [{"type": "text", "text": "sailing boat harbour"},
                         {"type": "image_url", "image_url": {"url": uri}}])
    assert resp.choices[0].finish_reason == "stop"
    names = {c["name"] for c in resp.model_extra["mmrag"]["citations"]}
    assert "sailing_boat_harbour.png" in names
    only_image = _ask(client, [{"type": "image_url", "image_url": {"url": uri}}])
    assert only_image.choices[0].message.content


def test_http_image_urls_go_through_the_ssrf_guard(client, server_url):
    with pytest.raises(openai.BadRequestError) as err:
        _ask(client, [{"type": "text", "text": "what is this?"},
                      {"type": "image_url", "image_url": {"url": f"{server_url}/health"}}])
    assert err.value.status_code == 400 and err.value.code == "blocked_url"
    assert "127.0.0.1" in err.value.message


@pytest.mark.parametrize(("content", "param"), [
    ([{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}],
     "messages.0.content.0"),
    ([{"type": "image_url", "image_url": {"url": "/etc/passwd"}}], "messages.0.content"),
    ("   ", "messages.0.content"),
])
def test_unusable_questions_are_400_with_an_openai_error(client, content, param):
    with pytest.raises(openai.BadRequestError) as err:
        _ask(client, content)
    assert err.value.body["type"] == "invalid_request_error"
    assert err.value.body["param"] == param and "\n" not in err.value.message


@pytest.mark.parametrize(("body", "code"), [
    ({"model": "mmrag"}, "invalid_request"),
    ({"model": "mmrag", "messages": []}, "invalid_request"),
    ({"model": "mmrag", "messages": [{"role": "wizard", "content": "hi"}]}, "invalid_request"),
    ({"model": "mmrag", "messages": [{"role": "system", "content": "hi"}]}, "invalid_request"),
    ({"model": "mmrag", "n": 2, "messages": [{"role": "user", "content": "hi"}]},
     "invalid_request"),
    ({"model": "mmrag", "messages": [{"role": "user", "content": "hi"}], "k": 0},
     "invalid_request"),
    ({"model": "mmrag", "messages": [{"role": "user", "content": [  # not an image
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}]},
     "invalid_query"),
    ({"model": "mmrag", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}]}]},
     "invalid_request"),
])
def test_bad_requests_get_400_and_a_stable_code(server_url, body, code):
    resp = httpx.post(f"{server_url}/v1/chat/completions", json=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == code and error["type"] == "invalid_request_error"
    assert error["message"] and "Traceback" not in resp.text


def test_malformed_json_and_unknown_routes(server_url):
    resp = httpx.post(f"{server_url}/v1/chat/completions", content=b"{not json",
                      headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_request"
    missing = httpx.get(f"{server_url}/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"] == {"message": "Not Found", "type": "not_found_error",
                                       "param": None, "code": "not_found"}
    wrong = httpx.get(f"{server_url}/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_retrieval_options_travel_in_extra_body(client):
    resp = _ask(client, QUESTION, extra_body={"k": 1, "filters": {"path": "*.md"}})
    citations = resp.model_extra["mmrag"]["citations"]
    assert all(c["name"] == "notes.md" for c in citations)
    assert "report.pdf" not in resp.choices[0].message.content


def test_health(server_url, index_path):
    resp = httpx.get(f"{server_url}/health")
    assert resp.status_code == 200
    data = resp.json()
    assert data["status"] == "ok" and data["profile"] == "offline"
    assert data["index"] == str(index_path.resolve()) and data["generator"] == "extractive"
