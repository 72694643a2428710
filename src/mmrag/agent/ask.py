"""``mmrag ask --agent``: one question answered by the ReAct agent, with a bounded number
of tool rounds, on the chat model the configured generator provides.

Two outcomes get a one-line note besides the answer:

* the generator cannot call tools (the offline ``extractive`` one): the agent cannot
  run, so the note says it needs an LLM generator and the answer is ``Index.ask``'s
  (one search, routed by the query router): still an answer, clearly labelled;
* the agent used up ``max_steps`` tool rounds: the note says so and the answer is the
  best so far: the model's last text if it wrote any, else the sources its tools found,
  quoted by the extractive generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..types import Answer, Hit
from .chat_model import chat_model_for
from .react import MAX_STEPS, AgentStepLimit, build_agent, run_agent

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from ..index import Index

__all__ = ["AgentReply", "ask_with_agent", "NEEDS_LLM"]

NEEDS_LLM = ("the agent needs an LLM generator that can call tools (openai, anthropic, "
             "gemini, local, gemma); '{name}' cannot, so this is `mmrag ask`'s answer from "
             "one routed search")


@dataclass(slots=True)
class AgentReply:
    answer: Answer
    note: str = ""  # one line for the user when the agent did not answer normally


def ask_with_agent(index: Index, question: str, *, image: Any = None,
                   generator: str | None = None, max_steps: int = MAX_STEPS,
                   model: BaseChatModel | None = None) -> AgentReply:
    """Answer ``question`` with the agent (``model``, else the configured generator's
    chat model); see the module docstring for the notes."""
    settings = index.settings.generate
    if generator and generator != settings.generator:
        settings = settings.model_copy(update={"generator": generator})
    chat = model or chat_model_for(settings)
    if chat is None:
        answer = index.ask(question, image, generator=settings.generator)
        return AgentReply(answer, NEEDS_LLM.format(name=settings.generator))
    agent = build_agent(index, chat)
    try:
        return AgentReply(run_agent(agent, question, image=image, max_steps=max_steps))
    except AgentStepLimit as stop:
        best = stop.answer
        if not best.text.strip() and best.hits:
            best = _quote(index, question, best.hits, best.generator)
        return AgentReply(best, f"{stop}; showing the best answer so far")


def _quote(index: Index, question: str, hits: list[Hit], name: str) -> Answer:
    """The extractive generator's answer over the sources the agent found."""
    from ..generate import create_generator
    from ..generate.answerer import Answerer

    settings = index.settings.generate.model_copy(update={"generator": "extractive"})
    answer = Answerer(lambda _text, _n, _img: hits, create_generator(settings),
                      settings).ask(question, None, len(hits)).answer
    answer.generator = f"{name}+extractive"
    return answer
