"""``GET|POST /collections/{collection}/search``: text, image, or both.

``GET`` takes the query string (``q``, ``k``, ``modality``, ``path``, ``doc_id``,
``mode``, ``group_by``). ``POST`` takes the same as JSON (``filters`` as an object, the
image as ``image_base64``) or as a multipart form (the image as an ``image`` file,
``filters`` as a JSON string). The search itself blocks (encoders, the store), so it runs
in a worker thread, at most ``server.search_threads`` at a time (the rest wait their
turn, which on a few cores beats running dozens at once), and beside an ingest job.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ..errors import MmragError
from .auth import require
from .errors import ApiError
from .hits import hits_json
from .state import ServerState, server_state
from .uploads import body_schema, decode_base64, read_form, read_json

__all__ = ["SearchRequest", "router"]

Mode = Literal["hybrid", "dense", "bm25"]
GroupBy = Literal["page", "doc", "item"]
MAX_K = 200

router = APIRouter(tags=["search"])
Reader = Annotated[Any, Depends(require("read"))]


class SearchRequest(BaseModel):
    """A search: ``q`` and/or an image; ``filters`` as ``Index.search`` takes them
    (``modality``, ``doc_id``, ``path`` glob, ``metadata`` equality)."""

    model_config = ConfigDict(extra="forbid")

    q: str = ""
    k: int = Field(10, ge=1, le=MAX_K)
    filters: dict[str, Any] | None = None
    image_base64: str | None = None
    mode: Mode = "hybrid"
    group_by: GroupBy | None = None


@router.get("/collections/{collection}/search")
async def search_get(
        collection: str, request: Request, _: Reader,
        q: Annotated[str, Query(description="text query")] = "",
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        modality: Annotated[str | None, Query(description="image,text,page")] = None,
        path: Annotated[str | None, Query(description="glob over source or name")] = None,
        doc_id: Annotated[str | None, Query()] = None,
        mode: Mode = "hybrid", group_by: GroupBy | None = None) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    if modality:
        filters["modality"] = [m.strip() for m in modality.split(",") if m.strip()]
    if path:
        filters["path"] = path
    if doc_id:
        filters["doc_id"] = doc_id.split(",")
    body = SearchRequest(q=q, k=k, filters=filters or None, mode=mode, group_by=group_by)
    return await _run(server_state(request), collection, body, None)


@router.post("/collections/{collection}/search", openapi_extra={"requestBody": {
    "content": {"application/json": {"schema": body_schema(SearchRequest)},
                "multipart/form-data": {"schema": {"type": "object", "properties": {
                    "q": {"type": "string"}, "k": {"type": "integer"},
                    "filters": {"type": "string", "description": "JSON object"},
                    "mode": {"type": "string"}, "group_by": {"type": "string"},
                    "image": {"type": "string", "format": "binary"}}}}}}})
async def search_post(collection: str, request: Request, _: Reader) -> dict[str, Any]:
    state = server_state(request)
    limit = state.max_upload_bytes
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        form = await read_form(request, state.uploads, max_bytes=limit, max_files=1)
        try:
            images = form.files.get("image") or []
            image = await run_in_threadpool(images[0].read) if images else None
            body = _validated({**form.fields, "filters": _json_field(form.fields, "filters")})
        finally:
            form.discard()
        return await _run(state, collection, body, image)
    data = await read_json(request, limit * 4 // 3 + 65536)
    body = _validated(data)
    image = decode_base64(body.image_base64, limit, "image_base64") \
        if body.image_base64 else None
    return await _run(state, collection, body, image)


def _json_field(fields: dict[str, str], name: str) -> Any:
    raw = fields.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(f"{name} must be a JSON object", param=name) from None


def _validated(data: Any) -> SearchRequest:
    if not isinstance(data, dict):
        raise ApiError("the body must be a JSON object")
    try:
        return SearchRequest.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ApiError(f"{where}: {first.get('msg', 'invalid')}", param=where or None) \
            from None


async def _run(state: ServerState, collection: str, body: SearchRequest,
               image: bytes | None) -> dict[str, Any]:
    if not body.q.strip() and image is None:
        raise ApiError("give q, an image, or both", code="invalid_query", param="q")

    def work() -> dict[str, Any]:
        index = state.collections.get(collection).ready()
        t0 = time.perf_counter()
        try:
            hits = index.search(body.q.strip() or None, k=body.k, filters=body.filters,
                                image=image, group_by=body.group_by, mode=body.mode)
        except (TypeError, ValueError) as exc:  # e.g. a filter value of the wrong type
            if isinstance(exc, MmragError):
                raise
            raise ApiError(f"invalid filters: {exc}", param="filters") from None
        took = (time.perf_counter() - t0) * 1000
        return {"hits": hits_json(index, collection, hits), "took_ms": round(took, 2)}

    # At most server.search_threads at once: on 2 cores, 4 threads gave ~40% lower p99
    # latency than the 40 of the shared pool under 50 clients (benchmarks/bench_server.py).
    return await anyio.to_thread.run_sync(work, limiter=state.search_limiter)
