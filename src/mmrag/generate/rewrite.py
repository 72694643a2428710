"""Follow-up questions rewritten into standalone queries, from the conversation so far.

Retrieval sees one query, not a chat: "and in the appendix?" finds nothing by itself.
:class:`Rewriter` turns the last user turn into a query that stands alone; ``Index.chat``
searches with it and shows it. Two rewriters are registered:

``rules``  offline, deterministic: a turn is a follow-up when it opens with "and", "what
           about", "how about"..., trails off ("..."), is a bare prepositional phrase ("in
           the appendix?"), refers to "the second chart" / "the other table", or leans on
           a pronoun (it, they, that...) with few words of its own. A follow-up borrows the
           previous standalone question: the lead-in is appended to it, an ordinal phrase
           replaces the previous one ("the first chart" → "the second chart"), a pronoun is
           replaced by the previous question's topic. A question that is none of these
           passes through unchanged, so a new topic never drags old terms in.
``llm``    the configured generator with a short rewrite prompt, falling back to the rules
           on any error or an empty reply; it is only asked when there is history.

A follow-up that points back at the evidence ("it", "that document", "the second chart")
also carries the documents the previous answer cited, so the caller can restrict the
search to them (and drop the restriction when it finds nothing).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import QueryError
from ..registry import Registry
from .base import Generator, Message, Part

__all__ = ["Rewrite", "Rewriter", "RuleRewriter", "LLMRewriter", "SourceRef", "Turn",
           "create_rewriter", "rewriters", "to_turns"]

log = logging.getLogger(__name__)

_WORD = re.compile(r"[\w'’-]+", re.UNICODE)
_LEAD = re.compile(r"^\s*(?:(?:and|also|plus|but|so|then|ok(?:ay)?)\b[\s,]*"
                   r"|(?:what|how)\s+about\b\s*|same\s+(?:for|with)\b\s*|what\s+of\b\s*)",
                   re.IGNORECASE)
_ELLIPSIS = re.compile(r"^\s*(?:\.\.\.|…)|(?:\.\.\.|…)\s*\??\s*$")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "last", "next",
            "previous", "other", "same", "1st", "2nd", "3rd", "4th", "5th")
_ORDINAL = re.compile(r"\b(?:the\s+)?(" + "|".join(ORDINALS) + r")\s+([a-z]+)\b",
                      re.IGNORECASE)
_PREPOSITIONS = frozenset("in on for at from during under by with without after before "
                          "inside within".split())
_PRONOUNS = frozenset("it its they them their that those this these there he she him her "
                      "his".split())
# "that document", "this file", "the same report": the previous answer's sources
_DEICTIC = re.compile(r"\b(?:that|this|the\s+same|same|its)\s+(?:document|doc|file|report|"
                      r"paper|pdf|deck|slides?|presentation|e-?mail|mail|message|page|book|"
                      r"article|one|source)s?\b|\b(?:in|from|of)\s+(?:it|there)\b",
                      re.IGNORECASE)
_STOP = frozenset("""
a an the and or but of to in on at by for from with without into onto about as is are was
were be been being do does did done have has had can could should would will shall may
might must what which who whom whose when where why how there here than then so if not
no yes please tell me show give list find explain describe say says said i we you my our
your any some all also just only very more most much many its it they them their that
those this these he she him her his whats what's
""".split()) | frozenset("""
built made designed wrote written created published released founded used located called
named rebuilt started ended happened mean means work works cost costs contain contains
""".split())  # verbs that end a question's topic rather than belong to it
_NUMBER = re.compile(r"\b\d[\d.,]*\b")
_FOLLOWUP_MAX_OWN_WORDS = 4  # a pronoun question with more content words stands alone


@dataclass(slots=True)
class SourceRef:
    """A document (and page) an assistant turn cited, so "it" can point back at it."""

    doc_id: str = ""
    name: str = ""
    page: int = 0


@dataclass(slots=True)
class Turn:
    """One chat message as a rewriter sees it: who said it, the text, what it cited."""

    role: str
    text: str
    sources: list[SourceRef] = field(default_factory=list)


@dataclass(slots=True)
class Rewrite:
    """A standalone query, whether the turn was a follow-up, and the documents a deictic
    follow-up points back at (empty: search everything)."""

    query: str
    followup: bool = False
    doc_ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """What a user is shown: ``searching: <query>`` plus where, if restricted."""
        where = f"  (in {', '.join(self.names or self.doc_ids)})" if self.doc_ids else ""
        return f"{self.query}{where}"


@runtime_checkable
class Rewriter(Protocol):
    name: str

    def rewrite(self, history: Sequence[Turn], question: str) -> Rewrite:
        """``question`` as a standalone query, given the earlier ``history``."""
        ...


# name → factory(generator: Generator | None) -> Rewriter
rewriters: Registry[Rewriter] = Registry("rewriter")


# -- conversation parsing ----------------------------------------------------------------
_SOURCE_LINE = re.compile(r"^\s*\[(\d+)\]\s+(.+?)(?:,\s*page\s+(\d+))?\s+\(([^()\s]+)\)\s*$")


def to_turns(messages: Iterable[Any]) -> list[Turn]:
    """Chat messages (dicts with ``role``/``content`` and optional ``citations``,
    :class:`~mmrag.generate.base.Message` or :class:`Turn` objects) as turns. System
    messages are dropped: they instruct a model, they are not the conversation."""
    turns: list[Turn] = []
    for n, m in enumerate(messages):
        if isinstance(m, Turn):
            turns.append(m)
            continue
        role: Any
        if isinstance(m, Message):
            role, text, cited = m.role, m.text, None
        elif isinstance(m, Mapping):
            role, content, cited = m.get("role"), m.get("content"), m.get("citations")
            text = content if isinstance(content, str) else _content_text(content, n)
        elif isinstance(m, str):
            role, text, cited = "user", m, None
        else:
            raise QueryError(f"message {n} is a {type(m).__name__}, not a "
                             "{'role': ..., 'content': ...} dict")
        if role not in ("user", "assistant", "system", "developer"):
            raise QueryError(f"message {n} has role {role!r}; use user or assistant")
        if role in ("system", "developer"):
            continue
        text = text or ""
        sources = _sources(cited) if cited else _sources_in_text(text)
        turns.append(Turn(str(role), _without_sources(text), sources))
    return turns


def _content_text(content: Any, n: int) -> str:
    if content is None:
        return ""
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(str(p.get("text") or "") for p in content
                         if isinstance(p, Mapping) and p.get("type") in ("text", "input_text"))
    raise QueryError(f"message {n} content is a {type(content).__name__}, not text")


def _sources(cited: Iterable[Any]) -> list[SourceRef]:
    out = []
    for c in cited:
        get = c.get if isinstance(c, Mapping) else (lambda k, c=c: getattr(c, k, None))
        doc = str(get("doc_id") or "")
        if doc:
            out.append(SourceRef(doc, str(get("name") or ""), int(get("page") or 0)))
    return out


def _sources_in_text(text: str) -> list[SourceRef]:
    """The ``[n] file, page p  (item id)`` lines mmrag appends to an answer (the CLI and
    ``/v1/chat/completions`` print them), read back from an echoed assistant turn."""
    out = []
    for line in text.splitlines():
        m = _SOURCE_LINE.match(line)
        if m:
            out.append(SourceRef(m.group(4).split(":", 1)[0], m.group(2).strip(),
                                 int(m.group(3) or 0)))
    return out


def _without_sources(text: str) -> str:
    head, sep, _ = text.partition("\n\nSources:\n")
    return head if sep else text


# -- rules ---------------------------------------------------------------------------------
def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _own_words(text: str) -> list[str]:
    return [w for w in _words(text) if w not in _STOP and w not in _PRONOUNS
            and w not in ORDINALS]


def topic(question: str) -> str:
    """The longest run of content words of a question ("Who built the zeppelin hangar?"
    → "the zeppelin hangar"): what a pronoun in the next question most likely means."""
    tokens = _WORD.findall(question)
    best: tuple[int, int] = (0, 0)
    i = 0
    while i < len(tokens):
        if tokens[i].lower() in _STOP or tokens[i].lower() in _PRONOUNS:
            i += 1
            continue
        j = i
        while j < len(tokens) and tokens[j].lower() not in _STOP \
                and tokens[j].lower() not in _PRONOUNS:
            j += 1
        if j - i > best[1] - best[0]:
            best = (i, j)
        i = j
    if best == (0, 0):
        return ""
    start, end = best
    lead = "the " if start > 0 and tokens[start - 1].lower() == "the" else ""
    return lead + " ".join(tokens[start:end])


def _strip_end(text: str) -> str:
    return re.sub(r"(?:\s*(?:\.\.\.|…))?[\s?!.]*$", "", re.sub(r"^\s*(?:\.\.\.|…)\s*", "",
                                                               text)).strip()


class RuleRewriter:
    """Offline follow-up detection and rewriting (see the module docstring)."""

    name = "rules"

    def __init__(self, generator: Generator | None = None):
        del generator  # the rules need no model

    def rewrite(self, history: Sequence[Turn], question: str) -> Rewrite:
        # Earlier user turns are rewritten in order first: a follow-up of a follow-up
        # borrows from the standalone form of its predecessor, not from its fragment.
        previous: str | None = None
        sources: list[SourceRef] = []
        for turn in history:
            if turn.role == "user" and turn.text.strip():
                previous = self._one(previous, turn.text, []).query
                sources = []
            elif turn.role == "assistant":
                sources = turn.sources or sources
        return self._one(previous, question, sources)

    def _one(self, previous: str | None, question: str,
             sources: list[SourceRef]) -> Rewrite:
        question = " ".join(question.split())
        if not previous or not self.is_followup(question, previous):
            return Rewrite(question)
        query = self._combine(previous, question)
        points_back = bool(_DEICTIC.search(question) or _ORDINAL.search(question)
                           or any(w in ("it", "its", "they", "them", "their", "this", "that")
                                  for w in _words(question)))
        docs: dict[str, str] = {}
        if points_back:
            for s in sources:
                docs.setdefault(s.doc_id, s.name)
        return Rewrite(query, True, list(docs), [n for n in docs.values() if n])

    @staticmethod
    def is_followup(question: str, previous: str = "") -> bool:
        words = _words(question)
        if not words:
            return False
        if _LEAD.match(question) or _ELLIPSIS.search(question):
            return True
        if words[0] in _PREPOSITIONS and len(words) <= 5:  # "in the appendix?"
            return True
        if _ORDINAL.search(question) and words[0] in ("the", "and", "what", "which", "how",
                                                      "show", "describe", "explain"):
            if len(_own_words(question)) <= _FOLLOWUP_MAX_OWN_WORDS:
                return True
        if _DEICTIC.search(question):
            return True
        return (_leans_on_a_pronoun(question, previous)
                and len(_own_words(question)) <= _FOLLOWUP_MAX_OWN_WORDS
                and not _mid_clause_that(words))

    @staticmethod
    def _combine(previous: str, question: str) -> str:
        base = _strip_end(previous)
        rest = _strip_end(_LEAD.sub("", question, count=1))
        while _LEAD.match(rest):  # "and what about ..."
            rest = _strip_end(_LEAD.sub("", rest, count=1))
        ordinal = _ORDINAL.search(rest)
        if ordinal:  # "the second chart" replaces "the first chart" / "the chart"
            noun = ordinal.group(2).lower().rstrip("s")
            old = re.search(r"\b(?:the\s+)?(?:(?:" + "|".join(ORDINALS) + r")\s+)?"
                            + re.escape(noun) + r"s?\b", base, re.IGNORECASE)
            if old:
                phrase = ordinal.group(0)
                phrase = phrase if phrase.lower().startswith("the ") else "the " + phrase
                replaced = base[:old.start()] + phrase + base[old.end():]
                leftover = _strip_end((rest[:ordinal.start()] + rest[ordinal.end():]).strip())
                if _own_words(leftover) and not _is_question(rest):
                    replaced = f"{replaced} {leftover}"
                elif _is_question(rest):  # "which one of them is bigger?": its own shape
                    return _substitute_pronouns(rest.replace(ordinal.group(0), phrase),
                                                topic(replaced)) + "?"
                return replaced + "?"
        wh = _words(rest)
        if len(wh) == 1 and _is_question(rest) and _is_question(base):  # "and when?"
            return re.sub(r"^\s*\w+", rest.capitalize(), base, count=1) + "?"
        number = _NUMBER.fullmatch(rest)
        if number and len(_NUMBER.findall(base)) == 1:  # "how about 2022?": same, other year
            return _NUMBER.sub(rest, base) + "?"
        if _is_question(rest) or any(w in _PRONOUNS for w in _words(rest)):
            if _DEICTIC.search(rest) and not re.search(r"\b(?:it|there)\b", rest, re.I):
                return rest + "?"  # "who wrote that document?": the sources say which
            subject = topic(base)
            swapped = _substitute_pronouns(rest, subject)
            if swapped != rest:
                return swapped + "?"
            if _is_question(rest):  # a question with none of its own subject
                return f"{rest} {subject}?".strip()
        if not rest:
            return base + "?"
        joiner = " " if _words(rest)[0] in _PREPOSITIONS else ", "
        return f"{base}{joiner}{rest}?"


_PERSONAL = frozenset("it its they them their he she him her his".split())
_DEMONSTRATIVE = re.compile(r"\b(this|that|these|those)\b(?:\s+([\w'’-]+))?", re.IGNORECASE)


def _leans_on_a_pronoun(question: str, previous: str) -> bool:
    """A personal pronoun, or "this/that" standing alone or before a noun the previous
    question used ("that chart"). "What does this command do?" names its own subject:
    a demonstrative before a new noun is a determiner, not a reference back."""
    if any(w in _PERSONAL for w in _words(question)):
        return True
    earlier = set(_words(previous))
    for m in _DEMONSTRATIVE.finditer(question):
        nxt = (m.group(2) or "").lower()
        if not nxt or nxt in _STOP or nxt.rstrip("s") in earlier or nxt in earlier:
            return True
    return False


def _is_question(text: str) -> bool:
    words = _words(text)
    return bool(words) and words[0] in ("what", "which", "who", "whom", "whose", "when",
                                        "where", "why", "how", "is", "are", "was", "were",
                                        "does", "do", "did", "can", "could", "should")


def _mid_clause_that(words: list[str]) -> bool:
    """'that' after a verb of saying ("says that ...") introduces a clause, not a topic."""
    return "that" in words and words.index("that") > 0 and \
        words[words.index("that") - 1] in ("says", "said", "say", "states", "shows", "notes")


def _substitute_pronouns(text: str, subject: str) -> str:
    """Replace the first pronoun with ``subject`` (possessives become "of subject")."""
    if not subject:
        return text
    m = re.search(r"\b(it|they|them|this|that|those|these|its|their)\b", text, re.IGNORECASE)
    if not m:
        return text
    word = m.group(1).lower()
    if word in ("its", "their"):  # "what is its capacity" → "what is the capacity of X"
        after = re.match(r"\s+(\w+)", text[m.end():])
        if after:
            return (text[:m.start()] + "the " + after.group(1) + f" of {subject}"
                    + text[m.end() + after.end():])
    if word in ("this", "that", "those", "these"):
        nxt = re.match(r"\s+(\w+)", text[m.end():])
        if nxt and nxt.group(1).lower() not in _STOP:  # "that chart": keep the noun phrase
            return text
    return text[:m.start()] + subject + text[m.end():]


@rewriters.register("rules")
def _rules(generator: Generator | None = None) -> Rewriter:
    return RuleRewriter(generator)


# -- llm -----------------------------------------------------------------------------------
REWRITE_PROMPT = (
    "Rewrite the user's last question as one standalone search query, using the "
    "conversation only to resolve what it refers to (pronouns, 'and ...?', 'the second "
    "one'). If it already stands alone, return it unchanged. Reply with the query only.")
MAX_QUERY_CHARS = 400


class LLMRewriter:
    """The configured generator rewrites follow-ups; the rules decide which documents a
    deictic follow-up points back at, and answer alone when the model fails."""

    name = "llm"

    def __init__(self, generator: Generator | None):
        self.generator = generator
        self.rules = RuleRewriter()

    def rewrite(self, history: Sequence[Turn], question: str) -> Rewrite:
        fallback = self.rules.rewrite(history, question)
        if self.generator is None or not any(t.role == "user" for t in history):
            return fallback
        try:
            text = "".join(self.generator.stream(self._messages(history, question),
                                                 max_tokens=96, temperature=0.0))
        except Exception as exc:  # noqa: BLE001 - any failure (MmragError or not): the rules
            log.info("query rewrite by %s failed (%s); using the rules",
                     getattr(self.generator, "name", "?"), exc)
            return fallback
        query = _clean(text)
        if not query:
            return fallback
        followup = query.strip().lower() != " ".join(question.split()).lower()
        return Rewrite(query, followup or fallback.followup,
                       fallback.doc_ids, fallback.names)

    @staticmethod
    def _messages(history: Sequence[Turn], question: str) -> list[Message]:
        lines = [f"{'User' if t.role == 'user' else 'Assistant'}: {' '.join(t.text.split())[:600]}"
                 for t in history[-6:]]
        lines.append(f"User (last question): {question.strip()}")
        return [Message("system", [Part.of_text(REWRITE_PROMPT)]),
                Message("user", [Part.of_text("\n".join(lines) + "\n\nStandalone query:")])]


def _clean(text: str) -> str:
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(?:standalone\s+)?(?:search\s+)?query\s*:\s*", "", line.strip(),
                  flags=re.IGNORECASE)
    return line.strip().strip("\"'`“”").strip()[:MAX_QUERY_CHARS]


@rewriters.register("llm")
def _llm(generator: Generator | None = None) -> Rewriter:
    return LLMRewriter(generator)


class _NoRewrite:
    name = "none"

    def rewrite(self, history: Sequence[Turn], question: str) -> Rewrite:
        return Rewrite(" ".join(question.split()))


@rewriters.register("none")
def _none(generator: Generator | None = None) -> Rewriter:
    return _NoRewrite()


def create_rewriter(name: str, generator: Generator | None) -> Rewriter:
    """``auto`` is the configured LLM when there is one (any generator but the offline
    ``extractive``), else the rules."""
    if name == "auto":
        name = "llm" if generator is not None and generator.name != "extractive" else "rules"
    return rewriters.create(name, generator)
