"""The ``openai`` generator against a loopback server speaking chat-completions SSE.

The official ``openai`` client runs unchanged (only ``base_url`` points here), so these
cover its request encoding, stream parsing and status handling, with no network.
"""

from __future__ import annotations

import base64

import pytest

from mmrag.config import GenerateSettings
from mmrag.errors import GenerationError
from mmrag.generate import create_generator
from mmrag.generate.base import Message, Part
from mmrag.generate.openai import PLACEHOLDER_KEY, OpenAIGenerator
from tests.factories import make_png, make_webp, one_line
from tests.generate._fake_servers import (
    SYSTEM,
    FakeServer,
    Reply,
    closed_url,
    openai_events,
    sample_chat,
)

RATE_LIMITED = {"error": {"message": "Rate limit reached for requests", "type": "requests",
                          "code": "rate_limit_exceeded"}}


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def server():
    with FakeServer() as srv:
        yield srv


def _gen(url: str, **kw) -> OpenAIGenerator:
    settings = GenerateSettings(generator="openai", base_url=f"{url}/v1", model="fake-model",
                                **{"max_retries": 2, "timeout": 10.0, **kw})
    return OpenAIGenerator(settings, retry_delay=0.01)


def _run(gen: OpenAIGenerator, messages: list[Message] | None = None) -> str:
    chat = messages or sample_chat(make_webp())
    return "".join(gen.stream(chat, max_tokens=32, temperature=0.0))


def test_streams_deltas_with_system_prompt_and_base64_image(server):
    image = make_webp("blue")
    server.script(Reply.sse(openai_events(["Revenue ", "rose ", "[1]."])))
    assert _run(_gen(server.url), sample_chat(image)) == "Revenue rose [1]."
    (req,) = server.requests
    assert req.path == "/v1/chat/completions"
    body = req.json
    assert body["model"] == "fake-model" and body["stream"] is True
    assert body["max_tokens"] == 32 and "max_completion_tokens" not in body
    system, user = body["messages"]
    assert system == {"role": "system", "content": SYSTEM}
    kinds = [p["type"] for p in user["content"]]
    assert kinds == ["text", "image_url", "text"]
    url = user["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/webp;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == image
    assert user["content"][2]["text"] == "Question: what rose?"


def test_png_keeps_its_mime_and_public_url_is_sent_as_is(server):
    server.script(Reply.sse(openai_events(["a"])), Reply.sse(openai_events(["b"])))
    gen = _gen(server.url)
    assert _run(gen, sample_chat(make_png(), "image/png")) == "a"
    assert _run(gen, sample_chat(b"", url="https://example.org/x.png")) == "b"
    first, second = (r.json["messages"][1]["content"][1]["image_url"]["url"]
                     for r in server.requests)
    assert first.startswith("data:image/png;base64,")
    assert second == "https://example.org/x.png"


def test_text_only_chat_sends_plain_string_content(server):
    server.script(Reply.sse(openai_events(["ok"])))
    chat = [Message("user", [Part.of_text("hello"), Part.of_text("world")])]
    assert _run(_gen(server.url), chat) == "ok"
    assert server.requests[0].json["messages"] == [{"role": "user", "content": "hello\nworld"}]


def test_no_key_on_own_server_sends_placeholder(server):
    server.script(Reply.sse(openai_events(["x"])))
    _run(_gen(server.url))
    assert server.requests[0].headers["authorization"] == f"Bearer {PLACEHOLDER_KEY}"


def test_key_is_read_from_the_named_env_var(server, monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", "sk-from-env")
    server.script(Reply.sse(openai_events(["x"])))
    _run(_gen(server.url, api_key_env="MY_LLM_KEY"))
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-env"


def test_rate_limit_is_retried_then_streams(server):
    server.script(Reply.error(429, RATE_LIMITED, retry_after="0"),
                  Reply.error(429, RATE_LIMITED, retry_after="0"),
                  Reply.sse(openai_events(["fine"])))
    assert _run(_gen(server.url, max_retries=2)) == "fine"
    assert len(server.requests) == 3


def test_rate_limit_after_retries_is_one_line_error(server):
    server.script(*[Reply.error(429, RATE_LIMITED, retry_after="0")] * 3)
    with pytest.raises(GenerationError) as info:
        _run(_gen(server.url, max_retries=2))
    msg = one_line(info.value)
    assert "rate limited after 2 retries" in msg
    assert len(server.requests) == 3  # the first try + 2 retries, the SDK adds none


def test_unauthorized_names_the_key_variable(server):
    server.script(Reply.error(401, {"error": {"message": "Incorrect API key provided",
                                              "type": "invalid_request_error",
                                              "code": "invalid_api_key"}}))
    with pytest.raises(GenerationError) as info:
        _run(_gen(server.url))
    msg = one_line(info.value)
    assert "API key" in msg and "OPENAI_API_KEY" in msg
    assert len(server.requests) == 1  # a bad key is not retried


def test_timeout_is_one_line_error(server):
    server.script(Reply.slow(30))
    with pytest.raises(GenerationError) as info:
        _run(_gen(server.url, timeout=0.3, max_retries=0))
    assert "timed out after 0.3s" in one_line(info.value)


def test_context_length_error_says_input_too_large(server):
    server.script(Reply.error(400, {"error": {
        "message": "This model's maximum context length is 8192 tokens. However, your "
                   "messages resulted in 9000 tokens.", "type": "invalid_request_error",
        "code": "context_length_exceeded"}}))
    with pytest.raises(GenerationError) as info:
        _run(_gen(server.url))
    msg = one_line(info.value)
    assert "too large" in msg and "generate.k" in msg


def test_unreachable_base_url_is_named():
    url = closed_url()
    with pytest.raises(GenerationError) as info:
        _run(_gen(url, max_retries=0))
    msg = one_line(info.value)
    assert "cannot reach" in msg and url in msg


def test_default_endpoint_without_key_fails_before_any_request():
    with pytest.raises(GenerationError) as info:
        OpenAIGenerator(GenerateSettings(generator="openai"))
    assert "OPENAI_API_KEY" in one_line(info.value)


def test_official_endpoint_uses_max_completion_tokens(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    gen = OpenAIGenerator(GenerateSettings(generator="openai"))
    assert gen.official and gen.model == "gpt-4o-mini"
    gen._client = gen._client.with_options(base_url=f"{server.url}/v1")  # keep it offline
    server.script(Reply.sse(openai_events(["x"])))
    assert _run(gen) == "x"
    body = server.requests[0].json
    assert body["max_completion_tokens"] == 32 and "max_tokens" not in body
    assert server.requests[0].headers["authorization"] == "Bearer sk-test"


def test_registry_builds_it_by_name(server):
    gen = create_generator(GenerateSettings(generator="openai", base_url=server.url))
    assert isinstance(gen, OpenAIGenerator) and gen.supports_images and gen.name == "openai"
