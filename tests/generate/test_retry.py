"""Shared provider plumbing: backoff, API keys, one-line errors."""

from __future__ import annotations

import pytest

from mmrag.errors import GenerationError
from mmrag.generate.retry import api_key, generation_error, is_transient, with_retries


class _Response:
    def __init__(self, status: int, headers: dict | None = None):
        self.status_code, self.headers = status, headers or {}


class RateLimitError(Exception):
    def __init__(self, msg="slow down", headers=None):
        super().__init__(msg)
        self.response = _Response(429, headers)


class _Status(Exception):
    def __init__(self, status: int, msg: str = "boom"):
        super().__init__(msg)
        self.status_code = status


def test_retries_transient_errors_with_growing_capped_delays():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise _Status(503)
        return "ok"

    assert with_retries(flaky, retries=3, base_delay=1, max_delay=3, sleep=sleeps.append) == "ok"
    assert len(calls) == 4 and len(sleeps) == 3
    assert all(0 <= s <= cap for s, cap in zip(sleeps, [1, 2, 3], strict=True))


def test_gives_up_after_retries_and_never_retries_permanent_errors():
    sleeps: list[float] = []

    def always(exc):
        def call():
            raise exc
        return call

    with pytest.raises(_Status):
        with_retries(always(_Status(500)), retries=2, sleep=sleeps.append)
    assert len(sleeps) == 2
    sleeps.clear()
    with pytest.raises(_Status):
        with_retries(always(_Status(400)), retries=5, sleep=sleeps.append)
    assert sleeps == []


def test_retry_after_header_is_honoured():
    sleeps: list[float] = []
    calls = iter([RateLimitError(headers={"retry-after": "2.5"}), None])

    def call():
        exc = next(calls)
        if exc:
            raise exc
        return 1

    assert with_retries(call, retries=1, sleep=sleeps.append) == 1 and sleeps == [2.5]


def test_transient_classification():
    assert is_transient(RateLimitError()) and is_transient(TimeoutError())
    assert is_transient(_Status(529)) and not is_transient(_Status(401))
    assert not is_transient(ValueError("bad")) and not is_transient(GenerationError("x"))


@pytest.mark.parametrize("exc, words", [
    (RateLimitError(), ["rate limited after 3 retries"]),
    (_Status(401, "invalid key"), ["API key was refused", "MY_KEY"]),
    (TimeoutError(), ["timed out after 30s"]),
    (_Status(400, "This model's maximum context length is 8192 tokens"), ["too large"]),
    (_Status(413), ["too large"]),
    (_Status(404, "no model"), ["not found"]),
    (_Status(418, "teapot\nline two"), ["_Status", "teapot line two"]),
])
def test_provider_errors_become_one_line(exc, words):
    err = generation_error(exc, "openai", timeout=30, retries=3, key_env="MY_KEY")
    assert isinstance(err, GenerationError) and "\n" not in str(err)
    assert str(err).startswith("openai: ")
    for w in words:
        assert w in str(err)


def test_api_key_from_env(monkeypatch):
    monkeypatch.setenv("MY_KEY", " sk-1 ")
    assert api_key("MY_KEY", "OPENAI_API_KEY", "openai") == "sk-1"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(GenerationError, match="set the environment variable OPENAI_API_KEY"):
        api_key("", "OPENAI_API_KEY", "openai")
