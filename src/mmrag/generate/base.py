"""The generate stage's contract: provider-neutral chat messages in, text deltas out.

Every generator (OpenAI-compatible servers, Gemini, Anthropic, a local transformers VLM,
the bundled GGUF model, the offline extractive one) receives the same :class:`Message`
list and turns it into its own wire format, so prompt building (``prompt.py``) is written
once and a new provider is one small module plus a registry entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from ..registry import Registry

Role = Literal["system", "user", "assistant"]


@dataclass(slots=True)
class Part:
    """One piece of a message: text, or an image as encoded bytes (already resized and
    re-encoded by the prompt builder; ``mime`` says how)."""

    kind: Literal["text", "image"]
    text: str = ""
    data: bytes = b""
    mime: str = ""
    url: str = ""          # a public URL for providers that prefer one (optional)

    @classmethod
    def of_text(cls, text: str) -> Part:
        return cls(kind="text", text=text)

    @classmethod
    def of_image(cls, data: bytes, mime: str = "image/webp", url: str = "") -> Part:
        return cls(kind="image", data=data, mime=mime, url=url)


@dataclass(slots=True)
class Message:
    role: Role
    parts: list[Part] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text parts joined; what a text-only generator sees of this message."""
        return "\n".join(p.text for p in self.parts if p.kind == "text")

    @property
    def images(self) -> list[Part]:
        return [p for p in self.parts if p.kind == "image"]


@runtime_checkable
class Generator(Protocol):
    """Streams an answer for a chat. ``supports_images`` False means image parts are
    dropped by the prompt builder (their captions/OCR text still go in as text)."""

    name: str
    supports_images: bool

    def stream(self, messages: list[Message], *, max_tokens: int,
               temperature: float) -> Iterator[str]:
        """Yield text deltas as they arrive. Raise :class:`mmrag.errors.GenerationError`
        (one clear line: missing key, timeout, rate limit after retries, input too large)."""
        ...


# name → factory(settings: GenerateSettings) -> Generator
generators: Registry[Generator] = Registry("generator")
