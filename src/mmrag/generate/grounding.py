"""Grounding: check an answer sentence by sentence against the sources it cites.

A generator may write a fluent sentence that no source says, or copy a number wrong.
After generation, :func:`check_support` cuts the answer into sentences
(:func:`split_sentences`, which keeps "e.g.", "Fig. 3" and "28.4" whole) and scores each
against its sources with a :class:`SupportChecker` chosen by name
(``generate.support_checker``):

``lexical+embedding`` (default)  the share of the sentence's content words and numbers
    found in the source, averaged with the cosine between the sentence and the source's
    closest window under the index's text encoder. Cheap, offline, no extra model.
``nli``  a sentence-transformers ``CrossEncoder`` NLI model (``generate.nli_model``, an
    id or local folder): the entailment probability of the sentence given the source's
    closest window. Sharper on paraphrases and negations, if a user has such a model.

A sentence is checked against the sources its own ``[n]`` markers name; a sentence with
no marker (the middle of a paragraph whose marker closes it, or a model that forgot to
cite) is checked against every source the generator was given. Its support score is its
best source's score. Independently of any score, a number in a sentence that appears in
none of those sources (:func:`numbers_in`) is flagged and makes the sentence unsupported:
numbers are what readers copy, and what models most often get subtly wrong.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError
from ..registry import Registry
from ..types import SentenceSupport
from .citations import cited_numbers
from .extractive import content_terms

__all__ = ["EmbedFn", "SupportChecker", "check_support", "checkers", "create_checker",
           "drop_unsupported",
           "grounded_share", "memo_embed", "numbers_in", "split_sentences", "windows"]

# texts -> L2-normalised float32 vectors, shape (n, dim): an index's text encoder
EmbedFn = Callable[[Sequence[str]], np.ndarray]

LEXICAL_WEIGHT = 0.5   # lexical+embedding: share of the lexical part in the score
WINDOW_CHARS = 400     # sources are embedded in windows of about this many characters
MAX_WINDOWS = 12       # per source: a long page costs at most this many encodings

_MARKER = re.compile(r"\[\s*\d+(?:\s*[-–,;]\s*\d+)*\s*\]")
# An abbreviation's full stop does not end a sentence ("e.g. the", "Fig. 3", "Dr. No").
_ABBREV = frozenset("""
e.g i.e etc vs cf al fig figs eq eqs no nos p pp vol ch sec dr mr mrs ms prof st jr sr
inc ltd co corp approx ca resp dept est min max nr tab art
""".split())
# candidate ends: ., ! or ? (and closing quotes/brackets after them) then whitespace
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)")
_AFTER = re.compile(r"(?:\s*" + _MARKER.pattern + r")+")  # "... rose. [1]" keeps its marker
# 1,000 / 28.4 / 28,4 / 1 000 000 / 12% / -3 — digits with separators inside, not "v2"
# (a plain space is not a separator: "in 2023 10 people" is two numbers)
_NUMBER = re.compile(r"(?<![\w.,])[-−]?(?:\d{1,3}(?:[\u202f\u00a0]\d{3})+|\d+(?:[.,]\d+)*)"
                     r"(?![\w])")
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split())}


# -- sentences ---------------------------------------------------------------------------
def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (whitespace trimmed, none empty).

    Ends are ``.``, ``!``, ``?`` or a line break, but not the full stop of an
    abbreviation or an initial ("e.g.", "Fig.", "J. Smith"), nor a decimal point (no
    space follows it). Citation markers right after the end ("rose. [1]") belong to the
    sentence they follow.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for line in re.finditer(r"[^\n]+", text):
        start = line.start()
        for end in _END.finditer(text, line.start(), line.end()):
            if _abbreviation(text, start, end.start()):
                continue
            stop = end.end()
            marker = _AFTER.match(text, stop, line.end())
            stop = marker.end() if marker else stop
            spans.append((start, stop))
            start = stop
        spans.append((start, line.end()))
    return [s for s in (_trim(text, a, b) for a, b in spans) if s[0] < s[1]]


def _abbreviation(text: str, start: int, dot: int) -> bool:
    """Whether the full stop at ``dot`` closes an abbreviation or an initial."""
    if text[dot] != ".":
        return False
    word = re.search(r"([\w.]+)$", text[start:dot])
    if not word:
        return False
    token = word.group(1).lower().rstrip(".")
    if token in _ABBREV:
        return True
    nxt = text[dot + 1:dot + 3].strip()[:1]
    single = len(token) == 1 and token.isalpha()
    return single and nxt.isupper() and text[dot - 1].isupper()  # "J. Smith"


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


# -- numbers -----------------------------------------------------------------------------
def numbers_in(text: str) -> list[tuple[str, str]]:
    """``(as written, canonical value)`` of every number in ``text``, citation markers
    excluded. "1,000", "1\u202f000" and "1000" are the same value; "28,4" is "28.4" (a comma
    followed by other than three digits is a decimal comma); "2.50" is "2.5". Percent
    signs and units are ignored: "12%" matches "12 percent".
    """
    clean = _MARKER.sub(lambda m: " " * len(m.group()), text)
    return [(m.group(), _canonical(m.group())) for m in _NUMBER.finditer(clean)]


def _canonical(raw: str) -> str:
    s = raw.replace("−", "-").replace("\u202f", " ").replace("\u00a0", " ")
    groups = re.split(r"[., ]", s.lstrip("-"))
    seps = re.findall(r"[., ]", s)
    if seps and all(len(g) == 3 for g in groups[1:]) and (len(set(seps)) == 1 and (
            len(seps) > 1 or seps[0] in ", ")):
        s = s.replace(seps[0], "")  # thousands: 1,000 / 1 000 / 1.000.000
    elif seps:
        *head, last = re.split(r"[., ]", s)
        s = "".join(head) + "." + last  # the last separator is the decimal point
    try:
        value = float(s)
    except ValueError:
        return raw
    if not math.isfinite(value):
        return raw
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _source_numbers(texts: Sequence[str]) -> set[str]:
    found = {value for t in texts for _, value in numbers_in(t)}
    words = {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}
    found.update(_canonical(v) for w, v in _NUMBER_WORDS.items() if w in words)
    return found


# -- checkers ----------------------------------------------------------------------------
@runtime_checkable
class SupportChecker(Protocol):
    """Scores claims against passages: ``score(claims, passages)`` → an array of shape
    (len(claims), len(passages)) in [0, 1], 1 meaning the passage states the claim."""

    name: str

    def score(self, claims: Sequence[str], passages: Sequence[str]) -> np.ndarray: ...


# name → factory(embed: EmbedFn | None, settings) -> SupportChecker
checkers: Registry[SupportChecker] = Registry("support checker")


def windows(text: str, size: int = WINDOW_CHARS, limit: int = MAX_WINDOWS) -> list[str]:
    """``text`` as runs of whole sentences of about ``size`` characters (the first
    ``limit``): an encoder reads a few hundred tokens, so a whole page embedded at once
    would be judged by its opening lines."""
    out: list[str] = []
    current = ""
    for a, b in split_sentences(text):
        piece = text[a:b]
        if current and len(current) + len(piece) > size:
            out.append(current)
            current = ""
        current = f"{current} {piece}".strip()
        while len(current) > 2 * size:  # one huge "sentence" (a table, OCR run)
            out.append(current[:size])
            current = current[size:]
    if current:
        out.append(current)
    return out[:limit] or [text[:size]]


def lexical_support(claim: str, passage: str) -> float:
    """Share of the claim's content words (and numbers) that the passage contains."""
    terms = set(content_terms(_MARKER.sub(" ", claim)))
    if not terms:
        return 1.0
    have = set(content_terms(passage))
    return len(terms & have) / len(terms)


