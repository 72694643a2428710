"""``extractive``: the offline generator. No model: it quotes the retrieved sentences (or
OCR lines) that best match the question and cites them.

It reads the numbered sources back out of the prompt (:func:`prompt.sources_of`), so it
takes exactly the messages every other generator takes and needs no side channel.

A question that asks for a quantity, a date, a name or a table value (:mod:`.spans`) is
answered with the one span that holds it: the table cell whose row and column headers
match the question, quoted with those headers (``Transformer (big), BLEU EN-DE: 28.4
[1]``), else the best-matching sentence that holds a value of the wanted kind (two for a
question in two parts). Matching is by the question's content terms weighted by their
rarity across the retrieved sentences (IDF), times the rank weight of the source. When no
span of the wanted kind matches, and for every other question, it falls back to the
sentence selection below. An e-mail's header lines also match the words their field
stands for ("Bcc:" blind copy, "From:" sent/sender). The span constants (TYPED_MIN,
CELL_VS_SENTENCE, ...) were chosen on the two shared evaluation sets. Each
sentence is scored with BM25 over the retrieved sentences (the question's content terms
against each sentence, so a term found everywhere counts for little), weighted by the
rank of its source. The best few sentences are kept, grouped by source and in their
document order, each group ending with its ``[n]``. Deterministic: the same hits give the
same answer. Document text is only ever quoted, never obeyed, so instructions hidden in
a document cannot steer it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..config import GenerateSettings
from .base import Message, generators
from .prompt import NOT_FOUND, Source, question_of, sources_of
from .spans import Table, answer_type, has_value, parse_tables

__all__ = ["ExtractiveGenerator", "content_terms"]

_WORD = re.compile(r"\w+")
_UNITS = re.compile(r"(?<=[.!?。])\s+|\n")
_STOP = frozenset("""
a about above after again against all also am an and any are as at be because been
before being below between both but by can could did do does doing down during each
either etc few for from further had has have having he her here hers him his how i if in
into is it its itself just me more most my no nor not of off on once only or other our
ours out over own same she should so some such than that the their theirs them then there
these they this those through to too under until up upon very was we were what when where
whether which while who whom whose why will with within would you your yours
according tell give say says shown show shows describe described explain mention
mentioned find get got may might must shall one ones thing things way ways much many
""".split())
# Two-letter codes table headers use for languages ("BLEU EN-DE"), so a question saying
# "English-to-German" matches them.
_CODES = {"en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian",
          "zh": "chinese", "ja": "japanese", "ko": "korean", "ru": "russian",
          "pt": "portuguese", "nl": "dutch", "ar": "arabic", "cs": "czech", "ro": "romanian"}
K1, B = 1.2, 0.75
RANK_DECAY = 0.3      # a source's weight is 1 / (1 + RANK_DECAY * (rank - 1))
KEEP_RATIO = 0.5      # keep sentences scoring at least this share of the best one
MAX_WORDS = 60        # longer "sentences" (OCR runs, tables) are cut into windows
CELL_KEEP = 0.75      # more cells are quoted when they match at least this share of the best
CELL_VS_SENTENCE = 0.5  # a matching cell beats sentences matching up to twice as much
UNTYPED = 0.8         # a cell without a value of the wanted kind counts this much
SECOND_PART = 0.4     # a second sentence must add this share of the first one's match
TYPED_MIN = 0.5       # a typed sentence must match this share of the best sentence's match
_PARTS = re.compile(r"\band\b|,|;|\bas well as\b|\bvs\.?\b|\bversus\b|\bcompared\b",
                    re.IGNORECASE)


def content_terms(text: str) -> list[str]:
    """Lower-cased, lightly stemmed words minus stop words; numbers are kept."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP]


def _stem(word: str) -> str:
    """A tiny suffix stripper: enough to match "pages"/"page", "defined"/"define"."""
    if not word.isalpha() or len(word) <= 3:
        return word
    if len(word) > 5 and word.endswith("our"):
        word = word[:-3] + "or"  # colour/color, behaviour/behavior
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", "e"),
                         ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: len(word) - len(suffix)] + repl
    return word


