"""OCR: engines, rotation, needs_ocr thresholds, cache, and the PDF/image integration.

Every image is drawn in code with Pillow's scalable default font; the rapidocr models ship
inside its wheel, so nothing is downloaded.
"""

from __future__ import annotations

import io
import re
import shutil
import threading

import pytest
from PIL import Image, ImageDraw, ImageFont

from mmrag.config import IngestSettings
from mmrag.errors import UnknownBackendError
from mmrag.ingest import ocr as ocr_module
from mmrag.ingest.images import load_image
from mmrag.ingest.ocr import (
    OCRCache,
    OCRLine,
    get_engine,
    needs_ocr,
    ocr_engines,
    ocr_image,
    read_upright,
)
from mmrag.ingest.pdf import load_pdf
from mmrag.types import Blob
from tests.factories import make_text_pdf

pytest.importorskip("rapidocr_onnxruntime")

LINES = ["Quarterly revenue 2024", "Sliding window 4096"]
TURNS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180,
         270: Image.Transpose.ROTATE_270}


def text_image(lines=LINES, size=(820, 220), font_size=48, origin=(24, 24),
               step=90) -> Image.Image:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=font_size)
    for i, line in enumerate(lines):
        draw.text((origin[0], origin[1] + i * step), line, fill="black", font=font)
    return img


def words(text: str) -> list[str]:
    """Lower-case alphanumerics; OCR may drop a space between words, so compare letters."""
    return re.findall(r"[a-z0-9]+", text.lower())


def squash(text: str) -> str:
    return "".join(words(text))


def settings_for(tmp_path, **kw) -> IngestSettings:
    return IngestSettings(ocr_cache=str(tmp_path / "ocr-cache"), **kw)


class CountingEngine:
    """Wraps the real engine and counts reads (registered below under a test name)."""

    name = "counting"
    calls = 0
    lock = threading.Lock()

    def __init__(self, threads: int = 1):
        self.inner = get_engine("rapidocr")

    def read(self, image, classify: bool = True):
        with CountingEngine.lock:
            CountingEngine.calls += 1
        return self.inner.read(image, classify=classify)

    def orientation(self, image):
        return self.inner.orientation(image)


ocr_engines.register("counting-test")(CountingEngine)


@pytest.fixture
def counting():
    CountingEngine.calls = 0
    return CountingEngine


@pytest.fixture(scope="module")
def engine():
    return get_engine("rapidocr")


def test_reads_words(engine):
    img = text_image()
    result = read_upright(engine, img)
    assert result.rotation == 0
    assert squash(result.text) == squash(" ".join(LINES))
    assert [squash(line.text) for line in result.lines] == [squash(t) for t in LINES]
    for line in result.lines:
        x0, y0, x1, y1 = line.bbox
        assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
        assert 0.5 < line.confidence <= 1.0
    # first line above the second, where it was drawn
    assert result.lines[0].bbox[3] <= result.lines[1].bbox[1] + 5
    assert result.lines[0].bbox[1] < 24 + 48


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_rotated_image_read_upright_in_original_coordinates(engine, turn):
    upright = read_upright(engine, text_image())
    img = text_image().transpose(TURNS[turn])
    result = read_upright(engine, img)
    # turning it back by the complementary angle makes it upright
    assert (result.rotation + turn) % 360 == 0
    assert squash(result.text) == squash(upright.text)
    assert len(result.lines) == len(upright.lines)
    # boxes are in the rotated image's pixels: turning the upright boxes gives them back
    w, h = img.size
    for got, ref in zip(result.lines, upright.lines, strict=True):
        x0, y0, x1, y1 = ref.bbox
        W, H = text_image().size
        if turn == 90:
            want = (y0, W - x1, y1, W - x0)
        elif turn == 180:
            want = (W - x1, H - y1, W - x0, H - y0)
        else:
            want = (H - y1, x0, H - y0, x1)
        assert all(abs(a - b) < 12 for a, b in zip(got.bbox, want, strict=True)), (got.bbox, want)
        assert 0 <= got.bbox[0] < got.bbox[2] <= w and 0 <= got.bbox[1] < got.bbox[3] <= h


