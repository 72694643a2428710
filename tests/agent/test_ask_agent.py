"""`mmrag ask --agent`: the configured generator as the agent's chat model (TOOL_CALL
protocol), the router in multimodal_search, the step limit's best answer so far, and
the extractive generator's clear note. Every model here is scripted."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from typer.testing import CliRunner

from mmrag.agent.ask import NEEDS_LLM, ask_with_agent
from mmrag.agent.chat_model import GeneratorChatModel, chat_model_for, parse_tool_calls
from mmrag.cli import app
from mmrag.config import GenerateSettings
from mmrag.generate.base import Message
from mmrag.search.router import VISUAL
from tests.agent.conftest import call, scripted

runner = CliRunner()
SEARCH = 'TOOL_CALL {"name": "multimodal_search", "arguments": {"query": "zeppelin hangar"}}'
ANSWER = "The hangar was rebuilt in aluminium [1]."


class ScriptedGenerator:
    """An mmrag generator (text in, text out) playing ``replies`` in order; it records
    every prompt it was given."""

    name = "scripted"
    supports_images = False

    def __init__(self, replies: list[str]):
        self.replies = list(replies)
        self.seen: list[list[Message]] = []

    def stream(self, messages: list[Message], *, max_tokens: int,
               temperature: float) -> Iterator[str]:
        self.seen.append(messages)
        reply = self.replies.pop(0) if self.replies else "no more script"
        for i in range(0, len(reply), 7):  # streamed in pieces, as providers do
            yield reply[i:i + 7]


SCRIPT: list[str] = []
LAST: list[ScriptedGenerator] = []


def scripted_generator(settings: GenerateSettings) -> ScriptedGenerator:
    """Factory for ``generate.generator = "tests.agent.test_ask_agent.scripted_generator"``."""
    LAST.append(ScriptedGenerator(SCRIPT))
    return LAST[-1]


DOTTED = f"{__name__}.scripted_generator"


def test_the_configured_generator_drives_the_agent_through_tool_call_lines(index):
    SCRIPT[:] = [SEARCH, ANSWER]
    reply = ask_with_agent(index, "What was the hangar rebuilt in?", generator=DOTTED)
    assert reply.note == ""
    assert reply.answer.text == ANSWER
    assert [c.label() for c in reply.answer.citations] == ["[1] report.pdf, page 2"]

    first, second = LAST[-1].seen
    system = first[0]
    assert system.role == "system" and "TOOL_CALL" in system.text
    assert "- multimodal_search:" in system.text and "- get_page:" in system.text
    assert first[-1].role == "user" and first[-1].text == "What was the hangar rebuilt in?"
    # the call went back as the assistant's turn, its result as the next user turn
    assert second[-2].role == "assistant" and second[-2].text.startswith("TOOL_CALL")
    assert second[-1].role == "user" and "Result of multimodal_search" in second[-1].text
    assert "[1] report.pdf, page 2" in second[-1].text


def test_a_reply_without_a_tool_call_is_the_answer():
    gen = ScriptedGenerator(["Not in the sources."])
    out = GeneratorChatModel(generator=gen).invoke("q")
    assert isinstance(out, AIMessage) and out.text == "Not in the sources."
    assert out.tool_calls == []


@pytest.mark.parametrize(("text", "names"), [
    (SEARCH + " trailing words", ["multimodal_search"]),
    ('{"name": "get_page", "args": {"doc": "a.pdf", "page": 2}}', ["get_page"]),
    ("TOOL_CALL {not json}", []),
    ("The answer [1].", []),
])
def test_tool_call_parsing(text, names):
    assert [c["name"] for c in parse_tool_calls(text)] == names


def test_unknown_tools_are_not_called(index):
    gen = ScriptedGenerator(['TOOL_CALL {"name": "rm_rf", "arguments": {}}'])
    model = GeneratorChatModel(generator=gen).bind_tools([])
    out = model.invoke("q")
    assert out.tool_calls == [] and "rm_rf" in out.text


def test_multimodal_search_is_routed(index):
    model = scripted(call("multimodal_search", "c1", query="photo of the sailing boat"),
                     "A boat [1].")
    reply = ask_with_agent(index, "Show me the boat", model=model)
    (tool,) = [m for m in model.seen[-1] if isinstance(m, ToolMessage)]
    shown = [s.hit for s in tool.artifact]
    assert shown and {h.modality for h in shown} <= set(VISUAL)
    assert len(shown) <= index.settings.generate.k  # the router's k: no k in the call
    assert reply.answer.citations[0].name == "sailing_boat_harbour.png"


def test_the_step_limit_gives_a_note_and_the_sources_quoted(index):
    model = scripted(*(call("multimodal_search", f"c{n}", query="zeppelin hangar aluminium")
                       for n in range(10)))  # never answers
    reply = ask_with_agent(index, "What was the hangar rebuilt in?", model=model,
                           max_steps=2)
    assert "did not answer within 2 tool rounds" in reply.note
    assert reply.note.endswith("showing the best answer so far") and "\n" not in reply.note
    assert "aluminium" in reply.answer.text
    assert reply.answer.citations[0].label() == "[1] report.pdf, page 2"
    assert reply.answer.generator.endswith("+extractive")


def test_the_step_limit_keeps_text_the_model_already_wrote(index):
    partial = AIMessage("So far: aluminium [1].", tool_calls=[
        {"name": "multimodal_search", "args": {"query": "zeppelin hangar"}, "id": "c0",
         "type": "tool_call"}])
    model = scripted(partial, *(call("multimodal_search", f"c{n}", query="more")
                                for n in range(1, 10)))
    reply = ask_with_agent(index, "q", model=model, max_steps=2)
    assert reply.note and reply.answer.text == "So far: aluminium [1]."
    assert [c.label() for c in reply.answer.citations] == ["[1] report.pdf, page 2"]


def test_extractive_cannot_run_the_agent_and_says_so(index):
    assert chat_model_for(index.settings.generate) is None
    reply = ask_with_agent(index, "What was the zeppelin hangar rebuilt in?")
    assert reply.note == NEEDS_LLM.format(name="extractive")
    assert reply.answer.generator == "extractive" and "aluminium" in reply.answer.text


@pytest.fixture()
def cli_env(monkeypatch):
    monkeypatch.setenv("MMRAG_ENCODE__TEXT_ENCODER", "hashing")


def test_cli_ask_agent_with_extractive_prints_the_note_then_the_answer(index, cli_env):
    result = runner.invoke(app, ["ask", "--agent", "What was the zeppelin hangar rebuilt in?",
                                 "--index", str(index.root)])
    assert result.exit_code == 0, result.output
    assert "the agent needs an LLM generator" in result.stderr
    assert "aluminium" in result.stdout and "[1] report.pdf, page 2" in result.stdout


def test_cli_ask_agent_max_steps_json(index, cli_env):
    SCRIPT[:] = [SEARCH] * 5
    result = runner.invoke(app, ["ask", "--agent", "--max-steps", "1", "--json",
                                 "What was the hangar rebuilt in?", "--generator", DOTTED,
                                 "--index", str(index.root)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "did not answer within 1 tool rounds" in data["note"]
    assert data["citations"][0]["name"] == "report.pdf"


def test_cli_ask_agent_refuses_filters_and_k(index, cli_env):
    from mmrag.errors import QueryError

    result = runner.invoke(app, ["ask", "--agent", "q", "-k", "3", "--index", str(index.root)])
    assert isinstance(result.exception, QueryError) and "--agent takes no" in str(
        result.exception)
