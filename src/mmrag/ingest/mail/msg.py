"""Outlook ``.msg`` messages through extract-msg (the ``email`` extra).

Properties are read one by one and a damaged one is treated as absent; an attached
Outlook message is converted to ``.eml`` bytes and indexed as an e-mail of its own. An
``IPM.Note.SMIME`` message (an encrypted or opaque-signed body) is refused in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from email import policy
from email.utils import format_datetime
from typing import Any

from ...config import IngestSettings
from ...errors import IngestError, MissingDependencyError, MmragError
from ...types import Blob
from ..base import Piece, loaders
from ..text import decode_text
from .message import ADDRESS_KEYS, Mail, MailPart, addresses, clean, iso_utc, one_line
from .pieces import mail_pieces

__all__ = ["load_msg", "parse_msg"]

log = logging.getLogger(__name__)

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
        raise IngestError(uri, f"corrupt Outlook message: {one_line(exc)}") from None
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
        raise IngestError(uri, f"corrupt Outlook message: {one_line(exc)}") from None
    kind = kind.rstrip("\x00").strip().lower()
    if kind == "ipm.note.smime" or kind.startswith("ipm.note.pgp"):
        raise IngestError(uri, f"encrypted Outlook message ({kind}): its body cannot be "
                               "read")


def _msg_to_mail(msg: Any) -> Mail:
    mail = Mail()
    sender = clean(_attr(msg, "sender"))
    if sender:
        mail.header_lines.append(f"From: {sender}")
        mail.meta["from"] = sender
        addrs = addresses(sender)
        if addrs:
            mail.meta["sender"] = addrs[0]
    for key, label in ADDRESS_KEYS[1:]:
        shown, addrs = _msg_recipients(msg, key)
        if shown:
            mail.header_lines.append(f"{label}: {shown}")
        if addrs:
            mail.meta[key] = addrs
    date = _attr(msg, "date")
    if isinstance(date, datetime):
        mail.header_lines.append(f"Date: {format_datetime(date)}")
        mail.meta["date"] = iso_utc(date)
    subject = clean(_attr(msg, "subject"))
    if subject:
        mail.header_lines.append(f"Subject: {subject}")
        mail.meta["subject"] = subject
    message_id = clean(_attr(msg, "messageId"))
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
    shown = clean(_attr(msg, key))
    addrs: list[str] = []
    wanted = {"to": 1, "cc": 2, "bcc": 3}[key]
    for rec in _attr(msg, "recipients") or []:
        try:
            kind = int(getattr(rec, "type", 0) or 0)
            address = clean(getattr(rec, "email", "")).lower()
        except Exception:
            continue
        if kind == wanted and "@" in address:
            addrs.append(address)
    if not addrs and shown:
        addrs = addresses(shown.replace(";", ","))
    return shown, addrs


def _msg_part(att: Any) -> MailPart | None:
    name = clean(_attr(att, "longFilename") or _attr(att, "shortFilename")
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
            name = f"{name or clean(_attr(inner, 'subject')) or 'message'}.eml"
    if not data:
        return None
    cid = clean(_attr(att, "cid") or _attr(att, "contentId")).strip("<>")
    return MailPart(name=name, data=data, content_type=ctype, cid=cid,
                    inline=bool(_attr(att, "hidden")))


def _attr(obj: Any, name: str) -> Any:
    """A property of an extract-msg object; a damaged property is absent, not fatal."""
    try:
        return getattr(obj, name, None)
    except Exception:
        log.debug("unreadable MSG property %s", name, exc_info=True)
        return None
