"""`mmrag mcp`: a real server process over stdio, driven by the `mcp` client library."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

from tests.agent.conftest import PAGES
from tests.factories import make_png, make_text_pdf

ROOT = Path(__file__).resolve().parents[2]


def _server(index: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "mmrag.cli", "mcp", "--index", str(index)],
        cwd=str(ROOT),
        env={"MMRAG_ENCODE__TEXT_ENCODER": "hashing", "HF_HUB_OFFLINE": "1",
             "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT),
             "MMRAG_INGEST__OCR_CACHE": os.environ.get("MMRAG_INGEST__OCR_CACHE")
             or tempfile.mkdtemp(prefix="mmrag-test-ocr-")})


def _data(result: Any) -> dict[str, Any]:
    """A tool result's JSON: the structured content, which the text block repeats."""
    assert not result.is_error, result.content
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


async def _session_run(index: Path, docs: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {"stray": []}

    async def on_message(message: Any) -> None:  # non-protocol stdout arrives as exceptions
        if isinstance(message, Exception):
            seen["stray"].append(message)

    with open(os.devnull, "w") as quiet:  # the server's stderr (warnings) stays out of the log
        async with stdio_client(_server(index), errlog=quiet) as (read, write), \
                ClientSession(read, write, message_handler=on_message) as session:
            await session.initialize()
            seen["tools"] = await session.list_tools()
            seen["add"] = await session.call_tool("add", {"paths_or_urls": [str(docs)]})
            seen["again"] = await session.call_tool("add", {"paths_or_urls": str(docs)})
            seen["search"] = await session.call_tool(
                "search", {"query": "zeppelin hangar aluminium", "k": 3})
            seen["images"] = await session.call_tool(
                "search", {"query": "sailing boat harbour", "modality": "image"})
            seen["bad"] = await session.call_tool("search", {"query": "x", "modality": "video"})
            seen["ask"] = await session.call_tool(
                "ask", {"question": "What was the zeppelin hangar rebuilt in?", "k": 3})
    return seen


def test_mcp_server_lists_tools_adds_searches_and_answers(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.pdf").write_bytes(make_text_pdf(PAGES))
    (docs / "sailing_boat_harbour.png").write_bytes(make_png("boat", (64, 48)))

    seen = anyio.run(_session_run, tmp_path / "idx", docs)

    assert seen["stray"] == []  # stdout carried protocol messages only
    tools = {t.name: t for t in seen["tools"].tools}
    assert set(tools) == {"search", "ask", "add"}
    assert set(tools["search"].input_schema["properties"]) == {"query", "k", "modality"}

    added = _data(seen["add"])
    assert len(added["added"]) == 2 and added["failed"] == []
    assert added["summary"].startswith("added 2, skipped 0")
    assert len(_data(seen["again"])["skipped"]) == 2  # a single string works too

    hits = _data(seen["search"])["hits"]
    assert hits[0]["name"] == "report.pdf" and hits[0]["page"] == 2 and hits[0]["rank"] == 1
    assert "zeppelin" in hits[0]["snippet"].lower()
    images = _data(seen["images"])["hits"]
    assert images and {h["modality"] for h in images} == {"image"}
    assert images[0]["name"] == "sailing_boat_harbour.png"

    assert seen["bad"].is_error and "unknown modality 'video'" in seen["bad"].content[0].text

    answer = _data(seen["ask"])
    assert answer["found"] and answer["generator"] == "extractive"
    assert "aluminium" in answer["text"]
    assert answer["citations"] and answer["citations"][0]["name"] == "report.pdf"
    assert answer["citations"][0]["label"].startswith("[")
