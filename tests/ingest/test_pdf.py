from __future__ import annotations

import logging

import pytest

from mmrag.config import IngestSettings
from mmrag.errors import IngestError
from mmrag.ingest import load
from mmrag.ingest import pdf as pdf_module
from mmrag.ingest.pdf import load_pdf
from mmrag.types import Blob
from tests.factories import (
    make_broken_xref_pdf,
    make_encrypted_pdf,
    make_image_pdf,
    make_text_pdf,
    one_line,
)


def blob(data: bytes) -> Blob:
    return Blob(uri="mem:doc.pdf", data=data, name="doc.pdf", mime="application/pdf")


def test_pages_and_chunks(settings):
    data = make_text_pdf(["Revenue grew in the north.", "Costs fell in the south."],
                         title="Annual Report")
    pieces = list(load_pdf(blob(data), settings))
    assert [(p.modality, p.page) for p in pieces] == [
        ("page", 1), ("text", 1), ("page", 2), ("text", 2)]
    page1, text1 = pieces[0], pieces[1]
    assert "Revenue grew in the north." in page1.text
    assert page1.image.mode == "RGB"
    # US letter at 110 dpi: 8.5in x 11in
    assert page1.image.size == (round(8.5 * 110), (11 * 110))
    assert page1.media_ext == "png" and page1.media is None
    assert page1.metadata["width_pt"] == 612 and page1.metadata["height_pt"] == 792
    assert page1.metadata["title"] == "Annual Report" and page1.metadata["pages"] == 2
    assert text1.text == "Revenue grew in the north."
    assert page1.text[text1.chunk_start:text1.chunk_end] == text1.text


def test_dpi_setting_controls_render_size():
    data = make_text_pdf(["x"], size=(144, 72))
    [page, _] = list(load_pdf(blob(data), IngestSettings(pdf_dpi=72)))
    assert page.image.size == (144, 72)
    [page, _] = list(load_pdf(blob(data), IngestSettings(pdf_dpi=144)))
    assert page.image.size == (288, 144)


def test_long_page_text_is_chunked(settings):
    lines = [f"Line {i} says something about topic number {i}." for i in range(120)]
    pieces = list(load_pdf(blob(make_text_pdf(["\n".join(lines)])), settings))
    texts = [p for p in pieces if p.modality == "text"]
    assert len(texts) > 2 and all(len(p.text) <= settings.chunk_size for p in texts)
    assert "Line 119" in texts[-1].text


def test_image_only_pdf_has_page_without_chunks(settings):
    pieces = list(load_pdf(blob(make_image_pdf(2)), settings))
    assert [p.modality for p in pieces] == ["page", "page"]
    assert all(p.text.strip() == "" for p in pieces)
    img = pieces[0].image
    r, g, b = img.getpixel((img.width // 2, img.height // 2))
    assert r > 200 and g < 60 and b < 60


def test_encrypted_pdf(settings):
    data = make_encrypted_pdf("pw")
    with pytest.raises(IngestError) as err:
        list(load_pdf(blob(data), settings))
    assert err.value.reason == "encrypted PDF; set ingest.pdf_password"
    with pytest.raises(IngestError) as err:
        list(load_pdf(blob(data), IngestSettings(pdf_password="nope")))
    assert "wrong password" in one_line(err.value)
    pieces = list(load_pdf(blob(data), IngestSettings(pdf_password="pw")))
    assert "secret text" in pieces[0].text


def test_corrupt_pdf(settings):
    for data in (b"%PDF-1.4\n" + bytes(range(256)) * 4, make_text_pdf(["x"])[:60]):
        with pytest.raises(IngestError) as err:
            list(load(blob(data), settings))
        assert one_line(err.value).startswith("mem:doc.pdf: corrupt PDF")


def test_broken_xref_repaired_or_clean_error(settings):
    try:
        pieces = list(load(blob(make_broken_xref_pdf()), settings))
    except IngestError as err:
        one_line(err)
    else:
        assert "broken xref but readable" in pieces[0].text


def test_streaming_renders_lazily(monkeypatch):
    import pypdfium2 as pdfium

    renders: list[int] = []
    closed: list[int] = []
    real_read, real_close = pdf_module._read_page, pdfium.PdfDocument.close

    def counting(pdf, index, scale, uri, *rest):
        renders.append(index)
        return real_read(pdf, index, scale, uri, *rest)

    def closing(self, *a, **k):
        closed.append(1)
        return real_close(self, *a, **k)

    monkeypatch.setattr(pdf_module, "_read_page", counting)
    monkeypatch.setattr(pdfium.PdfDocument, "close", closing)
    data = make_text_pdf([f"page {i}" for i in range(50)])
    gen = load(blob(data), IngestSettings(pdf_dpi=36))
    first = next(gen)
    assert first.modality == "page" and first.page == 1
    assert renders == [0] and closed == []
    gen.close()
    assert renders == [0] and closed == [1]  # stopping early closes the document
    assert len(list(load_pdf(blob(data), IngestSettings(pdf_dpi=36)))) == 100
    assert len(renders) == 51


def test_failed_render_skips_page_keeps_going(settings, monkeypatch, caplog):
    import pypdfium2 as pdfium

    real_render = pdfium.PdfPage.render
    calls = []

    def flaky(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise pdfium.PdfiumError("boom")
        return real_render(self, *a, **k)

    monkeypatch.setattr(pdfium.PdfPage, "render", flaky)
    data = make_text_pdf(["one", "two", "three"])
    with caplog.at_level(logging.WARNING, logger="mmrag.ingest.pdf"):
        pieces = list(load_pdf(blob(data), settings))
    assert [(p.modality, p.page) for p in pieces] == [
        ("page", 1), ("text", 1), ("text", 2), ("page", 3), ("text", 3)]
    assert "page 2 failed to render" in caplog.text
