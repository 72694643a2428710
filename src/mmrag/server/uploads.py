"""Request bodies that carry files: streamed multipart forms, capped JSON, base64.

Uploads are streamed part by part to temp files the server names itself (``up-*`` in the
app's upload folder); a client's file name is only ever a display name, cut to its last
path component and stripped of control characters (:func:`safe_name`), never part of a
path. A file over the size limit stops being written at once; the rest of the body is
read and discarded (up to a bound) so the client gets its 413 instead of a broken pipe.
Types are not taken from names or part headers: the ingest pipeline sniffs the bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import python_multipart
from pydantic import BaseModel
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request

from .errors import ApiError

if TYPE_CHECKING:  # a TypedDict python-multipart defines for type checkers only
    from python_multipart.multipart import MultipartCallbacks

__all__ = ["Form", "Upload", "body_schema", "decode_base64", "read_form", "read_json",
           "safe_name", "too_large"]

FIELD_LIMIT = 1 << 20  # bytes of one non-file form field (q, filters, metadata)
DRAIN_FACTOR = 4  # read (and drop) up to this many times the limit past an oversize file
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(slots=True)
class Upload:
    """One received file: its display name and the temp file holding its bytes."""

    name: str
    path: Path
    size: int = 0

    def read(self) -> bytes:
        return self.path.read_bytes()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(slots=True)
class Form:
    fields: dict[str, str] = field(default_factory=dict)  # the last value of each field
    files: dict[str, list[Upload]] = field(default_factory=dict)

    def discard(self) -> None:
        for uploads in self.files.values():
            for upload in uploads:
                upload.discard()


def safe_name(raw: str, fallback: str = "upload") -> str:
    """A display name from a client's file name: the last component of a ``/`` or ``\\``
    path, without control characters, at most 200 characters; never a path."""
    name = _CONTROL.sub("", raw.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if name in ("", ".", ".."):
        return fallback
    return name[-200:]


def too_large(what: str, limit: int) -> ApiError:
    return ApiError(f"{what} is larger than the upload limit of {limit} bytes", status=413,
                    code="too_large")


class _Receiver:
    """python-multipart callbacks writing file parts to temp files as they arrive."""

    def __init__(self, folder: Path, max_bytes: int, max_files: int):
        self.folder, self.max_bytes, self.max_files = folder, max_bytes, max_files
        self.form = Form()
        self.error: ApiError | None = None
        self._header, self._value = b"", b""
        self._disposition = b""
        self._name = ""
        self._data = bytearray()
        self._upload: Upload | None = None
        self._fh: Any = None
        self._count = 0

    def on_part_begin(self) -> None:
        self._disposition, self._data, self._upload, self._fh = b"", bytearray(), None, None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options or self.error is not None:
            return
        self._count += 1
        if self._count > self.max_files:
            self.error = ApiError(f"too many files; at most {self.max_files} per request",
                                  status=413, code="too_many_files")
            return
        fd, tmp = tempfile.mkstemp(prefix="up-", dir=self.folder)
        self._fh = os.fdopen(fd, "wb")
        self._upload = Upload(safe_name(options[b"filename"].decode("utf-8", "replace")),
                              Path(tmp))
        self.form.files.setdefault(self._name, []).append(self._upload)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if self._upload is None:
            if self.error is None and len(self._data) + n > FIELD_LIMIT:
                self.error = ApiError(f"form field {self._name!r} is over {FIELD_LIMIT} bytes",
                                      status=413, code="too_large", param=self._name)
            elif self.error is None:
                self._data += data[start:end]
            return
        if self._fh is None:  # this file is already over the limit: drop the rest
            return
        self._upload.size += n
        if self._upload.size > self.max_bytes:
            self._fh.close()
            self._fh = None
            self.error = too_large(f"file {self._upload.name!r}", self.max_bytes)
            return
        # A plain write on the event loop: chunks are ~64 KiB and land in the page cache,
        # far cheaper than handing each to a worker thread.
        self._fh.write(data[start:end])

    def on_part_end(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        elif self._upload is None and self.error is None:
            self.form.fields[self._name] = self._data.decode("utf-8", "replace")

    def callbacks(self) -> MultipartCallbacks:
        return {"on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished}

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


async def read_form(request: Request, folder: Path, *, max_bytes: int,
                    max_files: int) -> Form:
    """Stream a ``multipart/form-data`` body: files to temp files in ``folder``, fields to
    strings. Raises 413 ``too_large`` (any file over ``max_bytes``), 400 for a malformed
    body; on any error every temp file is already gone."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError("multipart body without a boundary", code="invalid_request")
    receiver = _Receiver(folder, max_bytes, max_files)
    parser = python_multipart.MultipartParser(boundary, receiver.callbacks())
    try:
        await _feed(request.stream(), parser, receiver, bound=max_bytes * DRAIN_FACTOR)
    except BaseException:
        receiver.close()
        receiver.form.discard()
        raise
    if receiver.error is not None:
        receiver.form.discard()
        raise receiver.error
    return receiver.form


async def _feed(chunks: AsyncIterator[bytes], parser: Any, receiver: _Receiver,
                bound: int) -> None:
    drained = 0
    try:
        async for chunk in chunks:
            if receiver.error is None:
                parser.write(chunk)
                continue
            drained += len(chunk)
            if drained > bound:  # a client streaming on and on: stop listening
                break
        if receiver.error is None:
            parser.finalize()
    except FormParserError:
        raise ApiError("malformed multipart body", code="invalid_request") from None
    except ClientDisconnect:
        raise ApiError("the client disconnected during the upload",
                       code="invalid_request") from None


async def read_json(request: Request, max_bytes: int) -> Any:
    """The JSON body, refused with 413 beyond ``max_bytes`` (read as it streams, so a huge
    body is never held in memory whole)."""
    body = bytearray()
    drained = 0
    async for chunk in request.stream():
        if len(body) + len(chunk) <= max_bytes:
            body += chunk
            continue
        drained += len(chunk)
        if drained > max_bytes * DRAIN_FACTOR:
            break
    if drained:
        raise too_large("request body", max_bytes)
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(f"invalid JSON body: {exc}", code="invalid_request") from None


def decode_base64(data: Any, max_bytes: int, param: str) -> bytes:
    """Bytes of a base64 string or ``data:`` URI, within the upload limit."""
    if not isinstance(data, str) or not data:
        raise ApiError(f"{param} must be a non-empty base64 string", param=param)
    payload = data.partition(",")[2] if data.startswith("data:") else data
    if len(payload) * 3 // 4 > max_bytes + 2:
        raise too_large(param, max_bytes)
    compact = "".join(payload.split())
    alt = b"-_" if ("-" in compact or "_" in compact) else None  # URL-safe alphabet
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), altchars=alt,
                               validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(f"{param} is not valid base64", param=param) from None
    if not raw:
        raise ApiError(f"{param} decodes to no bytes", param=param)
    return raw


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with nested models inlined, for the OpenAPI description of a
    body a route reads itself (a ``$defs`` reference would not resolve in the spec)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(schema)
