"""The `openai` generator end to end: one index asks another mmrag over HTTP.

A second index, holding documents the server's index does not, is asked with
``generate.generator = "openai"`` pointed at the real mmrag server on loopback (extractive
behind it). The request goes through the real ``openai`` client library, the real HTTP
server and its SSE stream, and back into ``Index.ask``; the server answers the asker's
own numbered sources (see ``mmrag.server.generation``), so its ``[n]`` resolve.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrag import Index
from tests.factories import make_text_pdf
from tests.server.conftest import FAST, write_docs

QUESTION = "What did the lighthouse keeper fill the lamp with?"


def _asker_docs(folder: Path) -> Path:
    folder.mkdir()
    (folder / "lighthouse.pdf").write_bytes(make_text_pdf([
        "The harbour office opens at nine.",
        "Every evening the lighthouse keeper filled the lamp with whale oil."]))
    (folder / "recipes.md").write_text("# Bread\n\nKnead the dough for ten minutes.\n")
    return folder


@pytest.fixture(scope="module")
def asking_index(tmp_path_factory, server_url):
    root = tmp_path_factory.mktemp("asker")
    with Index(root / "idx", generate__generator="openai", generate__max_retries=0,
               generate__base_url=f"{server_url}/v1", **FAST) as idx:
        assert not idx.add(_asker_docs(root / "docs")).failed
        yield idx


def test_openai_generator_answers_through_the_mmrag_server(asking_index):
    answer = asking_index.ask(QUESTION)
    assert answer.generator == "openai" and answer.found
    assert "whale oil" in answer.text  # only the asker's documents say this
    assert answer.text.endswith("[1]") and "Sources:" not in answer.text
    assert (answer.citations[0].name, answer.citations[0].page) == ("lighthouse.pdf", 2)


def test_openai_generator_streams_through_the_mmrag_server(asking_index):
    stream = asking_index.ask(QUESTION, stream=True)
    deltas = list(stream)
    assert len(deltas) > 2
    assert "".join(deltas).strip() == stream.answer.text
    assert stream.answer.text == asking_index.ask(QUESTION).text


def test_openai_generator_hears_not_found_from_the_server(asking_index):
    answer = asking_index.ask("How tall is the zeppelin hangar on the moon?",
                              filters={"path": "*.md"})
    assert answer.generator == "openai" and not answer.found and not answer.citations


def test_openai_generator_reports_server_errors_as_one_line(tmp_path, server_url):
    with Index(tmp_path / "idx", generate__generator="openai", generate__max_retries=0,
               generate__base_url=f"{server_url}/v1/wrong-prefix", **FAST) as idx:
        idx.add(write_docs(tmp_path / "docs"))
        with pytest.raises(Exception) as err:
            idx.ask(QUESTION)
    assert type(err.value).__name__ == "GenerationError"
    assert "\n" not in str(err.value) and "404" in str(err.value)
