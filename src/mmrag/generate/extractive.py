"""``extractive``: the offline generator. No model: it quotes the retrieved sentences (or
OCR lines) that best match the question and cites them.

It reads the numbered sources back out of the prompt (:func:`prompt.sources_of`), so it
takes exactly the messages every other generator takes and needs no side channel. Each
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
K1, B = 1.2, 0.75
RANK_DECAY = 0.3      # a source's weight is 1 / (1 + RANK_DECAY * (rank - 1))
KEEP_RATIO = 0.5      # keep sentences scoring at least this share of the best one
MAX_WORDS = 60        # longer "sentences" (OCR runs, tables) are cut into windows


def content_terms(text: str) -> list[str]:
    """Lower-cased, lightly stemmed words minus stop words; numbers are kept."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP]


def _stem(word: str) -> str:
    """A tiny suffix stripper: enough to match "pages"/"page", "defined"/"define"."""
    if not word.isalpha() or len(word) <= 3:
        return word
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
        query = Counter(content_terms(question_of(messages)))
        sentences = [s for src in sources_of(messages) for s in _split(src)]
        _score(sentences, set(query))
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


def _split(source: Source) -> list[_Sentence]:
    """Sentences of a source: PDF lines wrapped mid-sentence are joined first, OCR lines
    and headings (no end punctuation, next line capitalised) stay apart."""
    out: list[_Sentence] = []
    for block in re.split(r"\n\s*\n", source.text):
        for line in _UNITS.split(_unwrap(block)):
            words = line.split()
            for start in range(0, len(words), MAX_WORDS):
                text = " ".join(words[start:start + MAX_WORDS])
                if text and text != "…":
                    out.append(_Sentence(source.number, len(out), text,
                                         Counter(content_terms(text))))
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
