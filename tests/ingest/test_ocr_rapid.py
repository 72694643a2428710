"""The rapidocr engine's own pipeline: one detection pass decides the orientation, batched
recognition reads like unbatched, folded graphs compute what the wheel's models do.

Images are drawn in code; the models ship inside the rapidocr-onnxruntime wheel.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from mmrag.config import IngestSettings
from mmrag.ingest.ocr import get_engine, ocr_image, read_upright

pytest.importorskip("rapidocr_onnxruntime")
ort = pytest.importorskip("onnxruntime")

from mmrag.ingest.ocr_rapid import (  # noqa: E402
    RapidOCREngine,
    _content_box,
    _grow,
    _windows,
)
from mmrag.ingest.onnx_fold import _classes, fold_model  # noqa: E402

TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
         270: Image.Transpose.ROTATE_270}
PAGE = ["Quarterly revenue by region 2024", "North grew faster than South",
        "Budget review in March 17", "Rolling buffer cache"]


def squash(text: str) -> str:
    return "".join(re.findall(r"[a-z0-9]+", text.lower()))


def page(lines=PAGE, size=(1000, 520), font_size=40, label: str | None = None) -> Image.Image:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=font_size)
    for i, line in enumerate(lines):
        draw.text((150, 40 + i * 90), line, fill="black", font=font)
    if label:  # a y-axis label: written bottom to top down the left edge
        strip = Image.new("RGB", (300, 60), "white")
        ImageDraw.Draw(strip).text((5, 5), label, fill="black", font=font)
        img.paste(strip.transpose(Image.Transpose.ROTATE_90), (20, 150))
    return img


@pytest.fixture(scope="module")
def engine() -> RapidOCREngine:
    eng = get_engine("rapidocr")
    assert isinstance(eng, RapidOCREngine)
    return eng


@pytest.fixture
def counted(engine, monkeypatch):
    """Counts calls of the engine's stages."""
    calls = {"detect": 0, "classify": 0, "recognize": 0}
    for name in calls:
        real = getattr(engine, name)

        def wrapper(*a, _real=real, _name=name, **k):
            calls[_name] += 1
            return _real(*a, **k)
        monkeypatch.setattr(engine, name, wrapper)
    return calls


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_one_detection_pass_reads_any_quarter_turn(engine, counted, turn):
    img = page()
    if turn:
        img = img.transpose(TURNS[turn])
    result = read_upright(engine, img)
    assert counted["detect"] == 1  # no separate orientation probe, no re-detection
    assert counted["recognize"] == 1  # a confident reading is not double-checked
    assert (result.rotation + turn) % 360 == 0
    assert [squash(line.text) for line in result.lines] == [squash(t) for t in PAGE]
    w, h = img.size
    for line in result.lines:
        x0, y0, x1, y1 = line.bbox
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        # lines run along the page's text direction: wide upright, tall when turned 90°
        assert ((x1 - x0) > (y1 - y0)) == (turn in (0, 180))


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_odd_line_out_is_read_on_its_own(engine, turn):
    """A vertical axis label on an otherwise upright chart still reads upright."""
    img = page(PAGE[:3], label="Revenue")
    if turn:
        img = img.transpose(TURNS[turn])
    lines, rotation = engine.read_upright(img)
    assert (rotation + turn) % 360 == 0
    assert [squash(line.text) for line in lines] == [squash(t) for t in PAGE[:3]] + ["revenue"]


LONG = ["Shard caption rollback 148 index decoder layer buffer index filter;",
        "Margin latency precision 259 caption caption layer paragraph section;",
        "Image revenue ranking table buffer memory 370 attention token layer.",
        "Retrieval replica quarter invoice 407 chart query margin buffer budget;"]


