"""A :class:`~.message.Mail` as pieces: the header block and body as text chunks,
quoted replies apart, ``cid:`` pictures as images, everything else as attachments."""

from __future__ import annotations

import logging
import mimetypes
import re
from collections.abc import Iterator
from typing import Any

from ...config import IngestSettings
from ...errors import IngestError, MissingDependencyError, MmragError
from ...types import Blob
from ..attachments import attachment_piece, safe_name
from ..base import Piece
from ..chunk import chunk_spans, section_spans
from ..images import load_image
from ..text import html_to_text
from .message import Mail, MailPart, one_line

__all__ = ["QUOTED", "mail_pieces", "quoted_ranges"]

log = logging.getLogger(__name__)

QUOTED = "Quoted reply"
_CID = re.compile(r"""cid:([^"'\s>)]+)""", re.I)
_IMG_ALT = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*["']?cid:([^"'\s>]+)[^>]*>""", re.I)
_ALT = re.compile(r"""\balt\s*=\s*(["'])(.*?)\1""", re.I | re.S)


def mail_pieces(mail: Mail, blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """Text chunks (header block first), cid pictures as images, then attachments."""
    embedded, attached = _split_parts(mail)
    names = _unique_names(attached)
    lines = list(mail.header_lines)
    if attached:
        lines.append("Attachments: " + ", ".join(
            f"{n} ({p.content_type})" if p.content_type else n
            for n, p in zip(names, attached, strict=True)))
    if not lines and not mail.text.strip() and not mail.html.strip() and not mail.parts:
        raise IngestError(blob.uri, "empty e-mail: no headers, body or attachments")
    meta = dict(mail.meta)
    if attached:
        meta["attachments"] = names
    yield from _text_pieces("\n".join(lines), mail, settings, meta)
    yield from _image_pieces(embedded, mail, blob, settings, meta)
    for name, part in zip(names, attached, strict=True):
        yield attachment_piece(name, part.data, part.content_type)


def _text_pieces(head: str, mail: Mail, settings: IngestSettings,
                 meta: dict[str, Any]) -> Iterator[Piece]:
    body, heads = _body(mail)
    text = f"{head}\n\n{body}" if head and body else head or body
    shift = len(text) - len(body)
    heads = [(o + shift, b + shift, level, title) for o, b, level, title in heads]
    quoted = [(s + shift, e + shift) for s, e in quoted_ranges(body)]
    spans = _spans(text, heads, quoted)
    if len(spans) > 1 and spans[0][1] <= shift and not spans[1][3]:
        # the header block opens the first section: who wrote it stays with what it says
        spans[:2] = [(0, spans[1][1], spans[1][2], False)]
    for start, end, section, is_quoted in spans:
        extra = {"quoted": True} if is_quoted else {}
        for s, e in chunk_spans(text, settings.chunk_size, settings.chunk_overlap, start, end):
            yield Piece(modality="text", text=text[s:e], chunk_start=s, chunk_end=e,
                        section=section, metadata={**meta, **extra})


def _body(mail: Mail) -> tuple[str, list[tuple[int, int, int, str]]]:
    """The HTML body's visible text and headings, else the plain body."""
    if mail.html.strip():
        text, heads, _ = html_to_text(mail.html)
        if text.strip():
            return text.strip("\n"), _shifted(heads, len(text) - len(text.lstrip("\n")))
    return mail.text.strip("\n"), []


def _shifted(heads: list[tuple[int, int, int, str]], cut: int,
             ) -> list[tuple[int, int, int, str]]:
    return [(max(0, o - cut), max(0, b - cut), lv, t) for o, b, lv, t in heads]


_ATTRIBUTION = re.compile(
    r"^[ \t]*(?:On\b[^\n]{0,300}(?:\n[^\n]{0,300})?\bwrote:"
    r"|Am\b[^\n]{0,300}\bschrieb[^\n]{0,80}:"
    r"|Le\b[^\n]{0,300}\ba écrit\s?:"
    r"|El\b[^\n]{0,300}\bescribió:"
    r"|-{2,}\s*Original Message\s*-{2,}"
    r"|_{20,}\s*\n(?:From|Von|De):)[ \t]*$", re.M | re.I)
_QUOTE_RUN = re.compile(r"(?:^[ \t]*>[^\n]*(?:\n|\Z))+", re.M)


def quoted_ranges(body: str) -> list[tuple[int, int]]:
    """Spans of ``body`` that quote earlier mail: runs of ``>`` lines, and everything from
    the first attribution line ("On ... wrote:", "-----Original Message-----", Outlook's
    rule-and-From) to the end."""
    cut = _ATTRIBUTION.search(body)
    end = cut.start() if cut else len(body)
    spans = [(m.start(), m.end()) for m in _QUOTE_RUN.finditer(body, 0, end)
             if m.group(0).strip()]
    if cut:
        spans.append((cut.start(), len(body)))
    return spans


def _spans(text: str, heads: list[tuple[int, int, int, str]], quoted: list[tuple[int, int]],
           ) -> list[tuple[int, int, str, bool]]:
    """Section spans of ``text``, cut where quoted replies start and end."""
    out: list[tuple[int, int, str, bool]] = []
    for start, end, path in section_spans(text, heads):
        pos = start
        for qs, qe in quoted:
            if qe <= pos or qs >= end:
                continue
            if qs > pos:
                out.append((pos, qs, path, False))
            label = f"{path} > {QUOTED}" if path else QUOTED
            out.append((max(qs, pos), min(qe, end), label, True))
            pos = min(qe, end)
        if pos < end:
            out.append((pos, end, path, False))
    return out


def _split_parts(mail: Mail) -> tuple[list[MailPart], list[MailPart]]:
    """Pictures the HTML body shows (``cid:`` links, or inline images with a Content-ID)
    are the e-mail's own images; every other part is an attachment."""
    shown = {c.lower() for c in _CID.findall(mail.html)}
    embedded, attached = [], []
    for part in mail.parts:
        picture = part.content_type.startswith("image/") or not part.content_type
        if picture and part.cid and (part.cid.lower() in shown or part.inline):
            embedded.append(part)
        else:
            attached.append(part)
    return embedded, attached


def _unique_names(parts: list[MailPart]) -> list[str]:
    """Safe, distinct attachment names (two ``image.png`` become ``image.png`` and
    ``image (2).png``)."""
    seen: set[str] = set()
    out = []
    for n, part in enumerate(parts, 1):
        name = safe_name(part.name, f"attachment-{n}{_extension(part.content_type)}")
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        k = 2
        while name.lower() in seen:
            name = f"{stem} ({k}).{ext}" if ext else f"{stem} ({k})"
            k += 1
        seen.add(name.lower())
        out.append(name)
    return out


def _extension(content_type: str) -> str:
    if content_type == "message/rfc822":
        return ".eml"
    return mimetypes.guess_extension(content_type or "") or ".bin"


def _image_pieces(parts: list[MailPart], mail: Mail, blob: Blob, settings: IngestSettings,
                  meta: dict[str, Any]) -> Iterator[Piece]:
    """Each embedded picture through the image loader (size guard, OCR); a damaged one
    is skipped with a warning, the message is still worth indexing."""
    alts = _alt_texts(mail.html)
    for n, part in enumerate(parts, 1):
        name = safe_name(part.name, f"image-{n}{_extension(part.content_type)}")
        sub = Blob(uri=f"{blob.uri}#{name}", data=part.data, name=name,
                   mime=part.content_type or "image/*")
        try:
            pieces = list(load_image(sub, settings))
        except (IngestError, MissingDependencyError) as exc:  # a HEIC without pillow-heif
            log.warning("%s: embedded image %r skipped: %s", blob.uri, name, one_line(exc))
            continue
        except MmragError:  # misconfiguration (an unknown OCR engine) must be seen
            raise
        except Exception as exc:
            log.warning("%s: embedded image %r skipped: %s", blob.uri, name, one_line(exc))
            continue
        alt = alts.get(part.cid.lower(), "")
        for piece in pieces[:1]:  # the first frame stands for the picture
            if alt and alt not in piece.text:
                piece.text = f"{alt}\n{piece.text}".strip()
            piece.page = 1
            piece.metadata = {**meta, **piece.metadata, "embedded": True, "image_name": name,
                              **({"cid": part.cid} if part.cid else {})}
            yield piece


def _alt_texts(html: str) -> dict[str, str]:
    """``alt`` text of ``<img src="cid:...">`` tags by Content-ID."""
    out: dict[str, str] = {}
    for m in _IMG_ALT.finditer(html):
        alt = _ALT.search(m.group(0))
        if alt and alt.group(2).strip():
            out[m.group(1).lower()] = " ".join(alt.group(2).split())
    return out
