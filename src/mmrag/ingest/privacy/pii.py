"""Masking personal data in text before it is indexed.

Patterns alone over-match (any 16 digits look like a card number, any two letters and
digits like an IBAN), so card numbers must pass the Luhn check and IBANs the ISO 7064
mod-97 check: a part number or an order id is left alone, a real account number is not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["PII_TYPES", "luhn_ok", "iban_ok", "mask"]


def luhn_ok(digits: str) -> bool:
    """Whether a card number (digits only) passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """Whether an IBAN (no spaces) passes ISO 13616's mod-97 check."""
    iban = iban.upper()
    if not 15 <= len(iban) <= 34:
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def _card(text: str) -> bool:
    d = _digits(text)
    return 13 <= len(d) <= 19 and luhn_ok(d)


def _phone(text: str) -> bool:
    return 7 <= len(_digits(text)) <= 15


@dataclass(frozen=True, slots=True)
class _Pattern:
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] = lambda _: True


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"

# Checked ones first: a card number must not be half-eaten by the phone pattern.
_PATTERNS: dict[str, _Pattern] = {
    "email": _Pattern(re.compile(
        r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")),
    "iban": _Pattern(re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
                     lambda s: iban_ok(s.replace(" ", ""))),
    "credit_card": _Pattern(re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _card),
    "ssn": _Pattern(re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}"
                               r"(?![\d-])")),
    "ipv4": _Pattern(re.compile(rf"(?<![\d.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\d.])")),
    # International (+CC ...) or North-American (555) 123-4567 / 555-123-4567 shapes; bare
    # digit runs are not phones (they are ids, dates, amounts).
    "phone": _Pattern(re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
        r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w])"), _phone),
}

PII_TYPES: tuple[str, ...] = tuple(_PATTERNS)


def mask(text: str, types: Iterable[str], counts: dict[str, int]) -> str:
    """``text`` with each found item replaced by ``[TYPE]``; ``counts["pii_<type>"]`` grows
    by what was masked. Unknown type names raise ``ValueError`` naming them."""
    for name in _ordered(types):
        pat = _PATTERNS[name]
        found = 0

        def sub(m: re.Match[str], pat: _Pattern = pat, name: str = name) -> str:
            nonlocal found
            if not pat.valid(m.group(0)):
                return m.group(0)
            found += 1
            return f"[{name.upper()}]"

        text = pat.pattern.sub(sub, text)
        if found:
            counts[f"pii_{name}"] = counts.get(f"pii_{name}", 0) + found
    return text


def _ordered(types: Iterable[str]) -> list[str]:
    wanted = set(types)
    unknown = wanted - set(_PATTERNS)
    if unknown:
        raise ValueError(f"unknown PII types {sorted(unknown)!r}; choose from {PII_TYPES!r}")
    return [n for n in _PATTERNS if n in wanted]
