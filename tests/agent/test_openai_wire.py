"""The `openai` generator over its real SDK and a scripted OpenAI-compatible server
(tests/generate/_fake_servers.py): as the agent's chat model (TOOL_CALL lines), and as
the LLM that rewrites a chat's follow-up before retrieval."""

from __future__ import annotations

import pytest

from mmrag import Index
from mmrag.agent.ask import ask_with_agent
from mmrag.agent.chat_model import chat_model_for
from mmrag.config import GenerateSettings
from mmrag.generate.rewrite import REWRITE_PROMPT
from tests.agent.conftest import FAST
from tests.generate._fake_servers import FakeServer, Reply, openai_events

CALL = ['TOOL_CALL {"name": "multimodal_', 'search", "arguments": {"query": ',
        '"zeppelin hangar aluminium"}}']


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def server():
    with FakeServer() as srv:
        yield srv


def texts(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")


def test_agent_runs_on_the_openai_generator(index, server):
    server.script(Reply.sse(openai_events(CALL)),
                  Reply.sse(openai_events(["Aluminium ", "[1]."])))
    model = chat_model_for(GenerateSettings(generator="openai", base_url=f"{server.url}/v1",
                                            model="fake-model", max_retries=0))
    reply = ask_with_agent(index, "What was the hangar rebuilt in?", model=model)
    assert reply.note == "" and reply.answer.text == "Aluminium [1]."
    assert [c.label() for c in reply.answer.citations] == ["[1] report.pdf, page 2"]

    first, second = (r.json["messages"] for r in server.requests)
    assert first[0]["role"] == "system" and "TOOL_CALL" in texts(first[0])
    assert second[-2]["role"] == "assistant"
    assert texts(second[-2]).startswith('TOOL_CALL {"name": "multimodal_search"')
    result = second[-1]
    assert result["role"] == "user" and "[1] report.pdf, page 2" in texts(result)
    # the page render travelled as an image part: the openai generator reads images
    assert any(p.get("type") == "image_url" for p in result["content"])


def test_chat_follow_up_is_rewritten_by_the_llm(index, server):
    server.script(Reply.sse(openai_events(["When was the ", "zeppelin hangar rebuilt?"])),
                  Reply.sse(openai_events(["By the Lakehurst crew [1]."])))
    gen = {"generator": "openai", "base_url": f"{server.url}/v1", "model": "fake-model",
           "max_retries": 0}
    with Index(index.root, generate=gen, **FAST) as idx:
        answer = idx.chat([{"role": "user", "content": "Who rebuilt the zeppelin hangar?"},
                           {"role": "assistant", "content": "The Lakehurst crew [1]."},
                           {"role": "user", "content": "and when?"}])
    assert answer.query == "When was the zeppelin hangar rebuilt?"
    rewrite, ask = (r.json["messages"] for r in server.requests)
    assert texts(rewrite[0]) == REWRITE_PROMPT
    assert "User (last question): and when?" in texts(rewrite[-1])
    assert "When was the zeppelin hangar rebuilt?" in texts(ask[-1])
    assert [c.label() for c in answer.citations] == ["[1] report.pdf, page 2"]
