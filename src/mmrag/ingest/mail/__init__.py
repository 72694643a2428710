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

A wrong or unknown charset falls back to UTF-8, Windows-1252, then detection, and a
multipart whose boundary is missing is read as text, so broken MIME still gives its words;
encrypted messages (S/MIME, PGP, ``IPM.Note.SMIME``) are refused with one line.

    message.py  Mail, MailPart and shared helpers    eml.py  RFC 822/MIME (stdlib email)
    pieces.py   Mail → text/image/attachment pieces   msg.py  Outlook MSG (extract-msg)
"""

from __future__ import annotations

from . import eml, msg  # noqa: F401 - importing registers the loaders
from .eml import load_eml, parse_eml
from .message import Mail, MailPart
from .msg import load_msg, parse_msg
from .pieces import mail_pieces, quoted_ranges

__all__ = ["Mail", "MailPart", "load_eml", "load_msg", "mail_pieces", "parse_eml",
           "parse_msg", "quoted_ranges"]
