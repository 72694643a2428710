"""A small real index, and a scripted chat model that issues tool calls like an LLM."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult

from mmrag import Index
from tests.factories import make_png, make_text_pdf

FAST = {"encode": {"text_encoder": "hashing"}}
PAGES = ["Quarterly revenue rose to 42 million euros.",
         "The zeppelin hangar was rebuilt in aluminium by the Lakehurst crew.",
         "Staff turnover fell by three percent."]


class ScriptedChatModel(FakeMessagesListChatModel):
    """Plays ``responses`` in order and records every message list it was given, so a
    test can check what the tools sent back. Tool binding is a no-op: the script already
    knows which tools to call."""

    seen: list[list[BaseMessage]] = []

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        result = super()._generate(messages, *args, **kwargs)
        # A fresh message per call: the graph keys messages by id, and a replayed object
        # carries the id it was given the first time.
        result.generations[0].message = result.generations[0].message.model_copy(
            update={"id": None})
        return result


def call(name: str, _id: str, **args: Any) -> AIMessage:
    """An assistant turn that calls one tool."""
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": _id,
                                      "type": "tool_call"}])


def scripted(*turns: AIMessage | str) -> ScriptedChatModel:
    return ScriptedChatModel(responses=[t if isinstance(t, AIMessage) else AIMessage(t)
                                        for t in turns], seen=[])


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("agent-docs")
    (d / "report.pdf").write_bytes(make_text_pdf(PAGES))
    (d / "notes.md").write_text("# Gardening\n\nTomatoes need full sun and deep watering.\n")
    (d / "sailing_boat_harbour.png").write_bytes(make_png("boat", (1200, 900)))
    return d


@pytest.fixture(scope="module")
def index(tmp_path_factory, docs) -> Index:
    with Index(tmp_path_factory.mktemp("agent-idx"), **FAST) as idx:
        report = idx.add(docs, show_progress=False)
        assert len(report.added) == 3, report.failed
        yield idx
