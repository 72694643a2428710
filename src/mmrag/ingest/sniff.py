"""Content sniffing: the mime type comes from a file's first bytes, never its extension.

A PNG saved as ``photo.jpg`` is a PNG; a random blob named ``report.pdf`` is not a PDF.
The file name is only a hint to tell Markdown from plain text, which no magic can do.
"""

from __future__ import annotations

import codecs
from pathlib import PurePosixPath

from .containers import sniff_head

__all__ = ["HEAD_BYTES", "OCTET", "is_media", "loader_for", "mime_loaders", "sniff"]

OCTET = "application/octet-stream"

# mime → name in ``mmrag.ingest.base.loaders``; extend it to route a type to your loader.
mime_loaders: dict[str, str] = {
    "image/png": "image",
    "image/jpeg": "image",
    "image/gif": "image",
    "image/webp": "image",
    "image/bmp": "image",
    "image/tiff": "image",
    "image/avif": "image",
    "application/pdf": "pdf",
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/html": "html",
    "video/mp4": "video",
    "video/quicktime": "video",
    "video/webm": "video",
    "video/x-matroska": "video",
    "video/x-msvideo": "video",
    "audio/mp4": "audio",
    "audio/wav": "audio",
    "audio/mpeg": "audio",
    "audio/aac": "audio",
    "audio/flac": "audio",
    "audio/ogg": "audio",
}

_MARKDOWN_EXT = {".md", ".markdown", ".mdown", ".mkd", ".mdx"}
_HTML_EXT = {".html", ".htm", ".xhtml"}
_HTML_STARTS = ("<!doctype html", "<html", "<head", "<body", "<title", "<meta", "<?xml")
_SAMPLE = 64 * 1024
# Bytes of a file's start that give :func:`sniff` the same answer as the whole file.
HEAD_BYTES = _SAMPLE + 1
# A BMP file header is followed by a DIB header whose size is one of these.
_BMP_DIB_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))
_HIGH_BYTES = bytes(range(128, 256))


def sniff(data: bytes, name: str = "") -> str:
    """Return the mime type of ``data`` from its magic bytes (``name`` only hints text)."""
    head = bytes(data[:64])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if (head.startswith(b"BM") and len(head) >= 18
            and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES):
        return "image/bmp"
    media = _media(head)
    if media:
        return media
    # Office documents, e-books and RTF: told by their parts (zip/OLE2 members), not name.
    container = sniff_head(bytes(data[:HEAD_BYTES]))
    if container:
        return container
    # The PDF spec tolerates junk before the header; readers look in the first 1 KiB.
    if b"%PDF-" in data[:1024]:
        return "application/pdf"
    text = _text_sample(bytes(data[:_SAMPLE]), truncated=len(data) > _SAMPLE)
    if text is None:
        return OCTET
    ext = PurePosixPath(name).suffix.lower()
    lead = text.lstrip("\ufeff \t\r\n").lower()
    if lead.startswith(_HTML_STARTS) and ("<html" in lead[:4096] or "<body" in lead[:4096]
                                          or lead.startswith("<!doctype html")):
        return "text/html"
    if ext in _HTML_EXT and lead.startswith("<"):
        return "text/html"
    if ext in _MARKDOWN_EXT:
        return "text/markdown"
    return "text/plain"


_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ")


def _media(head: bytes) -> str | None:
    """Audio/video containers: ISO-BMFF (mp4, mov, m4a), EBML (webm, mkv), RIFF (wav,
    avi), ID3/MPEG/ADTS frames (mp3, aac), FLAC and Ogg."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AUDIO_BRANDS:
            return "audio/mp4"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head else "video/x-matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") and len(head) > 3 and head[3] in (2, 3, 4):
        return "audio/mpeg"
    if len(head) >= 4 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 0x3
        if layer == 0 and head[1] & 0xF6 == 0xF0:  # ADTS AAC: layer bits 00
            return "audio/aac"
        bitrate = head[2] >> 4
        if layer and (head[1] >> 3) & 0x3 != 1 and bitrate not in (0, 15):
            return "audio/mpeg"  # an MPEG audio frame header with valid fields
    return None


def _text_sample(sample: bytes, truncated: bool) -> str | None:
    """Decode a sample as text, or None when it looks binary."""
    if not sample:
        return None
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return sample.decode("utf-16", errors="strict" if not truncated else "ignore")
        except UnicodeDecodeError:
            return None
    if b"\x00" in sample:
        return None
    try:
        # A sample cut mid-character is fine: drop up to 3 trailing bytes of it.
        text = codecs.getincrementaldecoder("utf-8")().decode(sample, final=not truncated)
    except UnicodeDecodeError:
        text = None
    if text is None:
        # Not UTF-8: accept legacy 8-bit text (latin-1, cp1252...) when it is mostly ASCII
        # and control bytes are rare; random binary has ~12% of them and ~50% high bytes.
        controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
        high = len(sample) - len(sample.translate(None, _HIGH_BYTES))
        if controls > len(sample) // 200 or high > len(sample) * 0.3:
            return None
        return sample.decode("latin-1")
    controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\t\n\f\r")
    return None if controls > max(1, len(text[:8192]) // 100) else text


def loader_for(mime: str) -> str | None:
    """Name of the registered loader for ``mime``, or None when unsupported."""
    return mime_loaders.get(mime.split(";")[0].strip().lower())


def is_media(mime: str) -> bool:
    """Audio and video stream from their file when loaded, so they may exceed memory."""
    return mime.split("/", 1)[0].strip().lower() in ("audio", "video")
