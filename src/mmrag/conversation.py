"""`mmrag chat`: a conversation with an index, at a terminal or as JSON lines.

:class:`Conversation` keeps the turns (each answer with the documents it cited, so "who
wrote it?" can point back at them) and asks ``Index.chat`` with the whole history. The
terminal loop shows the query each turn is searched as (``searching: ...``), streams the
answer and lists its citations; ``/reset`` forgets the history, ``/exit`` (or Ctrl-D)
leaves. ``--json`` is for scripts: one JSON value per stdin line, one JSON answer per
stdout line, and never a prompt, so it runs where there is no terminal (CI).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console

from .errors import MmragError, QueryError
from .generate.rewrite import Rewrite, SourceRef, Turn
from .types import Answer, Filters

if TYPE_CHECKING:
    from .generate.answerer import AnswerStream
    from .index import Index

__all__ = ["Conversation", "run_interactive", "run_json_lines"]

RESET, EXIT = "/reset", "/exit"


@dataclass
class Conversation:
    """The turns so far, and how each new question is asked of the index."""

    index: Index
    k: int | None = None
    filters: Filters | dict[str, Any] | None = None
    generator: str | None = None
    turns: list[Turn] = field(default_factory=list)

    def rewrite(self, question: str) -> Rewrite:
        return self.index.rewrite([*self.turns, Turn("user", question)],
                                  generator=self.generator)

    def ask(self, question: str, rewritten: Rewrite | None = None) -> AnswerStream:
        """Stream the answer to ``question``; :meth:`remember` it once read."""
        return self.index.chat([*self.turns, Turn("user", question)], None, self.k,
                               filters=self.filters, generator=self.generator,
                               rewritten=rewritten, stream=True)

    def remember(self, question: str, answer: Answer) -> None:
        self.turns.append(Turn("user", question))
        self.add_assistant(answer.text, [SourceRef(c.doc_id, c.name, c.page)
                                         for c in answer.citations])

    def add_assistant(self, text: str, sources: list[SourceRef] | None = None) -> None:
        self.turns.append(Turn("assistant", text, sources or []))

    def reset(self) -> None:
        self.turns.clear()


def run_interactive(conv: Conversation, console: Console) -> None:
    """The terminal loop; refuses to start without one (nothing could answer a prompt)."""
    from rich.prompt import Prompt

    from .generate.citations import render_citations

    if not _terminal():
        raise QueryError("mmrag chat needs a terminal; pipe turns with --json "
                         "(one JSON object or question per line)")
    console.print(f"[dim]chatting with {conv.index.root} — {RESET} forgets the history, "
                  f"{EXIT} leaves[/]")
    while True:
        try:
            question = Prompt.ask("[bold]you[/]", console=console).strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not question:
            continue
        if question == EXIT:
            return
        if question == RESET:
            conv.reset()
            console.print("[dim]history cleared[/]")
            continue
        try:
            rw = conv.rewrite(question)
            console.print(f"[dim]searching: {rw.describe()}[/]", highlight=False)
            stream = conv.ask(question, rw)
            for delta in stream:
                console.out(delta, end="", highlight=False)
            answer = stream.answer
        except MmragError as exc:  # one bad turn does not end the chat
            console.print(f"[red]error:[/] {exc}", highlight=False)
            continue
        console.print()
        if answer.citations:
            console.print(render_citations(answer.citations), markup=False, highlight=False,
                          style="dim")
        conv.remember(question, answer)


def _terminal() -> bool:
    return sys.stdin.isatty()


def run_json_lines(conv: Conversation, lines: Iterable[str], out: TextIO) -> int:
    """Answer each user turn of ``lines``; returns how many lines failed.

    A line is ``{"role": "user"|"assistant", "content": ...}`` (an assistant turn joins
    the history unanswered; it may carry ``citations``), a JSON string, or plain text (a
    question). ``"/reset"`` forgets the history. Each answer is ``Answer.to_dict()`` with
    ``query``, the standalone query searched; a bad line gets ``{"error": ..., "line": n}``
    and the run goes on.
    """
    failed = 0
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        try:
            role, text, sources = _parse(line, n)
            if text == RESET and role == "user":
                conv.reset()
                continue
            if role == "assistant":
                conv.add_assistant(text, sources)
                continue
            answer = conv.ask(text).answer
            conv.remember(text, answer)
            record = answer.to_dict()
        except MmragError as exc:
            failed += 1
            record = {"error": str(exc).strip().splitlines()[0] if str(exc) else
                      type(exc).__name__, "line": n}
        out.write(json.dumps(record, default=str) + "\n")
        out.flush()
    return failed


def _parse(line: str, n: int) -> tuple[str, str, list[SourceRef]]:
    """(role, text, cited sources) of one input line."""
    try:
        value = json.loads(line)
    except ValueError:
        return "user", line, []  # plain text: a question
    if isinstance(value, str):
        return "user", value, []
    if not isinstance(value, dict):
        raise QueryError(f"line {n}: expected an object with role and content, a JSON "
                         f"string or plain text, got {type(value).__name__}")
    role, content = value.get("role", "user"), value.get("content")
    if role not in ("user", "assistant"):
        raise QueryError(f"line {n}: role {role!r} is not user or assistant")
    if not isinstance(content, str) or not content.strip():
        raise QueryError(f"line {n}: 'content' must be non-empty text")
    from .generate.rewrite import to_turns

    turn = to_turns([value])[0]  # an echoed answer's Sources lines become its sources
    return role, turn.text.strip(), turn.sources