def test_classifier_judges_long_lines_by_windows(engine, counted):
    """Squeezed whole into the classifier's 4:1 input, most of these upright lines were
    called upside down; read in unsqueezed windows every one is right both ways up."""
    img = page(LONG, size=(1300, 400), font_size=30)
    rgb = np.asarray(img)
    crops, _, _ = engine._crops(rgb, engine.detect(rgb))
    assert len(crops) == len(LONG) and all(c.shape[1] > 8 * c.shape[0] for c in crops)
    upright = engine.classify(crops)
    flipped = engine.classify([np.ascontiguousarray(c[::-1, ::-1]) for c in crops])
    assert [f for f, _ in upright] == [False] * len(LONG)
    assert [f for f, _ in flipped] == [True] * len(LONG)
    assert all(score > 0.9 for _, score in upright + flipped)
    # the page is then recognised once, not re-read the other way up
    counted["recognize"] = 0
    lines, rotation = engine.read_upright(img.transpose(TURNS[180]))
    assert rotation == 180 and counted["recognize"] == 1
    assert [squash(line.text) for line in lines] == [squash(t) for t in LONG]


def test_windows_cover_a_wide_crop():
    crop = np.arange(40 * 1000).reshape(40, 1000)
    parts = _windows(crop, 4.0)
    assert [p.shape for p in parts] == [(40, 160)] * 3
    assert parts[0][0, 0] == 0 and parts[-1][0, -1] == 999  # both ends included
    short = np.zeros((40, 100))
    assert len(_windows(short, 4.0)) == 1 and _windows(short, 4.0)[0] is short


def test_unsure_reading_is_checked_the_other_way_up(engine, monkeypatch):
    """A classifier that misses an upside-down page is caught by the confidence check."""
    monkeypatch.setattr(engine, "classify", lambda crops: [(False, 0.99)] * len(crops))
    lines, rotation = engine.read_upright(page().transpose(TURNS[180]))
    assert rotation == 180
    assert [squash(line.text) for line in lines] == [squash(t) for t in PAGE]


def test_batched_recognition_reads_like_unbatched(engine, monkeypatch):
    img = page(["Sliding window 4096", "Short", "A much longer line of text, 2024",
                "Memory stays flat", "Index 7"], size=(1000, 500))
    rgb = np.asarray(img)
    crops, _, _ = engine._crops(rgb, engine.detect(rgb))
    assert len(crops) == 5
    monkeypatch.setattr(engine, "rec_batch_cols", 10**6)
    assert len(engine._batches(crops)) == 1
    together = engine.recognize(crops)
    monkeypatch.setattr(engine, "rec_batch_cols", 1)
    assert len(engine._batches(crops)) == len(crops)
    alone = engine.recognize(crops)
    assert [t for t, _ in together] == [t for t, _ in alone]
    assert all(abs(a - b) < 0.05 for (_, a), (_, b) in zip(together, alone, strict=True))
    assert sorted(squash(t) for t, _ in alone) == sorted(
        squash(t) for t in ["Sliding window 4096", "Short", "A much longer line of text, 2024",
                            "Memory stays flat", "Index 7"])


def test_batches_group_short_crops_only(engine):
    short = [np.zeros((40, 60, 3), np.uint8)] * 3  # padded to 320 columns each
    long = [np.zeros((40, 1000, 3), np.uint8)] * 2
    groups = engine._batches(short + long)
    assert sorted(len(idx) for idx, _ in groups) == [1, 1, 3]
    assert {width for idx, width in groups if len(idx) == 3} == {engine._rec_width}
    assert sorted(i for idx, _ in groups for i in idx) == list(range(5))


def test_blank_and_banner_images(engine):
    assert engine.read_upright(Image.new("RGB", (400, 300), "white")) == ([], 0)
    banner = Image.new("RGB", (900, 50), "white")  # wider than 8:1, letterboxed for DB
    ImageDraw.Draw(banner).text((10, 5), "Annual report 2023", fill="black",
                                font=ImageFont.load_default(size=36))
    lines, rotation = engine.read_upright(banner)
    assert rotation == 0 and [squash(line.text) for line in lines] == ["annualreport2023"]
    assert all(0 <= line.bbox[1] < line.bbox[3] <= 50 for line in lines)


