"""The fixture makers produce what they claim (other stages' tests rely on them)."""

from __future__ import annotations

import io

import pypdfium2 as pdfium
import pytest
from PIL import Image

from tests.factories import (
    make_bomb_png,
    make_broken_xref_pdf,
    make_encrypted_pdf,
    make_gif,
    make_image_pdf,
    make_jpeg,
    make_multiframe_tiff,
    make_png,
    make_text_pdf,
    make_truncated_jpeg,
)


def test_text_pdf_round_trips_text_and_title():
    data = make_text_pdf(["alpha (beta) gamma\nsecond line", "page two"], title="Report")
    pdf = pdfium.PdfDocument(data)
    try:
        assert len(pdf) == 2
        first = pdf[0].get_textpage().get_text_range()
        assert "alpha (beta) gamma" in first and "second line" in first
        assert pdf[1].get_textpage().get_text_range().strip() == "page two"
        assert pdf.get_metadata_value("Title") == "Report"
    finally:
        pdf.close()


def test_image_pdf_has_no_text_layer():
    pdf = pdfium.PdfDocument(make_image_pdf(2))
    try:
        assert len(pdf) == 2
        assert pdf[0].get_textpage().get_text_range().strip() == ""
    finally:
        pdf.close()


def test_encrypted_pdf_needs_password():
    data = make_encrypted_pdf("pw")
    with pytest.raises(pdfium.PdfiumError):
        pdfium.PdfDocument(data)
    pdf = pdfium.PdfDocument(data, password="pw")
    assert "secret text" in pdf[0].get_textpage().get_text_range()
    pdf.close()


def test_broken_xref_really_has_wrong_offsets():
    data = make_broken_xref_pdf()
    good = make_text_pdf(["broken xref but readable"])
    assert data != good and len(data) >= len(good)
    assert b"startxref\n9" in data


def test_images_decode_as_declared():
    assert Image.open(io.BytesIO(make_png("blue", (10, 7)))).size == (10, 7)
    assert Image.open(io.BytesIO(make_jpeg("red", (9, 5)))).format == "JPEG"
    gif = Image.open(io.BytesIO(make_gif(4)))
    assert gif.n_frames == 4
    tif = Image.open(io.BytesIO(make_multiframe_tiff(3)))
    assert tif.n_frames == 3


def test_truncated_jpeg_fails_to_load():
    img = Image.open(io.BytesIO(make_truncated_jpeg()))
    with pytest.raises(OSError):
        img.load()


def test_bomb_png_is_small_but_claims_huge_size():
    data = make_bomb_png()
    assert len(data) < 1_000_000
    w = int.from_bytes(data[16:20], "big")
    h = int.from_bytes(data[20:24], "big")
    assert (w, h) == (30000, 30000)


def test_bomb_png_is_a_valid_png():
    small = make_bomb_png(100, 700)  # same construction, small enough to decode
    img = Image.open(io.BytesIO(small))
    img.load()
    assert img.size == (100, 700) and img.getextrema() == (0, 0)
