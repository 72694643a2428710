"""The ingest stage's contract: a loader turns one :class:`~mmrag.types.Blob` into pieces.

Loaders are pure (bytes in, pieces out) and generators, so a 500-page PDF streams page by
page instead of being held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from ..config import IngestSettings
from ..registry import Registry
from ..types import Blob

if TYPE_CHECKING:
    from .ocr import OCRResult


@dataclass(slots=True)
class Piece:
    """What a loader found: text and/or an image, before ids and vectors are assigned.

    ``image`` is decoded for the encoders and for a page render; ``media`` holds the
    original bytes to store when the piece is an image file (kept byte-exact).
    """

    modality: str
    text: str = ""
    page: int = 1
    chunk_start: int = 0
    chunk_end: int = 0
    section: str = ""
    bbox: tuple[float, float, float, float] | None = None
    image: Image.Image | None = None
    media: bytes | None = None
    media_ext: str = ""
    audio: np.ndarray | None = None  # an audio clip, 16 kHz mono float32, for audio encoders
    metadata: dict[str, Any] = field(default_factory=dict)
    # the text read off ``image`` with its boxes, in ``image`` pixels: OCR, or a PDF text
    # layer's lines (engine "text"); read by the chart and facet step, never stored
    ocr: OCRResult | None = None


class Loader(Protocol):
    """Reads one blob. Raise :class:`~mmrag.errors.IngestError` with a one-line reason
    for bad input; the caller records it and goes on with the next source."""

    def __call__(self, blob: Blob, settings: IngestSettings) -> Iterator[Piece]: ...


# Loaders are registered as plain functions (blob, settings) -> Iterator[Piece], not as
# factories of a Loader, so the registry's "factory result" is the piece iterator.
loaders: Registry[Iterator[Piece]] = Registry("loader")