@pytest.mark.parametrize("ink", ["black", (250, 225, 120), (150, 150, 150)])
def test_content_box_trims_blank_margins(ink):
    img = Image.new("RGB", (1000, 800), "white")
    ImageDraw.Draw(img).text((400, 300), "Hello 42", fill=ink,
                             font=ImageFont.load_default(size=30))
    x0, y0, x1, y1 = _content_box(np.asarray(img), margin=10)
    assert 400 - 10 - 8 <= x0 <= 400 and 300 - 10 - 8 <= y0 <= 310
    assert 450 < x1 < 600 and 320 < y1 < 380


def test_content_box_keeps_blank_and_busy_images_whole():
    blank = np.full((600, 500, 3), 255, np.uint8)
    assert _content_box(blank, margin=10) == (0, 0, 500, 600)
    noise = np.random.default_rng(1).integers(0, 256, (600, 500, 3), dtype=np.uint8)
    assert _content_box(noise, margin=10) == (0, 0, 500, 600)


def test_trimmed_detection_matches_full_page(engine, monkeypatch):
    img = page(size=(1400, 1200))  # text in the top-left corner, blank elsewhere
    rgb = np.asarray(img)
    trimmed = engine.detect(rgb)
    monkeypatch.setattr("mmrag.ingest.ocr_rapid._content_box",
                        lambda rgb, margin: (0, 0, rgb.shape[1], rgb.shape[0]))
    full = engine.detect(rgb)
    assert len(trimmed) == len(full) == len(PAGE)
    def corners(quads):  # top to bottom
        return sorted((q.min(axis=0).tolist() + q.max(axis=0).tolist() for q in quads),
                      key=lambda c: c[1])

    for a, b in zip(corners(trimmed), corners(full), strict=True):
        assert max(abs(u - v) for u, v in zip(a, b, strict=True)) <= 6  # 4 det. px
    assert _grow(100, 150, 1000, 32) == (100, 164)  # whole steps, inside the image
    assert _grow(980, 1000, 1000, 32) == (968, 1000)


def test_read_and_orientation_keep_their_contract(engine):
    img = page()
    assert [squash(line.text) for line in engine.read(img)] == [squash(t) for t in PAGE]
    assert engine.orientation(img.transpose(TURNS[90])) == 270
    assert engine.orientation(img.transpose(TURNS[180])) == 180


def test_engines_are_shared_per_thread_count(tmp_path):
    one = get_engine("rapidocr", threads=1)
    assert get_engine("rapidocr", threads=1) is one
    assert one.threads == 1
    s = IngestSettings(ocr_cache=str(tmp_path), ocr_workers=2)
    assert squash(ocr_image(page(PAGE[:1]), s).text) == squash(PAGE[0])


# --- graph folding ----------------------------------------------------------------------

MODELS = Path(__import__("rapidocr_onnxruntime").__file__).parent / "models"


def _session(data: bytes):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def _nodes(data: bytes) -> list[str]:
    model = _classes()["ModelProto"]()
    model.ParseFromString(data)
    return [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("name, shape", [("ch_PP-OCRv4_rec_infer.onnx", (2, 3, 48, 400)),
                                         ("ch_PP-OCRv4_det_infer.onnx", (1, 3, 320, 256))])
def test_folded_model_computes_the_same(name, shape):
    data = (MODELS / name).read_bytes()
    folded = fold_model(data)
    before, after = _nodes(data), _nodes(folded)
    assert len(after) < len(before)
    assert after.count("Clip") < before.count("Clip")  # hard-swish no longer spelled out
    assert after.count("Conv") == before.count("Conv")
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
    want = _session(data).run(None, {"x": x})[0]
    got = _session(folded).run(None, {"x": x})[0]
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-4
    meta = _session(folded).get_modelmeta().custom_metadata_map
    assert meta == _session(data).get_modelmeta().custom_metadata_map  # rec's alphabet


def test_fold_leaves_other_models_alone():
    classes = _classes()
    model = classes["ModelProto"]()
    node = model.graph.node.add()
    node.op_type, node.name = "Relu", "r"
    node.input.append("x")
    node.output.append("y")
    data = model.SerializeToString()
    assert fold_model(data) == data
