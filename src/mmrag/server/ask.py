"""``POST /collections/{collection}/ask``: a grounded answer, streamed as server-sent events.

    event: delta    data: {"text": "..."}           repeated, as the generator writes
    event: done     data: {"text", "found", "generator", "seconds", "citations": [...],
                          "grounded", "support": [...]}
    event: error    data: {"code", "message"}       instead of done, if it fails midway

A bad request (no question, bad base64, k out of range) is refused with a JSON error and
its HTTP status before the stream opens; once it is open the status is 200, so a failure
in retrieval or generation arrives as an ``error`` event. ``?stream=false`` answers with
the ``done`` object as plain JSON. Generation runs in a worker thread of its own
(:mod:`.threads`), so a slow model never stalls other requests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from .auth import require
from .errors import ApiError, error_for
from .hits import answer_json
from .state import ServerState, server_state
from .threads import iterate_in_thread
from .uploads import body_schema, decode_base64, read_json

__all__ = ["AskRequest", "router", "sse"]

router = APIRouter(tags=["ask"])


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = ""
    k: int | None = Field(None, ge=1, le=100, description="hits given to the generator")
    image_base64: str | None = None
    filters: dict[str, Any] | None = None


@router.post("/collections/{collection}/ask", response_model=None, openapi_extra={
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": body_schema(AskRequest)}}},
    "responses": {"200": {"description": "SSE events delta*, then done (or error); JSON "
                                         "with ?stream=false",
                          "content": {"text/event-stream": {}}}}})
async def ask(collection: str, request: Request,
              _: Annotated[Any, Depends(require("read"))],
              stream: Annotated[bool, Query(description="false: one JSON reply")] = True,
              ) -> JSONResponse | StreamingResponse:
    state = server_state(request)
    state.collections.check(collection)
    body = _validated(await read_json(request, state.max_upload_bytes * 4 // 3 + 65536))
    image = decode_base64(body.image_base64, state.max_upload_bytes, "image_base64") \
        if body.image_base64 else None
    if not body.question.strip() and image is None:
        raise ApiError("give a question, an image, or both", code="invalid_query",
                       param="question")
    if not stream:
        return JSONResponse(await run_in_threadpool(_final, state, collection, body, image))
    items = iterate_in_thread(lambda: _steps(state, collection, body, image))
    return StreamingResponse(_events(items), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _validated(data: Any) -> AskRequest:
    if not isinstance(data, dict):
        raise ApiError("the body must be a JSON object")
    try:
        return AskRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ApiError(f"{where}: {first.get('msg', 'invalid')}", param=where or None) \
            from None


def _steps(state: ServerState, collection: str, body: AskRequest,
           image: bytes | None) -> Iterator[str | dict[str, Any]]:
    """Text deltas, then the ``done`` object (built here, in the worker thread: resolving
    citation pages reads the store)."""
    index = state.collections.get(collection).ready()
    pending = index.ask(body.question, image, body.k, filters=body.filters, stream=True)
    try:
        yield from pending
        yield answer_json(index, collection, pending.answer)
    finally:
        pending.close()  # a client that hung up stops the generator now, not at GC


def _final(state: ServerState, collection: str, body: AskRequest,
           image: bytes | None) -> dict[str, Any]:
    *_, done = _steps(state, collection, body, image)
    assert isinstance(done, dict)
    return done


async def _events(items: AsyncIterator[str | dict[str, Any]]) -> AsyncIterator[str]:
    try:
        async for item in items:
            if isinstance(item, dict):
                yield sse("done", item)
            elif item:
                yield sse("delta", {"text": item})
    except Exception as exc:
        error = error_for(exc)["error"]
        yield sse("error", {"code": error["code"], "message": error["message"]})


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"
