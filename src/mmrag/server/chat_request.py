"""The OpenAI chat-completions request, and the question mmrag takes from it.

mmrag answers one question at a time from its index: the **last user message** is the
question (its text parts joined) and its last image part, if any, is the query image
(retrieval takes one image; earlier images of the message are checked but not used).
Earlier user and assistant turns only resolve a follow-up ("and in the appendix?", "who
wrote it?") into a standalone query (``Index.chat``); the evidence still comes from the
index, not from the chat history. System/developer prompts are accepted but ignored: a
client's system prompt ("you are a helpful assistant") would only pollute the query.
Unknown request fields (``tools``, ``top_p``, ``user``, ...) are accepted and ignored, so
stock clients work unchanged.

A chat that is itself an mmrag prompt (numbered sources and a ``Question:``, as the
``openai`` generator of another mmrag sends it) is not a question for this index: see
:mod:`.generation`. :meth:`ChatRequest.chat` gives every message in mmrag's form for that.

Two non-standard fields, sent with the OpenAI client's ``extra_body``, tune retrieval:
``k`` (hits given to the generator) and ``filters`` (as ``Index.search`` takes them).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..config import IngestSettings
from ..generate.base import Message, Part, Role
from ..ingest.fetch import fetch_url
from .errors import ApiError

__all__ = ["ChatRequest", "Question", "load_image"]

_TEXT_PARTS = {"text", "input_text"}
_IMAGE_PARTS = {"image_url", "input_image"}
_ROLES: dict[str, Role] = {"system": "system", "developer": "system", "user": "user",
                           "assistant": "assistant"}


class ImageURL(BaseModel):
    url: str
    detail: str | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None
    image_url: ImageURL | str | None = None  # a bare string: the Responses API's shape


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions``; fields mmrag does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    n: int = Field(1, ge=1, le=1, description="one answer per request")
    k: int | None = Field(None, ge=1, le=100, description="mmrag: hits given to the model")
    filters: dict[str, Any] | None = Field(None, description="mmrag: search filters")

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def question(self) -> Question:
        """The last user message as a question; refuses what mmrag cannot answer."""
        index = next((i for i in range(len(self.messages) - 1, -1, -1)
                      if self.messages[i].role == "user"), None)
        if index is None:
            raise ApiError("messages must contain a user message", param="messages")
        where = f"messages.{index}.content"
        parts = _parts(self.messages[index].content, where)
        text = "\n".join(p.text for p in parts if p.kind == "text" and p.text).strip()
        images = [p.url for p in parts if p.kind == "image"]
        if not text and not images:
            raise ApiError("the last user message has neither text nor an image", param=where)
        return Question(text=text, image=images[-1] if images else None)

    def chat(self) -> list[Message]:
        """Every message as mmrag :class:`Message` objects (tool results dropped, developer
        prompts as system ones); image parts keep only their checked URL, fetched later."""
        return [Message(_ROLES[m.role], _parts(m.content, f"messages.{i}.content"))
                for i, m in enumerate(self.messages) if m.role in _ROLES]

    def prompt_text(self) -> str:
        """All text the client sent, for the approximate prompt token count."""
        return "\n".join(
            m.content if isinstance(m.content, str)
            else "\n".join(p.text or "" for p in m.content or []) for m in self.messages)


@dataclass(slots=True)
class Question:
    text: str
    image: str | None = None  # a data: URI or an http(s) URL, checked but not yet fetched


def _parts(content: str | list[ContentPart] | None, where: str) -> list[Part]:
    """A message's content as text and (URL-only) image parts; unknown part types are
    refused, naming the part."""
    if not isinstance(content, list):
        return [Part.of_text(content or "")]
    out: list[Part] = []
    for i, part in enumerate(content):
        if part.type in _TEXT_PARTS:
            out.append(Part.of_text(part.text or ""))
        elif part.type in _IMAGE_PARTS and part.image_url is not None:
            url = part.image_url if isinstance(part.image_url, str) else part.image_url.url
            _check_image_url(url, where)
            out.append(Part(kind="image", url=url))
        else:
            raise ApiError(f"unsupported content part {part.type!r}; mmrag takes text and "
                           "image_url parts", param=f"{where}.{i}")
    return out


def _check_image_url(url: str, where: str) -> None:
    # Never a local path: a client must not make the server read its own files.
    if not url.startswith(("data:", "http://", "https://")):
        raise ApiError(f"image_url must be a data: URI or an http(s) URL, not {url[:60]!r}",
                       param=where)


def load_image(url: str, settings: IngestSettings) -> tuple[bytes, str]:
    """The bytes and MIME type of an image part: decoded from a data: URI, or downloaded
    through the ingest fetcher, which refuses private and loopback addresses unless the
    index allows them (``ingest.allow_private_urls``). Blocks on the network, so call it
    off the event loop."""
    if url.startswith(("http://", "https://")):
        blob = fetch_url(url, settings)
        return blob.data, blob.mime
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise ApiError("image data: URI must be base64 ('data:image/png;base64,...')",
                       param="image_url")
    if len(payload) * 3 // 4 > settings.max_bytes:
        raise ApiError(f"image is larger than {settings.max_bytes} bytes", param="image_url")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("image data: URI is not valid base64", param="image_url") from None
    return data, header[len("data:"):-len(";base64")] or "application/octet-stream"
