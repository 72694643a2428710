"""The `mmrag` command line, driven as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from tests.factories import make_png, make_text_pdf

runner = CliRunner()


@pytest.fixture()
def fast_env(monkeypatch):
    monkeypatch.setenv("MMRAG_ENCODE__TEXT_ENCODER", "hashing")


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "guide.pdf").write_bytes(make_text_pdf(["Intro page about nothing much.",
                                                 "Calibrate the spectrometer with argon lamps."]))
    (d / "fox.md").write_text("# Foxes\n\nThe red fox hunts voles in snowy meadows.\n")
    (d / "red_kite_in_flight.png").write_bytes(make_png("kite", (40, 30)))
    return d


def _run(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_add_search_info_delete_json(tmp_path, docs, fast_env):
    idx = str(tmp_path / "idx")
    added = json.loads(_run("add", str(docs), "--index", idx, "--json").stdout)
    assert len(added["added"]) == 3 and added["failed"] == []
    hits = json.loads(_run("search", "spectrometer argon", "--index", idx, "--json").stdout)
    assert hits[0]["name"] == "guide.pdf" and hits[0]["page"] == 2 and hits[0]["rank"] == 1
    pages = json.loads(_run("search", "fox kite spectrometer", "--index", idx, "--json",
                            "--modality", "image").stdout)
    assert pages and {h["modality"] for h in pages} == {"image"}
    info = json.loads(_run("info", "--index", idx, "--json").stdout)
    assert info["documents"] == 3 and info["profile"] == "offline" and info["items"] >= 4
    _run("delete", str(docs / "fox.md"), "--index", idx)
    info = json.loads(_run("info", "--index", idx, "--json").stdout)
    assert info["documents"] == 2


def test_table_output_shows_results(tmp_path, docs, fast_env):
    idx = str(tmp_path / "idx")
    _run("add", str(docs), "--index", idx)
    out = _run("search", "red fox voles", "--index", idx, "-k", "2").stdout
    assert "fox.md" in out


def test_eval_json_report(tmp_path, docs, fast_env):
    queries = tmp_path / "q.jsonl"
    rows = [
        {"id": "q1", "query": "how to calibrate a spectrometer", "kind": "text",
         "relevant": [{"file": "guide.pdf", "page": 2}]},
        {"id": "q2", "query": "what do foxes hunt in snow", "kind": "text",
         "relevant": [{"file": "fox.md", "page": 1}]},
        {"id": "q3", "query": "red kite in flight", "kind": "visual",
         "relevant": [{"file": "red_kite_in_flight.png", "page": 1}]},
    ]
    queries.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = json.loads(_run("eval", str(queries), "--docs", str(docs), "--json").stdout)
    assert report["n"] == 3 and report["profile"] == "offline"
    assert set(report["by_kind"]) == {"text", "visual"}
    assert report["by_kind"]["text"]["n"] == 2
    for name in ("recall@1", "recall@5", "recall@10", "ndcg@5", "ndcg@10", "mrr@10"):
        assert 0.0 <= report["overall"][name] <= 1.0
    assert report["overall"]["recall@10"] == 1.0  # three docs: everything is in the top 10
    assert report["seconds"] > 0


def _main(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from mmrag.cli import main; main()", *args],
                          capture_output=True, text=True,
                          env={**os.environ, "MMRAG_ENCODE__TEXT_ENCODER": "hashing",
                               **(env or {})}, timeout=300)


def test_errors_are_one_line_without_traceback(tmp_path):
    res = _main("search", "anything", "--index", str(tmp_path / "empty"))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert "error:" in res.stderr and "empty" in res.stderr
    res = _main("add", str(tmp_path / "nope.pdf"), "--index", str(tmp_path / "i2"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "nope.pdf" in res.stderr
    res = _main("search", "x", "--index", str(tmp_path / "empty"), "--debug")
    assert "Traceback" in res.stderr  # --debug shows it
