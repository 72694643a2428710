"""Content sniffing: the mime type comes from a file's first bytes, never its extension.

A PNG saved as ``photo.jpg`` is a PNG; a random blob named ``report.pdf`` is not a PDF.
The file name is only a hint to tell Markdown from plain text, which no magic can do.
An e-mail is text too, told by its RFC 822 header block.
"""

from __future__ import annotations

import codecs
import csv
import re
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
    "image/heic": "image",
    "image/heif": "image",
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
    "message/rfc822": "email",
    "application/vnd.ms-outlook": "msg",
    "application/epub+zip": "epub",
    "text/csv": "csv",
    "text/tab-separated-values": "csv",
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
    heif = _heif(head)
    if heif:
        return heif
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
    if _is_email(text):
        return "message/rfc822"
    lead = text.lstrip("\ufeff \t\r\n").lower()
    if lead.startswith(_HTML_STARTS) and ("<html" in lead[:4096] or "<body" in lead[:4096]
                                          or lead.startswith("<!doctype html")):
        return "text/html"
    if ext in _HTML_EXT and lead.startswith("<"):
        return "text/html"
    if ext in _MARKDOWN_EXT:
        return "text/markdown"
    if ext in _TABLE_EXT and delimiter(text, tabs=ext != ".csv"):
        return "text/csv" if ext == ".csv" else "text/tab-separated-values"
    return "text/plain"


_TABLE_EXT = {".csv", ".tsv", ".tab"}
_DELIMITERS = (",", ";", "\t", "|")


def delimiter(sample: str, tabs: bool = False) -> str | None:
    """The delimiter that splits the sample's first lines into the same number (≥ 2) of
    fields on at least 80% of them (only a tab when ``tabs``); None when none does, and
    the ``.csv`` file is plain text after all."""
    lines = sample.splitlines()
    if len(lines) > 50 or not sample.endswith(("\n", "\r")):
        lines = lines[:50][:-1] or lines[:1]  # the last line may be cut off
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        return None
    for delim in ("\t",) if tabs else _DELIMITERS:
        try:
            widths = [len(row) for row in csv.reader(lines, delimiter=delim)]
        except csv.Error:
            continue
        if widths[0] >= 2 and sum(w == widths[0] for w in widths) >= 0.8 * len(widths):
            return delim
    return None


_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ")
# HEIF stills (iPhone photos): HEVC-coded brands, and the generic image brands
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"mif2", b"msf1"}


def _heif(head: bytes) -> str | None:
    """HEIC/HEIF from the ``ftyp`` box: its major brand or a compatible one (a ``mif1``
    file may hold AV1 pictures, an AVIF)."""
    if head[4:8] != b"ftyp":
        return None
    end = min(int.from_bytes(head[:4], "big"), len(head))
    brands = {head[8:12], *(head[i:i + 4] for i in range(16, end - 3, 4))}
    if brands & {b"avif", b"avis"}:
        return "image/avif"
    if brands & _HEIC_BRANDS:
        return "image/heic"
    if head[8:12] in _HEIF_BRANDS:
        return "image/heif"
    return None


# RFC 5322 field names: printable ASCII but the colon. A message's head is such fields
# (continuation lines indented) up to the first blank line.
_FIELD = re.compile(r"([!-9;-~]+):")
_MAIL_FIELDS = {"from", "to", "cc", "bcc", "subject", "date", "received", "message-id",
                "mime-version", "return-path", "delivered-to", "reply-to", "sender",
                "content-type", "content-transfer-encoding", "in-reply-to", "references",
                "x-mailer", "dkim-signature", "authentication-results", "thread-topic",
                "thread-index", "importance", "user-agent", "x-originating-ip"}
# At least one of these: "Subject:" and "Date:" alone start many a plain-text note.
_MAIL_STRONG = {"from", "received", "message-id", "mime-version", "return-path",
                "delivered-to", "dkim-signature"}


def _is_email(text: str) -> bool:
    """An RFC 822 message: every line before the first blank one is a header field or a
    continuation, with two or more mail fields among them, one of them ``From:``,
    ``Received:``, ``Message-ID:``, ``MIME-Version:``... (an mbox ``From `` line may lead)."""
    lines = text.lstrip("\ufeff\r\n").split("\n")
    if lines and lines[0].startswith("From ") and len(lines) > 1:
        lines = lines[1:]
    fields: set[str] = set()
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            break
        if line[0] in " \t":
            if not fields:
                return False
            continue
        m = _FIELD.match(line)
        if not m:
            return False
        fields.add(m.group(1).lower())
    known = fields & _MAIL_FIELDS
    return len(known) >= 2 and bool(known & _MAIL_STRONG)


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
