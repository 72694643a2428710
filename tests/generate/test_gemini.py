"""The ``gemini`` generator against a loopback server speaking ``streamGenerateContent``
with ``alt=sse``; the official ``google-genai`` client runs unchanged (its
``http_options.base_url`` points here)."""

from __future__ import annotations

import base64
import re

import pytest

from mmrag.config import GenerateSettings
from mmrag.errors import GenerationError
from mmrag.generate import create_generator
from mmrag.generate.gemini import GeminiGenerator
from tests.factories import make_jpeg, make_webp, one_line
from tests.generate._fake_servers import (
    SYSTEM,
    FakeServer,
    Reply,
    closed_url,
    gemini_events,
    sample_chat,
)

EXHAUSTED = {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                       "status": "RESOURCE_EXHAUSTED"}}


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "gm-test")


@pytest.fixture
def server():
    with FakeServer() as srv:
        yield srv


def _gen(url: str, **kw) -> GeminiGenerator:
    settings = GenerateSettings(generator="gemini", base_url=url, model="fake-gemini",
                                **{"max_retries": 2, "timeout": 10.0, **kw})
    return GeminiGenerator(settings, retry_delay=0.01)


def _run(gen: GeminiGenerator, chat=None) -> str:
    return "".join(gen.stream(chat or sample_chat(make_webp()), max_tokens=50,
                              temperature=0.2))


def test_streams_text_with_system_instruction_and_inline_image(server):
    image = make_jpeg("green")
    server.script(Reply.sse(gemini_events(["Revenue ", "rose ", "[1]."])))
    assert _run(_gen(server.url), sample_chat(image, "image/jpeg")) == "Revenue rose [1]."
    (req,) = server.requests
    assert re.match(r"/v1\w*/models/fake-gemini:streamGenerateContent\?", req.path)
    assert "alt=sse" in req.path
    assert req.headers["x-goog-api-key"] == "gm-test"
    body = req.json
    assert body["systemInstruction"]["parts"] == [{"text": SYSTEM}]
    assert body["generationConfig"]["maxOutputTokens"] == 50
    assert body["generationConfig"]["temperature"] == pytest.approx(0.2)
    (turn,) = body["contents"]
    assert turn["role"] == "user"
    text, inline, question = turn["parts"]
    assert text["text"].startswith("[1] chart.png") and question["text"].startswith("Question:")
    # The SDK writes proto field names and URL-safe base64; the API's JSON reads both forms.
    blob = inline["inlineData"]
    assert blob.get("mimeType", blob.get("mime_type")) == "image/jpeg"
    assert base64.urlsafe_b64decode(blob["data"]) == image


def test_url_only_image_goes_as_file_uri(server):
    server.script(Reply.sse(gemini_events(["ok"])))
    assert _run(_gen(server.url), sample_chat(b"", url="https://example.org/a.webp")) == "ok"
    part = server.requests[0].json["contents"][0]["parts"][1]
    file_data = part["fileData"]
    assert file_data.get("fileUri", file_data.get("file_uri")) == "https://example.org/a.webp"


def test_google_api_key_is_the_fallback(server, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key")
    server.script(Reply.sse(gemini_events(["ok"])))
    _run(_gen(server.url))
    assert server.requests[0].headers["x-goog-api-key"] == "google-key"


def test_rate_limit_is_retried_then_streams(server):
    server.script(Reply.error(429, EXHAUSTED), Reply.error(429, EXHAUSTED),
                  Reply.sse(gemini_events(["fine"])))
    assert _run(_gen(server.url)) == "fine"
    assert len(server.requests) == 3


def test_rate_limit_after_retries_is_one_line_error(server):
    server.script(*[Reply.error(429, EXHAUSTED)] * 2)
    with pytest.raises(GenerationError) as info:
        _run(_gen(server.url, max_retries=1))
    assert "rate limited after 1 retries" in one_line(info.value)
    assert len(server.requests) == 2  # the client adds no retries of its own


@pytest.mark.parametrize("status,body", [
    (401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                     "status": "UNAUTHENTICATED"}}),
    (400, {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                     "status": "INVALID_ARGUMENT"}}),
])
def test_refused_key_names_the_variable(server, status, body):
    server.script(Reply.error(status, body))
    with pytest.raises(GenerationError) as info:
        _run(_gen(server.url))
    msg = one_line(info.value)
    assert "API key" in msg and "GEMINI_API_KEY" in msg
    assert len(server.requests) == 1


def test_timeout_is_one_line_error(server):
    server.script(Reply.slow(30))
    with pytest.raises(GenerationError) as info:
        _run(_gen(server.url, timeout=0.3, max_retries=0))
    assert "timed out" in one_line(info.value)


def test_oversized_input_says_too_large(server):
    server.script(Reply.error(400, {"error": {
        "code": 400, "status": "INVALID_ARGUMENT",
        "message": "The input token count (1200000) exceeds the maximum number of tokens "
                   "allowed (1048576)."}}))
    with pytest.raises(GenerationError) as info:
        _run(_gen(server.url))
    assert "too large" in one_line(info.value)


def test_unreachable_base_url_is_named():
    url = closed_url()
    with pytest.raises(GenerationError) as info:
        _run(_gen(url, max_retries=0))
    assert url in one_line(info.value)


def test_missing_key_fails_before_any_request(monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(GenerationError) as info:
        GeminiGenerator(GenerateSettings(generator="gemini"))
    assert "GEMINI_API_KEY" in one_line(info.value)


def test_registry_builds_it_by_name():
    gen = create_generator(GenerateSettings(generator="gemini"))
    assert isinstance(gen, GeminiGenerator)
    assert gen.supports_images and gen.model == "gemini-2.5-flash"