@checkers.register("lexical+embedding")
class LexicalEmbeddingChecker:
    """Mean of the lexical share and the best window cosine (clipped at 0); without an
    embed function (an Answerer built by hand), the lexical share alone."""

    name = "lexical+embedding"

    def __init__(self, embed: EmbedFn | None = None, lexical_weight: float = LEXICAL_WEIGHT,
                 **_: Any):
        self.embed = embed
        self.lexical_weight = lexical_weight if embed is not None else 1.0

    def score(self, claims: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        out = np.array([[lexical_support(c, p) for p in passages] for c in claims],
                       dtype=np.float32).reshape(len(claims), len(passages))
        if self.embed is None or not claims or not passages:
            return out
        cos = _window_max(claims, passages, self._cosines)
        w = self.lexical_weight
        return w * out + (1 - w) * np.clip(cos, 0.0, 1.0)

    def _cosines(self, claims: Sequence[str], wins: Sequence[str]) -> np.ndarray:
        assert self.embed is not None
        a = np.asarray(self.embed([_MARKER.sub(" ", c) for c in claims]), dtype=np.float32)
        b = np.asarray(self.embed(list(wins)), dtype=np.float32)
        return a @ b.T


@checkers.register("nli")
class NliChecker:
    """Entailment probability from a sentence-transformers NLI ``CrossEncoder``: premise
    = a window of the source, hypothesis = the claim. The entailment column is found by
    the model's ``id2label``; a one-logit model is read through a sigmoid."""

    name = "nli"

    def __init__(self, embed: EmbedFn | None = None, model: str = "", device: str = "cpu",
                 **_: Any):
        if not model:
            raise ConfigError("the nli support checker needs generate.nli_model: a "
                              "sentence-transformers CrossEncoder NLI id or local folder")
        from sentence_transformers import CrossEncoder

        from ..encode._util import first_line, resolve_model

        self.model_name = model
        try:
            self._model = CrossEncoder(resolve_model(model, "NLI model"), device=device)
        except ConfigError:
            raise
        except Exception as exc:  # HF raises many types; one line naming the model
            raise ConfigError(f"cannot load NLI model {model!r}: {first_line(exc)}") from None
        labels = getattr(self._model.model.config, "id2label", {}) or {}
        self._entail = next((int(i) for i, lab in labels.items()
                             if str(lab).lower().startswith("entail")), None)

    def score(self, claims: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        if not claims or not passages:
            return np.zeros((len(claims), len(passages)), dtype=np.float32)
        return _window_max(claims, passages, self._entailment)

    def _entailment(self, claims: Sequence[str], wins: Sequence[str]) -> np.ndarray:
        pairs = [(w, _MARKER.sub(" ", c)) for c in claims for w in wins]
        logits = np.asarray(self._model.predict(pairs, show_progress_bar=False,
                                                convert_to_numpy=True, apply_softmax=False),
                            dtype=np.float32).reshape(len(pairs), -1)
        if logits.shape[1] == 1 or self._entail is None:
            probs = 1.0 / (1.0 + np.exp(-logits[:, -1]))
        else:
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = (e / e.sum(axis=1, keepdims=True))[:, self._entail]
        return probs.reshape(len(claims), len(wins))


def _window_max(claims: Sequence[str], passages: Sequence[str],
                pairwise: Callable[[Sequence[str], Sequence[str]], np.ndarray]
                ) -> np.ndarray:
    """Claim × passage: the best of ``pairwise`` over the passage's windows."""
    owner: list[int] = []
    wins: list[str] = []
    for j, p in enumerate(passages):
        for w in windows(p):
            owner.append(j)
            wins.append(w)
    sims = np.asarray(pairwise(claims, wins), dtype=np.float32)
    out = np.zeros((len(claims), len(passages)), dtype=np.float32)
    out[:] = -np.inf
    for col, j in enumerate(owner):
        out[:, j] = np.maximum(out[:, j], sims[:, col])
    out[~np.isfinite(out)] = 0.0
    return out


def create_checker(name: str, embed: EmbedFn | None = None, *, nli_model: str = "",
                   device: str = "cpu") -> SupportChecker:
    """The checker ``name`` (a registered one), with the index's embed function."""
    return checkers.create(name, embed=embed, model=nli_model, device=device)


def memo_embed(embed: EmbedFn, max_items: int = 4096) -> EmbedFn:
    """``embed`` that encodes each distinct text once while it is among the last
    ``max_items`` used: the weak-evidence rule and the support check embed the same
    source windows within one ask, and popular pages recur across asks. Thread-safe (the
    server answers in several threads); the encoding itself runs outside the lock."""
    cache: OrderedDict[str, np.ndarray] = OrderedDict()
    lock = threading.Lock()

    def cached(texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        with lock:
            known = {t: cache[t] for t in texts if t in cache}
            for t in known:
                cache.move_to_end(t)
        todo = [t for t in dict.fromkeys(texts) if t not in known]
        if todo:
            fresh = np.asarray(embed(todo), dtype=np.float32)
            known.update(zip(todo, fresh, strict=True))
            with lock:
                cache.update(zip(todo, fresh, strict=True))
                while len(cache) > max_items:
                    cache.popitem(last=False)
        return np.stack([known[t] for t in texts])

    return cached


# -- the check ---------------------------------------------------------------------------
def check_support(text: str, sources: Sequence[str], checker: SupportChecker,
                  threshold: float) -> list[SentenceSupport]:
    """One :class:`SentenceSupport` per sentence of ``text`` that makes a claim (has
    content words or numbers; a bare ``[1]`` is not a claim). ``sources[n - 1]`` is the
    text of source ``[n]``. Sentences without markers are checked against all sources."""
    spans = split_sentences(text)
    claims: list[tuple[int, int, list[int]]] = []
    for a, b in spans:
        sentence = text[a:b]
        body = _MARKER.sub(" ", sentence)
        if not content_terms(body) and not numbers_in(body):
            continue
        cited = [n for n in cited_numbers(sentence) if 1 <= n <= len(sources)]
        claims.append((a, b, cited or list(range(1, len(sources) + 1))))
    if not claims:
        return []
    scores = (checker.score([text[a:b] for a, b, _ in claims], list(sources))
              if sources else np.zeros((len(claims), 0), dtype=np.float32))
    out: list[SentenceSupport] = []
    for row, (a, b, cand) in enumerate(claims):
        sentence = text[a:b]
        best = max(cand, key=lambda n: scores[row, n - 1]) if cand else 0
        score = float(scores[row, best - 1]) if best else 0.0
        have = _source_numbers([sources[n - 1] for n in cand])
        missing = list(dict.fromkeys(raw for raw, value in numbers_in(sentence)
                                     if value not in have))
        out.append(SentenceSupport(sentence, a, b, round(score, 4),
                                   bool(best) and score >= threshold and not missing,
                                   best, missing))
    return out


def grounded_share(support: Sequence[SentenceSupport]) -> float:
    """Share of supported sentences; 1.0 when there is no claim to check."""
    return sum(s.supported for s in support) / len(support) if support else 1.0


def drop_unsupported(text: str, support: Sequence[SentenceSupport]) -> str:
    """``text`` without its unsupported sentences (what ``generate.drop_unsupported``
    returns); the rest keeps its line breaks."""
    out, pos = [], 0
    for s in sorted(support, key=lambda s: s.start):
        if not s.supported:
            out.append(text[pos:s.start])
            pos = s.end
    out.append(text[pos:])
    kept = "".join(out)
    kept = re.sub(r"[ \t]+\n", "\n", re.sub(r"[ \t]{2,}", " ", kept))
    return re.sub(r"\n{3,}", "\n\n", kept).strip()
