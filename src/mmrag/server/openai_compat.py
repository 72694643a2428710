"""``/v1/models`` and ``/v1/chat/completions``: mmrag as an OpenAI-compatible model.

Any OpenAI client pointed at ``http://host:port/v1`` gets answers grounded in the index:
the last user message is the question (see :mod:`.chat_request`), rewritten into a
standalone query from the earlier turns when it is a follow-up, and ``Index.chat``
retrieves and generates, and the reply is a standard ``chat.completion`` (or, with ``stream``, SSE
``chat.completion.chunk`` events ending in ``data: [DONE]``). The citations close the
content as a numbered list, as the CLI prints them, so plain clients show them too; the
non-streaming reply (and the last streamed chunk) also carry them as data in a
non-standard top-level ``mmrag`` field. A chat that already carries mmrag's numbered
sources is answered from them instead, with no retrieval (:mod:`.generation`).

``max_tokens`` and ``temperature`` apply to such chats; a question for the index is
answered with the index's ``generate`` settings, as ``Index.ask`` takes no per-call limits.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..generate.citations import render_citations
from ..index import Index
from ..types import Answer, Citation
from .chat_request import ChatRequest, Question, load_image
from .errors import ApiError, error_for
from .generation import as_mmrag_prompt, generation_steps
from .state import current_index
from .threads import iterate_in_thread

__all__ = ["MODEL_ID", "approx_tokens", "router", "sources_block"]

MODEL_ID = "mmrag"
_STARTED = int(time.time())

router = APIRouter(prefix="/v1", tags=["openai"])
IndexDep = Annotated[Index, Depends(current_index)]


@router.get("/models")
async def list_models() -> dict[str, Any]:
    return {"object": "list", "data": [_model_card()]}


@router.get("/models/{model_id}")
async def get_model(model_id: str) -> dict[str, Any]:
    if model_id != MODEL_ID:
        raise ApiError(f"model {model_id!r} does not exist; this server serves {MODEL_ID!r}",
                       status=404, code="model_not_found", param="model")
    return _model_card()


def _model_card() -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": _STARTED, "owned_by": "mmrag"}


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatRequest, index: IndexDep
                           ) -> JSONResponse | StreamingResponse:
    steps = _steps_for(body, index)
    reply = _Reply(model=body.model, prompt_tokens=approx_tokens(body.prompt_text()))
    if not body.stream:
        return JSONResponse(reply.completion(await run_in_threadpool(_final, steps)))
    items = iterate_in_thread(steps)
    # Wait for the first item before answering, so that failures of retrieval or of the
    # generator's start (bad image, missing API key) still get a real HTTP status.
    first = await anext(items)
    return StreamingResponse(reply.events(_prepend(first, items), body.include_usage),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _steps_for(body: ChatRequest, index: Index) -> Callable[[], Iterator[str | Answer]]:
    """What answers this chat, as a function yielding text deltas and then the Answer:
    ``Index.ask`` for a question, the bare generator for a chat that carries its own
    sources (:mod:`.generation`). Validates the request before anything runs."""
    prompt = as_mmrag_prompt(body.chat())
    if prompt is not None:
        return lambda: generation_steps(index, body, prompt)
    question = body.question()
    return lambda: _ask_steps(index, body, question)


def _ask_steps(index: Index, body: ChatRequest, question: Question) -> Iterator[str | Answer]:
    image = load_image(question.image, index.settings.ingest)[0] if question.image else None
    # the turns up to the question: "and in the appendix?" is searched as the standalone
    # query the earlier turns make of it (Index.chat), a new question as it is
    turns = body.chat()
    last = max(i for i, m in enumerate(turns) if m.role == "user")
    stream = index.chat(turns[:last + 1], image, body.k, filters=body.filters, stream=True)
    try:
        yield from stream
        yield stream.answer
    finally:
        stream.close()  # a client that hung up stops the generator now, not at GC


def _final(steps: Callable[[], Iterator[str | Answer]]) -> Answer:
    """Run to the end and keep the Answer (non-streaming requests)."""
    *_, answer = steps()
    assert isinstance(answer, Answer)
    return answer


async def _prepend(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for item in rest:
        yield item


def sources_block(citations: list[Citation]) -> str:
    """``Sources:`` and one line a citation, as ``mmrag ask`` prints them."""
    return "\n\nSources:\n" + render_citations(citations) if citations else ""


def approx_tokens(text: str) -> int:
    """About four characters a token: the counts are for clients' bookkeeping, not billing."""
    return (len(text) + 3) // 4


def _mmrag_field(answer: Answer) -> dict[str, Any]:
    data = answer.to_dict()
    return {key: data[key] for key in ("citations", "found", "generator", "seconds", "query")}


@dataclass(slots=True)
class _Reply:
    """Builds the response objects of one completion; every chunk shares id and time."""

    model: str
    prompt_tokens: int
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))

    def _base(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model}

    def _usage(self, content: str) -> dict[str, int]:
        completion = approx_tokens(content)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion}

    def completion(self, answer: Answer) -> dict[str, Any]:
        content = answer.text + sources_block(answer.citations)
        return {**self._base("chat.completion"),
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": content}}],
                "usage": self._usage(content), "mmrag": _mmrag_field(answer)}

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {**self._base("chat.completion.chunk"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                             "logprobs": None}]}

    async def events(self, items: AsyncIterator[str | Answer], include_usage: bool
                     ) -> AsyncIterator[str]:
        """SSE: the role, content deltas, the sources, a finish chunk, ``[DONE]``. An error
        after the first byte can no longer change the status, so it is sent as an OpenAI
        error event (the ``openai`` client raises it) and the stream ends."""
        yield _sse(self.chunk({"role": "assistant", "content": ""}))
        content: list[str] = []
        answer: Answer | None = None
        try:
            async for item in items:
                if isinstance(item, Answer):
                    answer = item
                elif item:
                    content.append(item)
                    yield _sse(self.chunk({"content": item}))
        except Exception as exc:
            yield _sse(error_for(exc))
            return
        if answer is None:  # the worker always ends with the answer; a guard, not a path
            yield _sse(error_for(RuntimeError("the answer stream ended without an answer")))
            return
        tail = sources_block(answer.citations)
        if tail:
            content.append(tail)
            yield _sse(self.chunk({"content": tail}))
        yield _sse({**self.chunk({}, "stop"), "mmrag": _mmrag_field(answer)})
        if include_usage:
            yield _sse({**self.chunk({}), "choices": [], "usage": self._usage("".join(content))})
        yield "data: [DONE]\n\n"


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"