def test_upright_stops_after_one_orientation_probe(engine, counting, tmp_path):
    s = settings_for(tmp_path, ocr_engine="counting-test")
    ocr_image(text_image(), s)
    assert counting.calls == 1  # no extra reads of other turns


def test_cache_makes_second_read_free(counting, tmp_path):
    s = settings_for(tmp_path, ocr_engine="counting-test")
    first = ocr_image(text_image(), s)
    assert counting.calls == 1
    second = ocr_image(text_image(), s)
    assert counting.calls == 1
    assert second.text == first.text and second.lines == first.lines
    files = list((tmp_path / "ocr-cache").rglob("*.json"))
    assert len(files) == 1
    # a different image (or engine name) is a different key
    assert OCRCache.key(text_image(["other"]), "x") != OCRCache.key(text_image(), "x")
    assert OCRCache.key(text_image(), "a") != OCRCache.key(text_image(), "b")
    # a corrupt entry is a miss, not an error
    files[0].write_text("{not json")
    assert ocr_image(text_image(), s).text == first.text
    assert counting.calls == 2


def test_tiny_images_are_skipped(counting, tmp_path):
    s = settings_for(tmp_path, ocr_engine="counting-test")
    assert ocr_image(Image.new("RGB", (200, 20), "white"), s).lines == []
    assert counting.calls == 0


def test_unknown_engine_names_choices(tmp_path):
    with pytest.raises(UnknownBackendError, match="rapidocr"):
        ocr_image(text_image(), settings_for(tmp_path, ocr_engine="nope"))


# --- needs_ocr ---------------------------------------------------------------------------

LETTER = 612 * 792
PROSE = ("Sliding window attention lets each token attend to the previous 4096 tokens, "
         "which bounds the cache and keeps inference memory flat. ") * 3


def test_needs_ocr_clean_text_layer():
    assert not needs_ocr(PROSE, LETTER)


def test_needs_ocr_empty():
    assert needs_ocr("", LETTER)
    assert needs_ocr("  \n\t \n", LETTER)


def test_needs_ocr_near_empty_scales_with_page_area():
    short = "Figure 3 page 12 scan"  # 17 visible characters
    assert needs_ocr(short, LETTER)
    assert not needs_ocr(short, LETTER / 4)  # a small page holds less text
    assert needs_ocr("p. 7", LETTER / 4)  # below the absolute floor anywhere


def test_needs_ocr_garbled():
    assert needs_ocr("\ufffd" * 40 + PROSE[:200], LETTER)  # replacement characters
    assert needs_ocr("".join(chr(0xE000 + i % 50) for i in range(300)), LETTER)  # PUA
    assert needs_ocr("".join(chr(1 + i % 8) for i in range(300)) + PROSE[:100], LETTER)
    assert needs_ocr("!#$%&'()*+,-./:;<=>?@[]^_{|}~" * 10, LETTER)  # no letters
    # a few odd characters in real prose are fine
    assert not needs_ocr(PROSE + "\ufffd ", LETTER)


# --- PDF integration ----------------------------------------------------------------------

def image_pdf(pages: list[Image.Image]) -> bytes:
    buf = io.BytesIO()
    pages[0].save(buf, format="PDF", save_all=len(pages) > 1, append_images=pages[1:],
                  resolution=150.0)
    return buf.getvalue()


def pdf_blob(data: bytes) -> Blob:
    return Blob(uri="mem:scan.pdf", data=data, name="scan.pdf", mime="application/pdf")


def scan_page(lines: list[str], turn: int | None = None) -> Image.Image:
    # US letter at 150 dpi, text near the top
    img = text_image(lines, size=(1275, 1650), font_size=40, origin=(120, 150), step=80)
    return img.transpose(TURNS[turn]) if turn else img


