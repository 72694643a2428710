"""RFC 822/MIME messages (``.eml``) through the stdlib ``email`` package.

The parser is lenient: bad structure becomes recorded defects, never an exception, and
what is still legible is kept (a multipart whose boundary never comes is read as text).
Text parts are decoded in their declared charset, else UTF-8, else Windows-1252, else by
detection; encrypted messages (S/MIME, PGP) are refused in one line.
"""

from __future__ import annotations

import email
import email.header
import logging
from collections.abc import Iterator
from email import policy
from email.message import Message
from email.utils import collapse_rfc2231_value, parsedate_to_datetime
from typing import cast

from ...config import IngestSettings
from ...errors import IngestError
from ...types import Blob
from ..base import Piece, loaders
from ..text import decode_text
from .message import ADDRESS_KEYS, Mail, MailPart, addresses, iso_utc
from .pieces import mail_pieces

__all__ = ["load_eml", "parse_eml"]

log = logging.getLogger(__name__)

# Signatures are not content; their parts are dropped, not indexed as attachments.
_SIGNATURES = {"application/pkcs7-signature", "application/x-pkcs7-signature",
               "application/pgp-signature"}
_ENCRYPTED_TYPES = {"multipart/encrypted", "application/pkcs7-mime",
                    "application/x-pkcs7-mime"}


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
    smime = (collapse_rfc2231_value(msg.get_param("smime-type") or "").lower()
             if kind == "S/MIME" else "")
    what = "signed-only (opaque)" if smime == "signed-data" else "encrypted"
    raise IngestError(uri, f"{what} e-mail ({kind}): its body cannot be read")


def _headers_into(mail: Mail, msg: Message) -> None:
    """Metadata and the header block, from headers that may be broken or undecodable."""
    for key, label in ADDRESS_KEYS:
        raw = _header(msg, key)
        if not raw:
            continue
        mail.header_lines.append(f"{label}: {raw}")
        addrs = addresses(raw)
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


def _iso_date(value: str) -> str:
    try:
        return iso_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return ""


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
        children = cast(list[Message], part.get_payload())  # a multipart's is its parts
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
