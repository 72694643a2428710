"""OpenAI-compatible chat completions: OpenAI itself and the servers that speak its wire
format (vLLM, Ollama, llama.cpp server, LM Studio, mmrag's own server).

Images go as ``image_url`` parts holding a ``data:`` URI of the resized bytes (or the
part's public URL when it has one), which every one of those servers accepts. The key is
read from ``generate.api_key_env`` (default ``OPENAI_API_KEY``); a server on your own
``base_url`` usually wants none, so a placeholder is sent when the variable is unset.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from ..config import GenerateSettings
from ..errors import GenerationError, MissingDependencyError
from .base import Message, Part, generators
from .retry import api_key, generation_error, with_retries

__all__ = ["DEFAULT_MODEL", "OpenAIGenerator", "to_openai_messages"]

DEFAULT_MODEL = "gpt-4o-mini"  # vision-capable and cheap; any chat model id works
KEY_ENV = "OPENAI_API_KEY"
OFFICIAL_HOST = "api.openai.com"
# Self-hosted servers ignore the key, but the client refuses to start without one.
PLACEHOLDER_KEY = "sk-no-key-needed"


@generators.register("openai")
class OpenAIGenerator:
    """Streams chat completions from ``generate.base_url`` (empty = api.openai.com)."""

    name = "openai"
    supports_images = True

    def __init__(self, settings: GenerateSettings, *, retry_delay: float = 1.0):
        try:
            import openai
        except ImportError as exc:
            raise MissingDependencyError("the 'openai' generator", "llm") from exc
        self._openai = openai
        self.model = settings.model or DEFAULT_MODEL
        self.base_url = settings.base_url.strip().rstrip("/")
        self.official = not self.base_url or urlparse(self.base_url).hostname == OFFICIAL_HOST
        self.key_env = settings.api_key_env or KEY_ENV
        self.timeout = settings.timeout
        self.retries = settings.max_retries
        self.retry_delay = retry_delay
        # Retries are ours (retry.with_retries), so the SDK must not retry underneath them.
        self._client = openai.OpenAI(api_key=self._key(), base_url=self.base_url or None,
                                     timeout=settings.timeout, max_retries=0)

    def _key(self) -> str:
        if self.official:  # fail before any request, naming the variable to set
            return api_key(self.key_env, KEY_ENV, "openai")
        return os.environ.get(self.key_env, "").strip() or PLACEHOLDER_KEY

    def stream(self, messages: list[Message], *, max_tokens: int,
               temperature: float) -> Iterator[str]:
        """Yield content deltas; retries (with backoff) only until the stream has opened."""
        request: dict[str, Any] = dict(model=self.model, messages=to_openai_messages(messages),
                                       temperature=temperature, stream=True)
        # api.openai.com deprecated max_tokens (reasoning models reject it); compatible
        # servers all understand max_tokens but not always max_completion_tokens.
        request["max_completion_tokens" if self.official else "max_tokens"] = max_tokens
        try:
            chunks = with_retries(lambda: self._client.chat.completions.create(**request),
                                  retries=self.retries, base_delay=self.retry_delay,
                                  what="openai request")
            try:
                for chunk in chunks:
                    for choice in chunk.choices or ():
                        if choice.delta is not None and choice.delta.content:
                            yield choice.delta.content
            finally:
                chunks.close()
        except Exception as exc:
            raise self._error(exc) from exc

    def _error(self, exc: Exception) -> GenerationError:
        sdk = self._openai
        if isinstance(exc, sdk.APIConnectionError) and not isinstance(exc, sdk.APITimeoutError):
            where = self.base_url or f"https://{OFFICIAL_HOST}"
            return GenerationError(f"openai: cannot reach {where} (is the server running and "
                                   f"generate.base_url right?)")
        return generation_error(exc, "openai", timeout=self.timeout, retries=self.retries,
                                key_env=self.key_env)


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Chat messages in the chat-completions format; text-only content stays a plain
    string, which older compatible servers require."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        if not msg.images or msg.role != "user":  # only user turns may carry images
            out.append({"role": msg.role, "content": msg.text})
        else:
            out.append({"role": msg.role, "content": [_part(p) for p in msg.parts]})
    return out


def _part(part: Part) -> dict[str, Any]:
    if part.kind == "text":
        return {"type": "text", "text": part.text}
    return {"type": "image_url", "image_url": {"url": part.url or data_uri(part)}}


def data_uri(part: Part) -> str:
    """The image bytes as a base64 ``data:`` URI."""
    return f"data:{part.mime or 'image/webp'};base64,{base64.b64encode(part.data).decode()}"
