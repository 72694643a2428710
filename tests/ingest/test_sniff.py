from __future__ import annotations

import os

import pytest

from mmrag.ingest.sniff import loader_for, sniff
from tests.factories import (
    make_bmp,
    make_gif,
    make_jpeg,
    make_multiframe_tiff,
    make_png,
    make_text_pdf,
    make_webp,
)


@pytest.mark.parametrize(("make", "mime"), [
    (make_png, "image/png"), (make_jpeg, "image/jpeg"), (make_gif, "image/gif"),
    (make_webp, "image/webp"), (make_bmp, "image/bmp"), (make_multiframe_tiff, "image/tiff"),
    (lambda: make_text_pdf(["x"]), "application/pdf"),
])
def test_magic_bytes(make, mime):
    assert sniff(make()) == mime
    assert loader_for(mime) is not None


def test_content_wins_over_extension():
    assert sniff(make_png(), "photo.jpg") == "image/png"
    assert sniff(os.urandom(4096), "report.pdf") == "application/octet-stream"
    assert sniff(b"just words", "image.png") == "text/plain"


def test_text_kinds():
    assert sniff("héllo wörld\n".encode()) == "text/plain"
    assert sniff(b"# Title\n\nbody", "notes.md") == "text/markdown"
    assert sniff(b"# Title\n\nbody", "notes.MARKDOWN") == "text/markdown"
    assert sniff(b"# Title\n\nbody", "notes.txt") == "text/plain"
    assert sniff(b"  <!DOCTYPE html><html><body>x</body></html>") == "text/html"
    assert sniff(b"<html><p>x</p></html>", "page.bin") == "text/html"
    assert sniff(b"<p>fragment</p>", "page.htm") == "text/html"
    assert sniff("café olé, naïve".encode("latin-1")) == "text/plain"  # not UTF-8, still text


def test_binary_and_empty():
    assert sniff(b"") == "application/octet-stream"
    assert sniff(b"\x00\x01\x02\x03" * 100) == "application/octet-stream"
    assert sniff(b"BMW is a car brand") == "text/plain"  # "BM" alone is not a bitmap
    assert loader_for("application/octet-stream") is None


def test_utf8_cut_at_sample_boundary_is_still_text():
    data = ("a" * (64 * 1024 - 1) + "é" * 10).encode()
    assert sniff(data) == "text/plain"


def test_loader_names():
    assert loader_for("image/png") == "image"
    assert loader_for("application/pdf") == "pdf"
    assert loader_for("text/markdown") == "markdown"
    assert loader_for("text/html; charset=utf-8") == "html"
