"""Training pairs from an index's own content, with no labels.

Each pseudo-query comes from a passage (a stored text chunk, page or captioned figure)
and that passage is its positive:

* **headings**: a chunk's ``section`` or a heading line of a page ("3.2 Results") asks
  for the text under it;
* **captions**: a figure or table caption ("Figure 3: revenue by quarter") asks for its
  page (the caption's own words removed from it, so the pair teaches more than copying);
* **inverse cloze**: a sentence taken out of its passage asks for the rest of it
  (Lee et al. 2019: what surrounds a sentence is what a question about it would find);
* **generator**: with a configured non-extractive generator, a question it writes.

The positive is what the text encoder saw (the stored text) minus the pseudo-query's own
words, and only sentences near the top of a passage are used: the encoder reads the first
few hundred tokens, so a sentence from further down would pair a query with text the
model never sees for that passage.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..ingest.figures import CAPTION_RE

__all__ = ["Pair", "Passage", "build_pairs", "caption_pairs", "cloze_pairs",
           "generator_pairs", "heading_pairs", "split_pairs", "split_sentences"]

MIN_WORDS, MAX_WORDS = 5, 40       # a sentence worth asking about, and not a paragraph
HEAD_WORDS = 160                   # cloze sentences come from the first words only
MIN_REST_WORDS = 12                # a positive needs something left once the query is out
_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])|\n{2,}|\n(?=\s*[-*•]\s)")
_NUMBERED_HEADING = re.compile(r"^\s*(\d+(\.\d+)*\.?|[IVX]+\.|[A-Z]\.)\s+\S")
_MD_HEADING = re.compile(r"^\s*#{1,6}\s+(.+?)\s*#*\s*$")


@dataclass(slots=True)
class Passage:
    """What the text encoder embedded for one stored item."""

    id: str
    doc_id: str
    page: int
    text: str
    section: str = ""
    modality: str = "text"
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def page_key(self) -> tuple[str, int]:
        return (self.doc_id, self.page)


@dataclass(slots=True)
class Pair:
    """A pseudo-query and its positive; ``negatives`` are filled by negatives.py."""

    query: str
    positive: str
    passage_id: str
    page_key: tuple[str, int]
    kind: str                         # heading | caption | cloze | generator
    negatives: list[str] = field(default_factory=list)


def _words(text: str) -> int:
    return len(text.split())


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _without(text: str, part: str) -> str:
    """``text`` with ``part`` taken out once (whitespace-insensitive), and heading marks
    left bare by it ("## ")."""
    pattern = r"\s+".join(re.escape(w) for w in part.split())
    rest = re.sub(pattern, " ", text, count=1) if pattern else text
    return _clean(re.sub(r"(?m)^\s*#{1,6}\s*$", "", rest))


def _head(text: str, words: int = HEAD_WORDS) -> str:
    """The first ``words`` words of ``text``, line breaks kept (they mark headings)."""
    m = list(re.finditer(r"\S+", text))
    return text[:m[words - 1].end()] if len(m) > words else text


def split_sentences(text: str) -> list[str]:
    """Sentences and list items. Heading lines and blank lines end a sentence; other line
    breaks (PDF wrapping) stay inside it; headings themselves are not sentences."""
    out: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            out.extend(_clean(s) for s in _SENT_END.split("\n".join(buf)) if s and s.strip())
            buf.clear()

    for line in text.splitlines():
        if not line.strip() or _MD_HEADING.match(line) or _looks_like_heading(line):
            flush()
        else:
            buf.append(line)
    flush()
    return out


def _looks_like_heading(line: str) -> bool:
    line = line.strip()
    n = _words(line)
    if not 2 <= n <= 12 or line.endswith((".", ",", ";", ":")) or CAPTION_RE.match(line):
        return False
    if _MD_HEADING.match(line) or _NUMBERED_HEADING.match(line):
        return True
    words = [w for w in re.findall(r"[A-Za-z][\w'-]*", line) if len(w) > 3]
    return bool(words) and all(w[0].isupper() for w in words)


def _strip_number(heading: str) -> str:
    """"3.2 Results" → "Results": users do not type section numbers."""
    m = _NUMBERED_HEADING.match(heading)
    return heading[m.end() - 1:].strip() if m else heading.strip()


def heading_pairs(passages: Iterable[Passage]) -> list[Pair]:
    """A chunk's section title, or a heading line of its text, asks for what follows."""
    out: list[Pair] = []
    for p in passages:
        # a section path ("Guide > Install > Linux") asks by its last step
        heads = [p.section.split(" > ")[-1].strip()] if p.section.strip() else []
        lines = p.text.splitlines()
        for i, line in enumerate(lines[:40]):
            m = _MD_HEADING.match(line)
            if (m or _looks_like_heading(line)) and i + 1 < len(lines):
                heads.append(m.group(1) if m else line.strip())
        for head in dict.fromkeys(_strip_number(h) for h in heads):
            rest = _without(p.text, head)
            if 2 <= _words(head) <= 15 and _words(rest) >= MIN_REST_WORDS:
                out.append(Pair(head, rest, p.id, p.page_key, "heading"))
    return out


