"""The ``anthropic`` generator against a loopback server speaking the Messages API's SSE.

The official ``anthropic`` client runs unchanged (its ``base_url`` points here).
"""

from __future__ import annotations

import base64

import pytest

from mmrag.config import GenerateSettings
from mmrag.errors import GenerationError
from mmrag.generate import create_generator
from mmrag.generate.anthropic import AnthropicGenerator
from tests.factories import make_png, make_webp, one_line
from tests.generate._fake_servers import (
    SYSTEM,
    FakeServer,
    Reply,
    anthropic_events,
    closed_url,
    sample_chat,
)

RATE_LIMITED = {"type": "error", "error": {"type": "rate_limit_error",
                                           "message": "Number of requests has exceeded"}}


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")


@pytest.fixture
def server():
    with FakeServer() as srv:
        yield srv


def _gen(url: str, **kw) -> AnthropicGenerator:
    settings = GenerateSettings(generator="anthropic", base_url=url, model="fake-claude",
                                **{"max_retries": 2, "timeout": 10.0, **kw})
    return AnthropicGenerator(settings, retry_delay=0.01)


def _run(gen: AnthropicGenerator, chat=None, temperature: float = 0.0) -> str:
    return "".join(gen.stream(chat or sample_chat(make_webp()), max_tokens=40,
                              temperature=temperature))


def test_streams_text_with_separate_system_and_base64_image_block(server):
    image = make_png("red")
    server.script(Reply.sse(anthropic_events(["Revenue", " rose", " [1]."])))
    assert _run(_gen(server.url), sample_chat(image, "image/png")) == "Revenue rose [1]."
    (req,) = server.requests
    assert req.path == "/v1/messages"
    # SDK 2.x sends the key as a bearer token; older ones as x-api-key
    assert "sk-ant-test" in req.headers.get("x-api-key", "") + req.headers.get("authorization", "")
    body = req.json
    assert body["system"] == SYSTEM and body["stream"] is True
    assert body["model"] == "fake-claude" and body["max_tokens"] == 40
    (turn,) = body["messages"]  # the system prompt is not a turn
    assert turn["role"] == "user"
    assert [b["type"] for b in turn["content"]] == ["text", "image", "text"]
    source = turn["content"][1]["source"]
    assert source["type"] == "base64" and source["media_type"] == "image/png"
    assert base64.b64decode(source["data"]) == image


def test_public_url_image_and_no_temperature(server):
    server.script(Reply.sse(anthropic_events(["ok"])))
    chat = sample_chat(b"", url="https://example.org/chart.png")
    assert _run(_gen(server.url), chat, temperature=1.7) == "ok"
    body = server.requests[0].json
    assert body["messages"][0]["content"][1]["source"] == {
        "type": "url", "url": "https://example.org/chart.png"}
    assert "temperature" not in body  # the Messages API no longer takes one


def test_rate_limit_is_retried_then_streams(server):
    server.script(Reply.error(429, RATE_LIMITED, retry_after="0"),
                  Reply.sse(anthropic_events(["fine"])))
    assert _run(_gen(server.url)) == "fine"
    assert len(server.requests) == 2


def test_rate_limit_after_retries_is_one_line_error(server):
    server.script(*[Reply.error(429, RATE_LIMITED, retry_after="0")] * 3)
    with pytest.raises(GenerationError) as info:
        _run(_gen(server.url, max_retries=2))
    assert "rate limited after 2 retries" in one_line(info.value)
    assert len(server.requests) == 3


def test_unauthorized_names_the_key_variable(server):
    server.script(Reply.error(401, {"type": "error", "error": {
        "type": "authentication_error", "message": "invalid x-api-key"}}))
    with pytest.raises(GenerationError) as info:
        _run(_gen(server.url))
    msg = one_line(info.value)
    assert "API key" in msg and "ANTHROPIC_API_KEY" in msg
    assert len(server.requests) == 1


def test_timeout_is_one_line_error(server):
    server.script(Reply.slow(30))
    with pytest.raises(GenerationError) as info:
        _run(_gen(server.url, timeout=0.3, max_retries=0))
    assert "timed out" in one_line(info.value)


def test_prompt_too_long_says_input_too_large(server):
    server.script(Reply.error(400, {"type": "error", "error": {
        "type": "invalid_request_error",
        "message": "prompt is too long: 250000 tokens > 200000 maximum"}}))
    with pytest.raises(GenerationError) as info:
        _run(_gen(server.url))
    assert "too large" in one_line(info.value)


def test_unreachable_base_url_is_named():
    url = closed_url()
    with pytest.raises(GenerationError) as info:
        _run(_gen(url, max_retries=0))
    assert url in one_line(info.value)


def test_missing_key_fails_before_any_request(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(GenerationError) as info:
        AnthropicGenerator(GenerateSettings(generator="anthropic"))
    assert "ANTHROPIC_API_KEY" in one_line(info.value)


def test_registry_builds_it_by_name():
    gen = create_generator(GenerateSettings(generator="anthropic"))
    assert isinstance(gen, AnthropicGenerator)
    assert gen.supports_images and gen.model == "claude-sonnet-4-6"
