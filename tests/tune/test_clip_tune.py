"""Contrastive tuning of tiny random-weight CLIP/SigLIP models: wiring and correctness.

The models are the shared tiny checkpoints (tests/conftest.py) and the data a synthetic
set of coloured shapes with their names (tests/tune/shapes.py), so these runs prove that
the loss, batches, hard negatives, saving and loading work, never the quality of a real
checkpoint. One torch thread: on a busy 2-core machine OpenMP's spinning makes a second
thread ~10x slower for models this small.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from mmrag import Index
from mmrag.config import Settings
from mmrag.encode.clip import CLIPEncoder
from mmrag.errors import ConfigError
from mmrag.tune.clip import (
    ClipTuneOptions,
    build_batch,
    index_pairs,
    mine_hard_negatives,
    pair_loss,
    read_pairs,
    recall_at_1,
    tune_clip,
)
from tests.tune.shapes import shape_pairs

ONE_THREAD = Settings(encode={"threads": 1})


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shapes")
    lines = []
    for i, (img, text) in enumerate(shape_pairs(10, seed=0)):
        img.save(folder / f"{i}.png")
        lines.append(json.dumps({"image": f"{i}.png", "text": text}))
    (folder / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "pairs.jsonl"


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


# Chosen on these tiny random models (3 data seeds each, all learnt): SigLIP's bias starts
# at -10 (set for 32k-pair batches) and needs a rate of its own to reach -log(batch) within
# 150 steps; CLIP's temperature learns at the towers' rate.
@pytest.mark.parametrize(("model", "logit_lr"), [("tiny_clip_path", None),
                                                 ("tiny_siglip_path", 5e-2)])
def test_tuning_wiring_loss_falls_and_heldout_recall_rises(tmp_path, pairs_file, model,
                                                           logit_lr, request):
    base = request.getfixturevalue(model)
    opts = ClipTuneOptions(model=str(base), out=str(tmp_path / "tuned"), steps=150,
                           batch_size=9, lr=1e-3, logit_lr=logit_lr, warmup=0.0,
                           weight_decay=0.0, mine_every=25)
    report = tune_clip(None, str(pairs_file), False, 5.0, ONE_THREAD, opts)
    assert report["kind"] == ("siglip" if "siglip" in model else "clip")
    assert report["steps"] == 150 and len(report["losses"]) == 150
    losses = report["losses"]
    assert _mean(losses[-10:]) < 0.8 * _mean(losses[:10])
    before, after = report["recall_before"], report["recall_after"]
    chance = after["chance"]
    assert chance == pytest.approx(1 / len({t for t in _texts(pairs_file)}), abs=0.2)
    assert after["image_to_text"] >= 2 * chance
    assert after["image_to_text"] > before["image_to_text"]
    # the tuned checkpoint loads through the path any user checkpoint takes
    tuned = CLIPEncoder(report["checkpoint"])
    fresh = CLIPEncoder(str(base))
    vec = tuned.encode_text(["a red square"])
    assert vec.shape == (1, fresh.dim)
    assert not np.allclose(vec, fresh.encode_text(["a red square"]), atol=1e-4)


def _texts(pairs_file: Path) -> list[str]:
    return [json.loads(line)["text"] for line in pairs_file.read_text().splitlines()]


def test_tuned_checkpoint_serves_a_clip_index_wiring(tmp_path, pairs_file, tiny_clip_path):
    opts = ClipTuneOptions(model=str(tiny_clip_path), out=str(tmp_path / "tuned"), steps=2,
                           batch_size=4, holdout=0.0)
    report = tune_clip(None, str(pairs_file), False, 5.0, ONE_THREAD, opts)
    assert "recall_before" not in report and report["steps"] == 2
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    for i, (img, _) in enumerate(shape_pairs(1, seed=3)[:3]):
        img.save(shapes / f"{i}.png")
    with Index(tmp_path / "idx", profile="clip",
               encode={"vision_model": report["checkpoint"], "text_encoder": "hashing"}) as ix:
        assert not ix.add(shapes).failed
        hit = ix.search(shapes / "1.png", k=1, group_by="item")[0]
        assert hit.item.name == "1.png"


def test_lora_adapters_merge_into_a_plain_checkpoint_wiring(tmp_path, pairs_file,
                                                            tiny_clip_path):
    pytest.importorskip("peft")
    opts = ClipTuneOptions(model=str(tiny_clip_path), out=str(tmp_path / "lora"), steps=3,
                           batch_size=6, lr=1e-2, lora=True, lora_rank=2)
    report = tune_clip(None, str(pairs_file), False, 5.0, ONE_THREAD, opts)
    assert report["lora"] and report["steps"] == 3
    saved = json.loads((Path(report["checkpoint"]) / "config.json").read_text())
    assert saved["model_type"] == "clip"  # merged: no adapter config left to load
    assert not (Path(report["checkpoint"]) / "adapter_config.json").exists()
    tuned = CLIPEncoder(report["checkpoint"]).encode_text(["a purple dot"])
    base = CLIPEncoder(str(tiny_clip_path)).encode_text(["a purple dot"])
    assert not np.allclose(tuned, base, atol=1e-5)


def test_pairs_file_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "pairs.jsonl"
    bad.write_text('{"image": "a.png", "text": "ok"}\n{"image": "b.png"}\n')
    with pytest.raises(ConfigError, match=r"pairs.jsonl' line 2"):
        read_pairs(bad)
    bad.write_text("not json\n")
    with pytest.raises(ConfigError, match="line 1: not JSON"):
        read_pairs(bad)
    with pytest.raises(ConfigError, match="not found"):
        read_pairs(tmp_path / "missing.jsonl")
    bad.write_text('{"image": "nowhere.png", "text": "a"}\n' * 1)
    pairs = read_pairs(bad)
    assert pairs[0].image == str(tmp_path / "nowhere.png")  # relative to the file


def test_too_few_pairs_and_a_missing_image_are_one_line_errors(tmp_path, tiny_clip_path):
    few = tmp_path / "few.jsonl"
    few.write_text("".join(json.dumps({"image": "x.png", "text": t}) + "\n"
                           for t in ("a", "b", "b")))
    opts = ClipTuneOptions(model=str(tiny_clip_path), steps=1)
    with pytest.raises(ConfigError, match="at least 4 pairs with distinct texts; found 2"):
        tune_clip(None, str(few), False, 1.0, ONE_THREAD, opts)
    few.write_text("".join(json.dumps({"image": f"{t}.png", "text": t}) + "\n"
                           for t in "abcde"))
    with pytest.raises(ConfigError, match="cannot read pair image"):
        tune_clip(None, str(few), False, 1.0, ONE_THREAD, opts)
    with pytest.raises(ConfigError, match="needs a CLIP/SigLIP model"):
        tune_clip(None, str(few), False, 1.0, ONE_THREAD, ClipTuneOptions())


def _docx_with_pictures(named: list[tuple[bytes, str]]) -> bytes:
    docx = pytest.importorskip("docx")
    doc = docx.Document()
    for png, alt in named:
        doc.add_paragraph("figure follows")
        doc.add_picture(io.BytesIO(png))
        doc.inline_shapes[-1]._inline.docPr.set("descr", alt)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def test_pairs_from_index_take_pictures_with_their_alt_text(tmp_path, tiny_clip_path):
    pictures = []
    for img, text in shape_pairs(1, seed=5)[:5]:
        buf = io.BytesIO()
        img.resize((64, 64)).save(buf, format="PNG")
        pictures.append((buf.getvalue(), text))
    (tmp_path / "doc.docx").write_bytes(_docx_with_pictures(pictures))
    settings = {"text_encoder": "hashing"}
    with Index(tmp_path / "idx", encode=settings, ingest={"ocr": "never",
                                                          "office_renders": False}) as ix:
        assert not ix.add(tmp_path / "doc.docx").failed
        pairs = index_pairs(ix)
        assert sorted(p.text for p in pairs) == sorted(t for _, t in pictures)
        assert all(Path(str(p.image)).is_file() for p in pairs)
        report = tune_clip(ix, None, True, 5.0, ONE_THREAD,
                           ClipTuneOptions(model=str(tiny_clip_path), steps=2, batch_size=3))
        assert report["pairs"] == 5 and report["steps"] == 2
        assert Path(report["checkpoint"]) == ix.root / "tuned" / "clip"


def test_hard_negatives_are_the_confusable_texts_never_the_same_text():
    img = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    txt = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    texts = ["red square", "green dot", "red dot"]
    neg = mine_hard_negatives(img, txt, texts, k=1)
    assert neg[0] == [2]  # "red dot" is the text closest to the red square's image
    assert neg[1] == [2]
    same = mine_hard_negatives(img, txt, ["a", "a", "b"], k=2)
    assert 1 not in same[0] and 0 not in same[1]  # a shared text is no negative
    batch = build_batch(6, 4, [[1], [0], [0], [1], [0], [1]],
                        ["a", "b", "c", "a", "d", "b"], 0.5, __import__("random").Random(0))
    assert len(batch) == 4
    assert len({["a", "b", "c", "a", "d", "b"][i] for i in batch}) == 4


def test_pair_loss_matches_the_models_own_losses(tiny_clip_path, tiny_siglip_path):
    import torch
    from transformers import AutoModel

    from mmrag.tune.clip import _image_inputs, _text_inputs, load_model

    pairs = shape_pairs(1, seed=2)[:4]
    for path in (tiny_clip_path, tiny_siglip_path):
        m = load_model(str(path))
        assert isinstance(m.model, type(AutoModel.from_pretrained(str(path))))
        inputs = {**_text_inputs(m, [t for _, t in pairs]),
                  **_image_inputs(m, [i for i, _ in pairs])}
        with torch.no_grad():
            out = m.model(**inputs, return_loss=True)
        mine = pair_loss(out.logits_per_text, m.sigmoid)
        assert float(mine) == pytest.approx(float(out.loss), rel=1e-5)


def test_recall_counts_distinct_texts_once():
    img = np.eye(3)
    txt = np.eye(3)[[0, 1, 1]]  # two images share text "b"
    r = recall_at_1(img, txt, ["a", "b", "b"])
    assert r["chance"] == 0.5
    assert r["image_to_text"] == pytest.approx(2 / 3)  # image 3 ranks "a"/"b" tie → first


def test_tune_command_dispatches_space_clip_wiring(tmp_path, pairs_file, tiny_clip_path):
    from typer.testing import CliRunner

    from mmrag.cli import app

    shapes = tmp_path / "shapes"
    shapes.mkdir()
    shape_pairs(1, seed=4)[0][0].save(shapes / "one.png")
    with Index(tmp_path / "idx", profile="clip",
               encode={"vision_model": str(tiny_clip_path), "text_encoder": "hashing"}) as ix:
        assert not ix.add(shapes).failed
    config = tmp_path / "mmrag.toml"
    out = tmp_path / "tuned-by-cli"
    config.write_text(f'[tune]\nclip_steps = 2\nclip_batch_size = 4\nclip_out = "{out}"\n'
                      f"clip_learning_rate = 0.001\n")
    result = CliRunner().invoke(app, ["tune", "--space", "clip", "--pairs", str(pairs_file),
                                      "--index", str(tmp_path / "idx"), "--config",
                                      str(config), "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(result.stdout)
    assert report["steps"] == 2 and report["checkpoint"] == str(out)
    assert report["model"] == str(tiny_clip_path) and not report["switched"]
    assert CLIPEncoder(str(out)).dim == CLIPEncoder(str(tiny_clip_path)).dim
