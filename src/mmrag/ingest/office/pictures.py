"""Pictures embedded in office documents as ``image`` pieces, through the image loader.

Each picture goes through :func:`~mmrag.ingest.images.load_image` like an image file: the
same pixel-bomb guard, downscaling, OCR and stored original, so a chart pasted into a
slide is found by its labels and answers image queries like any other picture. The piece
then takes the page (slide, sheet) and section of the place it sits in, and its alt text.
Formats Pillow cannot decode (EMF/WMF vector clip-art) are skipped: the page render still
shows them.
"""

from __future__ import annotations

import logging
from typing import Any

from ...config import IngestSettings
from ...errors import IngestError
from ...types import Blob
from ..base import Piece
from ..images import load_image

__all__ = ["picture_pieces"]

log = logging.getLogger(__name__)


def picture_pieces(data: bytes, uri: str, settings: IngestSettings, *, page: int,
                   section: str = "", alt: str = "", name: str = "",
                   metadata: dict[str, Any] | None = None) -> list[Piece]:
    """Image pieces of one embedded picture (a multi-frame TIFF gives several), or none
    when it cannot be decoded."""
    if not data:
        return []
    blob = Blob(uri=f"{uri}#{name}" if name else uri, data=data, name="")
    try:
        pieces = list(load_image(blob, settings))
    except IngestError as exc:
        log.debug("%s: embedded picture %s skipped: %s", uri, name, exc.reason)
        return []
    alt = " ".join(alt.split())
    for piece in pieces:
        piece.page, piece.section = page, section
        piece.text = f"{alt}\n{piece.text}".strip() if alt else piece.text
        piece.metadata = {**(metadata or {}), **piece.metadata, "embedded": True}
        if name:
            piece.metadata["part_name"] = name
        if alt:
            piece.metadata["alt_text"] = alt
    return pieces
