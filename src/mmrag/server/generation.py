"""Chats that bring their own sources: the server answers them as a plain model.

When another mmrag's ``openai`` generator points at this server, the chat it sends is an
mmrag prompt (:mod:`mmrag.generate.prompt`): numbered sources the *asking* index
retrieved, then ``Question: ...``. Retrieving again from this index would answer a
different question from different sources, and the ``[n]`` in the reply would point at
hits the asker never saw. So such a chat skips retrieval: this server's generator answers
it from the sources it carries and cites their numbers, which the asker resolves against
its own hits. This is what lets a laptop index use the model of an ``mmrag serve`` box.

It gives a client no more than a question already does (its text reaches the same model),
but it does make the server's generator, and any API key behind it, usable by whoever can
reach the server: keep it on loopback, or behind the API keys of the HTTP service.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

from ..errors import GenerationError, MmragError
from ..generate.base import Generator, Message, Part
from ..generate.prompt import (
    CLOSE_FENCE,
    INTRO,
    OPEN_FENCE,
    QUESTION_PREFIX,
    is_not_found,
    sources_of,
)
from ..index import Index
from ..types import Answer
from .chat_request import ChatRequest, load_image

__all__ = ["as_mmrag_prompt", "generation_steps", "index_generator"]

_HEADER_LINE = re.compile(r"\n(?=\[\d+\] [^\n]*:\n)")  # a part boundary of prompt.py
# ...of a fenced prompt: a header line directly followed by an opening fence, which no
# document can write (prompt.py defuses the fence tags inside document text)
_FENCED_HEADER_LINE = re.compile(r"\n(?=\[\d+\] [^\n]*:\n" + re.escape(OPEN_FENCE) + r"\n)")


def as_mmrag_prompt(messages: list[Message]) -> list[Message] | None:
    """The chat as mmrag's prompt builder made it, or None when it is not one (then it is
    a question for this index). Its last user message holds numbered source parts and
    ends with the ``Question:`` part; a text-only one arrives flattened into a single
    string (see :func:`_unflatten`)."""
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        return None
    chat = list(messages)
    chat[users[-1]] = _unflatten(chat[users[-1]])
    texts = [p.text for p in chat[users[-1]].parts if p.kind == "text"]
    if texts and texts[-1].startswith(QUESTION_PREFIX) and sources_of(chat):
        return chat
    return None


def _unflatten(message: Message) -> Message:
    """Split a prompt the ``openai`` generator sent as one string (it flattens text-only
    messages for servers that take no content lists) back into its parts: at each
    ``[n] label:`` header line and before the last ``Question:`` line. In a fenced
    prompt only a header that opens a fence splits, so a document's forged header stays
    its text; in an unfenced one (older clients) a document line that looks like a header
    splits too: the worst it can do is add a source number the asker does not have, and
    citations of unknown numbers are dropped on its side."""
    if len(message.parts) != 1 or not message.parts[0].text.startswith(INTRO):
        return message
    text = message.parts[0].text
    body, sep, question = text.rpartition("\n" + QUESTION_PREFIX)
    if not sep:
        return message
    fenced = OPEN_FENCE in body and CLOSE_FENCE in body
    pieces = [*(_FENCED_HEADER_LINE if fenced else _HEADER_LINE).split(body),
              QUESTION_PREFIX + question]
    return Message(message.role, [Part.of_text(piece) for piece in pieces])


def generation_steps(index: Index, body: ChatRequest,
                     messages: list[Message]) -> Iterator[str | Answer]:
    """Text deltas of the index's generator, then an :class:`Answer` without hits (the
    sources were the asker's). Blocks: runs in a worker thread."""
    t0 = time.perf_counter()
    generator = index_generator(index)
    settings = index.settings.generate
    chat = _with_images(messages, generator.supports_images, index)
    limit = body.token_limit or settings.max_tokens
    temperature = settings.temperature if body.temperature is None else body.temperature
    chunks: list[str] = []
    try:
        for delta in generator.stream(chat, max_tokens=limit, temperature=temperature):
            chunks.append(delta)
            yield delta
    except MmragError:
        raise
    except Exception as exc:  # a provider SDK's own error: one line, as Index.ask gives it
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise GenerationError(f"generator {generator.name!r} failed: "
                              f"{type(exc).__name__}: {detail}") from exc
    text = "".join(chunks)
    yield Answer(text, [], [], bool(text.strip()) and not is_not_found(text), generator.name,
                 time.perf_counter() - t0)


def index_generator(index: Index) -> Generator:
    """The generator ``Index.ask`` uses. The index builds each generator once and keeps
    it; an instance of our own would load a local model's weights (gemma) a second time."""
    return index._generator(None)


def _with_images(messages: list[Message], supported: bool, index: Index) -> list[Message]:
    """Fetch the image parts a generator can see (through the SSRF-guarded fetcher); drop
    them, unfetched, for one that cannot."""
    out: list[Message] = []
    for msg in messages:
        parts: list[Part] = []
        for part in msg.parts:
            if part.kind == "text":
                parts.append(part)
            elif supported:
                data, mime = load_image(part.url, index.settings.ingest)
                parts.append(Part.of_image(data, mime))
        out.append(Message(msg.role, parts))
    return out
