"""Every identifier a client sends that could reach the file system, checked in one place.

Collection names become folder names, media ids name files, doc and item ids select what
is deleted. Each is matched against a strict pattern *before* it is used, so ``../``,
``%2e%2e`` (decoded by the router before it gets here), absolute paths, NUL bytes and
globs never get as far as a path join; a bad value is a 400 (or 404 for ids that merely
do not exist), never a file outside the data folder.

Media ids are opaque to clients but simple underneath: ``<collection>.<sha256>.<ext>``,
the collection plus the content-addressed key of :class:`~mmrag.ingest.media.MediaStore`.
"""

from __future__ import annotations

import re

from .errors import ApiError

__all__ = ["COLLECTION", "check_collection", "check_doc_id", "check_item_id", "is_job_id",
           "media_id", "parse_media_id"]

COLLECTION = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_KEY = re.compile(r"^[0-9a-f]{64}\.[a-z0-9]{1,8}$")
_MEDIA_ID = re.compile(r"^([a-z0-9][a-z0-9_-]{0,63})\.([0-9a-f]{64}\.[a-z0-9]{1,8})$")
_DOC_ID = re.compile(r"^[0-9a-f]{16}$")  # sha256 prefix of the document's bytes
_ITEM_ID = re.compile(r"^([0-9a-f]{16}):p[0-9]{1,6}(?::[it][0-9]{1,7})?$")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def check_collection(name: str) -> str:
    if not COLLECTION.fullmatch(name):
        raise ApiError(f"invalid collection name {name[:80]!r}: use 1-64 lowercase letters, "
                       "digits, '-' or '_', starting with a letter or digit",
                       code="invalid_collection", param="collection")
    return name


def check_doc_id(doc_id: str) -> str:
    if not _DOC_ID.fullmatch(doc_id):
        raise ApiError(f"invalid document id {doc_id[:80]!r}: expected 16 hex digits",
                       code="invalid_id", param="doc_id")
    return doc_id


def check_item_id(item_id: str) -> str:
    """The item id, checked; its document id is the part before the first ``:``."""
    if not _ITEM_ID.fullmatch(item_id):
        raise ApiError(f"invalid item id {item_id[:80]!r}: expected '<doc_id>:p<page>...'",
                       code="invalid_id", param="item_id")
    return item_id


def is_job_id(job_id: str) -> bool:
    return bool(_JOB_ID.fullmatch(job_id))


def media_id(collection: str, key: str) -> str | None:
    """The public id of a stored media file, or None for a key that is not one of ours."""
    return f"{collection}.{key}" if _KEY.fullmatch(key) else None


def parse_media_id(value: str) -> tuple[str, str]:
    """``(collection, key)`` of a media id; anything else is a 404 (media ids are opaque,
    so a malformed one is simply one that does not exist)."""
    match = _MEDIA_ID.fullmatch(value)
    if match is None:
        raise ApiError("no such media", status=404, code="not_found", param="media_id")
    return match.group(1), match.group(2)
