"""`mmrag chat`: the terminal loop (history, /reset, /exit) and --json lines."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mmrag import conversation
from mmrag.cli import app
from mmrag.errors import QueryError
from tests.factories import make_text_pdf

runner = CliRunner()


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("cli-chat")
    docs = root / "docs"
    docs.mkdir()
    (docs / "hangar.pdf").write_bytes(make_text_pdf([
        "Airship history overview.",
        "The zeppelin hangar was rebuilt in aluminium in 1931 by the Lakehurst crew."]))
    (docs / "fox.md").write_text("# Foxes\n\nThe red fox hunts voles in snowy meadows.\n")
    idx = str(root / "idx")
    result = runner.invoke(app, ["add", str(docs), "--index", idx],
                           env={"MMRAG_ENCODE__TEXT_ENCODER": "hashing"})
    assert result.exit_code == 0, result.output
    return idx


@pytest.fixture(autouse=True)
def fast_env(monkeypatch):
    monkeypatch.setenv("MMRAG_ENCODE__TEXT_ENCODER", "hashing")


def test_json_lines_keep_the_history_and_reset_forgets_it(index):
    lines = [json.dumps({"role": "user", "content": "Who rebuilt the zeppelin hangar?"}),
             "When was it rebuilt?",
             json.dumps("/reset"),
             "When was it rebuilt?"]
    result = runner.invoke(app, ["chat", "--json", "--index", index],
                           input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["query"] for a in answers] == [
        "Who rebuilt the zeppelin hangar?", "When was the zeppelin hangar rebuilt?",
        "When was it rebuilt?"]
    assert "1931" in answers[1]["text"]
    assert [(c["name"], c["page"]) for c in answers[1]["citations"]] == [("hangar.pdf", 2)]


def test_json_assistant_turns_join_the_history_unanswered(index):
    lines = [json.dumps({"role": "user", "content": "What do foxes hunt?"}),
             json.dumps({"role": "assistant", "content": "Voles [1].\n\nSources:\n"
                                                          "[1] fox.md, page 1  (ab12:c0)"}),
             json.dumps({"role": "user", "content": "and in winter?"})]
    result = runner.invoke(app, ["chat", "--json", "--index", index],
                           input="\n".join(lines) + "\n")
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 2
    assert answers[1]["query"] == "What do foxes hunt in winter?"


def test_bad_json_lines_are_reported_and_the_run_goes_on(index):
    lines = ["[1, 2]", json.dumps({"role": "tool", "content": "x"}), "What do foxes hunt?"]
    result = runner.invoke(app, ["chat", "--json", "--index", index],
                           input="\n".join(lines) + "\n")
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r.get("line") for r in records[:2]] == [1, 2]
    assert "role 'tool'" in records[1]["error"]
    assert "voles" in records[2]["text"]


def test_without_a_terminal_chat_asks_for_json(index):
    result = runner.invoke(app, ["chat", "--index", index], input="")
    assert isinstance(result.exception, QueryError)  # main() prints it as one line
    assert "needs a terminal" in str(result.exception) and "--json" in str(result.exception)


def test_terminal_loop_shows_the_rewritten_query(index, monkeypatch):
    monkeypatch.setattr(conversation, "_terminal", lambda: True)
    result = runner.invoke(app, ["chat", "--index", index], input="\n".join([
        "Who rebuilt the zeppelin hangar?", "When was it rebuilt?", "/reset",
        "When was it rebuilt?", "/exit", "never asked"]) + "\n")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "searching: Who rebuilt the zeppelin hangar?" in out
    assert "searching: When was the zeppelin hangar rebuilt?  (in hangar.pdf)" in out
    assert "history cleared" in out
    assert out.count("searching: When was it rebuilt?") == 1
    assert "[1] hangar.pdf, page 2" in out and "never asked" not in out


def test_empty_index_is_a_one_line_error(tmp_path):
    result = runner.invoke(app, ["chat", "--json", "--index", str(tmp_path / "none")],
                           input="q\n")
    assert isinstance(result.exception, QueryError) and "is empty" in str(result.exception)
