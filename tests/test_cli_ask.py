"""`mmrag ask`: streamed answer, then numbered citations; one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.errors import QueryError, UnknownBackendError
from tests.factories import make_text_pdf

runner = CliRunner()


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("cli-ask")
    docs = root / "docs"
    docs.mkdir()
    (docs / "guide.pdf").write_bytes(make_text_pdf([
        "Intro page about nothing much.", "Calibrate the spectrometer with argon lamps."]))
    (docs / "fox.md").write_text("# Foxes\n\nThe red fox hunts voles in snowy meadows.\n")
    idx = str(root / "idx")
    env = {"MMRAG_ENCODE__TEXT_ENCODER": "hashing"}
    result = runner.invoke(app, ["add", str(docs), "--index", idx], env=env)
    assert result.exit_code == 0, result.output
    return idx


@pytest.fixture(autouse=True)
def fast_env(monkeypatch):
    monkeypatch.setenv("MMRAG_ENCODE__TEXT_ENCODER", "hashing")


def test_ask_prints_answer_then_citations(index):
    result = runner.invoke(app, ["ask", "How do I calibrate the spectrometer?",
                                 "--index", index])
    assert result.exit_code == 0, (result.output, result.exception)
    lines = [ln for ln in result.stdout.splitlines() if ln.strip()]
    assert lines[0] == "Calibrate the spectrometer with argon lamps. [1]"
    assert lines[1].startswith("[1] guide.pdf, page 2  (")


def test_ask_json(index):
    result = runner.invoke(app, ["ask", "What does the red fox hunt?", "--index", index,
                                 "--json", "-k", "2", "--generator", "extractive"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["found"] and data["generator"] == "extractive" and len(data["hits"]) == 2
    assert data["citations"][0]["name"] == "fox.md" and "voles" in data["text"]


def test_ask_not_found_prints_no_citations(index):
    result = runner.invoke(app, ["ask", "Which cipher protects mainframe passwords?",
                                 "--index", index])
    assert result.exit_code == 0
    assert result.stdout.strip() == "The answer was not found in the indexed material."


def test_ask_errors(index, tmp_path):
    assert isinstance(runner.invoke(app, ["ask", "", "--index", index]).exception, QueryError)
    bad = runner.invoke(app, ["ask", "fox", "--index", index, "--generator", "nosuch"])
    assert isinstance(bad.exception, UnknownBackendError)
    empty = runner.invoke(app, ["ask", "fox", "--index", str(tmp_path / "none")])
    assert isinstance(empty.exception, QueryError) and "empty" in str(empty.exception)


def test_ask_error_is_one_line_from_the_real_entry_point(index):
    res = subprocess.run(
        [sys.executable, "-c", "from mmrag.cli import main; main()", "ask", "fox",
         "--index", index, "--generator", "nosuch"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "MMRAG_ENCODE__TEXT_ENCODER": "hashing"})
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "unknown generator 'nosuch'" in res.stderr
    assert Path(index).exists()


class _Invented:
    """A generator whose second sentence invents a number (for the support marks)."""

    name, supports_images = "invented", False

    def stream(self, messages, *, max_tokens, temperature):
        yield "The red fox hunts voles in snowy meadows [1]. "
        yield "It hunts 42 voles a day [1]."


def invented(settings) -> _Invented:
    return _Invented()


def test_ask_marks_unsupported_sentences_and_prints_grounded(index):
    args = ["ask", "What does the red fox hunt?", "--index", index, "-k", "1",
            "--generator", "tests.test_cli_ask.invented"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    lines = result.stdout.splitlines()
    assert lines[0] == "The red fox hunts voles in snowy meadows [1]. It hunts 42 voles a day [1]."
    (mark,) = [ln for ln in lines if "unsupported" in ln]
    assert "42" in mark and "It hunts 42 voles a day [1]." in mark and "meadows" not in mark
    assert "grounded: 50% (1 of 2 sentences supported)" in lines
    data = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert data["grounded"] == 0.5
    assert [s["supported"] for s in data["support"]] == [True, False]
    assert data["support"][1]["numbers"] == ["42"]


def test_ask_drop_unsupported_prints_the_filtered_answer(index, monkeypatch):
    monkeypatch.setenv("MMRAG_GENERATE__DROP_UNSUPPORTED", "true")
    result = runner.invoke(app, ["ask", "What does the red fox hunt?", "--index", index,
                                 "-k", "1", "--generator", "tests.test_cli_ask.invented"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout.splitlines()[0] == "The red fox hunts voles in snowy meadows [1]."
    assert "42" not in result.stdout and "grounded: 100%" in result.stdout
