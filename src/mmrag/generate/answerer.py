"""The ask pipeline behind ``Index.ask``: retrieve → prompt → stream → cite → Answer.

:class:`Answerer` is handed a search function instead of an index, so it depends on the
generate stage only and tests can feed it hits directly. :class:`AnswerStream` is what
``ask(..., stream=True)`` returns: iterate it for text deltas; afterwards (or on first
access, which drains the rest) ``.answer`` holds the final :class:`~mmrag.types.Answer`.

Two checks frame every generator alike. Before it is called, the weak-evidence rule
(:mod:`.evidence`): retrieval confidence below ``generate.min_confidence`` answers "not
found" without calling the model. After it finishes, the support check (:mod:`.grounding`)
fills ``Answer.support`` and ``Answer.grounded``; with ``generate.drop_unsupported`` the
final ``Answer.text`` leaves out unsupported sentences. Streamed deltas cannot be taken
back, so a streaming reader who wants the filtered text reads ``.answer.text`` at the end
(the server's ``done`` event carries it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from PIL import Image

from ..config import GenerateSettings
from ..errors import GenerationError, MmragError
from ..types import Answer, Hit, SentenceSupport
from .base import Generator
from .citations import citations_for, cited_numbers
from .evidence import retrieval_confidence
from .grounding import (
    EmbedFn,
    SupportChecker,
    check_support,
    create_checker,
    drop_unsupported,
    grounded_share,
    memo_embed,
)
from .prompt import NO_TEXT, NOT_FOUND, build_messages, is_not_found, sources_of

__all__ = ["AnswerStream", "Answerer", "SearchFn"]

log = logging.getLogger(__name__)

# (question or None, k, image or None) -> hits; the Index binds filters and grouping.
SearchFn = Callable[[str | None, int, Image.Image | None], list[Hit]]


class Answerer:
    """Answers questions over whatever ``search`` retrieves, with one generator.

    ``embed`` is the index's text encoder (texts → normalised vectors): the weak-evidence
    rule and the embedding half of the support check need it; without it the rule is off
    and support is lexical only. ``checker`` overrides the one ``settings`` names (the
    Index passes one it keeps, since an NLI model is slow to load).
    """

    def __init__(self, search: SearchFn, generator: Generator, settings: GenerateSettings,
                 embed: EmbedFn | None = None, checker: SupportChecker | None = None):
        self.search = search
        self.generator = generator
        self.settings = settings
        self.embed = embed
        self.checker = checker

    def ask(self, question: str, image: Image.Image | None = None,
            k: int | None = None) -> AnswerStream:
        """Start answering; nothing is retrieved or generated until the stream is read."""
        return AnswerStream(self._run(question, image, k or self.settings.k))

    def _run(self, question: str, image: Image.Image | None,
             k: int) -> Iterator[str | Answer]:
        """Yield text deltas, then the finished Answer as the last item."""
        t0 = time.perf_counter()
        hits = self.search(question.strip() or None, k, image)
        usable = [h for h in hits if h.score >= self.settings.min_score]
        name = self.generator.name
        embed = memo_embed(self.embed) if self.embed is not None else None
        messages = build_messages(question, usable, self._prompt_settings(),
                                  supports_images=self.generator.supports_images,
                                  query_image=image) if usable else []
        sources = self._sources(messages)
        if usable and self._weak(question, sources, embed):
            usable = []
        if not usable:  # nothing to cite: do not let a model answer from memory
            yield NOT_FOUND
            yield Answer(NOT_FOUND, hits, [], False, name, time.perf_counter() - t0)
            return
        chunks: list[str] = []
        for delta in self._generate(messages):
            chunks.append(delta)
            yield delta
        text = "".join(chunks).strip()
        found = self._found(text, usable)
        support = self._support(text, sources, embed) if found else []
        if found and self.settings.drop_unsupported and not all(
                s.supported for s in support):
            text = drop_unsupported(text, support)
            found = self._found(text, usable)
            support = self._support(text, sources, embed) if found else []
        citations = citations_for(text, usable)
        yield Answer(text or NOT_FOUND, usable, citations, found, name,
                     time.perf_counter() - t0, support, grounded_share(support))

    @staticmethod
    def _found(text: str, usable: list[Hit]) -> bool:
        # "Not found" counts only when nothing is cited: a model may answer part of a
        # question with citations and say the rest was not found. An answer that cites
        # only sources that do not exist (a number a document told the model to use) is
        # grounded in nothing the asker can check: not found either.
        citations = citations_for(text, usable)
        forged = not citations and bool(cited_numbers(text))
        return bool(citations) or (bool(text) and not is_not_found(text) and not forged)

    @staticmethod
    def _sources(messages: list[Any]) -> list[str]:
        """Source texts as the generator sees them, ``[n]`` at index n - 1."""
        found = {s.number: s.text for s in sources_of(messages)} if messages else {}
        return [("" if found.get(n, "").strip() == NO_TEXT else found.get(n, ""))
                for n in range(1, max(found, default=0) + 1)]

    def _weak(self, question: str, sources: list[str], embed: EmbedFn | None) -> bool:
        """The weak-evidence rule (see :mod:`.evidence`): True when the best source is too
        far from the question to answer it, whatever the generator."""
        threshold = self.settings.min_confidence
        if embed is None or not threshold:
            return False
        confidence = retrieval_confidence(question, sources, embed)
        return confidence is not None and confidence < threshold

    def _support(self, text: str, sources: list[str],
                 embed: EmbedFn | None) -> list[SentenceSupport]:
        checker = self.checker or create_checker(
            self.settings.support_checker, embed, nli_model=self.settings.nli_model)
        return check_support(text, sources, checker, self.settings.support_threshold)

    def _prompt_settings(self) -> GenerateSettings:
        # A generator may declare it reads more (or less) context than the default budget;
        # the extractive one reads hits in full because quoting costs nothing.
        limit = getattr(self.generator, "max_context_chars", None)
        if isinstance(limit, int) and limit > 0:
            return self.settings.model_copy(update={"max_context_chars": limit})
        return self.settings

    def _generate(self, messages: list[Any]) -> Iterator[str]:
        """The generator's deltas; any non-mmrag exception becomes a one-line error."""
        try:
            for delta in self.generator.stream(messages, max_tokens=self.settings.max_tokens,
                                               temperature=self.settings.temperature):
                if delta:
                    yield delta
        except MmragError:
            raise
        except Exception as exc:
            log.debug("generator %s failed", self.generator.name, exc_info=True)
            detail = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise GenerationError(f"generator {self.generator.name!r} failed: "
                                  f"{type(exc).__name__}: {detail}") from exc


class AnswerStream:
    """Text deltas of an answer as they are generated; ``.answer`` once done.

    >>> stream = index.ask("what is the warranty period?", stream=True)
    >>> for delta in stream:
    ...     print(delta, end="", flush=True)
    >>> stream.answer.citations
    """

    def __init__(self, steps: Iterator[str | Answer]):
        self._steps = steps
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        """Yield the deltas not yet read (a second loop yields nothing more)."""
        for step in self._steps:
            if isinstance(step, Answer):
                self._answer = step
            else:
                yield step

    @property
    def answer(self) -> Answer:
        """The final answer; reading it before the loop ends drains the rest first."""
        if self._answer is None:
            for _ in self:
                pass
        if self._answer is None:  # the pipeline ended without an answer (closed early)
            raise GenerationError("the answer stream was closed before it finished")
        return self._answer

    @property
    def done(self) -> bool:
        return self._answer is not None

    def close(self) -> None:
        """Stop generating (e.g. the client went away); releases the provider stream."""
        close = getattr(self._steps, "close", None)
        if close:
            close()
