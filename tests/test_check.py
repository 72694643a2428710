"""`mmrag check` and media garbage collection: each kind of damage is found in one line,
repair leaves an index that re-adding makes whole, and collection removes exactly the
media nothing refers to."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrag import Index, Item
from mmrag.cli import app
from tests.factories import make_png, make_text_pdf

FAST = {"encode": {"text_encoder": "hashing"}, "ingest": {"ocr": "never"}}
runner = CliRunner()


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "fox.md").write_text("# Foxes\n\nThe red fox hunts voles in snowy meadows.\n")
    (d / "owl.md").write_text("# Owls\n\nBarn owls swallow mice whole at night.\n")
    (d / "kite.png").write_bytes(make_png("kite", (40, 30)))
    (d / "guide.pdf").write_bytes(make_text_pdf(["Calibrate the spectrometer with argon.",
                                                 "Clean the cuvette with ethanol."]))
    return d


def _media_of(index: Index, name: str) -> set[str]:
    record = next(r for r in index.documents() if Path(r.source).name == name)
    return {it.media for it in index.store.get(record.item_ids) if it.media}


def _damage(index: Index, docs: Path, partial: bool = True) -> None:
    """One of each: orphan rows, a partial document (LanceDB only: it deletes one row by
    id here), a lost media file, a stray file."""
    vec = np.full((1, index.store.spaces["text"]), 0.1, np.float32)
    index.store.add([Item(id="feedfacefeedface:p1:t0", doc_id="feedfacefeedface",
                          source="gone.md", modality="text", text="ghost")], {"text": vec})
    if partial:
        guide = next(r for r in index.documents() if r.source.endswith("guide.pdf"))
        index.store._table.delete(f"id = '{guide.item_ids[-1]}'")  # type: ignore
    index.media.path(next(iter(_media_of(index, "kite.png")))).unlink()
    index.media.put_bytes(b"nobody shows me", "bin")
    shard = index.media.path(next(iter(_media_of(index, "guide.pdf")))).parent
    (shard / ".tmp-killed").write_bytes(b"half a render")


def test_check_finds_each_problem_and_repair_makes_re_adding_whole(tmp_path, docs):
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(docs, show_progress=False)
        assert index.check().ok
        _damage(index, docs)
        report = index.check()
        kinds = {p.kind for p in report.problems}
        assert kinds == {"orphan", "partial", "missing-media", "unreferenced-media"}
        assert all("\n" not in p.line() for p in report.problems)
        assert any("guide.pdf" in p.line() and p.kind == "partial" for p in report.problems)
        repaired = index.check(repair=True)
        assert sorted(Path(s).name for s in repaired.readd) == ["guide.pdf", "kite.png"]
        after = index.check()
        assert after.ok, [p.line() for p in after.problems]
        assert sorted(Path(r.source).name for r in index.documents()) == ["fox.md", "owl.md"]
        report = index.add(docs, show_progress=False)
        assert sorted(Path(s).name for s in report.added) == ["guide.pdf", "kite.png"]
        assert index.check().ok
        assert index.search("cuvette ethanol", k=1, mode="bm25")[0].item.name == "guide.pdf"


def test_cli_check_exits_1_with_one_line_per_problem_and_0_after_repair(tmp_path, docs,
                                                                        monkeypatch):
    monkeypatch.setenv("MMRAG_ENCODE__TEXT_ENCODER", "hashing")
    where = str(tmp_path / "idx")
    assert runner.invoke(app, ["add", str(docs), "--index", where]).exit_code == 0
    ok = runner.invoke(app, ["check", "--index", where])
    assert ok.exit_code == 0 and "consistent: 4 document(s)" in ok.stdout
    with Index(where) as index:
        index.media.put_bytes(b"stray", "bin")
        index.media.path(next(iter(_media_of(index, "kite.png")))).unlink()
    bad = runner.invoke(app, ["check", "--index", where])
    assert bad.exit_code == 1
    lines = bad.stdout.strip().splitlines()
    assert [ln.split(":", 1)[0] for ln in lines[:-1]] == ["missing-media",
                                                         "unreferenced-media"]
    assert lines[-1].startswith("2 problem(s)")
    fixed = runner.invoke(app, ["check", "--repair", "--index", where])
    assert fixed.exit_code == 0 and "add again: " in fixed.stdout
    assert runner.invoke(app, ["check", "--index", where]).exit_code == 0
    missing = runner.invoke(app, ["check", "--index", str(tmp_path / "nothing")])
    assert missing.exit_code != 0 and not (tmp_path / "nothing").exists()


def test_delete_collects_media_nothing_else_shows(tmp_path, docs):
    (docs / "kite-copy.png").write_bytes((docs / "kite.png").read_bytes())  # an alias
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(docs, show_progress=False)
        kite, guide = _media_of(index, "kite.png"), _media_of(index, "guide.pdf")
        assert len(guide) == 2 and len(kite) == 1

        assert index.delete(docs / "kite.png") == 1
        assert all(index.media.exists(k) for k in kite)  # the copy still shows it
        assert index.delete(docs / "guide.pdf") == 1
        assert not any(index.media.exists(k) for k in guide)
        assert index.delete(docs / "kite-copy.png") == 1
        assert not any(index.media.exists(k) for k in kite)
        assert index.check().ok


def test_optimize_collects_what_a_delete_during_an_add_left(tmp_path, docs):
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(docs, show_progress=False)
        guide = _media_of(index, "guide.pdf")
        stray = index.media.put_bytes(b"written by a killed add", "jpg")
        tmp = index.media.path(stray).parent / ".tmp-abc"
        tmp.write_bytes(b"half")
        with index.media_lock.shared():  # an add in progress holds its media
            index.delete(docs / "guide.pdf")
            assert all(index.media.exists(k) for k in guide)
            assert index.optimize() is None  # collection waits for the add
            assert index.media.exists(stray)
        assert index.optimize() == 3  # two page renders and the stray file
        assert not tmp.exists() and not index.media.temp_files()
        shown = {it.media for r in index.documents()
                 for it in index.store.get(r.item_ids) if it.media}
        assert shown and shown == set(index.media.keys())
        assert index.check().ok


def test_cli_optimize_reports_collected_media(tmp_path, docs, monkeypatch):
    monkeypatch.setenv("MMRAG_ENCODE__TEXT_ENCODER", "hashing")
    where = str(tmp_path / "idx")
    assert runner.invoke(app, ["add", str(docs), "--index", where]).exit_code == 0
    with Index(where) as index:
        index.media.put_bytes(os.urandom(64), "bin")
    done = runner.invoke(app, ["optimize", "--index", where])
    assert done.exit_code == 0, done.output
    assert "removed 1 unreferenced media file(s)" in done.stdout


@pytest.mark.milvus
@pytest.mark.skipif(importlib.util.find_spec("milvus_lite") is None,
                    reason="pymilvus/milvus-lite not installed")
def test_check_and_repair_on_milvus(tmp_path, docs):
    with Index(tmp_path / "idx", store={"backend": "milvus"}, **FAST) as index:
        index.add(docs, show_progress=False)
        assert index.check().ok
        _damage(index, docs, partial=False)
        kinds = {p.kind for p in index.check().problems}
        assert kinds == {"orphan", "missing-media", "unreferenced-media"}
        index.check(repair=True)
        assert index.check().ok
        index.add(docs, show_progress=False)
        assert index.check().ok and len(index.documents()) == 4


def test_check_finds_token_matrices_whose_shard_is_gone(tmp_path):
    from mmrag.store.multivec import MultiVectorStore

    with MultiVectorStore(tmp_path / "mv", dim=4) as mv:
        mv.add(["d1:p1", "d1:p2"], [np.ones((3, 4), np.float32), np.ones((2, 4), np.float32)])
        mv.add(["d2:p1"], [np.ones((2, 4), np.float32)])
        assert mv.missing_shards() == []
        shard = min((tmp_path / "mv" / "shards").glob("*.npy"))
        lost = {i for i in mv.ids() if mv._locate([i])[i][0] == shard.stem}
        shard.unlink()
        assert set(mv.missing_shards()) == lost
