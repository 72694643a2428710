"""Re-embedding into a new column, the atomic switch, rollback, and an interrupted tune.

Training is replaced by a stand-in that saves the tiny model with perturbed weights (a
"tuned" model whose vectors differ), so these tests are about the switch, not learning.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mmrag import Index
from mmrag.cli import app
from mmrag.errors import ConfigError
from mmrag.store.lance import LanceStore
from mmrag.tune import switch
from mmrag.tune.switch import rollback, tune_text
from mmrag.tune.text import TrainReport

from .conftest import write_docs

QUERIES = ["where do puffins nest", "diesel injectors pressure", "moon and tides"]


def _open(root, model):
    return Index(root, profile="offline", show_progress=False,
                 encode={"text_model": model, "image_descriptor": False})


def _results(idx, mode="dense"):
    return [[(h.item.id, round(h.score, 5)) for h in idx.search(q, k=5, mode=mode)]
            for q in QUERIES]


def _fake_train(gain: float):
    def train(base, train, heldout, passages, out_dir, settings, **kw):
        import torch
        from sentence_transformers import SentenceTransformer

        if gain > 0:
            model = SentenceTransformer(base, device="cpu")
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.05 * torch.randn_like(p))
            out_dir.mkdir(parents=True)
            model.save(str(out_dir))
        return TrainReport(0.5, 0.5 + gain, "heldout_cosine_ndcg@10", 3, 1.0, len(train),
                           len(heldout), {"cloze": len(train)}, [(1, 2.0), (3, 1.0)],
                           [(3, 0.5 + gain)], "max-steps")

    return train


@pytest.fixture
def index(tmp_path, tiny_st_path):
    idx = _open(tmp_path / "idx", tiny_st_path)
    idx.add([str(p) for p in write_docs(tmp_path / "docs")])
    yield idx
    idx.close()


def _manifest(idx):
    return json.loads((idx.root / "mmrag.json").read_text())


def test_switch_then_rollback(index, tiny_st_path, tmp_path, monkeypatch):
    before = {m: _results(index, m) for m in ("dense", "hybrid")}
    monkeypatch.setattr(switch, "train_text_model", _fake_train(0.1))
    report = tune_text(index, show=False)
    assert report["switched"] and report["column"] == "text_t1"
    m = _manifest(index)
    assert m["active"]["text"] == {"column": "text_t1", "model": "tuned/text-1"}
    assert m["previous"]["text"] == {"column": "text", "model": ""}
    assert m["spaces"]["text_t1"] == m["spaces"]["text"]
    assert m["encoders"]["text_t1"]["model"] == "tuned/text-1"     # which model the space uses
    assert (index.root / "tuned" / "text-1" / "report.json").is_file()
    assert list(index.encoders) == ["text_t1"]
    switched = _results(index)
    assert switched != before["dense"]            # the tuned vectors answer now
    assert all(switched)
    reopened = _open(index.root, tiny_st_path)
    assert _results(reopened) == switched         # a new process reads the manifest
    # a document added after the switch is embedded by the tuned model only ...
    extra = tmp_path / "more" / "owls.md"
    extra.parent.mkdir()
    extra.write_text("# Owls\n\nBarn owls hunt mice at night over open farmland fields.\n")
    reopened.add([str(extra)])
    reopened.close()
    back = rollback(index, show=False)
    assert back["column"] == "text" and back["embedded"] == 1     # ... and caught up here
    assert _manifest(index)["active"]["text"] == {"column": "text", "model": ""}
    index.delete(str(extra))
    assert {m: _results(index, m) for m in ("dense", "hybrid")} == before


def test_interrupted_tune_leaves_the_old_model_serving(index, tiny_st_path, monkeypatch):
    before = {m: _results(index, m) for m in ("dense", "hybrid")}
    manifest = (index.root / "mmrag.json").read_bytes()
    monkeypatch.setattr(switch, "train_text_model", _fake_train(0.1))

    def crash(self, space, ids, vectors):
        raise RuntimeError("killed mid re-embed")

    with monkeypatch.context() as mp:
        mp.setattr(LanceStore, "set_vectors", crash)
        with pytest.raises(RuntimeError):
            tune_text(index, show=False)
    assert (index.root / "mmrag.json").read_bytes() == manifest
    assert {m: _results(index, m) for m in ("dense", "hybrid")} == before
    reopened = _open(index.root, tiny_st_path)
    assert {m: _results(reopened, m) for m in ("dense", "hybrid")} == before
    reopened.close()
    # the next tune clears the leftovers and switches
    assert tune_text(index, show=False)["column"] == "text_t1"
    assert sorted(p.name for p in (index.root / "tuned").glob("text-*")) == ["text-1"]


def test_no_gain_no_switch(index, monkeypatch):
    before = _results(index)
    manifest = (index.root / "mmrag.json").read_bytes()
    monkeypatch.setattr(switch, "train_text_model", _fake_train(0.0))
    report = tune_text(index, show=False)
    assert not report["switched"] and "does not beat" in report["reason"]
    assert (index.root / "mmrag.json").read_bytes() == manifest
    assert (index.root / "tuned" / "last-report.json").is_file()
    assert _results(index) == before


def test_second_tune_drops_the_column_before_the_previous(index, monkeypatch):
    monkeypatch.setattr(switch, "train_text_model", _fake_train(0.1))
    tune_text(index, show=False)
    second = tune_text(index, show=False)
    assert second["column"] == "text_t2"
    m = _manifest(index)
    assert m["previous"]["text"]["column"] == "text_t1"
    assert "text" not in m["spaces"] and "text" not in index.store.spaces
    assert rollback(index, show=False)["column"] == "text_t1"
    assert _results(index) and all(_results(index))


def test_cli_refusals(tmp_path, index):
    runner = CliRunner()
    result = runner.invoke(app, ["tune", "--index", str(tmp_path / "nothing")])
    assert isinstance(result.exception, ConfigError) and "no index" in str(result.exception)
    result = runner.invoke(app, ["tune", "--index", str(index.root), "--rollback"])
    assert isinstance(result.exception, ConfigError)
    assert "never tuned" in str(result.exception)
    result = runner.invoke(app, ["tune", "--index", str(index.root), "--space", "audio"])
    assert "unknown --space" in str(result.exception)
