"""What a question asks for, and the short spans of a source that can hold it.

A question asking for a quantity, a date, a name or one value of a table ("What BLEU score
does the big model reach?", "who leads on Wednesday?") is answered by one short span: the
sentence with that kind of value, or the table cell with its row and column headers. The
extractive generator uses these rules to quote that span instead of the sentences around
it; :mod:`.citations` uses the table parser to find which cell an answer quotes.

The rules are plain word patterns, chosen to be general (no per-question tuning):

- ``number``: how many/much/long/large..., or what/which + a measure word (score, share,
  size, accuracy, strength...). Its span must hold a number (digits or a number word).
- ``date``: when, what/which year/date/day/month/time. Its span must hold a year, a
  month or weekday name, a date or a clock time.
- ``name``: who/whom (whose only as the first word: "a table whose cells..." is a
  description), which person/author/company... Its span must hold a
  capitalised word that is not at the start of a sentence, or an e-mail address.
- ``entity``: any other what/which question. No constraint on sentences; table cells
  answer it when both their row and their column headers match the question.

A value the question itself contains ("next to 1400.01") does not count as the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Table", "answer_type", "has_value", "parse_tables"]

_MEASURE = (r"number|numbers|percentage|percent|share|score|scores|rate|ratio|value|values|"
            r"size|amount|count|total|accuracy|strength|content|range|hardness|price|cost|"
            r"temperature|speed|mean|average|median|length|width|height|weight|capacity|"
            r"bleu|f1|points?|gain|loss|margin|budget|revenue|population|depth|distance|"
            r"duration|density|frequency|voltage|pressure|capacity|quantity|version|"
            r"intensity|volume|dose|age|limit|maximum|minimum|precision|recall|error")
_NUMBER_Q = re.compile(r"\bhow (many|much|large|big|long|far|fast|old|often|tall|wide|"
                       r"heavy|high|deep|small|low)\b|\b(what|which)\b[^?.]{0,60}?\b("
                       + _MEASURE + r")\b", re.IGNORECASE)
_DATE_Q = re.compile(r"\bwhen\b|\b(what|which|in what|on what)\s+(year|date|day|month|time|"
                     r"decade|century)\b", re.IGNORECASE)
_NAME_Q = re.compile(r"\bwhom?\b(?!\s+(?:is|are|was|were)\s+not\b)|^\W*whose\b|"
                     r"\b(which|what)\s+(person|people|author|authors|"
                     r"company|companies|organi[sz]ation|man|woman|team|player|manager|"
                     r"sender|recipient)\b", re.IGNORECASE)
_ENTITY_Q = re.compile(r"^\W*(?:in |on |at |for |from |to |of )?(which|what)\b",
                       re.IGNORECASE)

_NUMBER_WORDS = frozenset("""zero one two three four five six seven eight nine ten eleven
twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty
fifty sixty seventy eighty ninety hundred thousand million billion dozen half twice
double triple""".split())
_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|"
           "december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|wed|thu|fri|sat|sun"
_DATE = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b|\b(" + _MONTHS + "|" + _DAYS + r")\b|"
                   r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b\d{1,2}(:\d\d)?\s*(am|pm)\b",
                   re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_SEPARATOR = re.compile(r"^\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?$")


def answer_type(question: str) -> str | None:
    """``date``, ``number``, ``name`` or ``entity`` by the rules above; None for a question
    answered by explanation (how do I..., why..., describe...) or a plain search phrase."""
    if _DATE_Q.search(question):
        return "date"
    if _NAME_Q.search(question):
        return "name"
    if _NUMBER_Q.search(question):
        return "number"
    if _ENTITY_Q.search(question):
        return "entity"
    return None


def has_value(text: str, kind: str, question: str) -> bool:
    """Whether ``text`` holds a value of ``kind`` that the question does not already
    name (the number asked about is not its own answer)."""
    asked = question.lower()
    if kind == "number":
        return any(n not in asked for n in _NUMBER.findall(text)) or any(
            w.lower() in _NUMBER_WORDS and w.lower() not in asked for w in _WORD.findall(text))
    if kind == "date":
        return any(m.group(0).lower() not in asked for m in _DATE.finditer(text))
    if kind == "name":
        if any(e.lower() not in asked for e in _EMAIL.findall(text)):
            return True
        words = text.split()
        for i, token in enumerate(words):
            first = i == 0 or words[i - 1].endswith((".", "!", "?", ":", "|"))
            for w in _WORD.findall(token)[:1]:
                if w[:1].isupper() and not first and w.lower() not in asked and len(w) > 1:
                    return True
        return False
    return True


@dataclass(slots=True)
class Table:
    """A Markdown table of a source: its header cells and body rows (cells as text), and
    the line of the source text where it starts."""

    header: list[str]
    rows: list[list[str]]
    line: int = 0


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", body)]


def parse_tables(text: str) -> list[Table]:
    """Markdown tables in ``text`` (as the PDF and office loaders write them: a header row,
    a ``|---|`` line, body rows); text around them is ignored."""
    lines = text.splitlines()
    tables: list[Table] = []
    i = 0
    while i + 1 < len(lines):
        head, sep = lines[i].strip(), lines[i + 1].strip()
        if head.startswith("|") and _SEPARATOR.match(sep):
            header = _cells(head)
            rows: list[list[str]] = []
            j = i + 2
            while j < len(lines) and lines[j].strip().startswith("|"):
                row = _cells(lines[j])
                rows.append((row + [""] * len(header))[:max(len(header), len(row))])
                j += 1
            tables.append(Table(header, rows, i))
            i = j
        else:
            i += 1
    return tables
