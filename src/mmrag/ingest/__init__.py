"""Ingest stage: sources → :class:`~mmrag.types.Blob` → :class:`Piece` → stored media.

    for blob in resolve(sources, settings.ingest):      # Blob | Failure, never raises
        for piece in load(blob, settings.ingest):       # raises IngestError for bad input
            key = media.put_media(piece)                 # "" for text pieces

Importing this package registers the built-in loaders (image, text, markdown, html, pdf,
video, audio, e-mail, office, e-book, csv) in :data:`mmrag.ingest.base.loaders`. A loader
may also yield files found inside its blob (an e-mail's attachments, :mod:`.attachments`):
the ingestion reads them as documents of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from ..config import IngestSettings
from ..errors import IngestError, MmragError
from ..types import Blob
from . import audio, delimited, epub, images, mail, office, pdf, text, video  # noqa: F401
from .base import Loader, Piece, loaders
from .fetch import fetch_url
from .media import MediaStore
from .sniff import loader_for, mime_loaders, sniff
from .sources import resolve

__all__ = ["IngestError", "Loader", "MediaStore", "Piece", "fetch_url", "load", "loader_for",
           "loaders", "mime_loaders", "resolve", "sniff"]

log = logging.getLogger(__name__)


def load(blob: Blob, settings: IngestSettings | None = None) -> Iterator[Piece]:
    """Pieces of ``blob`` from the loader registered for its mime type.

    Raises :class:`IngestError` (one line) for unsupported types and bad content, also
    when a loader fails in an unexpected way, so callers need one ``except``.
    """
    settings = settings or IngestSettings()
    name = loader_for(blob.mime)
    if name is None:
        raise IngestError(blob.uri, f"unsupported file type {blob.mime}")
    pieces = loaders.get(name)(blob, settings)
    return _guarded(pieces, blob, name)


def _guarded(pieces: Iterator[Piece], blob: Blob, kind: str) -> Iterator[Piece]:
    try:
        yield from pieces
    except MmragError:
        raise
    except Exception as exc:  # a library bug on odd input is still bad input
        log.debug("%s loader failed on %s", kind, blob.uri, exc_info=True)
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise IngestError(blob.uri, f"cannot read {kind}: {reason}") from exc
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