def _caption_body(caption: str) -> str:
    """"Figure 3: Revenue by quarter" → "Revenue by quarter" (the label alone asks for
    nothing a reader would type)."""
    m = CAPTION_RE.match(caption)
    return _clean(caption[m.end():] if m else caption).lstrip(":.-–— ")


def caption_pairs(passages: Sequence[Passage]) -> list[Pair]:
    """Figure/table captions (stored on figure items, or caption lines in page text) ask
    for the page that shows them."""
    pages = {p.page_key: p for p in passages if p.modality == "page"}
    out: list[Pair] = []
    seen: set[tuple[str, tuple[str, int]]] = set()
    for p in passages:
        found = []
        caption = str(p.metadata.get("caption") or "")
        if caption:
            found.append(caption)
        found += [line for line in p.text.splitlines() if CAPTION_RE.match(line)]
        for cap in found:
            body = _caption_body(cap)
            if not MIN_WORDS - 2 <= _words(body) <= MAX_WORDS or (body, p.page_key) in seen:
                continue
            seen.add((body, p.page_key))
            host = pages.get(p.page_key, p)
            rest = _without(_without(host.text, cap), body)
            if _words(rest) >= MIN_REST_WORDS:
                out.append(Pair(body, rest, host.id, host.page_key, "caption"))
    return out


def cloze_pairs(passages: Iterable[Passage], rng: random.Random, per_passage: int = 2
                ) -> list[Pair]:
    """Inverse cloze: a sentence from the top of a passage asks for the passage without it."""
    out: list[Pair] = []
    for p in passages:
        head = _head(p.text)
        sents = [s for s in split_sentences(head)
                 if MIN_WORDS <= _words(s) <= MAX_WORDS and not CAPTION_RE.match(s)
                 and sum(c.isalpha() for c in s) > len(s) / 2]
        for s in rng.sample(sents, min(per_passage, len(sents))):
            rest = _without(p.text, s)
            if _words(rest) >= MIN_REST_WORDS:
                out.append(Pair(s, rest, p.id, p.page_key, "cloze"))
    return out


QUESTION_PROMPT = ("Write one short question that the passage below answers. Reply with the "
                   "question only.\n\n<passage>\n{text}\n</passage>")


def generator_pairs(passages: Sequence[Passage], ask: Callable[[str], str], n: int,
                    rng: random.Random) -> list[Pair]:
    """Questions a generator writes for ``n`` passages picked at random; ``ask`` maps a
    prompt to the reply. A reply that is not one short line is dropped."""
    out: list[Pair] = []
    for p in rng.sample(list(passages), min(n, len(passages))):
        text = _head(p.text)
        lines = ask(QUESTION_PROMPT.format(text=text)).strip().splitlines()
        reply = _clean(lines[0]) if lines else ""
        if 3 <= _words(reply) <= MAX_WORDS:
            out.append(Pair(reply, p.text, p.id, p.page_key, "generator"))
    return out


def build_pairs(passages: Sequence[Passage], *, seed: int = 0, max_pairs: int = 4000,
                ask: Callable[[str], str] | None = None, generator_queries: int = 0
                ) -> list[Pair]:
    """Every builder's pairs, one per distinct query (the first builder wins), shuffled
    and capped at ``max_pairs``."""
    rng = random.Random(seed)
    built = heading_pairs(passages) + caption_pairs(passages) + cloze_pairs(passages, rng)
    if ask is not None and generator_queries:
        built += generator_pairs(passages, ask, generator_queries, rng)
    unique = list({pair.query.lower(): pair for pair in reversed(built)}.values())[::-1]
    rng.shuffle(unique)
    return unique[:max_pairs]


def split_pairs(pairs: Sequence[Pair], holdout: float, seed: int = 0
                ) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out): the held-out pseudo-queries pick the best checkpoint and decide
    whether the tuned model is switched in at all."""
    order = list(pairs)
    random.Random(seed + 1).shuffle(order)
    n_held = max(1, round(len(order) * holdout)) if len(order) > 1 else 0
    return order[n_held:], order[:n_held]
