"""`mmrag eval` from the command line: image queries, --per-query, --compare."""

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
    (d / "red.png").write_bytes(make_png("red", (48, 48)))
    (d / "blue.png").write_bytes(make_png("blue", (48, 48)))
    (tmp_path / "query-red.png").write_bytes(make_png((250, 5, 5), (48, 48)))
    return d


@pytest.fixture()
def queries(tmp_path: Path, docs: Path) -> Path:
    rows = [
        {"id": "t1", "query": "how to calibrate a spectrometer", "kind": "text",
         "relevant": [{"file": "guide.pdf", "page": None}]},
        {"id": "t2", "query": "what do foxes hunt in snow", "kind": "text",
         "relevant": [{"file": "fox.md"}]},
        {"id": "i1", "image": str(tmp_path / "query-red.png"), "kind": "visual",
         "relevant": [{"file": "red.png", "page": 1}]},
        {"id": "i2", "query": "red", "image": "red.png", "kind": "visual",
         "relevant": [{"file": "red.png", "page": 1}]},
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _run(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_json_report_has_image_kinds_and_top_pages(queries, docs, fast_env):
    report = json.loads(_run("eval", str(queries), "--docs", str(docs), "--json").stdout)
    assert set(report["by_kind"]) == {"text", "image", "text+image"}
    by_id = {q["id"]: q for q in report["queries"]}
    assert by_id["i1"]["kind"] == "image" and by_id["i1"]["label"] == "visual"
    assert by_id["i2"]["kind"] == "text+image"
    # the offline image descriptor answers image → image: the red query finds red.png first
    assert by_id["i1"]["top"][0] == {**by_id["i1"]["top"][0], "page": "red.png#1",
                                     "relevant": True}
    assert by_id["t1"]["recall@10"] == 1.0  # any page of guide.pdf counts
    for q in report["queries"]:
        assert "error" not in q and len(q["top"]) <= 10
        assert all(set(t) == {"page", "score", "relevant"} for t in q["top"])
    assert report["failed_to_add"] == []


def test_image_query_without_image_encoder_scores_zero_with_an_error(
        queries, docs, fast_env, monkeypatch):
    monkeypatch.setenv("MMRAG_ENCODE__IMAGE_DESCRIPTOR", "false")
    report = json.loads(_run("eval", str(queries), "--docs", str(docs), "--json").stdout)
    by_id = {q["id"]: q for q in report["queries"]}
    assert by_id["i1"]["ndcg@5"] == 0.0 and by_id["i1"]["top"] == []
    assert by_id["i1"]["error"] and "\n" not in by_id["i1"]["error"]
    assert "error" not in by_id["t2"] and by_id["t2"]["recall@10"] == 1.0


def test_per_query_table_lists_queries_and_marks_relevant_pages(queries, docs, fast_env):
    plain = _run("eval", str(queries), "--docs", str(docs)).stdout
    assert "overall" in plain and "t1" not in plain
    out = _run("eval", str(queries), "--docs", str(docs), "--per-query").stdout
    for qid in ("t1", "t2", "i1", "i2"):
        assert qid in out
    assert "✓ red.png#1" in out and "text+image" in out


def test_compare_prints_and_jsons_the_diff(tmp_path, queries, docs, fast_env):
    a = tmp_path / "a.json"
    a.write_text(_run("eval", str(queries), "--docs", str(docs), "--json").stdout)
    report = json.loads(a.read_text())
    worse = {**report, "overall": {m: v / 2 for m, v in report["overall"].items()},
             "queries": [{**q, "ndcg@5": 0.0} if q["id"] == "t2" else q
                         for q in report["queries"]]}
    b = tmp_path / "b.json"
    b.write_text(json.dumps(worse))
    diff = json.loads(_run("eval", "--compare", str(a), str(b), "--json").stdout)
    for m, v in report["overall"].items():
        assert diff["kinds"]["overall"][m]["diff"] == pytest.approx(v / 2 - v, abs=1e-4)
    t2 = next(q for q in report["queries"] if q["id"] == "t2")
    assert diff["changed"] == [{"id": "t2", "kind": "text", "a": t2["ndcg@5"], "b": 0.0,
                                "diff": round(-t2["ndcg@5"], 4)}]
    table = _run("eval", "--compare", str(a), str(b)).stdout
    assert "B−A" in table and "t2" in table and "overall" in table


def _main(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from mmrag.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MMRAG_ENCODE__TEXT_ENCODER": "hashing"})


def test_bad_compare_inputs_are_one_line_errors(tmp_path, queries):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    for args, needle in [(("--compare", str(bad), str(bad)), "not an `mmrag eval --json`"),
                         (("--compare", str(queries), str(bad)), "not JSON"),
                         ((), "give a queries.jsonl"),
                         ((str(queries), "--compare", str(bad), str(bad)), "not both")]:
        res = _main("eval", *args)
        assert res.returncode == 1 and "Traceback" not in res.stderr
        first = res.stderr.splitlines()[0]
        assert first.startswith("error:") and needle in first
