"""Files inside a document that are indexed as documents of their own (e-mail attachments).

A loader cannot add documents: it only yields pieces of the one it reads. So a loader that
finds a file inside its blob yields :func:`attachment_piece`; the ingestion turns each one
into a child :class:`~mmrag.types.Blob` with :func:`child_blob`, reads it through the
normal loaders (an attached PDF is indexed as a PDF) and commits the parent and its
children in one group, so a crash never leaves an e-mail without its attachments or
attachments without their e-mail.

A child is named ``<parent name>/<attachment name>``, its source is
``<parent source>#<attachment name>`` (not a path below the parent's, so deleting a folder
or another copy of the parent never catches it by prefix) and its items carry
``metadata["parent_doc_id"]``; deleting the parent deletes its children.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

from ..types import Blob
from .base import Piece

__all__ = ["ATTACHMENT", "attachment_piece", "child_blob", "child_doc_id", "is_attachment",
           "plausible", "safe_name"]

ATTACHMENT = "attachment"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f#]+")
# Declared types whose bytes are text: anything else sniffed as plain text is binary data
# that happens to decode (a run of 0x55 bytes is "UUUU..."), not a text file.
_TEXTUAL = ("text/", "message/", "application/json", "application/xml", "application/csv",
            "application/x-csv", "application/rtf", "application/x-sh", "application/javascript")


def attachment_piece(name: str, data: bytes, content_type: str = "") -> Piece:
    """A file found inside a document: ``media`` holds its bytes, ``text`` its name and
    ``metadata["content_type"]`` the type its container declared (a hint, never trusted
    over the sniffed type)."""
    return Piece(modality=ATTACHMENT, text=name, media=data,
                 metadata={"content_type": content_type.lower()})


def is_attachment(piece: Piece) -> bool:
    return piece.modality == ATTACHMENT


def safe_name(name: str, fallback: str) -> str:
    """The last path component of an attachment's declared name, without control
    characters or ``#`` (which separates it from its parent's source); ``fallback``
    when nothing is left (``../../`` or an empty name)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = " ".join(_UNSAFE.sub(" ", base).split()).strip(". ")
    return base[:200] or fallback


def plausible(sniffed: str, declared: str) -> bool:
    """Whether the sniffed type of an attachment may be trusted against the type its
    container declared: only "text" is doubted, since every other type has magic bytes."""
    declared = declared.split(";")[0].strip().lower()
    if sniffed != "text/plain" or not declared or declared == "application/octet-stream":
        return True
    return declared.startswith(_TEXTUAL)


def child_doc_id(parent_doc_id: str, child: Blob) -> str:
    """A child's doc id depends on its parent: the same PDF attached to two e-mails is two
    documents, each deleted with its own e-mail (a plain content hash would share one)."""
    return hashlib.sha256(f"{parent_doc_id}:{child.sha256()}".encode()).hexdigest()[:16]


def child_blob(parent: Blob, parent_doc_id: str, piece: Piece) -> Blob:
    """The Blob of an attachment piece, not yet sniffed (``mime`` is left to the
    resolver, which checks its size and type like any other source)."""
    assert piece.media is not None
    name = piece.text
    return Blob(uri=f"{parent.uri}#{name}", data=piece.media,
                name=f"{parent.name or PurePosixPath(parent.uri).name}/{name}",
                metadata={"parent_doc_id": parent_doc_id, "parent_source": parent.uri,
                          "attachment": name})
