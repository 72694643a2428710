"""``GET /media/{media_id}``: stored images and page renders, and thumbnails of them.

Media are content-addressed, so a URL's bytes never change: responses carry the content
hash as ``ETag``, ``Cache-Control: ..., max-age=31536000, immutable``, and a request with a
matching ``If-None-Match`` gets a bodiless 304. The cache may be ``public`` (shared caches
and proxies may keep the bytes) only on a keyless server bound to loopback; a server with
API keys answers ``private``, or a proxy would hand one user's page image to anyone asking
for its URL. ``Content-Type`` comes from the
stored key's extension, which ingestion chose from the sniffed bytes (never a client's
file name), with ``nosniff`` so browsers do not second-guess it.

``HEAD`` answers like ``GET`` without the body. ``Range: bytes=a-b`` (also ``a-`` and
``-n``) gets a 206 with ``Content-Range``, so players can seek in audio clips and large
media; an unsatisfiable range is a 416 with ``Content-Range: bytes */size``. Starlette's
``FileResponse`` does the range arithmetic; a malformed ``Range`` is ignored (whole body,
as RFC 9110 allows) rather than refused.

``?thumb=N`` serves a JPEG whose longest side is at most N: N is rounded down to one of
``server.thumb_sizes``, so a client cannot fill the disk with a thumbnail per integer.
Thumbnails are made once and cached next to the media (``<index>/thumbs/<size>/``).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from .auth import Principal, authenticate, is_loopback
from .errors import ApiError
from .ids import parse_media_id
from .state import server_state

__all__ = ["router", "thumbnail"]

router = APIRouter(tags=["media"])

CACHE = "max-age=31536000, immutable"
TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
         "bmp": "image/bmp", "tiff": "image/tiff", "avif": "image/avif",
         "ogg": "audio/ogg"}  # audio clips (encode.audio_model): played, no thumbnails


class MediaFile(FileResponse):
    """A ``FileResponse`` that serves the whole file for a malformed ``Range`` instead of
    a plain-text 400 (RFC 9110 lets a server ignore a range it cannot parse)."""

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader:
            return []


@router.get("/media/{media_id}", response_model=None, responses={
    200: {"content": {"image/*": {}, "audio/ogg": {}},
          "description": "the stored bytes or a JPEG thumbnail"},
    206: {"description": "the bytes of a Range request, with Content-Range"},
    304: {"description": "not modified (If-None-Match matched the ETag)"},
    416: {"description": "range not satisfiable (Content-Range: bytes */size)"}})
async def get_media(media_id: str, request: Request,
                    thumb: Annotated[int | None, Query(ge=1, le=8192, description=
                                                       "longest side of a thumbnail")] = None,
                    ) -> Response:
    principal = authenticate(request)
    collection, key = parse_media_id(media_id)
    principal.require("read", collection)
    state = server_state(request)
    side = _thumb_side(thumb, state.settings.thumb_sizes) if thumb else None
    digest = key.split(".", 1)[0]
    etag = f'"{digest}-t{side}"' if side else f'"{digest}"'
    headers = {"ETag": etag, "Cache-Control": cache_control(request, principal),
               "X-Content-Type-Options": "nosniff"}
    if _matches(request.headers.get("if-none-match"), etag):
        state.collections.check(collection)
        return Response(status_code=304, headers=headers)

    def locate() -> Path:
        index = state.collections.get(collection).index
        original = index.media.path(key)
        if not original.is_file():
            raise ApiError("no such media", status=404, code="not_found", param="media_id")
        return thumbnail(original, index.root / "thumbs" / str(side), side) if side \
            else original

    path = await run_in_threadpool(locate)
    kind = "image/jpeg" if side else TYPES.get(key.rsplit(".", 1)[-1],
                                               "application/octet-stream")
    stat = await run_in_threadpool(path.stat)
    _check_range(request, stat.st_size, headers)
    return MediaFile(path, media_type=kind, headers=headers, stat_result=stat)


# HEAD: the same handler (Starlette's FileResponse sends no body for it); kept out of the
# schema, where a second operation for one function would repeat GET's operation id.
router.add_api_route("/media/{media_id}", get_media, methods=["HEAD"], response_model=None,
                     include_in_schema=False)


def cache_control(request: Request, principal: Principal) -> str:
    """``public`` only for a keyless server on loopback: behind keys (or reachable from
    other hosts) a shared cache must never keep the bytes for the next asker."""
    host = getattr(request.app.state, "bind_host", None) or \
        (request.scope.get("server") or ("",))[0]
    shared = principal.key is None and is_loopback(str(host))
    return f"{'public' if shared else 'private'}, {CACHE}"


def _check_range(request: Request, size: int, headers: dict[str, str]) -> None:
    """A JSON 416 for a range past the end (Starlette would answer it in plain text)."""
    wanted = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if wanted is None or (if_range is not None and if_range != headers["ETag"]):
        return  # no range, or one for other bytes: the whole file goes out
    try:
        MediaFile._parse_range_header(wanted, size)
    except RangeNotSatisfiable:
        raise ApiError(f"range {wanted[:60]!r} is outside the {size} bytes of this media",
                       status=416, code="range_not_satisfiable",
                       headers={**headers, "Content-Range": f"bytes */{size}"}) from None


def _thumb_side(wanted: int, sizes: list[int]) -> int:
    fitting = [s for s in sorted(sizes) if s <= wanted]
    if not fitting:
        raise ApiError(f"thumb must be at least {min(sizes)}", param="thumb")
    return fitting[-1]


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


def thumbnail(original: Path, folder: Path, side: int) -> Path:
    """The cached JPEG thumbnail of ``original`` (longest side ≤ ``side``), made now if
    missing; written atomically, so concurrent requests for it are harmless."""
    target = folder / (original.name.split(".", 1)[0] + ".jpg")
    if target.is_file():
        return target
    try:
        with Image.open(original) as img:
            img.draft("RGB", (side, side))  # JPEG: decode at a reduced scale, much faster
            img.thumbnail((side, side), Image.Resampling.LANCZOS)
            rgb = _flatten(img)
    except (OSError, ValueError, Image.DecompressionBombError):
        raise ApiError("cannot make a thumbnail of this media", status=415,
                       code="unsupported_media_type") from None
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=82, optimize=True)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getvalue())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _flatten(img: Image.Image) -> Image.Image:
    """RGB for JPEG: transparent areas become white, as a browser would show them."""
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        out = Image.new("RGB", rgba.size, "white")
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return img.convert("RGB")