@dataclass(slots=True)
class _Sentence:
    source: int
    position: int
    text: str
    terms: Counter[str]
    score: float = 0.0
    matched: int = 0       # distinct question terms it shares


class ExtractiveGenerator:
    """Cited sentence selection; see the module docstring."""

    name = "extractive"
    supports_images = False
    # Quoting costs nothing per character, so it reads the hits in full rather than the
    # budget a paid model gets (the answerer honours this optional attribute).
    max_context_chars = 200_000

    def __init__(self, settings: GenerateSettings | None = None, max_sentences: int = 3):
        self.max_sentences = max_sentences

    def stream(self, messages: list[Message], *, max_tokens: int = 512,
               temperature: float = 0.0) -> Iterator[str]:
        """Yield the answer in word-sized chunks, like a model streaming tokens."""
        yield from re.findall(r"\S+\s*", self.answer(messages, max_tokens=max_tokens))

    def answer(self, messages: list[Message], max_tokens: int = 512) -> str:
        question = question_of(messages)
        query = Counter(content_terms(question))
        sources = sources_of(messages)
        sentences = [s for src in sources for s in _split(src)]
        _score(sentences, set(query))
        kind = answer_type(question)
        if kind and query:
            span = _typed_span(question, kind, set(query), sources, sentences)
            if span:
                return span
        picked = self._pick(sentences, len(query), max_words=max(8, max_tokens * 3 // 4))
        return _render(picked) if picked else NOT_FOUND

    def _pick(self, sentences: list[_Sentence], n_terms: int,
              max_words: int) -> list[_Sentence]:
        ranked = sorted((s for s in sentences if s.score > 0),
                        key=lambda s: (-s.score, s.source, s.position))
        # Weak evidence (one shared word out of a long question) is "not found".
        need = 1 if n_terms <= 2 else 2
        if not any(s.matched >= min(need, n_terms) for s in ranked):
            return []
        picked: list[_Sentence] = []
        words = 0
        for s in ranked:
            if len(picked) == self.max_sentences or s.score < KEEP_RATIO * ranked[0].score:
                break
            n = len(s.text.split())
            if picked and words + n > max_words:
                break
            if any(_same(s, p) for p in picked):
                continue
            picked.append(s)
            words += n
        return picked


@dataclass(slots=True)
class _Cell:
    source: int
    label: str            # "row header, column header"
    value: str
    cover: float          # IDF of the question terms its headers match, times rank weight
    matched: set[str]
    table: int            # which table of the source


def _rank_weight(source: int) -> float:
    return 1 / (1 + RANK_DECAY * (source - 1))


def _idf(sentences: Sequence[_Sentence], query: set[str]) -> dict[str, float]:
    """Rarity of each question term across the retrieved sentences."""
    n = max(len(sentences), 1)
    df = Counter(t for s in sentences for t in set(s.terms) & query)
    return {t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in query}


def _matches(query: set[str], text: str) -> set[str]:
    """Question terms a header's words stand for: equal, a prefix abbreviation ("Fri",
    "Temp."), a longer form, or a language code ("EN-DE")."""
    found = set()
    for h in content_terms(text):
        h = _CODES.get(h, h)
        for q in query:
            if h == q or (len(h) >= 3 and h.isalpha() and q.startswith(h)) or \
                    (len(q) >= 4 and q.isalpha() and h.startswith(q)):
                found.add(q)
    return found


def _cells(kind: str, question: str, query: set[str], sources: Sequence[Source],
           idf: dict[str, float]) -> list[_Cell]:
    """Table cells whose row (its other cells) and column header both match the question."""
    out: list[_Cell] = []
    for src in sources:
        for t_no, table in enumerate(parse_tables(src.text)):
            out.extend(_table_cells(table, t_no, src.number, kind, question, query, idf))
    return out


def _table_cells(table: Table, t_no: int, source: int, kind: str, question: str,
                 query: set[str], idf: dict[str, float]) -> list[_Cell]:
    cols = [_matches(query, h) for h in table.header]
    out = []
    for row in table.rows:
        for c, value in enumerate(row[:len(cols)]):
            if c == 0 or not value or not cols[c]:
                continue  # the first column names the row; an empty cell answers nothing
            value_terms = set(content_terms(value))
            if value_terms and value_terms <= query:
                continue  # the question names this value: it is not the answer
            by_row = _matches(query, " ".join(v for i, v in enumerate(row) if i != c))
            if not by_row:
                continue
            hit = by_row | cols[c]
            typed = kind != "number" or has_value(value, "number", question)
            cover = sum(idf.get(t, 0.0) for t in hit) * _rank_weight(source)
            out.append(_Cell(source, f"{row[0]}, {table.header[c]}".strip(", "), value,
                             cover * (1.0 if typed else UNTYPED), hit, t_no))
    return out


def _typed_span(question: str, kind: str, query: set[str], sources: Sequence[Source],
                sentences: Sequence[_Sentence]) -> str:
    """The cell(s) or sentence(s) holding the value the question asks for, cited; "" when
    none matches well enough (the caller falls back to sentence selection)."""
    idf = _idf(sentences, query)
    need = min(1 if len(query) <= 2 else 2, len(query))
    cells = [c for c in _cells(kind, question, query, sources, idf) if len(c.matched) >= need]
    if kind == "entity" and not cells:
        return ""  # "what/which" questions about prose are answered by the general path

    def cover(s: _Sentence) -> float:
        return sum(idf[t] for t in query & set(s.terms)) * _rank_weight(s.source)

    # windows that overlap by half, so a value near a window's edge keeps its context
    windows = [s for src in sources for s in _split(src, stride=MAX_WORDS // 2)]
    _score(windows, query)
    top = max((cover(s) for s in windows), default=0.0)
    typed = [s for s in windows if s.matched >= need and has_value(s.text, kind, question)
             and cover(s) >= TYPED_MIN * top]
    best_sentence = max(typed, key=lambda s: (cover(s), s.score), default=None)
    best_cell = max(cells, key=lambda c: c.cover, default=None)
    # a cell whose row and column both match is the more precise evidence: it wins
    # unless a sentence matches clearly more of the question
    if best_cell is not None and (best_sentence is None
                                  or best_cell.cover >= CELL_VS_SENTENCE * cover(best_sentence)):
        kept = [best_cell]
        if _PARTS.search(question):  # "which colour and what time...": one cell a part
            for c in sorted(cells, key=lambda c: -c.cover):
                if len(kept) < 3 and c.source == best_cell.source \
                        and c.table == best_cell.table and c.cover >= CELL_KEEP * best_cell.cover \
                        and c.matched - set().union(*(k.matched for k in kept)):
                    kept.append(c)
        return "; ".join(f"{c.label}: {c.value}" for c in kept) + f" [{best_cell.source}]"
    if best_sentence is None:
        return ""
    picked = [best_sentence]
    if _PARTS.search(question):  # a question in two parts may need a second sentence
        seen = query & set(best_sentence.terms)

        def added(s: _Sentence) -> float:
            return sum(idf[t] for t in (query & set(s.terms)) - seen) * _rank_weight(s.source)

        second = max((s for s in typed if s is not best_sentence and not _same(s, best_sentence)),
                     key=lambda s: (added(s), s.score), default=None)
        if second is not None and added(second) >= SECOND_PART * cover(best_sentence):
            picked.append(second)
    return _render(picked)


# What the header fields of an e-mail (as the mail loaders write them, one per line) say
# in words, so "who was blind-copied?" finds the "Bcc:" line.
_FIELDS = {"from": "sent sender send author", "to": "recipient receive address sent",
           "cc": "copy copied cc", "bcc": "blind copy copied bcc",
           "date": "date sent day", "subject": "subject title",
           "attachments": "attachment attached file"}
_FIELD = re.compile(r"^(from|to|cc|bcc|date|subject|attachments):\s", re.IGNORECASE)


def _field_terms(text: str) -> list[str]:
    match = _FIELD.match(text)
    return content_terms(_FIELDS[match.group(1).lower()]) if match else []


def _split(source: Source, stride: int = MAX_WORDS) -> list[_Sentence]:
    """Sentences of a source: PDF lines wrapped mid-sentence are joined first, OCR lines
    and headings (no end punctuation, next line capitalised) stay apart. A unit longer
    than MAX_WORDS is cut into windows that start every ``stride`` words. A header line
    of an e-mail also carries the words its field name stands for."""
    out: list[_Sentence] = []
    for block in re.split(r"\n\s*\n", source.text):
        for line in _join_abbreviations(_UNITS.split(_unwrap(block))):
            words = line.split()
            last = max(len(words) - MAX_WORDS, 0)
            starts = list(range(0, last, stride)) + [last] if stride < MAX_WORDS \
                else range(0, len(words), MAX_WORDS)
            for start in starts:
                text = " ".join(words[start:start + MAX_WORDS])
                if text and text != "…":
                    terms = Counter(content_terms(text) + _field_terms(text))
                    out.append(_Sentence(source.number, len(out), text, terms))
    return out


_ABBREVIATION = re.compile(r"(?:\b(?:vs|e\.g|i\.e|al|etc|fig|figs|cf|no|eq|approx|resp|"
                           r"sec|ch|vol|pp|p)\.)$", re.IGNORECASE)


def _join_abbreviations(units: list[str]) -> list[str]:
    """Undo splits after "vs.", "e.g.", "et al." and the like: not sentence ends."""
    out: list[str] = []
    for unit in units:
        if out and _ABBREVIATION.search(out[-1]) and (unit[:1].islower() or unit[:1].isdigit()):
            out[-1] = f"{out[-1]} {unit}"
        else:
            out.append(unit)
    return out


def _unwrap(block: str) -> str:
    """Join a line onto the previous one when it continues a sentence (lower-case start,
    no end punctuation before it); other breaks stay as unit separators."""
    text = ""
    for ln in (ln.strip() for ln in block.splitlines()):
        if not ln:
            continue
        wrapped = text and not text.endswith((".", "!", "?", ":", "。")) and ln[:1].islower()
        text = f"{text} {ln}" if wrapped else (f"{text}\n{ln}" if text else ln)
    return text


def _score(sentences: Sequence[_Sentence], query: set[str]) -> None:
    """BM25 of the question against each sentence, times the source's rank weight."""
    if not sentences or not query:
        return
    n = len(sentences)
    avg = sum(sum(s.terms.values()) for s in sentences) / n or 1.0
    df = Counter(t for s in sentences for t in set(s.terms) & query)
    for s in sentences:
        shared = query & set(s.terms)
        length = sum(s.terms.values())
        bm25 = 0.0
        for t in shared:
            idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            tf = s.terms[t]
            bm25 += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / avg))
        s.score = bm25 / (1 + RANK_DECAY * (s.source - 1))
        s.matched = len(shared)


def _same(a: _Sentence, b: _Sentence) -> bool:
    ta, tb = set(a.terms), set(b.terms)
    return bool(ta | tb) and len(ta & tb) / len(ta | tb) > 0.8


def _render(picked: list[_Sentence]) -> str:
    """Group by source (best source first), document order inside a group, then [n]."""
    best: dict[int, float] = {}
    for s in picked:
        best[s.source] = max(best.get(s.source, 0.0), s.score)
    lines = []
    for source in sorted(best, key=lambda n: (-best[n], n)):
        group = sorted((s for s in picked if s.source == source), key=lambda s: s.position)
        lines.append(" ".join(s.text for s in group) + f" [{source}]")
    return "\n".join(lines)


@generators.register("extractive")
def _create(settings: GenerateSettings) -> ExtractiveGenerator:
    return ExtractiveGenerator(settings)
