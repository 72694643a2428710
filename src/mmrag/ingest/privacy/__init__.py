"""Protecting what an index stores: faces blurred, EXIF location/device tags stripped,
personal data in text masked (:class:`~mmrag.config.PrivacySettings`).

:func:`protect` runs on each loaded piece before anything is stored or embedded, so media
files, thumbnails (made from the stored media), the text index and, when
``embed_blurred`` is set, the vectors never see what was removed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable

from PIL import Image, ImageOps, JpegImagePlugin

from ...config import PrivacySettings
from ...types import AUDIO_EXTS
from ..base import Piece
from . import exif, faces, pii

__all__ = ["mask_text", "protect"]

log = logging.getLogger(__name__)

# Text-bearing metadata a loader may attach (OCR of an image, a speech transcript).
_TEXT_KEYS = ("ocr_text", "transcript")
# e-mail metadata (strings or lists of addresses): masked like the header block they repeat
_MAIL_KEYS = ("from", "sender", "to", "cc", "bcc", "subject", "message_id")
_SAVE = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF",
         "tiff": "TIFF"}
_EXT_OUT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tiff"}


def protect(piece: Piece, settings: PrivacySettings,
            counts: dict[str, int]) -> Image.Image | None:
    """Apply ``settings`` to ``piece`` in place, adding what was done to ``counts``.

    Returns the image the encoders should embed: the blurred one, or the untouched one
    when ``embed_blurred`` is off (the stored copy is blurred either way).
    """
    if settings.mask_pii:
        _mask_text(piece, settings.pii_types, counts)
    if settings.strip_exif and piece.media is not None and piece.media_ext not in AUDIO_EXTS:
        _strip_exif(piece, counts)
    if not settings.blur_faces or piece.image is None:
        return piece.image
    boxes = faces.detect(piece.image)
    if not boxes:
        return piece.image
    original = piece.image
    piece.image = faces.blur(original.copy(), boxes)
    if piece.media is not None:
        try:
            piece.media, piece.media_ext = _blurred_media(piece.media, piece.media_ext,
                                                          piece.image.width, boxes)
        except Exception:  # fail closed: store the blurred decoded copy instead
            log.debug("could not blur the original file", exc_info=True)
            piece.media = None
    piece.metadata["faces_blurred"] = len(boxes)
    counts["faces_blurred"] = counts.get("faces_blurred", 0) + len(boxes)
    return piece.image if settings.embed_blurred else original


def mask_text(text: str, settings: PrivacySettings, counts: dict[str, int]) -> str:
    """``text`` with PII masked when the settings ask for it: for text made after
    :func:`protect` ran, such as generated captions (a VLM can read an email off a
    screenshot)."""
    return pii.mask(text, settings.pii_types, counts) if settings.mask_pii else text


def _mask_text(piece: Piece, types: Iterable[str], counts: dict[str, int]) -> None:
    found: dict[str, int] = {}
    piece.text = pii.mask(piece.text, types, found)
    for key, n in found.items():
        counts[key] = counts.get(key, 0) + n
    if found and piece.media_ext in AUDIO_EXTS:  # the clip would still say it aloud
        piece.media = None
        counts["audio_clips_dropped"] = counts.get("audio_clips_dropped", 0) + 1
    for key in _TEXT_KEYS:
        value = piece.metadata.get(key)
        if isinstance(value, str) and value:
            # not counted again: this text is (part of) piece.text, already counted
            piece.metadata[key] = pii.mask(value, types, {})
    for key in _MAIL_KEYS:
        value = piece.metadata.get(key)
        if isinstance(value, str):
            piece.metadata[key] = pii.mask(value, types, {})
        elif isinstance(value, list):
            piece.metadata[key] = [pii.mask(v, types, {}) if isinstance(v, str) else v
                                   for v in value]


def _strip_exif(piece: Piece, counts: dict[str, int]) -> None:
    assert piece.media is not None
    try:
        cleaned = exif.strip(piece.media, piece.media_ext)
    except Exception:  # unreadable metadata: fail closed, store the decoded pixels only
        log.debug("could not rewrite EXIF; storing the decoded image", exc_info=True)
        if piece.image is None:
            return
        piece.media, cleaned = None, None
        counts["exif_stripped"] = counts.get("exif_stripped", 0) + 1
    if cleaned is not None:
        piece.media = cleaned
        counts["exif_stripped"] = counts.get("exif_stripped", 0) + 1


def _blurred_media(data: bytes, ext: str, shown_width: int,
                   boxes: list[faces.Box]) -> tuple[bytes, str]:
    """The original file with the faces found on its (oriented, maybe downscaled) decoded
    copy blurred at full size, in its own format where Pillow can write it.

    A rotated photo is stored upright with Orientation reset, because the boxes were found
    on the upright copy.
    """
    fmt = _SAVE.get(ext.lower(), "PNG")
    with Image.open(io.BytesIO(data)) as src:
        tags = src.getexif()
        upright = ImageOps.exif_transpose(src)
        keep_quality = upright is src and fmt == "JPEG"
        if upright is src:
            upright = src.copy() if src.mode in ("RGB", "L") else src.convert("RGB")
        if upright.mode not in ("RGB", "RGBA", "L"):
            upright = upright.convert("RGB")
        faces.blur(upright, boxes, upright.width / shown_width)
        if 0x0112 in tags:
            tags[0x0112] = 1
        buf = io.BytesIO()
        options: dict[str, object] = {"exif": tags.tobytes()}
        if fmt == "JPEG":
            # the source's quantisation tables and subsampling: same look and size (what
            # quality="keep" does, which only works on the unmodified decoded file)
            qtables = getattr(src, "quantization", None)  # JPEG files only
            if keep_quality and qtables:
                options.update(qtables=qtables,
                               subsampling=JpegImagePlugin.get_sampling(src))
            else:
                options["quality"] = 90
            upright = upright.convert("RGB")
        upright.save(buf, format=fmt, **options)
    return buf.getvalue(), _EXT_OUT[fmt]
