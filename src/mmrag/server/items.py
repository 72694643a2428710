"""``POST /collections/{collection}/items`` starts an ingest job; ``GET /jobs/{id}`` tracks it.

Two bodies: a multipart form with one or more ``files`` parts (and an optional
``metadata`` JSON string), or JSON ``{"urls": [...], "base64": [{"name", "data"}],
"metadata": {...}}``. Either way the answer is 202 ``{"job_id", "status_url"}`` as soon
as the bytes are on disk; the work runs in :mod:`.jobs`.

What is refused up front, before any job exists: a file over ``server.max_upload_mb``
(413 ``too_large``), more files than ``server.max_files`` in one request (413
``too_many_files``), a caller out of its upload quota (429 ``rate_limited`` with
``Retry-After``, :mod:`.quotas`), a URL that is not http(s) (a path or ``file://`` would read the
server's own files) or that resolves to a private, loopback or link-local address (400
``blocked_url``, the core's SSRF guard; it runs again at download time, so a DNS answer
that changes in between is still caught). A file whose bytes are of no supported type is
marked failed in the job without being ingested: types come from the bytes, never from
the name, so ``scan.png`` holding a PDF is ingested as a PDF.

An uploaded file's source is its content (``bytes:<hash>``, as ``Index.add`` names raw
bytes), with the client's file name as its display name: uploading the same bytes again
is skipped, and a changed file under the same name is a new document (delete the old one
by its ``doc_id``), since a name from a client identifies nothing on the server.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ..errors import BlockedURLError, IngestError
from ..ingest.containers import OLE2, ZIP, sniff_file
from ..ingest.fetch import check_url
from ..ingest.sniff import loader_for, sniff
from .auth import Principal, authenticate, caller, require
from .errors import ApiError
from .ids import is_job_id
from .jobs import JobFile
from .state import ServerState, server_state
from .uploads import (
    Form,
    Upload,
    body_schema,
    decode_base64,
    read_form,
    read_json,
    safe_name,
)

__all__ = ["AddRequest", "router"]

router = APIRouter(tags=["items"])
SNIFF_BYTES = 64 * 1024


class Base64File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "upload"
    data: str


class AddRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(default_factory=list)
    base64: list[Base64File] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


_MULTIPART_SCHEMA = {"type": "object", "required": ["files"], "properties": {
    "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
    "metadata": {"type": "string", "description": "JSON object stored on every item"}}}


@router.post("/collections/{collection}/items", status_code=202, response_model=None,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
                 "application/json": {"schema": body_schema(AddRequest)}}}})
async def add_items(collection: str, request: Request,
                    principal: Annotated[Principal, Depends(require("write"))]
                    ) -> JSONResponse:
    state = server_state(request)
    state.collections.check(collection)  # before receiving a body for nowhere
    who = caller(request, principal)
    state.quotas.files(who, 0)  # out of upload quota: refuse before receiving the body
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        files, metadata = await _from_form(state, request)
    elif kind == "application/json":
        files, metadata = await _from_json(state, request, collection)
    else:
        raise ApiError("send multipart/form-data (files) or application/json (urls, base64)",
                       status=415, code="unsupported_media_type")
    try:
        state.quotas.files(who, len(files))
        job = state.jobs.submit(collection, files, metadata)
    except BaseException:
        for file in files:
            file.discard()
        raise
    return JSONResponse({"job_id": job.id, "status_url": f"/jobs/{job.id}",
                         "status": job.status}, status_code=202)


@router.get("/jobs/{job_id}", tags=["items"])
async def get_job(job_id: str, request: Request) -> dict[str, Any]:
    principal = authenticate(request)
    jobs = server_state(request).jobs
    job = await run_in_threadpool(jobs.describe, job_id) if is_job_id(job_id) else None
    if job is None:
        raise ApiError(f"no job {job_id[:40]!r}", status=404, code="not_found",
                       param="job_id")
    principal.require("read", job["collection"])
    return job


async def _from_form(state: ServerState, request: Request
                     ) -> tuple[list[JobFile], dict[str, Any]]:
    form = await read_form(request, state.uploads, max_bytes=state.max_upload_bytes,
                           max_files=state.settings.max_files)
    try:
        uploads = [*form.files.get("files", []), *form.files.get("file", [])]
        if not uploads:
            raise ApiError("no files: send them as 'files' parts", param="files")
        metadata = _metadata(form)
        return await run_in_threadpool(lambda: [_checked(u) for u in uploads]), metadata
    except BaseException:
        form.discard()
        raise


def _metadata(form: Form) -> dict[str, Any]:
    raw = form.fields.get("metadata")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ApiError("metadata must be a JSON object", param="metadata")
    return value


def _checked(upload: Upload) -> JobFile:
    """A job file for an upload, already failed (and its bytes dropped) when they are
    empty or of no type mmrag reads."""
    file = JobFile(upload.name, path=upload.path)
    with upload.path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    mime = sniff(head, upload.name) if head else ""
    if mime in (ZIP, OLE2):  # the leading members did not tell: read the directory
        with upload.path.open("rb") as fh:
            mime = sniff_file(fh, mime)
    reason = "empty file (0 bytes)" if not head else (
        "" if loader_for(mime) else f"unsupported file type {mime}")
    if reason:
        file.status, file.reason = "failed", reason
        file.discard()
        file.path = None
    return file


async def _from_json(state: ServerState, request: Request, collection: str
                     ) -> tuple[list[JobFile], dict[str, Any]]:
    limit = state.max_upload_bytes
    data = await read_json(request, limit * 2 + 65536)
    try:
        body = AddRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ApiError(f"{where}: {first.get('msg', 'invalid')}", param=where or None) \
            from None
    if not body.urls and not body.base64:
        raise ApiError("nothing to add: give 'urls' and/or 'base64'")
    if len(body.urls) + len(body.base64) > state.settings.max_files:
        raise ApiError(f"too many entries; at most {state.settings.max_files} per request",
                       status=413, code="too_many_files")
    settings = await run_in_threadpool(
        lambda: state.collections.get(collection).index.settings.ingest)
    for url in body.urls:
        await run_in_threadpool(_check_url, url, settings)
    files = [JobFile(url, url=url) for url in body.urls]
    for i, entry in enumerate(body.base64):
        raw = decode_base64(entry.data, limit, f"base64.{i}.data")
        files.append(await run_in_threadpool(_spool, state.uploads, safe_name(entry.name),
                                             raw))
    return files, body.metadata


def _check_url(url: str, settings: Any) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(f"not an http(s) URL: {url[:100]!r}", param="urls")
    try:
        check_url(url, settings)
    except BlockedURLError:
        raise
    except IngestError:
        pass  # e.g. DNS failure now: the job reports it for this URL


def _spool(folder: Path, name: str, data: bytes) -> JobFile:
    fd, tmp = tempfile.mkstemp(prefix="up-", dir=folder)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return _checked(Upload(name, Path(tmp), len(data)))
