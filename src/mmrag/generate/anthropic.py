"""Anthropic's Messages API (Claude), streamed, with retrieved images as image blocks.

The system prompt travels in the request's ``system`` field (the API has no system turn);
images go as base64 ``image`` blocks, or as ``url`` sources when a part has a public URL.
The key comes from ``generate.api_key_env`` (default ``ANTHROPIC_API_KEY``);
``generate.base_url`` points at a proxy or gateway if you use one. Default model:
:data:`DEFAULT_MODEL`, a vision-capable Claude; any Messages API model id works.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

from ..config import GenerateSettings
from ..errors import GenerationError, MissingDependencyError
from .base import Message, Part, generators
from .retry import api_key, generation_error, with_retries

__all__ = ["DEFAULT_MODEL", "AnthropicGenerator", "to_anthropic"]

DEFAULT_MODEL = "claude-sonnet-4-6"
KEY_ENV = "ANTHROPIC_API_KEY"


@generators.register("anthropic")
class AnthropicGenerator:
    """Streams a Claude answer through the official ``anthropic`` client."""

    name = "anthropic"
    supports_images = True

    def __init__(self, settings: GenerateSettings, *, retry_delay: float = 1.0):
        try:
            import anthropic
        except ImportError as exc:
            raise MissingDependencyError("the 'anthropic' generator", "llm") from exc
        self._anthropic = anthropic
        self.model = settings.model or DEFAULT_MODEL
        self.base_url = settings.base_url.strip().rstrip("/")
        self.key_env = settings.api_key_env or KEY_ENV
        self.timeout = settings.timeout
        self.retries = settings.max_retries
        self.retry_delay = retry_delay
        # Retries are ours (retry.with_retries), so the SDK must not retry underneath them.
        self._client = anthropic.Anthropic(api_key=api_key(self.key_env, KEY_ENV, "anthropic"),
                                           base_url=self.base_url or None,
                                           timeout=settings.timeout, max_retries=0)

    def stream(self, messages: list[Message], *, max_tokens: int,
               temperature: float) -> Iterator[str]:
        """Yield text deltas; retries (with backoff) only until the stream has opened."""
        system, turns = to_anthropic(messages)
        # No temperature: the Messages API (SDK 2.x) dropped it; the model picks sampling.
        request: dict[str, Any] = dict(model=self.model, messages=turns, max_tokens=max_tokens)
        if system:
            request["system"] = system
        try:
            # The HTTP request is sent when the stream manager is entered.
            stream = with_retries(lambda: self._client.messages.stream(**request).__enter__(),
                                  retries=self.retries, base_delay=self.retry_delay,
                                  what="anthropic request")
            try:
                yield from stream.text_stream
            finally:
                stream.close()
        except Exception as exc:
            raise self._error(exc) from exc

    def _error(self, exc: Exception) -> GenerationError:
        sdk = self._anthropic
        if isinstance(exc, sdk.APIConnectionError) and not isinstance(exc, sdk.APITimeoutError):
            where = self.base_url or "the Anthropic API"
            return GenerationError(f"anthropic: cannot reach {where}: {exc}")
        return generation_error(exc, "anthropic", timeout=self.timeout, retries=self.retries,
                                key_env=self.key_env)


def to_anthropic(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system text, user/assistant turns with content blocks)."""
    system = "\n\n".join(m.text for m in messages if m.role == "system" and m.text)
    # The API rejects empty text blocks, which a prompt may legitimately contain.
    turns = [{"role": m.role, "content": [_block(p) for p in m.parts
                                          if p.kind == "image" or p.text.strip()]}
             for m in messages if m.role != "system"]
    return system, turns


def _block(part: Part) -> dict[str, Any]:
    if part.kind == "text":
        return {"type": "text", "text": part.text}
    if part.url:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    return {"type": "image", "source": {"type": "base64", "media_type": part.mime or "image/webp",
                                        "data": base64.b64encode(part.data).decode()}}
