"""E-mail loaders: RFC 822/MIME files (``.eml``, the stdlib ``email`` package) and Outlook
``.msg`` files (``extract-msg``, the ``email`` extra).

Both are read into one :class:`Mail` (addresses, date, subject, bodies, parts), so they are
indexed alike:

- every item carries ``from``, ``sender`` (the bare address, lower case), ``to``, ``cc``,
  ``bcc`` (lists of addresses), ``date`` (ISO 8601, UTC), ``subject`` and ``message_id``
  as metadata, which ``--filter sender=...`` and date ranges select on;
- the text starts with a header block (``From: ... To: ... Subject: ... Date: ...``,
  plus the attachment names) so the same facts are searchable;
- the body is the HTML part through the HTML loader's text extraction (headings become
  sections), else the plain part; quoted replies ("On ... wrote:", ``>`` lines,
  "Original Message") are chunked apart, in section ``Quoted reply`` with
  ``metadata["quoted"] = True``;
- pictures the HTML shows through ``cid:`` links become ``image`` items of the e-mail;
  every other part is an attachment, indexed as a document of its own (see
  :mod:`mmrag.ingest.attachments`).

Mislabelled or unknown charsets fall back to detection, and a multipart whose boundary is
missing is read as text, so broken MIME still gives its words; encrypted messages (S/MIME,
PGP) are refused with one line.
"""

from __future__ import annotations

import email
import email.header
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from typing import Any

from ..config import IngestSettings
from ..errors import IngestError, MissingDependencyError, MmragError
from ..types import Blob
from .attachments import attachment_piece, safe_name
from .base import Piece, loaders
from .chunk import chunk_spans, section_spans
from .text import decode_text, html_to_text

__all__ = ["Mail", "MailPart", "load_eml", "load_msg", "mail_pieces", "parse_eml",
           "parse_msg", "quoted_ranges"]

log = logging.getLogger(__name__)

QUOTED = "Quoted reply"
_ADDRESS_KEYS = (("from", "From"), ("to", "To"), ("cc", "Cc"), ("bcc", "Bcc"))
# Signatures are not content; their parts are dropped, not indexed as attachments.
_SIGNATURES = {"application/pkcs7-signature", "application/x-pkcs7-signature",
               "application/pgp-signature"}
_ENCRYPTED_TYPES = {"multipart/encrypted", "application/pkcs7-mime",
                    "application/x-pkcs7-mime"}
_CID = re.compile(r"""cid:([^"'\s>)]+)""", re.I)
_IMG_ALT = re.compile(r"""<img\b[^>]*?\bsrc\s*=\s*["']?cid:([^"'\s>]+)[^>]*>""", re.I)
_ALT = re.compile(r"""\balt\s*=\s*(["'])(.*?)\1""", re.I | re.S)


@dataclass(slots=True)
class MailPart:
    """A non-body part: an attachment, or a picture the HTML body shows (``cid``)."""

    name: str
    data: bytes
    content_type: str
    cid: str = ""
    inline: bool = False


@dataclass(slots=True)
class Mail:
    """One message, whatever file it came from."""

    meta: dict[str, Any] = field(default_factory=dict)
    header_lines: list[str] = field(default_factory=list)
    text: str = ""
    html: str = ""
    parts: list[MailPart] = field(default_factory=list)


# --- EML ------------------------------------------------------------------------------


