"""Zero-shot labels (prompt ensembles, calibration against neutral prompts) with tiny
random-weight CLIP/SigLIP models: wiring and the maths, never label quality."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrag import Index
from mmrag.cli import app
from mmrag.config import Settings
from mmrag.encode.base import l2_normalize
from mmrag.encode.clip import CLIPEncoder
from mmrag.encode.zeroshot import (
    NEUTRAL,
    TEMPLATES,
    ZeroShot,
    encoder_for,
    logit_params,
    parse_labels,
)
from mmrag.errors import ConfigError
from tests.factories import make_png, make_text_pdf

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["tiny_clip_path", "tiny_siglip_path"])
def encoder(request) -> CLIPEncoder:
    return CLIPEncoder(str(request.getfixturevalue(request.param)))


def test_labels_are_parsed_stripped_and_deduplicated():
    assert parse_labels(" invoice, receipt ,,invoice,  bar  chart") == [
        "invoice", "receipt", "bar chart"]
    with pytest.raises(ConfigError, match="no labels given"):
        parse_labels(" , ")


def test_prompt_ensemble_is_the_normalised_mean_over_templates_wiring(encoder):
    zs = ZeroShot(encoder, ["red", "blue"])
    for row, label in zip(zs._label_vecs, zs.labels, strict=True):
        each = encoder.encode_text([t.format(label) for t in TEMPLATES])
        assert np.allclose(row, l2_normalize(each.mean(axis=0)), atol=1e-5)
    words = [l2_normalize(encoder.encode_text([t.format(w) for t in TEMPLATES]).mean(axis=0))
             for w in NEUTRAL]  # the neutral class: the mean of the words' ensembles
    assert np.allclose(zs._neutral[0], l2_normalize(np.mean(words, axis=0)), atol=1e-5)


def test_calibrated_probabilities_follow_the_models_own_loss(encoder):
    zs = ZeroShot(encoder, ["red", "blue", "car"])
    scale, bias, sigmoid = logit_params(encoder)
    assert sigmoid == encoder.model_type.startswith("siglip")
    assert scale == pytest.approx(float(encoder._model.logit_scale.detach().exp()), rel=1e-5)
    rng = np.random.default_rng(0)
    x = l2_normalize(rng.normal(size=(4, encoder.dim)))
    p = zs.probabilities(x)
    z = scale * x @ zs._label_vecs.T + bias
    z0 = scale * x @ zs._neutral.T + bias
    if sigmoid:  # each label against the neutral class on its own
        assert np.allclose(p, 1 / (1 + np.exp(-(z - z0))), atol=1e-6)
    else:  # one softmax over the labels and the neutral class
        e = np.exp(np.concatenate([z, z0], axis=1))
        assert np.allclose(p, (e / e.sum(axis=1, keepdims=True))[:, :3], atol=1e-6)
        assert (p.sum(axis=1) < 1).all()
    # an image exactly like the neutral prompts is never more "red" than "just a thing"
    neutral_p = zs.probabilities(zs._neutral)[0]
    assert (neutral_p <= (0.5 if sigmoid else 1 - neutral_p.sum()) + 1e-6).all()


def test_tags_are_the_labels_at_or_above_the_threshold(encoder):
    rng = np.random.default_rng(1)
    x = l2_normalize(rng.normal(size=(3, encoder.dim)))
    every = ZeroShot(encoder, "a,b,c", threshold=0.0).tags(x)
    p = ZeroShot(encoder, "a,b,c").probabilities(x)
    for row, tags in zip(p, every, strict=True):
        assert tags == [["a", "b", "c"][i] for i in np.argsort(-row, kind="stable")]
    assert ZeroShot(encoder, "a,b,c", threshold=1.0).tags(x) == [[], [], []]
    cut = float(np.median(p))
    assert ZeroShot(encoder, "a,b,c", threshold=cut).tags(x) == [
        [lab for lab, v in sorted(zip("abc", row, strict=True), key=lambda t: -t[1])
         if v >= cut] for row in p]
    with pytest.raises(ConfigError, match="within 0..1"):
        ZeroShot(encoder, "a", threshold=1.5)


def test_offline_profile_says_labels_need_clip(tmp_path):
    with pytest.raises(ConfigError, match="need the `clip` profile"):
        encoder_for(Settings())
    (tmp_path / "a.png").write_bytes(make_png("red"))
    with Index(tmp_path / "idx", encode={"text_encoder": "hashing"},
               ingest={"auto_tags": ["invoice"]}) as index:
        with pytest.raises(ConfigError, match="need the `clip` profile"):
            index.add(tmp_path / "a.png")
    env = {**os.environ, "MMRAG_PROFILE": "", "MMRAG_ENCODE__VISION_MODEL": ""}
    run = subprocess.run([sys.executable, "-m", "mmrag.cli", "classify", str(tmp_path / "a.png"),
                          "--labels", "invoice,photo", "--index", str(tmp_path / "none")],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert run.returncode == 1
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert "error: zero-shot labels need the `clip` profile" in lines[0]
    assert "Traceback" not in run.stderr


def test_classify_command_wiring(tmp_path, tiny_siglip_path):
    for name, colour in (("r.png", "red"), ("b.png", "blue")):
        (tmp_path / name).write_bytes(make_png(colour, (40, 40)))
    result = CliRunner().invoke(app, ["classify", str(tmp_path / "r.png"),
                                      str(tmp_path / "b.png"), "--labels", "red, blue,car",
                                      "--model", str(tiny_siglip_path), "--threshold", "0",
                                      "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    rows = json.loads(result.stdout)  # stderr has the loading bars
    assert [Path(r["image"]).name for r in rows] == ["r.png", "b.png"]
    for r in rows:
        assert set(r["labels"]) == {"red", "blue", "car"}
        assert all(0.0 <= v <= 1.0 for v in r["labels"].values())
        assert r["tags"] == list(r["labels"])  # threshold 0: every label, best first


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_auto_tags_go_into_metadata_text_and_filters_wiring(tmp_path, tiny_clip_path,
                                                            threshold):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "red.png").write_bytes(make_png("red", (40, 40)))
    (docs / "slides.pdf").write_bytes(make_text_pdf(["first slide"]))
    (docs / "notes.md").write_text("# Notes\n\nplain words about nothing\n")
    with Index(tmp_path / "idx", profile="clip",
               encode={"vision_model": str(tiny_clip_path), "text_encoder": "hashing"},
               ingest={"auto_tags": ["receipt", "zebra"],
                       "auto_tags_threshold": threshold}) as index:
        assert not index.add(docs).failed
        tagged = index.search("notes", k=20, group_by="item", mode="bm25",
                              filters={"metadata": {"tags": "zebra"}})
        if threshold == 1.0:  # nothing reaches probability 1: no tags anywhere
            assert tagged == []
            assert not index.search("zebra", k=20, group_by="item", mode="bm25")
            return
        pictures = index.search(docs / "red.png", k=20, group_by="item",
                                filters={"modality": ["image", "page"]})
        assert {h.item.name for h in pictures} == {"red.png", "slides.pdf"}
        for hit in pictures:  # threshold 0: every label, on every picture and page
            assert sorted(hit.item.metadata["tags"]) == ["receipt", "zebra"]
        # the filter matches list membership; the text carries the tags for BM25
        found = index.search("zebra", k=20, group_by="item", mode="bm25",
                             filters={"metadata": {"tags": "zebra"}})
        assert {h.item.name for h in found} == {"red.png", "slides.pdf"}
        text_items = index.search("plain words", k=20, group_by="item", mode="bm25",
                                  filters={"modality": "text"})
        assert text_items and all("tags" not in h.item.metadata for h in text_items)
