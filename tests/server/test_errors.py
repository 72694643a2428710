"""Failures become one-line OpenAI-style JSON errors with stable codes, never tracebacks."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from mmrag.errors import (
    BlockedURLError,
    ConfigError,
    GenerationError,
    MissingDependencyError,
    MmragError,
    QueryError,
    StoreError,
    UnknownBackendError,
)
from mmrag.generate import generators
from mmrag.server import create_app
from mmrag.server.errors import ApiError, error_for, status_and_code
from tests.server.conftest import serve_in_thread

CHAT = {"model": "mmrag", "messages": [{"role": "user", "content": "zeppelin hangar"}]}


class FakeGenerator:
    """Says ``before`` deltas, then raises ``error`` (if any); waits for ``gate`` first."""

    supports_images = False

    def __init__(self, name: str, before: list[str], error: Exception | None = None,
                 gate: threading.Event | None = None):
        self.name, self.before, self.error, self.gate = name, before, error, gate

    def stream(self, messages, *, max_tokens: int, temperature: float) -> Iterator[str]:
        if self.gate is not None:
            ENTERED.set()
            assert self.gate.wait(60), "the test never opened the gate"
        yield from self.before
        if self.error is not None:
            raise self.error


GATE, ENTERED = threading.Event(), threading.Event()
generators.register("test-down")(lambda s: FakeGenerator(
    "test-down", [], GenerationError("provider 'acme' is down (HTTP 503 after 3 retries)")))
generators.register("test-midway")(lambda s: FakeGenerator(
    "test-midway", ["The zeppelin ", "hangar "], GenerationError("connection reset")))
generators.register("test-crash")(lambda s: FakeGenerator(
    "test-crash", [], KeyError("choices")))
generators.register("test-gated")(lambda s: FakeGenerator(
    "test-gated", ["Aluminium [1]."], gate=GATE))


@pytest.fixture()
def app_with(index_path):
    def make(generator: str):
        return create_app(index_path, generate__generator=generator)
    return make


@pytest.mark.parametrize("stream", [False, True])
def test_generation_errors_are_502_one_liners(app_with, stream):
    with TestClient(app_with("test-down")) as c:
        resp = c.post("/v1/chat/completions", json={**CHAT, "stream": stream})
    assert resp.status_code == 502
    assert resp.json()["error"] == {
        "message": "provider 'acme' is down (HTTP 503 after 3 retries)",
        "type": "server_error", "param": None, "code": "generation_failed"}


def test_unexpected_generator_exceptions_stay_one_line(app_with):
    with TestClient(app_with("test-crash")) as c:
        resp = c.post("/v1/chat/completions", json=CHAT)
    assert resp.status_code == 502 and resp.json()["error"]["code"] == "generation_failed"
    assert "KeyError" in resp.json()["error"]["message"] and "Traceback" not in resp.text


def test_error_after_the_first_delta_arrives_as_an_sse_error_event(app_with):
    with serve_in_thread(app_with("test-midway")) as url, \
            openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0) as client:
        stream = client.chat.completions.create(stream=True, **CHAT)
        seen: list[str] = []
        with pytest.raises(openai.APIError, match="connection reset"):
            for chunk in stream:
                seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "The zeppelin hangar "


def test_a_slow_answer_does_not_block_other_requests(app_with):
    """While one answer waits inside its generator, the server still answers others."""
    GATE.clear()
    ENTERED.clear()
    with serve_in_thread(app_with("test-gated")) as url:
        result: dict[str, httpx.Response] = {}
        asking = threading.Thread(target=lambda: result.update(
            chat=httpx.post(f"{url}/v1/chat/completions", json=CHAT, timeout=60)))
        asking.start()
        try:
            assert ENTERED.wait(60), "the chat request never reached the generator"
            health = httpx.get(f"{url}/health", timeout=30)
            assert health.status_code == 200 and "chat" not in result
        finally:
            GATE.set()
            asking.join(60)
    assert result["chat"].json()["choices"][0]["message"]["content"].startswith("Aluminium")


def test_an_unknown_generator_stops_the_app_from_starting(index_path):
    with pytest.raises(UnknownBackendError, match="no-such-model"), \
            TestClient(create_app(index_path, generate__generator="no-such-model")):
        pass


def test_bugs_are_500_without_details(index_path):
    app = create_app(index_path)

    async def boom() -> None:
        raise RuntimeError("secret detail at /srv/keys")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as c:
        resp = c.get("/boom")
    assert resp.status_code == 500
    assert resp.json()["error"] == {"message": "internal server error", "type": "server_error",
                                    "param": None, "code": "internal_error"}


@pytest.mark.parametrize(("exc", "status", "code"), [
    (BlockedURLError("http://10.0.0.1/a.png", "refusing private address"), 400, "blocked_url"),
    (QueryError("k must be at least 1"), 400, "invalid_query"),
    (ConfigError("bad setting"), 400, "invalid_config"),
    (MissingDependencyError("the 'gemma' generator", "gemma"), 500, "missing_dependency"),
    (GenerationError("timeout after 60 s"), 502, "generation_failed"),
    (StoreError("table is gone"), 500, "store_error"),
    (MmragError("something of ours"), 500, "mmrag_error"),
    (ApiError("no", status=404, code="model_not_found", param="model"), 404,
     "model_not_found"),
])
def test_mmrag_errors_map_to_stable_codes(exc, status, code):
    assert status_and_code(exc) == (status, code)
    error = error_for(exc)["error"]
    assert error["code"] == code
    assert error["type"] == {400: "invalid_request_error", 404: "not_found_error"}.get(
        status, "server_error")
    assert error["message"] == str(exc).splitlines()[0]