def test_image_only_pdf_is_ocrd_with_bboxes(tmp_path):
    data = image_pdf([scan_page(["Rolling buffer cache", "Memory stays flat"]),
                      scan_page(["Second page 77"], turn=90)])
    pieces = list(load_pdf(pdf_blob(data), settings_for(tmp_path)))
    pages = [p for p in pieces if p.modality == "page"]
    chunks = [p for p in pieces if p.modality == "text"]
    assert [p.page for p in pages] == [1, 2]
    assert squash(pages[0].text) == squash("Rolling buffer cache Memory stays flat")
    assert all(p.metadata["origin"] == "ocr" for p in pages + chunks)
    assert pages[1].metadata.get("ocr_rotation") == 270
    assert squash(pages[1].text) == squash("Second page 77")
    assert {c.page for c in chunks} == {1, 2}
    size = {p.page: (p.metadata["width_pt"], p.metadata["height_pt"]) for p in pages}
    assert size[2][0] > size[2][1]  # the turned scan is a landscape page
    for c in chunks:
        width, height = size[c.page]
        x0, y0, x1, y1 = c.bbox
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    # page 1: text drawn near the top-left, so the box is there (top-left origin, points)
    first = next(c for c in chunks if c.page == 1)
    assert first.bbox[0] < 120 and first.bbox[1] < 200 and first.bbox[3] < 300
    # rotated page 2 (landscape 792 x 612 pt): text runs down the left edge
    second = next(c for c in chunks if c.page == 2)
    assert second.bbox[2] - second.bbox[0] < second.bbox[3] - second.bbox[1]


def test_text_layer_page_is_not_ocrd(counting, tmp_path):
    data = make_text_pdf([PROSE, "Short but clean title page"])
    s = settings_for(tmp_path, ocr_engine="counting-test")
    pieces = list(load_pdf(pdf_blob(data), s))
    assert counting.calls == 0
    assert all(p.metadata["origin"] == "text" for p in pieces)
    assert all(p.bbox is None for p in pieces if p.modality == "text")
    # "always" OCRs every page anyway
    list(load_pdf(pdf_blob(data), settings_for(tmp_path, ocr_engine="counting-test",
                                               ocr="always")))
    assert counting.calls == 2


def test_ocr_never_disables_it(counting, tmp_path):
    data = image_pdf([scan_page(["Nothing read here"])])
    s = settings_for(tmp_path, ocr_engine="counting-test", ocr="never")
    pieces = list(load_pdf(pdf_blob(data), s))
    assert counting.calls == 0
    assert [p.modality for p in pieces] == ["page"] and pieces[0].text == ""
    png = io.BytesIO()
    text_image().save(png, format="PNG")
    img_blob = Blob(uri="mem:chart.png", data=png.getvalue(), name="chart.png",
                    mime="image/png")
    (piece,) = load_image(img_blob, s)
    assert counting.calls == 0 and piece.text == "chart" and "ocr_text" not in piece.metadata


def test_many_ocr_pages_stream_in_order(counting, tmp_path):
    texts = [f"Page number {i}" for i in range(6)]
    data = image_pdf([scan_page([t]) for t in texts])
    s = settings_for(tmp_path, ocr_engine="counting-test", ocr_workers=2)
    pages = [p for p in load_pdf(pdf_blob(data), s) if p.modality == "page"]
    assert [p.page for p in pages] == list(range(1, 7))
    assert [squash(p.text) for p in pages] == [squash(t) for t in texts]
    assert counting.calls == 6


# --- images -------------------------------------------------------------------------------

def test_image_text_gets_ocr_after_name_words(tmp_path):
    png = io.BytesIO()
    text_image().save(png, format="PNG")
    img_blob = Blob(uri="mem:revenue_chart.png", data=png.getvalue(),
                    name="revenue_chart.png", mime="image/png")
    (piece,) = load_image(img_blob, settings_for(tmp_path))
    assert piece.text.startswith("revenue chart\n")
    assert squash(piece.metadata["ocr_text"]) == squash(" ".join(LINES))
    assert piece.metadata["origin"] == "ocr"
    assert "4096" in words(piece.text)


# --- tesseract ----------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract binary missing")
@pytest.mark.parametrize("turn", [0, 180])
def test_tesseract_reads_words(turn):
    pytest.importorskip("pytesseract")
    img = text_image()
    if turn:
        img = img.transpose(TURNS[turn])
    result = read_upright(get_engine("tesseract"), img)
    assert squash(result.text) == squash(" ".join(LINES))
    assert result.rotation == (360 - turn) % 360


def test_engines_registry_lists_both():
    assert {"rapidocr", "tesseract"} <= set(ocr_engines.names())
    assert isinstance(OCRLine("a", (0, 0, 1, 1), 1.0).bbox, tuple)
    assert ocr_module.MIN_SIDE == 32