@loaders.register("email")
def load_eml(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """An RFC 822/MIME message: header block and body as text, cid pictures as images,
    attachments as child documents."""
    yield from mail_pieces(parse_eml(blob.data, blob.uri), blob, settings)


def parse_eml(data: bytes, uri: str) -> Mail:
    """Read a MIME message leniently: the parser never raises on bad structure, it records
    defects, and what is still legible is kept."""
    msg = email.message_from_bytes(data, policy=policy.default)
    if not msg.keys():
        raise IngestError(uri, "not an e-mail: no RFC 822 headers")
    _refuse_encrypted(msg, uri)
    mail = Mail()
    _headers_into(mail, msg)
    texts: list[str] = []
    htmls: list[str] = []
    _visit(msg, texts, htmls, mail.parts)
    mail.text = "\n\n".join(t for t in texts if t.strip())
    mail.html = "\n".join(htmls)
    return mail


def _refuse_encrypted(msg: Message, uri: str) -> None:
    ctype = msg.get_content_type()
    if ctype not in _ENCRYPTED_TYPES:
        return
    kind = "PGP" if ctype == "multipart/encrypted" else "S/MIME"
    smime = (msg.get_param("smime-type") or "").lower() if kind == "S/MIME" else ""
    what = "signed-only (opaque)" if smime == "signed-data" else "encrypted"
    raise IngestError(uri, f"{what} e-mail ({kind}): its body cannot be read")


def _headers_into(mail: Mail, msg: Message) -> None:
    """Metadata and the header block, from headers that may be broken or undecodable."""
    for key, label in _ADDRESS_KEYS:
        raw = _header(msg, key)
        if not raw:
            continue
        mail.header_lines.append(f"{label}: {raw}")
        addrs = _addresses(raw)
        if key == "from":
            mail.meta["from"] = raw
            if addrs:
                mail.meta["sender"] = addrs[0]
        elif addrs:
            mail.meta[key] = addrs
    date = _header(msg, "date")
    if date:
        mail.header_lines.append(f"Date: {date}")
        iso = _iso_date(date)
        if iso:
            mail.meta["date"] = iso
    subject = _header(msg, "subject")
    if subject:
        mail.header_lines.append(f"Subject: {subject}")
        mail.meta["subject"] = subject
    message_id = _header(msg, "message-id").strip()
    if message_id:
        mail.meta["message_id"] = message_id.strip("<>")


def _header(msg: Message, name: str) -> str:
    """One header as clean text: RFC 2047 words decoded, raw 8-bit bytes (illegal, yet
    common) decoded by detection instead of showing as surrogates."""
    try:
        value = msg.get(name)
        text = "" if value is None else str(value)
    except Exception:  # a header the policy cannot parse: decode its raw words
        log.debug("unparsable %s header", name, exc_info=True)
        raw = next((v for k, v in msg.raw_items() if k.lower() == name), "")
        try:
            text = str(email.header.make_header(email.header.decode_header(raw)))
        except Exception:
            text = raw
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        text = decode_text(text.encode("utf-8", "surrogateescape"))
    return " ".join(text.split())


def _addresses(raw: str) -> list[str]:
    """Bare addresses, lower case (filters compare them exactly)."""
    return [addr.strip().lower() for _, addr in getaddresses([raw]) if "@" in addr]


def _iso_date(value: str) -> str:
    try:
        return _iso(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return ""


def _iso(dt: datetime) -> str:
    """UTC ISO 8601, so that dates compare as strings (``date >= 2023-01-01``)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


def _visit(part: Message, texts: list[str], htmls: list[str], parts: list[MailPart]) -> None:
    """Walk the MIME tree: body text into ``texts``/``htmls``, other leaves into ``parts``.
    Attached messages are not entered: they become attachments of their own."""
    ctype = part.get_content_type()
    if ctype == "message/rfc822" or (ctype.startswith("message/") and part.is_multipart()):
        attached = _attached_message(part)
        if attached is not None:
            parts.append(attached)
        return
    if part.is_multipart():
        children = part.get_payload()
        if ctype == "multipart/alternative":
            children = [_best_alternative(children)] if children else []
        for child in children:
            _visit(child, texts, htmls, parts)
        return
    if ctype in _SIGNATURES:
        return
    disposition = part.get_content_disposition()
    filename = _filename(part)
    is_body = disposition != "attachment" and not (filename and disposition == "inline")
    if ctype.startswith("multipart/") or (ctype == "text/plain" and is_body):
        texts.append(_part_text(part))  # a multipart without its boundary is text too
    elif ctype == "text/html" and is_body:
        htmls.append(_part_text(part))
    else:
        data = _payload(part)
        if data:
            parts.append(MailPart(name=filename, data=data, content_type=ctype,
                                  cid=(part.get("content-id") or "").strip().strip("<>"),
                                  inline=disposition == "inline"))


def _best_alternative(children: list[Message]) -> Message:
    """The richest alternative: the last HTML (or a multipart holding it), else the last
    part (RFC 2046 orders alternatives from plainest to richest)."""
    for child in reversed(children):
        ctype = child.get_content_type()
        if ctype == "text/html" or (ctype.startswith("multipart/") and child.is_multipart()):
            return child
    return children[-1]


def _filename(part: Message) -> str:
    try:
        return part.get_filename() or ""
    except Exception:  # a malformed RFC 2231 parameter
        return ""


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # broken base64 or quoted-printable: keep nothing of this part
        log.debug("undecodable MIME part", exc_info=True)
        return b""
    return data if isinstance(data, bytes) else b""


def _part_text(part: Message) -> str:
    """A text part in its declared charset; when that is wrong or unknown (a cp1252 body
    labelled UTF-8, ``charset=x-unknown``), UTF-8, then Windows-1252, then detection.
    Windows-1252 before detection: it is what mislabelled mail almost always is (WHATWG
    reads even ``latin1`` and ``us-ascii`` labels as it), and statistical detection
    misreads short Western text as Central European (``déjà`` as ``déjŕ``)."""
    raw = _payload(part)
    charset = ""
    try:
        charset = part.get_content_charset() or ""
    except Exception:
        pass
    for codec in (charset, "utf-8", "cp1252"):
        if not codec:
            continue
        try:
            text = raw.decode(codec)
        except (LookupError, UnicodeDecodeError):
            continue
        return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return decode_text(raw)


def _attached_message(part: Message) -> MailPart | None:
    """An attached e-mail as ``.eml`` bytes (it is indexed as an e-mail of its own)."""
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    data = b""
    if isinstance(inner, Message):
        for pol in (policy.default, policy.compat32):
            try:
                data = inner.as_bytes(policy=pol)
                break
            except Exception:
                continue
    elif isinstance(payload, str):
        data = payload.encode("utf-8", "surrogateescape")
    if not data:
        return None
    name = _filename(part)
    if not name:
        subject = _header(inner, "subject") if isinstance(inner, Message) else ""
        name = f"{subject or 'message'}.eml"
    return MailPart(name=name, data=data, content_type="message/rfc822")


# --- MSG ------------------------------------------------------------------------------

_MSG_CLASS = "__substg1.0_001A001F"
_MSG_CLASS_8BIT = "__substg1.0_001A001E"


@loaders.register("msg")
def load_msg(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """An Outlook ``.msg`` message, indexed like an ``.eml`` one."""
    yield from mail_pieces(parse_msg(blob.data, blob.uri), blob, settings)


def parse_msg(data: bytes, uri: str) -> Mail:
    try:
        import extract_msg
    except ImportError:
        raise MissingDependencyError("reading Outlook .msg files", "email") from None
    _refuse_encrypted_msg(data, uri)
    try:
        msg = extract_msg.openMsg(data, delayAttachments=False)
    except MmragError:
        raise
    except Exception as exc:
        raise IngestError(uri, f"corrupt Outlook message: {_one_line(exc)}") from None
    try:
        return _msg_to_mail(msg)
    finally:
        msg.close()


def _refuse_encrypted_msg(data: bytes, uri: str) -> None:
    """``IPM.Note.SMIME`` holds an encrypted (or opaque-signed) body in an attachment:
    refused with one line instead of indexing the envelope as if it were the message."""
    import olefile

    try:
        with olefile.OleFileIO(data) as ole:
            for stream, codec in ((_MSG_CLASS, "utf-16-le"), (_MSG_CLASS_8BIT, "latin-1")):
                if ole.exists(stream):
                    kind = ole.openstream(stream).read(512).decode(codec, "replace")
                    break
            else:
                return
    except Exception as exc:
        raise IngestError(uri, f"corrupt Outlook message: {_one_line(exc)}") from None
    kind = kind.rstrip("\x00").strip().lower()
    if kind == "ipm.note.smime" or kind.startswith("ipm.note.pgp"):
        raise IngestError(uri, f"encrypted Outlook message ({kind}): its body cannot be "
                               "read")


def _msg_to_mail(msg: Any) -> Mail:
    mail = Mail()
    sender = _clean(_attr(msg, "sender"))
    if sender:
        mail.header_lines.append(f"From: {sender}")
        mail.meta["from"] = sender
        addrs = _addresses(sender)
        if addrs:
            mail.meta["sender"] = addrs[0]
    for key, label in _ADDRESS_KEYS[1:]:
        shown, addrs = _msg_recipients(msg, key)
        if shown:
            mail.header_lines.append(f"{label}: {shown}")
        if addrs:
            mail.meta[key] = addrs
    date = _attr(msg, "date")
    if isinstance(date, datetime):
        mail.header_lines.append(f"Date: {format_datetime(date)}")
        mail.meta["date"] = _iso(date)
    subject = _clean(_attr(msg, "subject"))
    if subject:
        mail.header_lines.append(f"Subject: {subject}")
        mail.meta["subject"] = subject
    message_id = _clean(_attr(msg, "messageId"))
    if message_id:
        mail.meta["message_id"] = message_id.strip("<>")
    mail.text = (_attr(msg, "body") or "").replace("\r\n", "\n").replace("\x00", "")
    html = _attr(msg, "htmlBody")
    mail.html = decode_text(html) if isinstance(html, bytes) else (html or "")
    for att in _attr(msg, "attachments") or []:
        part = _msg_part(att)
        if part is not None:
            mail.parts.append(part)
    return mail


def _msg_recipients(msg: Any, key: str) -> tuple[str, list[str]]:
    """The display line (as Outlook stored it) and the bare addresses of one kind."""
    shown = _clean(_attr(msg, key))
    addrs: list[str] = []
    wanted = {"to": 1, "cc": 2, "bcc": 3}[key]
    for rec in _attr(msg, "recipients") or []:
        try:
            kind = int(getattr(rec, "type", 0) or 0)
            address = _clean(getattr(rec, "email", "")).lower()
        except Exception:
            continue
        if kind == wanted and "@" in address:
            addrs.append(address)
    if not addrs and shown:
        addrs = _addresses(shown.replace(";", ","))
    return shown, addrs


def _msg_part(att: Any) -> MailPart | None:
    name = _clean(_attr(att, "longFilename") or _attr(att, "shortFilename")
                  or _attr(att, "displayName"))
    data = _attr(att, "data")
    ctype = (_attr(att, "mimetype") or "").lower()
    if not isinstance(data, bytes):
        inner = data
        as_email = getattr(inner, "asEmailMessage", None)  # an attached Outlook message
        if as_email is None:
            return None
        try:
            data = as_email().as_bytes(policy=policy.compat32)
        except Exception:
            log.debug("attached Outlook message could not be converted", exc_info=True)
            return None
        ctype = "message/rfc822"
        if not name.lower().endswith(".eml"):
            name = f"{name or _clean(_attr(inner, 'subject')) or 'message'}.eml"
    if not data:
        return None
    cid = _clean(_attr(att, "cid") or _attr(att, "contentId")).strip("<>")
    return MailPart(name=name, data=data, content_type=ctype, cid=cid,
                    inline=bool(_attr(att, "hidden")))


def _attr(obj: Any, name: str) -> Any:
    """A property of an extract-msg object; a damaged property is absent, not fatal."""
    try:
        return getattr(obj, name, None)
    except Exception:
        log.debug("unreadable MSG property %s", name, exc_info=True)
        return None


def _clean(value: Any) -> str:
    return " ".join(str(value).replace("\x00", "").split()) if value else ""


def _one_line(exc: BaseException) -> str:
    return (" ".join(f"{type(exc).__name__}: {exc}".split()))[:300]


# --- pieces ----------------------------------------------------------------------------


def mail_pieces(mail: Mail, blob: Blob, settings: IngestSettings,
                ) -> Iterator[Piece]:
    """Text chunks (header block first), cid pictures as images, then attachments."""
    embedded, attached = _split_parts(mail)
    names = _unique_names([p for p in attached], blob.name)
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


def _unique_names(parts: list[MailPart], mail_name: str) -> list[str]:
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
    import mimetypes

    if content_type == "message/rfc822":
        return ".eml"
    return mimetypes.guess_extension(content_type or "") or ".bin"


def _image_pieces(parts: list[MailPart], mail: Mail, blob: Blob, settings: IngestSettings,
                  meta: dict[str, Any]) -> Iterator[Piece]:
    """Each embedded picture through the image loader (size guard, OCR); a damaged one
    is skipped with a warning, the message is still worth indexing."""
    from .images import load_image

    alts = _alt_texts(mail.html)
    for n, part in enumerate(parts, 1):
        name = safe_name(part.name, f"image-{n}{_extension(part.content_type)}")
        sub = Blob(uri=f"{blob.uri}#{name}", data=part.data, name=name,
                   mime=part.content_type or "image/*")
        try:
            pieces = list(load_image(sub, settings))
        except (IngestError, MissingDependencyError) as exc:  # a HEIC without pillow-heif
            log.warning("%s: embedded image %r skipped: %s", blob.uri, name, _one_line(exc))
            continue
        except MmragError:  # misconfiguration (an unknown OCR engine) must be seen
            raise
        except Exception as exc:
            log.warning("%s: embedded image %r skipped: %s", blob.uri, name, _one_line(exc))
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
