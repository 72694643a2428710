"""Google's Gemini API through the ``google-genai`` client, streamed.

Retrieved images go as inline parts (``Part.from_bytes``), or as ``file_uri`` parts when a
part has a public URL and no bytes; the system prompt is the request's
``system_instruction``. The key comes from ``generate.api_key_env``, else
``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``; ``generate.base_url`` points at a proxy if you
use one. Default model: :data:`DEFAULT_MODEL`; any Gemini model id works.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ..config import GenerateSettings
from ..errors import GenerationError, MissingDependencyError
from .base import Message, Part, generators
from .retry import api_key, generation_error, status_of, with_retries

__all__ = ["DEFAULT_MODEL", "GeminiGenerator", "to_gemini"]

DEFAULT_MODEL = "gemini-2.5-flash"
KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
ROLES = {"user": "user", "assistant": "model"}


@generators.register("gemini")
class GeminiGenerator:
    """Streams a Gemini answer (``models.generate_content_stream``)."""

    name = "gemini"
    supports_images = True

    def __init__(self, settings: GenerateSettings, *, retry_delay: float = 1.0):
        try:
            from google import genai
            from google.genai import types
        except ImportError as exc:
            raise MissingDependencyError("the 'gemini' generator", "llm") from exc
        self._types = types
        self.model = settings.model or DEFAULT_MODEL
        self.base_url = settings.base_url.strip().rstrip("/")
        self.key_env = settings.api_key_env or _first_set(KEY_ENVS)
        self.timeout = settings.timeout
        self.retries = settings.max_retries
        self.retry_delay = retry_delay
        # attempts=1: retries are ours (retry.with_retries); it also stops the client's own
        # silent sleep-and-retry on connection errors.
        options = types.HttpOptions(base_url=self.base_url or None,
                                    timeout=int(settings.timeout * 1000),
                                    retry_options=types.HttpRetryOptions(attempts=1))
        self._client = genai.Client(vertexai=False, http_options=options,
                                    api_key=api_key(self.key_env, KEY_ENVS[0], "gemini"))

    def stream(self, messages: list[Message], *, max_tokens: int,
               temperature: float) -> Iterator[str]:
        """Yield text deltas; retries (with backoff) only until the first chunk arrives."""
        system, contents = to_gemini(messages, self._types)
        config = self._types.GenerateContentConfig(
            system_instruction=system or None, max_output_tokens=max_tokens,
            temperature=temperature)

        def open_stream() -> tuple[Any, Any]:
            # The request goes out on the first next(), so that is what is retried.
            chunks = iter(self._client.models.generate_content_stream(
                model=self.model, contents=contents, config=config))
            return chunks, next(chunks, None)

        try:
            chunks, first = with_retries(open_stream, retries=self.retries,
                                         base_delay=self.retry_delay, what="gemini request")
            if first is None:
                return
            yield from _texts(first)
            for chunk in chunks:
                yield from _texts(chunk)
        except Exception as exc:
            raise self._error(exc) from exc

    def _error(self, exc: Exception) -> GenerationError:
        # The Gemini API answers a bad key with 400 INVALID_ARGUMENT, not 401.
        if status_of(exc) == 400 and "api key" in str(exc).lower():
            return GenerationError(f"gemini: the API key was refused (check {self.key_env})")
        if _is_connect_error(exc):
            where = self.base_url or "the Gemini API"
            return GenerationError(f"gemini: cannot reach {where}: {exc}".splitlines()[0])
        return generation_error(exc, "gemini", timeout=self.timeout, retries=self.retries,
                                key_env=self.key_env)


def to_gemini(messages: list[Message], types: Any) -> tuple[str, list[Any]]:
    """(system instruction, contents with text and image parts)."""
    system = "\n\n".join(m.text for m in messages if m.role == "system" and m.text)
    contents = [types.Content(role=ROLES[m.role], parts=[_part(p, types) for p in m.parts])
                for m in messages if m.role != "system"]
    return system, contents


def _part(part: Part, types: Any) -> Any:
    if part.kind == "text":
        return types.Part.from_text(text=part.text)
    if part.data:
        return types.Part.from_bytes(data=part.data, mime_type=part.mime or "image/webp")
    return types.Part.from_uri(file_uri=part.url, mime_type=part.mime or None)


def _texts(chunk: Any) -> Iterator[str]:
    """The text parts of a chunk, skipping thoughts (``chunk.text`` warns on other parts)."""
    for cand in (getattr(chunk, "candidates", None) or [])[:1]:
        content = getattr(cand, "content", None)
        for part in getattr(content, "parts", None) or []:
            if part.text and not getattr(part, "thought", False):
                yield part.text


def _first_set(names: tuple[str, ...]) -> str:
    return next((n for n in names if os.environ.get(n, "").strip()), names[0])


def _is_connect_error(exc: BaseException) -> bool:
    names = "".join(c.__name__.lower() for c in type(exc).__mro__)
    return ("connecterror" in names or isinstance(exc, ConnectionError)) and "timeout" not in names
