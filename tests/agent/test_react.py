"""The real LangGraph ReAct graph and real tools, driven by a scripted chat model."""

from __future__ import annotations

import base64
import io

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from PIL import Image

from mmrag.agent.react import SYSTEM_PROMPT, build_agent, run_agent
from mmrag.errors import GenerationError, QueryError
from tests.agent.conftest import call, scripted

ANSWER = ("The zeppelin hangar was rebuilt in aluminium [1]; the harbour picture shows a "
          "boat [2].")


def blocks(message: ToolMessage, kind: str) -> list[dict]:
    return [b for b in message.content if isinstance(b, dict) and b.get("type") == kind]


def text_of(message: ToolMessage) -> str:
    return "\n".join(b["text"] for b in blocks(message, "text"))


def decoded(block: dict) -> Image.Image:
    assert block["mime_type"] == "image/webp"
    return Image.open(io.BytesIO(base64.b64decode(block["base64"])))


def test_agent_searches_twice_reads_a_page_and_cites_tool_sources(index):
    model = scripted(
        call("multimodal_search", "c1", query="zeppelin hangar aluminium", k=1),
        call("multimodal_search", "c2", query="sailing boat harbour", k=1),
        call("get_page", "c3", doc="report.pdf", page=2),
        ANSWER)
    answer = run_agent(build_agent(index, model), "What was the hangar rebuilt in?")

    assert answer.text == ANSWER and answer.found
    assert [c.label() for c in answer.citations] == [
        "[1] report.pdf, page 2", "[2] sailing_boat_harbour.png, page 1"]
    assert [h.item.name for h in answer.hits] == ["report.pdf", "sailing_boat_harbour.png"]

    # The model was called once per turn; each call after a tool saw that tool's result.
    assert len(model.seen) == 4
    first, *_, last = model.seen
    assert isinstance(first[0], SystemMessage) and first[0].text == SYSTEM_PROMPT
    assert isinstance(first[1], HumanMessage)
    search1, search2, page = [m for m in last if isinstance(m, ToolMessage)]

    assert search1.name == "multimodal_search" and search1.status == "success"
    assert "[1] report.pdf, page 2" in text_of(search1)
    assert "zeppelin hangar was rebuilt" in text_of(search1)
    (render,) = blocks(search1, "image")
    assert max(decoded(render).size) <= 768  # the page render, shrunk and re-encoded

    assert "[2] sailing_boat_harbour.png, page 1" in text_of(search2)
    (photo,) = blocks(search2, "image")
    assert decoded(photo).size == (768, 576)  # 1200×900 original, longest side 768

    # The page read whole keeps the number its search hit got, and carries only its text.
    assert page.name == "get_page" and text_of(page).startswith("[1] report.pdf, page 2")
    assert "Lakehurst crew" in text_of(page) and "Quarterly revenue" not in text_of(page)
    assert len(blocks(page, "image")) == 1
    assert [s.number for s in page.artifact] == [1]


def test_tool_errors_reach_the_model_and_the_run_goes_on(index):
    model = scripted(
        call("get_page", "c1", doc="missing.pdf", page=1),
        call("get_page", "c2", doc="report.pdf", page=9),
        "I could not find it.")
    answer = run_agent(build_agent(index, model), "What is on page 9?")
    missing, out_of_range = [m for m in model.seen[-1] if isinstance(m, ToolMessage)]
    assert missing.status == "error" and "no document 'missing.pdf'" in missing.text
    assert "report.pdf" in missing.text  # lists what there is
    assert out_of_range.status == "error" and "pages are 1-3" in out_of_range.text
    assert answer.text == "I could not find it." and not answer.found and not answer.citations


def test_numbers_stay_consistent_without_a_run_ledger(index):
    """Invoking the graph directly (no run config) rebuilds numbering from the chat."""
    model = scripted(
        call("multimodal_search", "c1", query="tomatoes sun watering", k=1),
        call("multimodal_search", "c2", query="zeppelin hangar", k=1),
        call("multimodal_search", "c3", query="tomatoes watering", k=1),
        "done [2]")
    state = build_agent(index, model).invoke({"messages": [HumanMessage("q")]})
    tools = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert text_of(tools[0]).count("[1] notes.md") == 1
    assert "[2] report.pdf, page 2" in text_of(tools[1])
    assert "[1] notes.md" in text_of(tools[2])  # found again: same number


def test_parallel_tool_calls_get_distinct_numbers(index):
    both = AIMessage("", tool_calls=[
        {"name": "multimodal_search", "args": {"query": "tomatoes watering", "k": 1},
         "id": "a", "type": "tool_call"},
        {"name": "get_page", "args": {"doc": "report.pdf", "page": 3}, "id": "b",
         "type": "tool_call"}])
    model = scripted(both, "Tomatoes need water [1]; turnover fell [2].")
    answer = run_agent(build_agent(index, model), "q")
    # The two calls run concurrently, so either may be [1]; they never share a number.
    cited = {c.number: c.label().split("] ", 1)[1] for c in answer.citations}
    assert sorted(cited) == [1, 2]
    assert set(cited.values()) == {"notes.md, page 1", "report.pdf, page 3"}
    shown = {s.number: s.hit.item.name for m in model.seen[-1] if isinstance(m, ToolMessage)
             for s in m.artifact}
    assert shown == {
        n: label.split(",")[0] for n, label in cited.items()}


def test_get_page_accepts_a_doc_id_and_joins_a_text_documents_chunks(index):
    notes = next(d for d in index.documents() if d.name == "notes.md")
    model = scripted(call("get_page", "c1", doc=notes.doc_id, page=1), "ok")
    run_agent(build_agent(index, model), "q")
    page = next(m for m in model.seen[-1] if isinstance(m, ToolMessage))
    assert "Tomatoes need full sun" in text_of(page) and "Gardening" in text_of(page)
    assert blocks(page, "image") == []  # a Markdown file has no render


def test_question_image_is_sent_to_the_model(index, docs):
    model = scripted("A boat.")
    run_agent(build_agent(index, model), "What is this?",
              image=docs / "sailing_boat_harbour.png")
    human = model.seen[0][1]
    kinds = [b["type"] for b in human.content]
    assert kinds == ["text", "image"]
    assert decoded(human.content[1]).size == (768, 576)  # shrunk like retrieved images


def test_unreadable_question_image_is_a_one_line_error(index, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(QueryError, match="cannot read the question's image") as err:
        run_agent(build_agent(index, scripted("unused")), "What is this?", image=bad)
    assert "\n" not in str(err.value)


def test_endless_tool_loop_stops_with_one_line_error(index):
    model = scripted(*(call("multimodal_search", f"c{n}", query=f"revenue {n}", k=1)
                       for n in range(10)))  # never answers
    with pytest.raises(GenerationError, match="did not answer within 2 tool rounds"):
        run_agent(build_agent(index, model), "loop", max_steps=2)
