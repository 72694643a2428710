"""The message every e-mail format is read into, and helpers its readers share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import getaddresses
from typing import Any

__all__ = ["ADDRESS_KEYS", "Mail", "MailPart", "addresses", "clean", "iso_utc", "one_line"]

# metadata key → header label, in the order the header block shows them
ADDRESS_KEYS = (("from", "From"), ("to", "To"), ("cc", "Cc"), ("bcc", "Bcc"))


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


def addresses(raw: str) -> list[str]:
    """Bare addresses, lower case (filters compare them exactly)."""
    return [addr.strip().lower() for _, addr in getaddresses([raw]) if "@" in addr]


def iso_utc(dt: datetime) -> str:
    """UTC ISO 8601, so that dates compare as strings (``date >= 2023-01-01``)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(microsecond=0).isoformat()


def clean(value: Any) -> str:
    """One line of text, without NULs (Outlook strings may end in one)."""
    return " ".join(str(value).replace("\x00", "").split()) if value else ""


def one_line(exc: BaseException) -> str:
    return (" ".join(f"{type(exc).__name__}: {exc}".split()))[:300]
